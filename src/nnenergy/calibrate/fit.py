"""Adapt a profile's predictor to a new machine from a one-minute panel of measurements.

The same model costs 1.1-2.6x more on one CPU than another, per kind of work (large GEMMs gain
most from AVX-512), so one global speed ratio is not enough. The panel holds small kernels of
each group of layer kinds (dense compute, depthwise, memory-bound), two small models and eleven
small generated models (one per macro kind of the architecture space), measured here with the
interleaved protocol. Each is predicted by the source predictor; per group g, a factor s_g >= 0
is fitted so that predicted * sum_g(s_g * share_g) matches the measurement (relative least
squares, shrunk towards the median ratio), or (the default, `model="size"`) a per-layer factor
e^a * (t / 1 ms)^b of the layer's predicted latency t: how well an op uses the cores and vector
units depends on how much work it has more than on its kind. Factors are fitted on all panel
items by default, or on its whole models only (`fit_on="models"`, few-shot as in HELP /
MAPLE-Edge). The learned residuals of the source predictor stay as they are: calibration
rescales its costs.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

GROUPS = {  # layer kind -> calibration group
    "conv": "compute", "dense": "compute",
    "depthwise_conv": "depthwise",
}
DEFAULT_GROUP = "memory"
DEFAULT_FILE = Path(".nnenergy_cache") / "calibration.json"
SHRINK = 0.3  # weight of the pull towards the median ratio (few samples per group)
# Small generated models, one per macro kind of `nnenergy.arch`, ~10-40 ms per pass on 2 cores:
# (name, batch). Never keras.applications: those are what calibration is judged on.
WHOLE_MODELS = (("gen1_s000000", 8), ("gen1_s000012", 1), ("gen1_s000002", 16), ("gen1_s000003", 8),
                ("gen1_s000004", 8), ("gen1_s000005", 2), ("gen1_s000006", 4), ("gen1_s000007", 64),
                ("gen1_s000008", 4), ("gen1_s000020", 4), ("gen1_s000010", 2))
SMALL_MODELS = ("tiny_cnn_64", "reference_cnn_96")
FIT_ON = ("models", "all")
MODELS = ("groups", "size")
SIZE_REF_S = 1e-3  # layer latency at which the size model's factor is exp(log_a)
SHRINK_SLOPE = 0.05  # pull of the size exponent towards 0 (one ratio for all sizes)


def group_of(kind: str) -> str:
    return GROUPS.get(kind, DEFAULT_GROUP)


def _kernel(name: str, shape: tuple[int, ...], body):
    import keras

    inp = keras.Input(shape, name="x")
    return keras.Model(inp, body(inp), name=name)


def panel_models() -> list[tuple[str, object, int]]:
    """(name, keras model, batch size): kernels of every group and two small models, ~5-100 ms each."""
    from keras import layers as L

    from nnenergy.measure import architectures

    def conv_bn_relu(filters, k, stride=1):
        return lambda x: L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, k, stride, padding="same")(x)))

    def dw_bn_relu(k):
        return lambda x: L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(k, padding="same")(x)))

    items = [
        ("conv3x3_56x64", (56, 56, 64), conv_bn_relu(64, 3), 2),
        ("conv3x3_28x128", (28, 28, 128), conv_bn_relu(128, 3), 4),
        ("conv3x3_14x256", (14, 14, 256), conv_bn_relu(256, 3), 8),
        ("conv1x1_56x64to256", (56, 56, 64), conv_bn_relu(256, 1), 2),
        ("conv1x1_14x512to128", (14, 14, 512), conv_bn_relu(128, 1), 8),
        ("stem7x7_s2", (160, 160, 3), conv_bn_relu(64, 7, 2), 2),
        ("dw3x3_56x144", (56, 56, 144), dw_bn_relu(3), 2),
        ("dw3x3_14x576", (14, 14, 576), dw_bn_relu(3), 8),
        ("dw5x5_28x240", (28, 28, 240), dw_bn_relu(5), 4),
        ("dense_1024", (1024,), lambda x: L.Dense(1024, activation="relu")(x), 32),
        ("dense_2048to1000", (2048,), lambda x: L.Dense(1000)(x), 8),
        ("bn_relu_56x128", (56, 56, 128), lambda x: L.ReLU()(L.BatchNormalization()(x)), 4),
        ("add_28x256", (28, 28, 256), lambda x: L.Add()([x, L.Activation("swish")(x)]), 4),
        ("concat_28x128", (28, 28, 128), lambda x: L.Concatenate()([x, L.ReLU()(x)]), 4),
        ("maxpool_112x64", (112, 112, 64), lambda x: L.MaxPooling2D(3, 2, padding="same")(x), 2),
        ("gap_7x1280", (7, 7, 1280), lambda x: L.GlobalAveragePooling2D()(x), 16),
    ]
    out = [(name, _kernel(name, shape, body), batch) for name, shape, body, batch in items]
    out.append(("tiny_cnn_64", architectures.build("tiny_cnn", 64).model, 8))
    out.append(("reference_cnn_96", architectures.build("reference_cnn", 96).model, 4))
    out += [(name, architectures.build(name, None).model, batch) for name, batch in WHOLE_MODELS]
    return out


def is_whole_model(name: str) -> bool:
    return name in SMALL_MODELS or name in dict(WHOLE_MODELS)


@dataclass
class Calibration:
    """Per-layer factors (by kind group, or by size) from a source profile's predictor to this machine."""

    source_profile: str
    target_profile: str
    speed_ratio: float  # median of measured / predicted over the fitted panel items
    spread: float  # (max - min) / median of those ratios: how far from one global ratio
    energy_factors: dict[str, float]
    latency_factors: dict[str, float]
    panel_error_before: float  # RMSPE of the panel, predicted by the source predictor
    panel_error_after: float  # ... after calibration (in-sample: the panel fitted it)
    seconds: float
    measured_at: str
    panel: list[dict] = field(default_factory=list)
    method: str = "predictions of the source predictor"  # or "measured panel of the source profile"
    fit_on: str = "all"  # which panel items the factors are fitted on: all (files before this field), or models
    # "groups": one factor per group of layer kinds; "size": a factor exp(log_a) * (t / 1 ms)^b per
    # layer, t its predicted latency here on the source profile (parallel efficiency and vector
    # width gains depend on how much work one op has, not on its kind).
    model: str = "groups"
    size_params: dict = field(default_factory=dict)  # target -> [log_a, b] for model "size"

    def layer_scale(self, layers: pd.DataFrame, target: str) -> pd.Series:
        """The factor of each layer row of a pyfunc output, for `target`."""
        if self.model == "size":
            return pd.Series(size_factor(layers["latency_s"].to_numpy(float), *self.size_params[target]),
                             index=layers.index)
        factors = self.energy_factors if target == "energy_j" else self.latency_factors
        return layers["kind"].map(lambda k: factors.get(group_of(k), self.speed_ratio)).astype(float)

    def save(self, path: Path = DEFAULT_FILE) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path = DEFAULT_FILE) -> "Calibration":
        return cls(**json.loads(Path(path).read_text()))

    def apply(self, out: pd.DataFrame) -> pd.DataFrame:
        """Rescale a pyfunc output (layer, correction and total rows) to this machine."""
        out = out.copy()
        layer = out["row"] == "layer"
        scales = {t: self.layer_scale(out[layer], t) for t in ("energy_j", "latency_s")}  # before rescaling
        for target, factors in (("energy_j", self.energy_factors), ("latency_s", self.latency_factors)):
            scale = scales[target]
            for cid, g in out[layer].groupby("config_id"):
                total = (out["config_id"] == cid) & (out["row"] == "total")
                s = scale.loc[g.index]
                ratio = float((g[target] * s).sum() / g[target].sum()) if g[target].sum() > 0 else self.speed_ratio
                out.loc[g.index, target] = g[target] * s
                corr = (out["config_id"] == cid) & (out["row"] == "correction")
                out.loc[corr, target] = out.loc[corr, target] * ratio
                out.loc[total, target] = out.loc[total, target] * ratio
                if target == "energy_j":
                    for col in ("energy_lo_j", "energy_hi_j"):
                        out.loc[total, col] = out.loc[total, col] * ratio
            # Model-wise predictors (no layer rows): one ratio per target, the interval with it.
            whole_only = (out["row"] == "total") & ~out["config_id"].isin(out.loc[layer, "config_id"])
            ratio = self.speed_ratio if target == "energy_j" else float(np.median(list(factors.values())))
            out.loc[whole_only, target] *= ratio
            if target == "energy_j":
                for col in ("energy_lo_j", "energy_hi_j"):
                    out.loc[whole_only, col] *= ratio
        return out


