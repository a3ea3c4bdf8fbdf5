"""In-context per-layer cost: a profiler trace of whole-model passes, ops mapped to layers.

TensorFlow: each TF op event carries its name scope in `args.long_name`
(``<model>_1/<layer>_1/.../op:Type``). The first scope below the model is the Keras layer
(Keras 3 appends ``_<n>`` when it re-enters a scope while tracing). Op time summed per layer
gives each layer's share of the model; shares times the whole-model measurement add up by
construction.

PyTorch: Keras layers open no profiler scope there, so each leaf layer's `call` is wrapped in a
`record_function` range named after it for the traced passes; a range's CPU time (on a GPU, the
device time of the kernels launched inside it) is the layer's op time.
"""

from __future__ import annotations

import glob
import itertools
import json
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

_SUFFIX = re.compile(r"_\d+$")
_GROUPS = re.compile(r'"groups":\s*(\d+)')
_CONVS = ("Conv1D", "Conv2D", "Conv3D")


@dataclass
class InContextProfile:
    op_time_s: dict[str, float]  # layer name -> op seconds per pass
    unattributed_s: float  # op seconds per pass outside any layer scope
    passes: int

    @property
    def total_op_time_s(self) -> float:
        return sum(self.op_time_s.values()) + self.unattributed_s


def layer_of(long_name: str, layer_names: set[str]) -> str | None:
    """Map an op's scope path to the Keras layer that issued it. Nested models' layers are
    named `outer/inner` (as `describe` flattens them): consecutive scope parts are joined and
    the longest match wins, so a nested leaf is found before its parent."""
    raw = long_name.split(":")[0].split("/")
    stripped = [_SUFFIX.sub("", p) for p in raw]
    depth = 1 + max((n.count("/") for n in layer_names), default=0)
    for start in range(min(3, len(raw))):  # the model scope may or may not be present
        for end in range(min(len(raw), start + depth), start, -1):
            options = [(s, r) if s != r else (r,) for s, r in zip(stripped[start:end], raw[start:end])]
            for combo in itertools.product(*options):
                name = "/".join(combo)
                if name in layer_names:
                    return name
    return None


def profile_tensorflow(fn: Callable[[], object], layer_names: list[str], passes: int = 2) -> InContextProfile:
    """Trace `passes` calls of an already warmed-up `fn` and attribute op time to layers."""
    import tensorflow as tf
    from xprof.convert import raw_to_tool_data

    names = set(layer_names)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(passes):
                fn()
        finally:
            tf.profiler.experimental.stop()
        files = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        if not files:
            raise RuntimeError("the TensorFlow profiler wrote no trace")
        data = raw_to_tool_data.xspace_to_tool_data(files, "trace_viewer", {})
    payload = data[0] if isinstance(data, tuple) else data
    events = json.loads(payload)["traceEvents"]
    per_layer: dict[str, float] = defaultdict(float)
    unattributed = 0.0
    for ev in events:
        long_name = ev.get("args", {}).get("long_name") if ev.get("ph") == "X" else None
        if not long_name:
            continue
        # trace_viewer reports `dur` in microseconds whatever the display unit
        dur = float(ev.get("dur", 0.0)) * 1e-6
        layer = layer_of(long_name, names)
        if layer is None:
            unattributed += dur
        else:
            per_layer[layer] += dur
    return InContextProfile(
        op_time_s={k: v / passes for k, v in per_layer.items()},
        unattributed_s=unattributed / passes,
        passes=passes,
    )


_RANGE = "nnenergy::"


