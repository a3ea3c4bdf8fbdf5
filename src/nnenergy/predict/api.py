"""`nnenergy.predict(...)`: energy, latency and power of one forward pass, before running it."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from nnenergy.measure import architectures

DEFAULT_MODEL_NAME = "nnenergy-layerwise"
DEFAULT_MODEL_URI = f"models:/{DEFAULT_MODEL_NAME}@champion"
TRAIN_HINT = "train one with `make run` (or `.venv/bin/nnenergy main`)"


class PredictError(ValueError):
    """Bad input or missing predictor: the message is one line meant for the user."""


@dataclass
class LayerPrediction:
    name: str
    type: str
    kind: str
    energy_j: float
    latency_s: float
    known: bool


@dataclass
class Prediction:
    model_name: str
    batch_size: int
    input_shape: list[int]
    energy_j: float  # joules per forward pass of one batch
    latency_s: float
    power_w: float
    energy_interval_j: list[float] | None  # 90% interval from held-out errors
    correction_energy_j: float  # model-level correction, included in energy_j
    correction_latency_s: float
    layers: list[LayerPrediction]
    unknown_layer_types: list[str]
    predictor: dict
    hardware: dict
    heldout_error: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def layers_frame(self) -> pd.DataFrame:
        df = pd.DataFrame([asdict(layer) for layer in self.layers],
                          columns=["name", "type", "kind", "energy_j", "latency_s", "known"])
        df["share"] = df["energy_j"] / self.energy_j if self.energy_j > 0 else float("nan")
        return df

    def energy_kwh(self, inferences: int = 1) -> float:
        return self.energy_j * inferences / 3.6e6


def resolve_model(model, input_shape: tuple[int, ...] | None):
    """A keras.Model, a `.keras`/`.h5` path or an application name -> (keras.Model, name)."""
    import keras

    if isinstance(model, keras.Model):
        km, name = model, model.name
    elif isinstance(model, (str, os.PathLike)) and (str(model).endswith((".keras", ".h5")) or Path(model).exists()):
        path = Path(model)
        if not path.exists():
            raise PredictError(f"model file not found: {path}")
        if path.is_dir() or path.suffix not in (".keras", ".h5"):
            raise PredictError(f"not a .keras or .h5 file: {path}")
        try:
            km = architectures.load_model_file(path)
        except architectures.ArchitectureError as exc:
            raise PredictError(str(exc)) from None
        name = path.stem
    elif isinstance(model, str):
        try:
            return architectures.application(model, input_shape), model
        except architectures.ArchitectureError as exc:
            raise PredictError(str(exc)) from None
    else:
        raise PredictError(f"expected a keras.Model, a model file or an application name, got {type(model).__name__}")
    return _with_input_shape(km, input_shape), name


def _with_input_shape(km, input_shape):
    import keras

    current = tuple(km.inputs[0].shape[1:])
    if input_shape is None:
        if any(d is None for d in current):
            raise PredictError(f"the model's input shape {current} has unknown dimensions: pass --input-shape")
        return km
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != len(current) or any(c is not None and c != s for c, s in zip(current, input_shape)):
        if all(c is not None for c in current):
            raise PredictError(f"input shape {input_shape} does not fit the model, which takes {current}")
    if current == input_shape:
        return km
    try:
        return keras.models.clone_model(km, input_tensors=keras.Input(input_shape))
    except Exception as exc:  # Keras raises several types when shapes do not propagate
        raise PredictError(f"input shape {input_shape} does not fit the model: {str(exc).splitlines()[0]}") from None


def load_predictor(model_uri: str | None = None, tracking_uri: str | None = None):
    """Load a registered pyfunc predictor; returns (pyfunc model, resolved info dict)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from nnenergy.tracking import resolve_tracking_uri

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = model_uri or DEFAULT_MODEL_URI
    if tracking_uri or not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri or "sqlite:///mlflow.db"))
    store = mlflow.get_tracking_uri()
    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).exists() and uri.startswith("models:/"):
        raise PredictError(f"no MLflow store at {store}, so no registered predictor: {TRAIN_HINT}")
    info = {"uri": uri, "version": None}
    try:
        if uri.startswith("models:/") and "@" in uri:
            name, alias = uri[len("models:/"):].split("@", 1)
            info["version"] = MlflowClient().get_model_version_by_alias(name, alias).version
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        msg = str(exc).splitlines()[0][:300]
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PredictError(f"no registered predictor at {uri} in {store}: {TRAIN_HINT}") from None
        raise PredictError(f"cannot load predictor {uri} from {store}: {msg}") from None
    except OSError as exc:
        raise PredictError(f"cannot load predictor {uri} from {store}: {exc}") from None
    except Exception as exc:  # connection errors from a remote tracking server
        raise PredictError(f"cannot reach MLflow at {store}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    return model, info


def predict(model, batch_size: int = 1, input_shape=None, model_uri: str | None = None,
            tracking_uri: str | None = None, _loaded=None) -> Prediction:
    """Predict one forward pass of `model` (a keras.Model, `.keras`/`.h5` path or application name)."""
    from nnenergy.features.layer_features import describe_model

    if not isinstance(batch_size, int) or batch_size <= 0:
        raise PredictError(f"batch size must be a positive integer, got {batch_size!r}")
    if input_shape is not None and (len(input_shape) == 0 or any(int(d) <= 0 for d in input_shape)):
        raise PredictError(f"input shape must be positive integers, got {input_shape!r}")
    pyfunc, info = _loaded or load_predictor(model_uri, tracking_uri)
    km, name = resolve_model(model, input_shape)
    layers = describe_model(km, batch_size, config_id=name)
    out = pyfunc.predict(layers)
    per_layer = out[out["row"] == "layer"]
    total = out[out["row"] == "total"].iloc[0]
    corr = out[out["row"] == "correction"]  # model-wise predictors have none (and no layer rows)
    corr_e, corr_t = (float(corr["energy_j"].iloc[0]), float(corr["latency_s"].iloc[0])) if len(corr) else (0.0, 0.0)
    meta = pyfunc.metadata.metadata or {}
    lo, hi = total["energy_lo_j"], total["energy_hi_j"]
    interval = [float(lo), float(hi)] if pd.notna(lo) and pd.notna(hi) else None
    return Prediction(
        model_name=name,
        batch_size=batch_size,
        input_shape=[int(d) for d in km.inputs[0].shape[1:]],
        energy_j=float(total["energy_j"]),
        latency_s=float(total["latency_s"]),
        power_w=float(total["energy_j"] / total["latency_s"]) if total["latency_s"] > 0 else float("nan"),
        energy_interval_j=interval,
        correction_energy_j=corr_e,
        correction_latency_s=corr_t,
        layers=[LayerPrediction(r.layer_name, r.layer_type, r.kind, float(r.energy_j), float(r.latency_s), bool(r.known))
                for r in per_layer.itertuples()],
        unknown_layer_types=sorted(set(per_layer.loc[~per_layer["known"].astype(bool), "layer_type"])),
        predictor={**info, "name": meta.get("predictor"), "source": meta.get("source"),
                   "test_families": meta.get("test_families", [])},
        hardware=meta.get("hardware", {}),
        heldout_error=meta.get("heldout", {}),
    )