def _fit_factors(measured: np.ndarray, predicted: np.ndarray, shares: np.ndarray, groups: list[str]) -> dict:
    """Non-negative s_g minimising sum(((predicted * shares @ s) - measured) / measured)^2,
    shrunk to the median ratio."""
    from scipy.optimize import nnls

    r0 = float(np.median(measured / predicted))
    a = (predicted[:, None] * shares) / measured[:, None]
    b = np.ones(len(measured))
    reg = np.sqrt(SHRINK) * np.eye(len(groups))
    s, _ = nnls(np.vstack([a, reg]), np.concatenate([b, np.sqrt(SHRINK) * r0 * np.ones(len(groups))]))
    present = shares.sum(axis=0) > 0
    return {g: float(s[i]) if present[i] else r0 for i, g in enumerate(groups)}


def size_factor(latency, log_a: float, b: float):
    """The size model's factor for layers of predicted `latency` (seconds): e^log_a * (t / 1 ms)^b."""
    return np.exp(log_a) * (np.clip(latency, 1e-7, None) / SIZE_REF_S) ** b


def _size_rescaled(base: np.ndarray, weights: list, latencies: list, log_a: float, b: float) -> np.ndarray:
    """Per panel item, `base` times the weighted mean size factor of its layers."""
    return np.array([b0 * np.sum(w * size_factor(t, log_a, b)) for b0, w, t in zip(base, weights, latencies)])


