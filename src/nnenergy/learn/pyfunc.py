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
import pandas as pd

from nnenergy.learn.outputs import predict_frame, predict_totals
from nnenergy.schema import INPUT_COLUMNS


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
