"""MLflow pyfunc for model-wise predictors: same input as the layer-wise one, `total` rows out."""

from __future__ import annotations

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd

from nnenergy.learn.pyfunc import INPUT_COLUMNS, OUTPUT_COLUMNS


def predict_totals(predictor, layers: pd.DataFrame) -> pd.DataFrame:
    from nnenergy.features.layer_features import layer_features

    out = predictor.predict(layer_features(layers))
    lo, hi = predictor.metadata.get("energy_log_ratio_interval", (np.nan, np.nan))
    out["row"], out["layer_index"], out["layer_name"] = "total", -1.0, "(total)"
    out["layer_type"], out["kind"], out["known"] = "", "", True
    out["energy_lo_j"], out["energy_hi_j"] = out["energy_j"] * np.exp(lo), out["energy_j"] * np.exp(hi)
    return out[OUTPUT_COLUMNS]


class ModelwisePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.predictor = joblib.load(context.artifacts["predictor"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        missing = [c for c in INPUT_COLUMNS if c not in model_input.columns]
        if missing:
            raise ValueError(f"model input lacks columns {missing}")
        return predict_totals(self.predictor, model_input)