def _fit_size(base: np.ndarray, measured: np.ndarray, weights: list, latencies: list) -> list[float]:
    """[log_a, b] minimising sum(_size_rescaled(...) / measured - 1)^2 with b shrunk towards 0;
    `weights`/`latencies`: per item, its layers' shares and predicted latencies."""
    from scipy.optimize import least_squares

    def resid(p):
        after = _size_rescaled(base, weights, latencies, *p)
        return np.concatenate([after / measured - 1.0, [np.sqrt(SHRINK_SLOPE) * p[1]]])

    sol = least_squares(resid, [float(np.log(np.median(measured / base))), 0.0])
    return [float(sol.x[0]), float(sol.x[1])]


def measure_panel(rounds: int = 2) -> tuple[dict, pd.DataFrame]:
    """The panel measured here: {name: {energy_j, latency_s}} (raw) and its layer tables."""
    from nnenergy.describe import describe_layers
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.meter import EnergyMeter
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import Threads, inference_call, reference_call, set_threads

    # The sweep's thread pools (inter_op=1), fixed before TensorFlow runs anything: the panel is then
    # measured the way the data it calibrates was.
    set_threads(Threads())
    calls, tables = {}, []
    for name, model, batch in panel_models():
        calls[name] = inference_call(model, tuple(int(d) for d in model.inputs[0].shape[1:]), batch)
        tables.append(describe_layers(model, batch, config_id=name))
    settings = ProtocolSettings(rounds=rounds, windows=2, min_seconds=0.1, warmup=2)
    with MeasurementLock():
        results, _ = InterleavedMeasurer(EnergyMeter(), settings, reference_call()).run(calls)
    measured = {k: {"energy_j": r.energy_raw_j, "latency_s": r.latency_raw_s} for k, r in results.items()}
    return measured, pd.concat(tables, ignore_index=True)