def profile_torch(fn: Callable[[], object], layers: dict, passes: int = 2, cuda: bool = False) -> InContextProfile:
    """Trace `passes` calls of an already warmed-up `fn` under `torch.profiler`, one range per layer
    (`layers`: flattened name -> leaf layer object, as `describe.leaf_layers` gives)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    def ranged(name, call):
        def traced(*args, **kwargs):
            with record_function(_RANGE + name):
                return call(*args, **kwargs)

        return traced

    # Wrap the instance's `call` only for the trace: Keras looks `call` up on the instance.
    wrapped = []
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
        for name, layer in layers.items():
            if "call" in vars(layer):  # never expected of a Keras layer: fail loudly, not with a 0 share
                raise RuntimeError(f"layer {name} already has an instance attribute `call`")
            object.__setattr__(layer, "call", ranged(name, layer.call))
            wrapped.append(layer)
        with profile(activities=activities) as prof:
            for _ in range(passes):
                fn()
            if cuda:
                import torch

                torch.cuda.synchronize()
    finally:
        for layer in wrapped:
            del vars(layer)["call"]
    from torch.autograd import DeviceType

    per_layer: dict[str, float] = defaultdict(float)
    unattributed = 0.0
    for ev in prof.events():
        # Children are inside their top-level event's time; kernels inside their launching op's.
        if ev.cpu_parent is not None or ev.device_type != DeviceType.CPU:
            continue
        # microseconds; on a GPU the kernels' device time, else the CPU range's
        if cuda:  # `device_time_total` in recent PyTorch, `cuda_time_total` before
            us = getattr(ev, "device_time_total", None) or getattr(ev, "cuda_time_total", 0.0)
        else:
            us = ev.cpu_time_total
        if ev.name.startswith(_RANGE) and ev.name[len(_RANGE):] in layers:
            per_layer[ev.name[len(_RANGE):]] += us * 1e-6
        else:
            unattributed += us * 1e-6
    return InContextProfile(
        op_time_s={k: v / passes for k, v in per_layer.items()},
        unattributed_s=unattributed / passes,
        passes=passes,
    )


def grouped_conv_mask(layers):
    """Rows that are convolutions with `groups` > 1 (read from the stored layer config)."""
    import numpy as np

    conv = layers["layer_type"].isin(_CONVS).to_numpy()
    groups = np.ones(len(layers))
    if conv.any():
        found = layers.loc[conv, "layer_config"].astype(str).str.extract(_GROUPS)[0].astype(float).fillna(1.0)
        groups[conv] = found.to_numpy()
    return conv & (groups > 1)


def restore_untraced(layers, models):
    """In-context targets with the time the TensorFlow trace misses given back to its owner.

    TensorFlow 2.21 on a CPU runs a grouped convolution (`Conv2D(groups > 1)`: ConvNeXt's 7x7,
    ResNeXt, RegNet, AlexNet) outside the op events of its profiler: a 3x3 conv with 32 groups
    showed 0.3 ms of op time for 11 ms of wall time, and ConvNeXt models run 3-10x longer than
    their traced ops. Shares of traced op time alone would hand that time to the other layers.
    So, per configuration with grouped convolutions, the wall time the trace does not cover
    (wall - traced op time, >= 0) goes to them in proportion to their FLOPs (`ctx_untraced_s`),
    and `ctx_share`, `ctx_energy_j`, `ctx_latency_s` are recomputed. Configurations without one
    keep their traced shares, and so do those measured under another backend or on a GPU, whose
    untraced time is something else (Python between layers, kernel launches). Idempotent: it
    always starts from the traced `ctx_op_time_s`. Returns (layers, models), the models with
    each configuration's restored time (`ctx_untraced_s`).
    """
    import numpy as np

    layers = layers.copy()
    m = models.set_index("config_id")
    cid = layers["config_id"]
    # Rows older than the `backend`/`device` columns are TensorFlow on a CPU.
    tf_cpu = pd_column(m, "backend", "tensorflow").eq("tensorflow") & pd_column(m, "device", "cpu").eq("cpu")
    grouped = grouped_conv_mask(layers) & cid.map(tf_cpu).fillna(True).to_numpy(bool)
    wall_col = "latency_raw_s" if "latency_raw_s" in m else "latency_s"
    op_total = cid.map(m["ctx_op_time_s"]).to_numpy(float)
    residual = np.clip(cid.map(m[wall_col]).to_numpy(float) - op_total, 0.0, None)
    flops = np.where(grouped, layers["flops"].to_numpy(float), 0.0)
    grouped_flops = pd_groupsum(flops, cid)
    has = grouped_flops > 0
    untraced = np.where(has, residual * flops / np.where(has, grouped_flops, 1.0), 0.0)
    total = op_total + np.where(has, residual, 0.0)
    share = (layers["ctx_op_time_s"].to_numpy(float) + untraced) / np.where(total > 0, total, np.nan)
    layers["ctx_untraced_s"] = untraced
    layers["ctx_share"] = share
    layers["ctx_energy_j"] = cid.map(m["energy_j"]).to_numpy(float) * share
    layers["ctx_latency_s"] = cid.map(m["latency_s"]).to_numpy(float) * share
    models = models.assign(ctx_untraced_s=models["config_id"].map(layers.groupby("config_id")["ctx_untraced_s"].sum()))
    return layers, models


def pd_column(frame, name: str, default):
    """`frame[name]` with missing values (or a missing column) read as `default`."""
    import pandas as pd

    if name not in frame:
        return pd.Series(default, index=frame.index)
    return frame[name].where(frame[name].notna(), default)


def pd_groupsum(values, keys):
    """Per row, the sum of `values` over the rows sharing its key."""
    import pandas as pd

    return pd.Series(values, index=keys.index).groupby(keys.to_numpy()).transform("sum").to_numpy()
