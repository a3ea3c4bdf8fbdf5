"""`nnenergy.predict(...)`: energy, latency and power of one forward pass, before running it.

`predict_many` runs the path in order: the arguments checked and each model classified
(`describing.check_arguments`), the predictor loaded (`loading`), each model described into layer
tables (`describing.describe`), the predictor run on them, a panel calibration applied (`calibration`),
the figures moved to the machine's speed (`nnenergy.speed`), and each model's rows assembled into a
`Prediction` here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from nnenergy.predict.describing import check_arguments, describe
from nnenergy.predict.errors import PredictError
from nnenergy.predict.loading import load_predictor

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
    # applied, `note` says why), latency_speed_index, read_at, source, canonical_at, note, and what the
    # figures were multiplied by: energy_factor = speed_index ** elasticity (latency alike), the exponent
    # read at this configuration's latency where the elasticity has a size term (elasticity_per_decade).
    speed: dict = field(default_factory=dict)
    # At least what one pass holds at once (float32): the weights plus the largest layer's input and
    # output; and this machine's RAM, to compare (a batch of 100,000 images does not fit).
    memory_bytes: float = 0.0
    ram_bytes: float = 0.0
    # Rows nothing was learned for (kind `other`, the generic fallback), by name: `nnenergy predict` exits 3
    # on them unless --allow-unknown; the interval is widened for them (`unknown.widen`).
    unknown_layers: list[str] = field(default_factory=list)
    # Recurrent loops whose per-step cost the predictor cannot price (no loop term: `unknown.unpriced_loops`):
    # the total is low by what their steps cost; the interval is widened above for them.
    unpriced_loops: list[str] = field(default_factory=list)
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
    from nnenergy.predict.unknown import unknown_layers, unpriced_loops, widen, widen_for_loops

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
    loops = unpriced_loops(layers, meta) if len(per_layer) else []  # model-wise predictors: no layer rows
    interval = widen_for_loops(interval, float(total["energy_j"]), layers, loops)
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
        unpriced_loops=loops,
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
            tracking_uri: str | None = None, calibration=None, speed: str | None = None, *,
            inputs=None, seq_len: int | None = None, predictor=None) -> Prediction:
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
    learned for are listed in `unknown_layers` and widen the interval (`predict.unknown`). `predictor`:
    what `loading.load_predictor` returned, to reuse (`model_uri` and `tracking_uri` are then unused).
    """
    return predict_many([model], batch_size, input_shape, model_uri, tracking_uri, calibration, speed,
                        inputs=inputs, seq_len=seq_len, predictor=predictor)[0]


def predict_many(models, batch_size: int = 1, input_shape=None, model_uri: str | None = None,
                 tracking_uri: str | None = None, calibration=None, speed: str | None = None, *,
                 inputs=None, seq_len: int | None = None, predictor=None) -> list[Prediction]:
    """Predict many candidates at once (architecture search, a CI check): the predictor loads once
    and all layer tables go through it in one call. Candidates are Keras models, files, names, or
    layer-table files (`nnenergy describe`; these keep their own batch size and need no TensorFlow)."""
    import pandas as pd

    from nnenergy import speed as speeds
    from nnenergy.predict import feeds

    try:
        speed = speeds.chosen_mode(speed)
    except speeds.SpeedError as exc:
        raise PredictError(str(exc)) from None
    sources = [check_arguments(m, batch_size, input_shape) for m in models]  # before anything heavy loads
    feeds.check(inputs, seq_len)
    cal = _calibration(calibration)
    pyfunc, info = predictor or load_predictor(model_uri, tracking_uri, this_machine=True)
    described = [d for i, source in enumerate(sources)
                 for d in describe(source, batch_size, input_shape, f"{i}:", inputs, seq_len)]
    out = pyfunc.predict(pd.concat([d.layers for d in described], ignore_index=True))
    if cal is not None:
        out = cal.apply(out)
    meta = pyfunc.metadata.metadata or {}
    try:
        s, stated = speeds.for_predictor(meta, speed, panel=cal is not None)
    except speeds.SpeedError as exc:
        raise PredictError(str(exc)) from None
    per_row = speeds.configuration_latency(out)  # before scaling: what each configuration's exponent is read at
    size = per_row.groupby(out["config_id"]).first()
    out = speeds.apply(out, s, per_row)
    by_id = dict(tuple(out.groupby("config_id", sort=False)))

    def stated_for(cid):  # the exponent and factors each configuration got (they depend on its size)
        return stated if s is None else stated | {k: v for k, v in s.as_dict(size[cid]).items() if k != "note"}

    return [_assemble(name, shape, batch, layers, by_id[cid], meta, info, cal, stated_for(cid), fed)
            for name, layers, shape, batch, fed in described for cid in [layers["config_id"].iloc[0]]]
