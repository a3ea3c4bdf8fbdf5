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
    wrapped = [layer for layer in layers.values() if "call" not in vars(layer)]
    names = {id(layer): name for name, layer in layers.items()}
    for layer in wrapped:
        object.__setattr__(layer, "call", ranged(names[id(layer)], layer.call))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
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
        us = ev.device_time_total if cuda else ev.cpu_time_total
        if ev.name.startswith(_RANGE) and ev.name[len(_RANGE):] in layers:
            per_layer[ev.name[len(_RANGE):]] += us * 1e-6
        else:
            unattributed += us * 1e-6
    return InContextProfile(
        op_time_s={k: v / passes for k, v in per_layer.items()},
        unattributed_s=unattributed / passes,
        passes=passes,
    )