def record_panel(path: Path, rounds: int = 3) -> dict:
    """Store this machine's panel beside its profile's data (`data/<profile>/panel.json`): other
    machines then calibrate against measurements, not against the predictor's panel errors."""
    from nnenergy.measure.hardware import current_profile_name

    measured, _ = measure_panel(rounds)
    rec = {"profile": current_profile_name(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "items": measured}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rec, indent=1))
    return rec


def calibrate(pyfunc, source_profile: str, rounds: int = 2, source_panel: dict | None = None,
              fit_on: str = "all", panel: tuple[dict, pd.DataFrame] | None = None,
              model: str = "size") -> Calibration:
    """Measure the panel here and fit per-layer factors for `pyfunc` (a loaded layer-wise predictor).

    With the source profile's own panel measurements (`source_panel`, from `record_panel`), each
    item's ratio is here ÷ there: the hardware difference alone. Without it, the ratio is here ÷
    the predictor's prediction, which also carries the predictor's own error on small kernels.
    """
    from nnenergy.measure.hardware import current_profile_name

    if fit_on not in FIT_ON or model not in MODELS:
        raise ValueError(f"fit_on must be one of {FIT_ON} and model one of {MODELS}: {fit_on!r}, {model!r}")
    t0 = time.perf_counter()
    measured, tables = panel or measure_panel(rounds)  # `panel`: one measurement, several fits
    out = pyfunc.predict(tables)
    groups = sorted({*GROUPS.values(), DEFAULT_GROUP})
    rows, shares_e, shares_t, layer_w, layer_t = [], [], [], {"energy_j": [], "latency_s": []}, []
    base = (source_panel or {}).get("items", {})
    index = tables.drop_duplicates("config_id")[["config_id", "batch_size"]].itertuples(index=False)
    for name, batch in index:
        o = out[out["config_id"] == name]
        lay, tot = o[o["row"] == "layer"], o[o["row"] == "total"].iloc[0]
        grp = lay["kind"].map(group_of)
        se = np.array([lay.loc[grp == g, "energy_j"].sum() for g in groups])
        st = np.array([lay.loc[grp == g, "latency_s"].sum() for g in groups])
        shares_e.append(se / max(se.sum(), 1e-15))
        shares_t.append(st / max(st.sum(), 1e-15))
        for t in ("energy_j", "latency_s"):
            v = lay[t].to_numpy(float)
            layer_w[t].append(v / max(v.sum(), 1e-15))
        layer_t.append(lay["latency_s"].to_numpy(float))
        there = base.get(name, {"energy_j": float(tot["energy_j"]), "latency_s": float(tot["latency_s"])})
        rows.append({"name": name, "batch_size": batch, "measured_energy_j": measured[name]["energy_j"],
                     "measured_latency_s": measured[name]["latency_s"], "predicted_energy_j": float(tot["energy_j"]),
                     "predicted_latency_s": float(tot["latency_s"]), "source_energy_j": there["energy_j"],
                     "source_latency_s": there["latency_s"]})
    df = pd.DataFrame(rows)
    df["whole_model"] = df["name"].map(is_whole_model)
    fit = df["whole_model"].to_numpy() if fit_on == "models" and df["whole_model"].any() else np.ones(len(df), bool)
    me, pe = df["measured_energy_j"].to_numpy()[fit], df["source_energy_j"].to_numpy()[fit]
    mt, pt = df["measured_latency_s"].to_numpy()[fit], df["source_latency_s"].to_numpy()[fit]
    shares_e, shares_t = np.array(shares_e)[fit], np.array(shares_t)[fit]
    fe = _fit_factors(me, pe, shares_e, groups)
    ft = _fit_factors(mt, pt, shares_t, groups)
    after = pe * (shares_e @ np.array([fe[g] for g in groups]))
    size_params = {}
    if model == "size":
        idx = np.flatnonzero(fit)
        lt = [layer_t[i] for i in idx]
        size_params = {"energy_j": _fit_size(pe, me, [layer_w["energy_j"][i] for i in idx], lt),
                       "latency_s": _fit_size(pt, mt, [layer_w["latency_s"][i] for i in idx], lt)}
        after = _size_rescaled(pe, [layer_w["energy_j"][i] for i in idx], lt, *size_params["energy_j"])
    ratios = me / pe

    def rmspe(y, p):
        return float(np.sqrt(np.mean(((y - p) / y) ** 2)) * 100)

    med = float(np.median(ratios))
    return Calibration(
        source_profile=source_profile, target_profile=current_profile_name(), speed_ratio=med,
        spread=float((ratios.max() - ratios.min()) / med), energy_factors=fe, latency_factors=ft,
        panel_error_before=rmspe(me, pe), panel_error_after=rmspe(me, after),
        seconds=time.perf_counter() - t0, measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        panel=df.to_dict("records"), method="measured panel of the source profile" if base else
        "predictions of the source predictor", fit_on=fit_on, model=model, size_params=size_params,
    )


