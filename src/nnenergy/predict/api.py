"""`nnenergy.predict(...)`: energy, latency and power of one forward pass, before running it.

The jobs around it have their own modules: `inputs` (argument checks, layer-table files), `models`
(a name or file -> a Keras model at the requested input shape), `loading` (the registered predictor
from MLflow and its errors), `cache` (the local predictor cache), `hardware` (the hardware list),
`calibration` (a saved calibration, applied), `errors`. Their public names stay importable from here.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nnenergy.paths import cache_dir
from nnenergy.predict.cache import CachedPredictor  # noqa: F401
from nnenergy.predict.errors import PredictError
from nnenergy.predict.hardware import hardware_model_uri, hardware_profiles  # noqa: F401
from nnenergy.predict.inputs import (  # noqa: F401
    MODEL_SUFFIXES,
    TABLE_SUFFIXES,
    _is_table,
    _looks_like_path,
    check_arguments,
    check_model_file,
    read_layer_table,
)
from nnenergy.predict.loading import (  # noqa: F401
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_URI,
    TRAIN_HINT,
    load_predictor,
    machine_model_uri,
)
from nnenergy.predict.models import (  # noqa: F401
    BUILTIN_DEFAULT_SIZE,
    canonical_name,
    import_tensorflow_quietly,
    resolve_model,
)

# Nothing heavy at import time: the CLI checks its arguments before TensorFlow, Keras, MLflow
# or pandas load (each function imports what it needs).


@dataclass
class LayerPrediction:
    name: str
    type: str
    kind: str
    energy_j: float
    latency_s: float
    known: bool
    out_of_range: bool = False  # its size lies outside what its kind was trained on
    fused_into: str = ""  # the layer whose kernel runs it (its cost is predicted there), when fused
    out_of_range_reason: str = ""  # which feature lies outside which trained range, when out of range
    flops: float = 0.0  # its analytic FLOPs for the whole batch (`describe.analytic_cost`)


@dataclass
class Prediction:
    model_name: str
    batch_size: int
    input_shape: list[int]
    energy_j: float  # joules per forward pass of one batch
    latency_s: float
    power_w: float
    energy_interval_j: list[float] | None  # 90% interval from held-out errors
    correction_energy_j: float  # model-level correction, included in energy_j
    correction_latency_s: float
    layers: list[LayerPrediction]
    unknown_layer_types: list[str]
    predictor: dict
    hardware: dict
    heldout_error: dict = field(default_factory=dict)
    # Types predicted from the nearest measured kind, with no measured data of their own
    # (`layer_features.UNMEASURED_TYPES`): their share of the prediction is a rough estimate.
    unmeasured_layer_types: list[str] = field(default_factory=list)
    out_of_range_layers: int = 0
    calibration: dict | None = None  # the machine a calibration adapted the prediction to
    # The machine's speed the figures are stated at (`nnenergy.speed`): speed_index (None: not
    # applied, `note` says why), latency_speed_index, read_at, source, canonical_at, note.
    speed: dict = field(default_factory=dict)
    # At least what one pass holds at once (float32): the weights plus the largest layer's input and
    # output; and this machine's RAM, to compare (a batch of 100,000 images does not fit).
    memory_bytes: float = 0.0
    ram_bytes: float = 0.0
    # Rows nothing was learned for (kind `other`, the generic fallback), by name: `nnenergy predict` exits 3
    # on them unless --allow-unknown; the interval is widened for them (`unknown.widen`).
    unknown_layers: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)  # name -> {"shape", "dtype"} of each input it was described on
    flops: float = 0.0  # the model's analytic FLOPs for one pass of the batch (the layers' sum)

    def to_dict(self) -> dict:
        return asdict(self)

    def layers_frame(self):
        """Per-layer predictions as a pandas DataFrame (with each layer's share of the total)."""
        import pandas as pd

        df = pd.DataFrame([asdict(layer) for layer in self.layers],
                          columns=["name", "type", "kind", "energy_j", "latency_s", "known", "out_of_range",
                                   "fused_into", "out_of_range_reason", "flops"])
        df["share"] = df["energy_j"] / self.energy_j if self.energy_j > 0 else float("nan")
        return df

    def energy_kwh(self, inferences: int = 1) -> float:
        return self.energy_j * inferences / 3.6e6


def _calibration(calibration):
    if calibration is None:
        return None
    from nnenergy.predict.calibration import Calibration

    try:
        return calibration if isinstance(calibration, Calibration) else Calibration.load(Path(calibration))
    except (OSError, ValueError, TypeError) as exc:
        raise PredictError(f"cannot read calibration {calibration}: {exc}") from None


def _speed(meta: dict, cal, mode: str):
    """The speed this prediction is stated at (`nnenergy.speed`), and why when there is none: a
    predictor of this machine's profile is moved to the speed now; another profile's, or one adapted by
    a panel calibration file (which states the machine's speed when its panel was measured), is not."""
    from nnenergy import speed
    from nnenergy.measure.hardware import current_profile_name

    profile = (meta.get("hardware") or {}).get("profile", "")
    if isinstance(mode, speed.Speed):  # a reading given by the caller (benchmarks/drift.py)
        if mode.profile != profile:
            raise PredictError(f"speed: a reading of {mode.profile} cannot state a predictor of {profile}")
        return mode, ""
    if cal is not None:
        return None, "not applied: the calibration file states this machine's speed when its panel was measured"
    if profile != current_profile_name():
        return None, (f"not applied: the predictor's profile {profile or '(unknown)'} is not this machine's "
                      "(`nnenergy calibrate` brings this machine up)")
    if "canonical_reference" in meta and not meta["canonical_reference"]:
        return None, ("not applied: the predictor's training labels carry no speed index (measured before "
                      "the protocol had a reference), so they are on no reference's scale")
    c = meta.get("calibrated") or {}
    bringup = {"speed_index": c["speed_index"], "latency_speed_index": c.get("latency_speed_index", c["speed_index"]),
               "read_at": c.get("at")} if c.get("speed_index") and c.get("at") else None
    s = speed.resolve(profile, mode, fallback=bringup, canon=meta.get("canonical_reference"))
    if s is None:
        return None, f"not applied: {profile} has no canonical reference (`nnenergy calibrate` measures one)"
    return s, s.note


@functools.lru_cache(maxsize=1)
def _describing_code() -> str:
    """The identity of the code that describes a model (its modules' bytes and Keras's version):
    read once per process, not once per candidate of a search."""
    import hashlib
    import importlib.util
    from importlib.metadata import version

    code = b"".join(Path(importlib.util.find_spec(m).origin).read_bytes()
                    for m in ("nnenergy.describe", "nnenergy.describe_ops", "nnenergy.describe_traced", "nnenergy.zoo",
                              "nnenergy.predict.models", "nnenergy.predict.feeds"))
    return f"{hashlib.sha1(code).hexdigest()}|{version('keras')}"


def _table_key(model, batch_size: int, input_shape, structure=None) -> str | None:
    """The cache key of a model's described layer table: a pure function of the model (its name, or
    its file's bytes), the input shape, the batch size and the describing code (with Keras's
    version). None for a keras.Model object (no stable identity)."""
    import hashlib

    if not isinstance(model, (str, os.PathLike)):
        return None
    if _looks_like_path(model):
        path = Path(model)
        if not path.is_file():
            return None
        ident = "file:" + hashlib.sha1(path.read_bytes()).hexdigest()
    else:
        ident = "name:" + str(model)
    shape = None if input_shape is None else [int(d) for d in input_shape]
    key = f"{ident}|{shape}|{batch_size}|{_describing_code()}" + (f"|{structure}" if structure else "")
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _cached_table(key: str | None):
    if key is None:
        return None
    folder = cache_dir() / "tables"
    try:
        import pandas as pd

        info = json.loads((folder / f"{key}.json").read_text())
        return info["name"], pd.read_parquet(folder / f"{key}.parquet"), info["shape"], info.get("inputs") or {}
    except (OSError, ValueError, KeyError):
        return None


def _store_table(key: str | None, name: str, layers, shape: list[int], inputs: dict) -> None:
    if key is None:
        return
    folder = cache_dir() / "tables"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{key}.{os.getpid()}.tmp"
        layers.to_parquet(tmp, index=False)
        tmp.replace(folder / f"{key}.parquet")
        (folder / f"{key}.json").write_text(json.dumps({"name": name, "shape": shape, "inputs": inputs}))  # last
    except OSError:  # the cache is an optimisation: never fail a prediction over it
        pass


def _model_of(config: str) -> str:
    """The model a layer table's configuration (`schema.config_id`: model|size|batch) was described from."""
    from nnenergy.schema import parse_config_id

    try:
        return parse_config_id(config)[0]
    except ValueError:  # a table written by other means: its own name
        return config


def _describe(model, batch_size: int, input_shape, config_id_prefix: str = "", inputs=None,
              seq_len: int | None = None) -> list[tuple]:
    """(name, layer table, input shape, batch size, inputs) of each configuration `model` stands for: one for
    a Keras model, file or name; one per configuration of a layer table file (read without TensorFlow).
    A name or file described before (same shapes, batch and code) comes from the table cache
    (`<cache>/tables/`) without TensorFlow: a repeated prediction answers in about a second.
    `inputs`/`seq_len`: the shapes and dtypes of a model's inputs by name (`predict.feeds`)."""
    if _is_table(model):  # named by its model ("ResNet50", not its configuration "ResNet50|224|32")
        return [(_model_of(name), layers.assign(config_id=f"{config_id_prefix}{name}"), shape, batch, {})
                for name, layers, shape, batch in read_layer_table(Path(model))]
    from nnenergy.predict.feeds import normalize

    structure = json.dumps([sorted(normalize(inputs).items()), seq_len]) if inputs or seq_len else None
    key = _table_key(model, batch_size, input_shape, structure)
    hit = _cached_table(key)
    if hit is not None:
        name, layers, shape, fed = hit
        return [(name, layers.assign(config_id=f"{config_id_prefix}{name}"), shape, batch_size, fed)]
    import_tensorflow_quietly()
    from nnenergy.describe import describe_layers
    from nnenergy.predict.feeds import describe_inputs, feed, input_names

    if isinstance(model, str) and not _looks_like_path(model):
        model = canonical_name(model)  # an unknown name fails before MLflow loads
    km, name = resolve_model(model, input_shape, structured=bool(inputs) or seq_len is not None)
    feeds = feed(km, inputs, seq_len) if inputs or seq_len is not None or len(km.inputs) > 1 else None
    try:
        layers = describe_layers(km, batch_size, config_id=f"{config_id_prefix}{name}", inputs=feeds)
    except ValueError as exc:  # a nested model without a layer graph
        raise PredictError(str(exc).splitlines()[0]) from None
    fed = describe_inputs(feeds or km.inputs, input_names(km))
    shape = next(iter(fed.values()))["shape"]
    _store_table(key, name, layers, shape, fed)
    return [(name, layers, shape, batch_size, fed)]


def _unmeasured(layers, per_layer, meta: dict, static: set) -> list[str]:
    """Known-kind layer types the predictor never trained on (from its metadata; else a static list)."""
    types = set(layers["layer_type"])
    trained = meta.get("layer_types")
    if trained is None:
        return sorted(types & static)
    unknown = set(per_layer.loc[~per_layer["known"].astype(bool), "layer_type"])
    return sorted(types - set(trained) - unknown)


def _fused_into(row, names: dict) -> str:
    unit = row.unit_index
    return "" if unit != unit or unit == row.layer_index else names.get(unit, "")


def _calibration_note(cal, meta: dict) -> dict | None:
    """Which machine a prediction was adapted to, and how: a panel calibration file, or the
    registered transfer of `nnenergy calibrate` (with the speed index it is stated at)."""
    if cal is not None:
        return {"kind": "panel", "from": cal.source_profile, "to": cal.target_profile,
                "speed_ratio": cal.speed_ratio, "measured_at": cal.measured_at}
    c = meta.get("calibrated")
    if not c:
        return None
    return {"kind": "bring-up", "from": c.get("from"), "to": (meta.get("hardware") or {}).get("profile"),
            "measured_at": c.get("at"), "method": c.get("method")}


def _assemble(name, input_shape, batch_size, layers, out, meta, info, cal, speed: dict, fed=None) -> Prediction:
    """One model's rows of the pyfunc output -> a `Prediction`."""
    import pandas as pd

    from nnenergy.features.layer_features import UNMEASURED_TYPES
    from nnenergy.predict.unknown import unknown_layers, widen

    if "out_of_range" not in out:
        out = out.assign(out_of_range=False)
    per_layer = out[out["row"] == "layer"]
    if "unit_index" not in per_layer:
        per_layer = per_layer.assign(unit_index=per_layer["layer_index"])
    names = dict(zip(per_layer["layer_index"], per_layer["layer_name"]))
    total = out[out["row"] == "total"].iloc[0]
    corr = out[out["row"] == "correction"]  # model-wise predictors have none (and no layer rows)
    corr_e, corr_t = (float(corr["energy_j"].iloc[0]), float(corr["latency_s"].iloc[0])) if len(corr) else (0.0, 0.0)
    lo, hi = total["energy_lo_j"], total["energy_hi_j"]
    interval = [float(lo), float(hi)] if pd.notna(lo) and pd.notna(hi) else None
    interval = widen(interval, float(total["energy_j"]), per_layer, layers, meta.get("layer_types"))
    flops = dict(zip(layers["layer_index"], layers["flops"].astype(float)))
    return Prediction(
        model_name=name,
        batch_size=batch_size,
        input_shape=list(input_shape),
        energy_j=float(total["energy_j"]),
        latency_s=float(total["latency_s"]),
        power_w=float(total["energy_j"] / total["latency_s"]) if total["latency_s"] > 0 else float("nan"),
        energy_interval_j=interval,
        correction_energy_j=corr_e,
        correction_latency_s=corr_t,
        layers=[LayerPrediction(r.layer_name, r.layer_type, r.kind, float(r.energy_j), float(r.latency_s),
                                bool(r.known), bool(r.out_of_range), _fused_into(r, names),
                                str(getattr(r, "out_of_range_reason", "") or ""), flops.get(r.layer_index, 0.0))
                for r in per_layer.itertuples()],
        unknown_layer_types=sorted(set(per_layer.loc[~per_layer["known"].astype(bool), "layer_type"])),
        predictor={**info, "name": meta.get("predictor"), "source": meta.get("source"),
                   "dataset": meta.get("dataset")},
        hardware=meta.get("hardware", {}),
        heldout_error=meta.get("heldout", {}),
        unmeasured_layer_types=_unmeasured(layers, per_layer, meta, UNMEASURED_TYPES),
        out_of_range_layers=int(per_layer["out_of_range"].sum()),
        calibration=_calibration_note(cal, meta),
        speed=speed,
        memory_bytes=pass_memory_bytes(layers),
        ram_bytes=ram_bytes(),
        unknown_layers=unknown_layers(per_layer, meta.get("layer_types")),
        inputs=fed or {},
        flops=float(sum(flops.values())),
    )


def pass_memory_bytes(layers) -> float:
    """A lower bound of the memory one forward pass holds (float32): all weights plus the largest
    layer's input and output (a layer table's elements already count the batch)."""
    if not len(layers):
        return 0.0
    acts = (layers["in_elems"].astype(float) + layers["out_elems"].astype(float)).max()
    return float(4.0 * (layers["params"].astype(float).sum() + acts))


def ram_bytes() -> float:
    """This machine's physical memory (0 where the platform does not say)."""
    import os

    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0.0


def predict(model, batch_size: int = 1, input_shape=None, model_uri: str | None = None,
            tracking_uri: str | None = None, calibration=None, speed: str | None = None, _loaded=None, *,
            inputs=None, seq_len: int | None = None) -> Prediction:
    """Predict one forward pass of `model` (a keras.Model, `.keras`/`.h5` path or application name).

    `input_shape` (no batch dimension) overrides the model's input shape, or supplies it where
    the model has none (a Sequential model saved before it was built). Nested models (a
    backbone inside a model, Sequential blocks) are predicted layer by layer. `calibration`
    (a file from `nnenergy calibrate`, or a `Calibration`) adapts the prediction to that machine.
    `speed` (`nnenergy.speed.MODES`): the machine's speed the figures are stated at: `auto` (the last
    reading when fresh, else a ~2.5 s probe), `now` (a probe), `last`, `canonical` (no scaling), or a
    `nnenergy.speed.Speed` reading of the predictor's profile; None: `$NNENERGY_SPEED` or `auto`.
    `inputs` (name -> shape, or (shape, dtype)) and `seq_len` give the inputs of a dict- or multi-input
    model, or the unknown dimensions of its own input specs (`predict.feeds`). Layers nothing was
    learned for are listed in `unknown_layers` and widen the interval (`predict.unknown`).
    """
    return predict_many([model], batch_size, input_shape, model_uri, tracking_uri, calibration, speed, _loaded,
                        inputs=inputs, seq_len=seq_len)[0]


def predict_many(models, batch_size: int = 1, input_shape=None, model_uri: str | None = None,
                 tracking_uri: str | None = None, calibration=None, speed: str | None = None,
                 _loaded=None, *, inputs=None, seq_len: int | None = None) -> list[Prediction]:
    """Predict many candidates at once (architecture search, a CI check): the predictor loads once
    and all layer tables go through it in one call. Candidates are Keras models, files, names, or
    layer-table files (`nnenergy describe`; these keep their own batch size and need no TensorFlow)."""
    import pandas as pd

    from nnenergy import speed as speeds
    from nnenergy.predict import feeds

    models = list(models)
    try:
        if not isinstance(speed, speeds.Speed):
            speed = speeds.check_mode(speed) if speed is not None else speeds.default_mode()
    except speeds.SpeedError as exc:
        raise PredictError(str(exc)) from None
    for m in models:
        check_arguments(m, batch_size, input_shape)  # before anything heavy loads
    feeds.check(inputs, seq_len)
    cal = _calibration(calibration)
    pyfunc, info = _loaded or load_predictor(model_uri or machine_model_uri(tracking_uri), tracking_uri)
    described = [d for i, m in enumerate(models)
                 for d in _describe(m, batch_size, input_shape, f"{i}:", inputs, seq_len)]
    out = pyfunc.predict(pd.concat([d[1] for d in described], ignore_index=True))
    if cal is not None:
        out = cal.apply(out)
    meta = pyfunc.metadata.metadata or {}
    try:
        s, note = _speed(meta, cal, speed)
    except speeds.SpeedError as exc:
        raise PredictError(str(exc)) from None
    out = speeds.apply(out, s)
    stated = s.as_dict() if s is not None else {"speed_index": None, "latency_speed_index": None, "read_at": None,
                                                "source": "none", "canonical_at": None, "variability": 0.0}
    stated["note"] = note
    by_id = dict(tuple(out.groupby("config_id", sort=False)))
    return [_assemble(name, shape, batch, layers, by_id[layers["config_id"].iloc[0]], meta, info, cal, stated, fed)
            for name, layers, shape, batch, fed in described]
