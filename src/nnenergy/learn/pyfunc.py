"""The MLflow pyfunc flavour of a layer-wise predictor.

Input: a layers table (one row per layer: `config_id`, `layer_index`, `layer_name`,
`layer_type`, `batch_size`, `layer_config`, `input_shapes`, `output_shape`, `n_inputs`,
`flops`, `params`, `in_elems`, `out_elems`, `mem_bytes`), as `nnenergy.describe.describe_layers` builds it.
Output: one row per layer (`row="layer"`), then per model a `correction` row and a `total` row
whose energy is the layer sum plus the correction, with a 90% interval on the total. Model-wise
predictors return only the `total` rows.
"""

from __future__ import annotations

from pathlib import Path

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


# The model is logged from code (MLflow's "models from code"): MLflow stores this small file, which
# builds the pyfunc, instead of a CloudPickle of the object (which it warns against). Versions logged
# before were pickled LayerwisePyfunc/ModelwisePyfunc objects: these classes keep them loadable.
MODEL_CODE = {kind: Path(__file__).with_name(f"logged_{kind}.py") for kind in ("layerwise", "modelwise")}


# What a logged model needs at load time: the forest does not need torch, the nets do.
REQUIREMENTS = {"layerwise": ["mlflow", "scikit-learn", "xgboost", "catboost", "pandas", "numpy", "scipy", "joblib"],
                "modelwise": ["mlflow", "scikit-learn", "pandas", "numpy", "scipy", "joblib", "torch"]}


def requirements(predictor_kind: str) -> list[str]:
    """The pinned pip requirements of a logged predictor of this kind (installed versions)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in REQUIREMENTS[predictor_kind]:
        try:
            v = version(pkg).split("+")[0]  # a local build tag (torch's +cpu) is not on the index
            reqs.append(f"{pkg}=={v}")
        except PackageNotFoundError:
            pass
    return reqs


def _mlflow_type(dtype) -> str:
    """The MLflow column type of a pandas dtype."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    return "double" if pd.api.types.is_float_dtype(dtype) else "string"


def log_pyfunc(pred, layers: pd.DataFrame, predictor_kind: str = "layerwise", name: str = "predictor"):
    """Log a fitted predictor as this pyfunc in the active run (signature, input example from the
    first configuration of `layers`, pinned requirements, the package's own code); its metadata
    becomes the model's. Returns MLflow's ModelInfo."""
    import json
    import tempfile

    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, Schema

    from nnenergy.schema import GRAPH_COLUMNS

    pyfunc_model = LayerwisePyfunc() if predictor_kind == "layerwise" else ModelwisePyfunc()
    columns = INPUT_COLUMNS + [c for c in GRAPH_COLUMNS if c in layers and layers[c].notna().all()]
    example = layers[layers["config_id"] == layers["config_id"].iloc[0]][columns].copy()
    for col in ("flops", "params", "in_elems", "out_elems", "mem_bytes"):
        example[col] = example[col].astype(float)
    for col in ("layer_index", "batch_size", "n_inputs"):
        example[col] = example[col].astype("int64")
    # The input schema is declared, not inferred: inferring it from integer columns makes MLflow print a
    # hint about missing values (these columns never have any). The graph's edges are optional input
    # (MLflow drops columns a signature does not name).
    inputs = [ColSpec(_mlflow_type(example[c].dtype), c) for c in columns if c not in GRAPH_COLUMNS]
    outputs = infer_signature(pyfunc_model.predict_fn(pred, example)).inputs  # floats, booleans, strings
    signature = ModelSignature(inputs=Schema(inputs + [ColSpec("string", c, required=False) for c in GRAPH_COLUMNS]),
                               outputs=outputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"predictor-{name}.joblib"
        joblib.dump(pred, path, compress=3)  # forests compress ~5x: a lean registry
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=MODEL_CODE[predictor_kind],
            artifacts={"predictor": str(path)},
            code_paths=[str(Path(__file__).resolve().parents[1])],
            signature=signature,
            input_example=example.head(3),
            pip_requirements=requirements(predictor_kind),
            metadata=json.loads(json.dumps(pred.metadata, default=str)),
        )
