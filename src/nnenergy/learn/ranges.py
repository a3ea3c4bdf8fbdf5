"""Whether a layer lies outside what its kind was trained on, and why, in words a user can act on."""

from __future__ import annotations

import numpy as np

_CONTEXT = ("batch_size", "model_n_layers")  # what a layer's sizes follow from


def outside_range(s: np.ndarray, lo, hi, names: list[str], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of `s` (one column per feature of `names`) lie outside a kind's trained range, and why.
    Log features: 0.1 = 10% beyond the largest or smallest seen; others 10% of that end. The reason
    names the batch size or depth first (a layer's sizes follow from them), else the first feature."""
    log = np.array([f.startswith("log_") for f in names])
    tol_lo = np.where(log, 0.1, 0.1 * np.maximum(np.abs(lo), 1.0))
    tol_hi = np.where(log, 0.1, 0.1 * np.maximum(np.abs(hi), 1.0))
    bad = (s < lo - tol_lo) | (s > hi + tol_hi)
    flags, why = bad.any(axis=1), np.full(len(s), "", dtype=object)
    order = np.array(sorted(range(len(names)), key=lambda j: (names[j] not in _CONTEXT, j)))
    for r in np.flatnonzero(flags):
        j, more = order[bad[r, order].argmax()], int(bad[r].sum()) - 1
        why[r] = (out_of_range_reason(names[j], s[r, j], lo[j], hi[j], kind)
                  + (f" (and {more} more feature{'s' * (more > 1)})" if more else ""))
    return flags, why


def out_of_range_reason(feature: str, value: float, lo: float, hi: float, kind: str) -> str:
    """`batch_size 1e+05 above the 1-64 its conv layers were trained on`: which feature, which range."""
    if feature == "log_intensity":  # log FLOPs - log bytes
        feature, value, lo, hi = "FLOPs per byte", np.exp(value), np.exp(lo), np.exp(hi)
    elif feature.startswith("log_"):  # stored as log1p: say it in the layer's own units
        feature, value, lo, hi = feature[4:], np.expm1(value), np.expm1(lo), np.expm1(hi)
    side = "above" if value > hi else "below"
    return f"{feature} {value:.3g} {side} the {lo:.3g}-{hi:.3g} its {kind} layers were trained on"