def summary(c: Calibration) -> dict:
    return {"profile": c.target_profile, "source_profile": c.source_profile, "method": c.method, "fit_on": c.fit_on,
            "model": c.model, "size_params": c.size_params,
            "speed_ratio": c.speed_ratio,
            "spread": c.spread, "energy_factors": c.energy_factors, "latency_factors": c.latency_factors,
            "panel_rmspe_before": c.panel_error_before, "panel_rmspe_after": c.panel_error_after,
            "seconds": c.seconds, "panel_ratio_quartiles": statistics.quantiles([p["measured_energy_j"] / p[
                "predicted_energy_j"] for p in c.panel], n=4)}


def main(argv: list[str]) -> int:
    """`nnenergy calibrate`: measure the panel here, fit factors, store them for `predict`."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="nnenergy calibrate", description=__doc__.split("\n")[0])
    p.add_argument("--model-uri", default=None, help="predictor to adapt (default: the registered champion)")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--out", default=str(DEFAULT_FILE), help=f"where to store it (default {DEFAULT_FILE})")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the panel (about 15 s each)")
    p.add_argument("--fit-on", choices=FIT_ON, default="all",
                   help="fit the factors on all panel items (default) or on its whole models only")
    p.add_argument("--model", choices=MODELS, default="size",
                   help="per-layer factor by the layer's size, its predicted latency (default), or by kind group")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--record", action="store_true",
                   help="measure the panel for THIS machine's profile and store it as data/<profile>/panel.json "
                        "(run it where a profile's dataset was measured; other machines calibrate against it)")
    args = p.parse_args(argv)
    if args.record:
        from nnenergy.measure.hardware import current_profile_name

        path = Path("data") / current_profile_name() / "panel.json"
        record_panel(path)
        print(f"stored the panel of {current_profile_name()} in {path}")
        return 0
    from nnenergy.measure.lock import MeasurementLockError
    from nnenergy.predict.api import PredictError, load_predictor

    try:
        pyfunc, _ = load_predictor(args.model_uri, args.tracking_uri)
        meta = pyfunc.metadata.metadata or {}
        hw = meta.get("hardware") or {}
        source = hw.get("profile") or hw.get("hardware_id", "unknown")
        panel_file = Path("data") / source / "panel.json"
        source_panel = json.loads(panel_file.read_text()) if panel_file.exists() else None
        cal = calibrate(pyfunc, source, rounds=args.rounds, source_panel=source_panel, fit_on=args.fit_on,
                        model=args.model)
    except (PredictError, MeasurementLockError) as exc:
        print(f"nnenergy calibrate: {exc}", file=sys.stderr)
        return 2
    source = cal.source_profile
    path = cal.save(Path(args.out))
    if args.json:
        print(json.dumps(summary(cal) | {"file": str(path)}))
    else:
        print(f"calibrated {source} -> {cal.target_profile} in {cal.seconds:.0f} s: speed ratio {cal.speed_ratio:.2f} "
              f"(spread {cal.spread:.2f}); factors {', '.join(f'{g} {v:.2f}' for g, v in cal.energy_factors.items())}; "
              f"panel RMSPE {cal.panel_error_before:.0f}% -> {cal.panel_error_after:.0f}%\nstored in {path}; "
              f"`nnenergy predict MODEL --calibration {path}` uses it")
    return 0
