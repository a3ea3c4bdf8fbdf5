"""A predictor's output table, built from a layers table: what the MLflow pyfunc returns and what
the local predictor cache (`nnenergy.predict.loading.CachedPredictor`) returns, without importing MLflow.

Output: one row per layer (`row="layer"`), then per model a `correction` row and a `total` row
whose energy is the layer sum plus the correction, with a 90% interval on the total. Model-wise
predictors return only the `total` rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnenergy.schema import OUTPUT_COLUMNS


def predict_frame(predictor, layers: pd.DataFrame) -> pd.DataFrame:
    """Per-layer, correction and total rows for every model in `layers` (built as arrays: this is
    the prediction step a search calls thousands of times)."""
    from nnenergy.features.layer_features import layer_features

    feats = layer_features(layers)
    per_layer = predictor.predict_layers(feats)
    totals = predictor.predict_models(per_layer, feats)
    n, k = len(per_layer), len(totals)
    ids = totals["config_id"].to_numpy()

    def cat(layer_part, corr_part, total_part):
        return np.concatenate([np.asarray(layer_part), np.asarray(corr_part), np.asarray(total_part)])

    nan_k, empty_k = np.full(k, np.nan), np.full(k, "", dtype=object)
    out = pd.DataFrame({
        "config_id": cat(per_layer["config_id"].to_numpy(dtype=object), ids, ids),
        "row": np.array(["layer"] * n + ["correction"] * k + ["total"] * k, dtype=object),
        "layer_index": cat(per_layer["layer_index"].to_numpy(dtype=float), np.full(k, -1.0), np.full(k, -1.0)),
        "layer_name": cat(per_layer["layer_name"].to_numpy(dtype=object),
                          np.full(k, "(model-level correction)", dtype=object), np.full(k, "(total)", dtype=object)),
        "layer_type": cat(per_layer["layer_type"].to_numpy(dtype=object), empty_k, empty_k),
        "kind": cat(per_layer["kind"].to_numpy(dtype=object), empty_k, empty_k),
        "known": cat(per_layer["known"].to_numpy(dtype=bool), np.ones(k, bool), np.ones(k, bool)),
        "out_of_range": cat(per_layer["out_of_range"].to_numpy(dtype=bool), np.zeros(k, bool),
                            totals["out_of_range_share"].to_numpy() > 0),
        "energy_j": cat(per_layer["energy_j"], totals["correction_energy_j"], totals["energy_j"]),
        "latency_s": cat(per_layer["latency_s"], totals["correction_latency_s"], totals["latency_s"]),
        "energy_lo_j": cat(np.full(n, np.nan), nan_k, totals["energy_lo_j"].to_numpy(dtype=float)),
        "energy_hi_j": cat(np.full(n, np.nan), nan_k, totals["energy_hi_j"].to_numpy(dtype=float)),
        "unit_index": cat(per_layer["unit_index"].to_numpy(dtype=float), nan_k, nan_k),
        "out_of_range_reason": cat(per_layer["out_of_range_reason"].to_numpy(dtype=object)
                                   if "out_of_range_reason" in per_layer else np.full(n, "", dtype=object),
                                   empty_k, empty_k),
    })
    return out[OUTPUT_COLUMNS]


def predict_totals(predictor, layers: pd.DataFrame) -> pd.DataFrame:
    """Model-wise predictors: one `total` row per model (no per-layer rows, no correction)."""
    from nnenergy.features.layer_features import layer_features
    from nnenergy.learn.layerwise import energy_interval

    out = predictor.predict(layer_features(layers))
    out["row"], out["layer_index"], out["layer_name"] = "total", -1.0, "(total)"
    out["layer_type"], out["kind"], out["known"], out["out_of_range"] = "", "", True, False
    out["unit_index"], out["out_of_range_reason"] = np.nan, ""
    out["energy_lo_j"], out["energy_hi_j"] = energy_interval(predictor.metadata, out["energy_j"])
    return out[OUTPUT_COLUMNS]
