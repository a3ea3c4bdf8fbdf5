"""Adapt a profile's predictor to a new machine from a one-minute panel of measurements.

The same model costs 1.1-2.6x more on one CPU than another, per kind of work (large GEMMs gain
most from AVX-512), so one global speed ratio is not enough. The panel holds small kernels of
each group of layer kinds (dense compute, depthwise, memory-bound) and a few small models,
measured here with the interleaved protocol. Each is predicted by the source predictor; per
group g, a factor s_g >= 0 is fitted so that predicted * sum_g(s_g * share_g) matches the
measurement (relative least squares, shrunk towards the panel's median ratio). The learned
residuals of the source predictor stay as they are: calibration rescales its per-kind costs.
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
    return out


@dataclass
class Calibration:
    """Per-group factors from a source profile's predictor to this machine."""

    source_profile: str
    target_profile: str
    speed_ratio: float  # median of measured / predicted over the panel
    spread: float  # (max - min) / median of those ratios: how far from one global ratio
    energy_factors: dict[str, float]
    latency_factors: dict[str, float]
    panel_error_before: float  # RMSPE of the panel, predicted by the source predictor
    panel_error_after: float  # ... after calibration (in-sample: the panel fitted it)
    seconds: float
    measured_at: str
    panel: list[dict] = field(default_factory=list)
    method: str = "predictions of the source predictor"  # or "measured panel of the source profile"

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
        for target, factors in (("energy_j", self.energy_factors), ("latency_s", self.latency_factors)):
            scale = out.loc[layer, "kind"].map(lambda k: factors.get(group_of(k), self.speed_ratio)).astype(float)
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


def measure_panel(rounds: int = 2) -> tuple[dict, pd.DataFrame]:
    """The panel measured here: {name: {energy_j, latency_s}} (raw) and its layer tables."""
    from nnenergy.describe import describe_layers
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.meter import EnergyMeter
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import inference_call, reference_call

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


def calibrate(pyfunc, source_profile: str, rounds: int = 2, source_panel: dict | None = None) -> Calibration:
    """Measure the panel here and fit per-group factors for `pyfunc` (a loaded layer-wise predictor).

    With the source profile's own panel measurements (`source_panel`, from `record_panel`), each
    item's ratio is here ÷ there: the hardware difference alone. Without it, the ratio is here ÷
    the predictor's prediction, which also carries the predictor's own error on small kernels.
    """
    from nnenergy.measure.hardware import current_profile_name

    t0 = time.perf_counter()
    measured, tables = measure_panel(rounds)
    out = pyfunc.predict(tables)
    groups = sorted({*GROUPS.values(), DEFAULT_GROUP})
    rows, shares_e, shares_t = [], [], []
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
        there = base.get(name, {"energy_j": float(tot["energy_j"]), "latency_s": float(tot["latency_s"])})
        rows.append({"name": name, "batch_size": batch, "measured_energy_j": measured[name]["energy_j"],
                     "measured_latency_s": measured[name]["latency_s"], "predicted_energy_j": float(tot["energy_j"]),
                     "predicted_latency_s": float(tot["latency_s"]), "source_energy_j": there["energy_j"],
                     "source_latency_s": there["latency_s"]})
    df = pd.DataFrame(rows)
    me, pe = df["measured_energy_j"].to_numpy(), df["source_energy_j"].to_numpy()
    mt, pt = df["measured_latency_s"].to_numpy(), df["source_latency_s"].to_numpy()
    fe = _fit_factors(me, pe, np.array(shares_e), groups)
    ft = _fit_factors(mt, pt, np.array(shares_t), groups)
    after = pe * (np.array(shares_e) @ np.array([fe[g] for g in groups]))
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
        "predictions of the source predictor",
    )


def summary(c: Calibration) -> dict:
    return {"profile": c.target_profile, "source_profile": c.source_profile, "method": c.method,
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
        cal = calibrate(pyfunc, source, rounds=args.rounds, source_panel=source_panel)
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
