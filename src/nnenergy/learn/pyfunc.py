"""The MLflow pyfunc flavour of a layer-wise predictor.

Input: a layers table (one row per layer: `config_id`, `layer_index`, `layer_name`,
`layer_type`, `batch_size`, `layer_config`, `input_shapes`, `output_shape`, `n_inputs`,
`flops`, `params`, `in_elems`, `out_elems`, `mem_bytes`), as `nnenergy.describe.describe_layers` builds it.
Output: one row per layer (`row="layer"`), then per model a `correction` row and a `total` row
whose energy is the layer sum plus the correction, with a 90% interval on the total. Model-wise
predictors return only the `total` rows.
"""

from __future__ import annotations

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd

from nnenergy.schema import INPUT_COLUMNS, OUTPUT_COLUMNS


def predict_frame(predictor, layers: pd.DataFrame) -> pd.DataFrame:
    """Per-layer, correction and total rows for every model in `layers`."""
    from nnenergy.features.layer_features import layer_features

    feats = layer_features(layers)
    per_layer = predictor.predict_layers(feats)
    per_layer["row"] = "layer"
    totals = predictor.predict_models(per_layer, feats)
    corr = pd.DataFrame({
        "config_id": totals["config_id"], "row": "correction", "layer_index": -1,
        "layer_name": "(model-level correction)",
        "layer_type": "", "kind": "", "known": True, "out_of_range": False,
        "energy_j": totals["correction_energy_j"], "latency_s": totals["correction_latency_s"],
    })
    tot = pd.DataFrame({
        "config_id": totals["config_id"], "row": "total", "layer_index": -1, "layer_name": "(total)",
        "layer_type": "", "kind": "", "known": True, "out_of_range": totals["out_of_range_share"] > 0,
        "energy_j": totals["energy_j"], "latency_s": totals["latency_s"],
        "energy_lo_j": totals["energy_lo_j"], "energy_hi_j": totals["energy_hi_j"],
    })
    out = pd.concat([per_layer, corr, tot], ignore_index=True)
    for col in ("energy_lo_j", "energy_hi_j"):
        out[col] = out[col].astype(float) if col in out else np.nan
    out["layer_index"] = out["layer_index"].astype(float)
    out["known"] = out["known"].astype(bool)
    out["out_of_range"] = out["out_of_range"].astype(bool)
    return out[OUTPUT_COLUMNS]


def predict_totals(predictor, layers: pd.DataFrame) -> pd.DataFrame:
    """Model-wise predictors: one `total` row per model (no per-layer rows, no correction)."""
    from nnenergy.features.layer_features import layer_features
    from nnenergy.learn.layerwise import energy_interval

    out = predictor.predict(layer_features(layers))
    out["row"], out["layer_index"], out["layer_name"] = "total", -1.0, "(total)"
    out["layer_type"], out["kind"], out["known"], out["out_of_range"] = "", "", True, False
    out["energy_lo_j"], out["energy_hi_j"] = energy_interval(predictor.metadata, out["energy_j"])
    return out[OUTPUT_COLUMNS]


class _PredictorPyfunc(mlflow.pyfunc.PythonModel):
    """A joblib-pickled predictor behind the layers-table interface."""

    predict_fn = staticmethod(predict_frame)

    def load_context(self, context):
        self.predictor = joblib.load(context.artifacts["predictor"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        missing = [c for c in INPUT_COLUMNS if c not in model_input.columns]
        if missing:
            raise ValueError(f"model input lacks columns {missing}")
        return self.predict_fn(self.predictor, model_input)


class LayerwisePyfunc(_PredictorPyfunc):
    predict_fn = staticmethod(predict_frame)


class ModelwisePyfunc(_PredictorPyfunc):
    predict_fn = staticmethod(predict_totals)
