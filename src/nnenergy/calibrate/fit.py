"""Fitting the calibration: per kind group, s_g >= 0 so that predicted * sum_g(s_g * share_g) matches
the measured panel (relative least squares, shrunk towards the median ratio), or (`model="size"`, the
default) e^a * (t / 1 ms)^b per layer of predicted latency t. The result is a `Calibration`
(`nnenergy.predict.calibration`), which prediction applies."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from nnenergy.calibrate.measure import measure_panel
from nnenergy.calibrate.panel import is_whole_model
from nnenergy.predict.calibration import DEFAULT_GROUP, GROUPS, Calibration, group_of, size_factor

SHRINK = 0.3  # weight of the pull towards the median ratio (few samples per group)
FIT_ON = ("models", "all")
MODELS = ("groups", "size")
SHRINK_SLOPE = 0.05  # pull of the size exponent towards 0 (one ratio for all sizes)


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


def calibrate_with_panel(pyfunc, source_profile: str, rounds: int = 2, source_panel: dict | None = None,
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
    all_shares = {"energy_j": np.array(shares_e), "latency_s": np.array(shares_t)}
    shares_e, shares_t = all_shares["energy_j"][fit], all_shares["latency_s"][fit]
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
    # What `Calibration.apply` does to each panel item's prediction (total after / before), so that
    # the summary prints the factors applied, not the group factors a size model never uses.
    if model == "size":
        applied = {t: _size_rescaled(np.ones(len(df)), layer_w[t], layer_t, *size_params[t]) for t in layer_w}
    else:
        by_target = {"energy_j": fe, "latency_s": ft}
        applied = {t: all_shares[t] @ np.array([f[g] for g in groups]) for t, f in by_target.items()}
    df = df.assign(applied_energy_factor=applied["energy_j"], applied_latency_factor=applied["latency_s"])

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


SIZE_POINTS_S = (1e-4, 1e-3, 1e-2, 1e-1)  # layer latencies at which the size model's factor is printed


def applied_to_models(c: Calibration) -> dict[str, float]:
    """Whole panel model -> the energy factor `apply` gives its prediction (total after / before)."""
    return {p["name"]: float(p["applied_energy_factor"]) for p in c.panel
            if p.get("whole_model") and "applied_energy_factor" in p}


def applied_text(c: Calibration) -> str:
    """What a prediction with this calibration is multiplied by, as the user reads it: per layer (the
    size model's factor at a few predicted latencies, or the group factors) and per whole panel model."""
    if c.model == "size":
        log_a, b = c.size_params["energy_j"]
        per_layer = ", ".join(f"x{float(size_factor(t, log_a, b)):.2f} at {t * 1e3:g} ms"
                              for t in SIZE_POINTS_S)
        text = f"energy per layer by its predicted latency: {per_layer}"
    else:
        text = "energy per layer by group: " + ", ".join(f"{g} x{v:.2f}" for g, v in c.energy_factors.items())
    models = applied_to_models(c)
    if models:
        text += "; whole models of the panel: " + ", ".join(f"{n} x{f:.2f}" for n, f in sorted(models.items()))
    return text


def summary(c: Calibration) -> dict:
    return {"profile": c.target_profile, "source_profile": c.source_profile, "method": c.method, "fit_on": c.fit_on,
            "model": c.model, "size_params": c.size_params, "applied_energy_factors": applied_to_models(c),
            "speed_ratio": c.speed_ratio,
            "spread": c.spread, "energy_factors": c.energy_factors, "latency_factors": c.latency_factors,
            "panel_rmspe_before": c.panel_error_before, "panel_rmspe_after": c.panel_error_after,
            "seconds": c.seconds, "panel_ratio_quartiles": statistics.quantiles([p["measured_energy_j"] / p[
                "predicted_energy_j"] for p in c.panel], n=4)}
