"""Layers nothing was learned for, and recurrent loops priced without a loop term: named, and the interval
widened for what they can be off by.

A row of kind `other` (a layer that could not be traced, an op no kind covers) is priced by the
generic fallback regressor, which has no feature that says what the layer computes. On keras-hub
transformers described as opaque rows it was 5-13x low (issue 32: ViT 44.5 ms measured, 3.5 ms
predicted). The interval therefore widens by up to `FALLBACK_FACTOR` on the high side, in
proportion to how much of the model those rows may hold (their share of the parameters or of the
rows, whichever is larger: an opaque encoder is one row holding most of the parameters), and on the
low side by their share of the predicted energy (the fallback may also price them too high).

A recurrent loop (LSTM, GRU) is described op by op, but its per-step cost is priced by the predictor's loop
term (`nnenergy.learn.loops`), fitted on its profile's sequence kernels: a predictor trained where none were
measured (every profile but the Zen 1 today) has none, and LSTM/GRU models were then 39-72% low on the Zen 1
and 6.7x low on the Zen 4 (issue 32). Such loops are named and the interval's high end widens by up to
`LOOP_FACTOR`, in proportion to the loops' share of the rows or parameters.
"""

from __future__ import annotations

import math

import numpy as np

FALLBACK_FACTOR = 15.0  # the generic fallback's largest miss seen (13x), with a margin
LOOP_FACTOR = 8.0  # recurrent models without the loop term: 6.7x low at worst (issue 32), with a margin


def _unknown(per_layer, trained_types) -> np.ndarray:
    """Rows priced by the generic fallback whose type it never saw (all of them when the predictor
    does not record the types it trained on)."""
    unknown = ~per_layer["known"].astype(bool).to_numpy()
    if trained_types:
        unknown &= ~per_layer["layer_type"].isin(set(trained_types)).to_numpy()
    return unknown


def _share(rows: np.ndarray, params: np.ndarray) -> float:
    """How much of the model the masked `rows` may hold: their share of the rows or of the parameters,
    whichever is larger (an opaque encoder is one row holding most of the parameters)."""
    param_share = params[rows].sum() / params.sum() if params.sum() > 0 else 0.0
    return max(param_share, rows.mean())


def unknown_layers(per_layer, trained_types=None) -> list[str]:
    """Names of the rows nothing was learned for, in table order."""
    return [str(n) for n in per_layer.loc[_unknown(per_layer, trained_types), "layer_name"]]


def widen(interval: list[float] | None, energy: float, per_layer, layers, trained_types=None) -> list[float] | None:
    """The 90% interval with room for the unknown rows' possible error (unchanged without them)."""
    unknown = _unknown(per_layer, trained_types)
    if not unknown.any() or energy <= 0:
        return interval
    lo, hi = interval if interval else (energy, energy)
    params = layers.set_index("layer_name")["params"].reindex(per_layer["layer_name"]).fillna(0).to_numpy(float)
    weight = _share(unknown, params)
    energy_share = min(max(per_layer["energy_j"].to_numpy(float)[unknown].sum() / energy, 0.0), 1.0)
    return [lo * (1 - energy_share * (1 - 1 / FALLBACK_FACTOR)), hi * math.pow(FALLBACK_FACTOR, weight)]


def unpriced_loops(layers, meta: dict) -> list[str]:
    """The recurrent loops of a layer table (`features.loops`) whose per-step cost the predictor cannot price:
    it has no loop term (`meta["loop_term"]`). Empty when it has one, or the table has no loop."""
    if meta.get("loop_term") or not len(layers):
        return []
    names = layers["layer_name"].astype(str)
    if not names.str.contains("_cell/", regex=False).any():  # no cell traced: no loop (cheap, no features)
        return []
    from nnenergy.features.layer_features import layer_features
    from nnenergy.features.loops import loop_rows

    table = layers if "config_id" in layers else layers.assign(config_id="model")
    return list(dict.fromkeys(loop_rows(layer_features(table))["loop"].astype(str)))


def widen_for_loops(interval: list[float] | None, energy: float, layers, loops: list[str]) -> list[float] | None:
    """The 90% interval with room above for loops priced without their per-step cost (unchanged without)."""
    if not loops or energy <= 0:
        return interval
    lo, hi = interval if interval else (energy, energy)
    names = layers["layer_name"].astype(str)
    inside = names.apply(lambda n: any(n == p or n.startswith(p + "/") for p in loops)).to_numpy()
    return [lo, hi * math.pow(LOOP_FACTOR, _share(inside, layers["params"].to_numpy(float)))]
