"""RMSPE, MAPE and the share of predictions within a tolerance (as in the report and nn-Meter)."""

from __future__ import annotations

import numpy as np


def _ratios(y_true, y_pred) -> np.ndarray:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    ok = np.isfinite(y_true) & np.isfinite(y_pred) & (y_true > 0)
    return (y_true[ok] - y_pred[ok]) / y_true[ok]


def rmspe(y_true, y_pred) -> float:
    r = _ratios(y_true, y_pred)
    return float(np.sqrt(np.mean(r**2)) * 100) if r.size else float("nan")


def mape(y_true, y_pred) -> float:
    r = _ratios(y_true, y_pred)
    return float(np.mean(np.abs(r)) * 100) if r.size else float("nan")


def within(y_true, y_pred, tol: float = 0.10) -> float:
    r = _ratios(y_true, y_pred)
    # tol + 1e-12: 1.1 against 1.0 is within 10% despite floating point
    return float(np.mean(np.abs(r) <= tol + 1e-12) * 100) if r.size else float("nan")


def summary(y_true, y_pred, prefix: str = "") -> dict:
    return {
        f"{prefix}rmspe": rmspe(y_true, y_pred),
        f"{prefix}mape": mape(y_true, y_pred),
        f"{prefix}within10": within(y_true, y_pred, 0.10),
        f"{prefix}n": int(_ratios(y_true, y_pred).size),
    }


def window_noise_rmspe(window_lists) -> float:
    """Measurement noise floor: RMSPE of each repeated window against its configuration's median."""
    r = []
    for ws in window_lists:
        ws = np.asarray(ws, dtype=float)
        if ws.size >= 2:
            med = np.median(ws)
            r.extend((ws - med) / med)
    return float(np.sqrt(np.mean(np.square(r))) * 100) if r else float("nan")
