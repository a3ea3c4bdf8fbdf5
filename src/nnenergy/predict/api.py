"""`nnenergy.predict(...)`: energy, latency and power of one forward pass, before running it."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nnenergy.measure import architectures

# Nothing heavy at import time: the CLI checks its arguments before TensorFlow, Keras, MLflow
# or pandas load (each function imports what it needs).

DEFAULT_MODEL_NAME = "nnenergy-layerwise"
DEFAULT_MODEL_URI = f"models:/{DEFAULT_MODEL_NAME}@champion"
TRAIN_HINT = "train one with `make run` (or `.venv/bin/nnenergy main`)"
MODEL_SUFFIXES = (".keras", ".h5")
# A model already described (`nnenergy describe`, `describe_layers`): predicted without TensorFlow.
TABLE_SUFFIXES = (".parquet", ".csv")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
BUILTIN_DEFAULT_SIZE = 32  # the built-in test models (tiny_cnn, ...) when no --input-shape is given


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
    out_of_range: bool = False  # its size lies outside what its kind was trained on
    fused_into: str = ""  # the layer whose kernel runs it (its cost is predicted there), when fused


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
    # Types predicted from the nearest measured kind, with no measured data of their own
    # (`layer_features.UNMEASURED_TYPES`): their share of the prediction is a rough estimate.
    unmeasured_layer_types: list[str] = field(default_factory=list)
    out_of_range_layers: int = 0
    calibration: dict | None = None  # the machine a calibration adapted the prediction to

    def to_dict(self) -> dict:
        return asdict(self)

    def layers_frame(self):
        """Per-layer predictions as a pandas DataFrame (with each layer's share of the total)."""
        import pandas as pd

        df = pd.DataFrame([asdict(layer) for layer in self.layers],
                          columns=["name", "type", "kind", "energy_j", "latency_s", "known", "out_of_range",
                                   "fused_into"])
        df["share"] = df["energy_j"] / self.energy_j if self.energy_j > 0 else float("nan")
        return df

    def energy_kwh(self, inferences: int = 1) -> float:
        return self.energy_j * inferences / 3.6e6


def _looks_like_path(model) -> bool:
    if isinstance(model, os.PathLike):
        return True
    text = str(model)
    return (text.endswith(MODEL_SUFFIXES + TABLE_SUFFIXES) or os.sep in text or "/" in text
            or Path(text).exists())


def _is_table(model) -> bool:
    return isinstance(model, (str, os.PathLike)) and str(model).endswith(TABLE_SUFFIXES)


def read_layer_table(path: Path) -> list[tuple[str, object, list[int], int]]:
    """A layer table file -> (name, layers, input shape, batch size) per configuration in it."""
    import pandas as pd

    from nnenergy.schema import INPUT_COLUMNS

    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pyarrow and the CSV parser raise many types
        raise PredictError(f"{path} is not a readable layer table: {str(exc).splitlines()[0][:200]}") from None
    missing = [c for c in INPUT_COLUMNS if c not in table.columns]
    if missing:
        raise PredictError(f"{path} lacks layer-table columns {missing} (write one with `nnenergy describe`)")
    out = []
    for cid, layers in table.groupby("config_id", sort=False):
        layers = layers.sort_values("layer_index")
        first = json.loads(layers["input_shapes"].iloc[0])
        shape = [int(d) for d in (first[0] if first else [])]
        out.append((str(cid), layers.reset_index(drop=True), shape, int(layers["batch_size"].iloc[0])))
    if not out:
        raise PredictError(f"{path} holds no layers")
    return out


def check_model_file(path: Path) -> None:
    """Cheap checks of a model file (no Keras): it exists, is a file, and has the bytes of a
    `.keras` archive (a zip holding `config.json`) or of an HDF5 `.h5` file."""
    if not path.exists():
        raise PredictError(f"model file not found: {path}")
    if path.is_dir() or path.suffix not in MODEL_SUFFIXES + TABLE_SUFFIXES:
        raise PredictError(f"not a .keras or .h5 file (or a .parquet/.csv layer table): {path}")
    if path.suffix in TABLE_SUFFIXES:
        return
    try:
        if path.suffix == ".keras":
            if not zipfile.is_zipfile(path):
                raise PredictError(f"{path} is corrupt or not a Keras model (not a .keras zip archive)")
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise PredictError(f"{path} is corrupt or not a Keras model (no config.json in the archive)")
        else:
            with open(path, "rb") as f:
                head = f.read(2056)
            if not any(head[o:o + 8] == _HDF5_SIGNATURE for o in (0, 512, 1024, 2048)):
                raise PredictError(f"{path} is corrupt or not a Keras model (not an HDF5 file)")
    except (OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, PermissionError):
            raise PredictError(f"cannot read {path}: permission denied") from None
        raise PredictError(f"{path} is corrupt or not a Keras model ({type(exc).__name__})") from None


def check_arguments(model, batch_size, input_shape) -> None:
    """Everything that can be checked without TensorFlow, Keras or MLflow, in a few milliseconds."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise PredictError(f"batch size must be a positive integer, got {batch_size!r}")
    if input_shape is not None:
        try:
            dims = [int(d) for d in input_shape]
        except (TypeError, ValueError):
            raise PredictError(f"input shape must be positive integers, got {input_shape!r}") from None
        if not dims or any(d <= 0 for d in dims):
            raise PredictError(f"input shape must be positive integers, got {input_shape!r}")
    if isinstance(model, (str, os.PathLike)) and _looks_like_path(model):
        check_model_file(Path(model))
    elif isinstance(model, str) and not model.strip():
        raise PredictError("no model given: pass a .keras/.h5 file or a keras.applications name")


def canonical_name(name: str) -> str:
    """An application, built-in or generated name as the builders spell it. A name that differs
    from a known one only by case resolves to it; an unknown name raises with close names (never
    the name itself) suggested. Imports Keras (the list of keras.applications)."""
    if name in architectures.BUILTIN or architectures.is_generated(name):
        return name
    apps = architectures.application_names()
    if name in apps:
        return name
    by_lower = {n.lower(): n for n in [*apps, *architectures.BUILTIN]}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    try:
        architectures.application(name, None, build=False)
    except architectures.ArchitectureError as exc:
        raise PredictError(str(exc)) from None
    return name  # unreachable: an unknown name raised above


def resolve_model(model, input_shape: tuple[int, ...] | None):
    """A keras.Model, a `.keras`/`.h5` path or an application name -> (keras.Model, name)."""
    import keras

    if isinstance(model, keras.Model):
        km, name = model, model.name
    elif isinstance(model, (str, os.PathLike)) and _looks_like_path(model):
        path = Path(model)
        check_model_file(path)
        try:
            km = architectures.load_model_file(path)
        except architectures.ArchitectureError as exc:
            cause = exc.__cause__  # unreadable bytes (h5py raises OSError), a broken archive or config
            if isinstance(cause, (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError)):
                first = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else type(cause).__name__
                raise PredictError(f"{path} is corrupt or not a Keras model: {first}") from None
            raise PredictError(str(exc)) from None
        name = path.stem
    elif isinstance(model, str):
        name = canonical_name(model)
        try:
            if name in architectures.BUILTIN or architectures.is_generated(name):
                size = int(input_shape[0]) if input_shape else BUILTIN_DEFAULT_SIZE
                km = architectures.build(name, size).model
            else:
                return architectures.application(name, input_shape), name
        except architectures.ArchitectureError as exc:
            raise PredictError(str(exc)) from None
    else:
        raise PredictError(f"expected a keras.Model, a model file or an application name, got {type(model).__name__}")
    return _with_input_shape(km, input_shape), name


def _model_inputs(km):
    """The model's symbolic inputs, or None for a Sequential model that has no input shape yet."""
    try:
        return km.inputs or None
    except AttributeError:  # Keras: "Sequential model ... has no defined inputs yet."
        return None


def _with_input_shape(km, input_shape):
    import keras

    if not isinstance(km, keras.Sequential) and not hasattr(km, "_nodes_by_depth"):
        raise PredictError(f"{type(km).__name__} is a subclassed model: its layers have no graph to predict from; "
                           "build it as a Functional or Sequential model")
    if _model_inputs(km) is None:  # a Sequential saved (or made) before it was built
        if input_shape is None:
            raise PredictError("the model has no input shape (a Sequential model saved before it was built): "
                               "pass --input-shape (input_shape=...)")
        shape = tuple(int(d) for d in input_shape)
        try:  # on a copy: a failed build would leave the caller's model configured for a wrong shape
            km = keras.models.clone_model(km)
        except Exception:
            pass
        try:
            km.build((None, *shape))
        except Exception as exc:  # Keras raises several types when shapes do not propagate
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise PredictError(f"input shape {shape} does not fit the model: {first}") from None
        if _model_inputs(km) is None:
            raise PredictError(f"the model could not be built on input shape {shape}")
        return km
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


def _parse_model_uri(uri: str) -> tuple[str | None, str | None, str | None]:
    """`models:/NAME/VERSION` or `models:/NAME@ALIAS` -> (name, version, alias); Nones otherwise."""
    if not uri.startswith("models:/"):
        return None, None, None
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, None, alias
    if "/" in rest:
        name, version = rest.rsplit("/", 1)
        return name, version, None
    return rest, None, None


def _missing_predictor(uri: str, store: str) -> str | None:
    """Why a `models:/` URI does not resolve, or None when what it names does exist.
    The training hint only when the store has no registered model at all."""
    from mlflow import MlflowClient

    name, version, alias = _parse_model_uri(uri)
    client = MlflowClient()
    try:
        registered = sorted(m.name for m in client.search_registered_models(max_results=1000))
    except Exception:
        return None
    if not registered:
        return f"no registered predictor in {store}: {TRAIN_HINT}"
    if name not in registered:
        return f"no registered model {name!r} in {store} (registered: {', '.join(registered)})"
    try:
        if alias is not None:
            aliases = sorted((client.get_registered_model(name).aliases or {}).keys())
            if alias not in aliases:
                have = ", ".join(f"@{a}" for a in aliases) or "none"
                return f"{name} has no alias @{alias} in {store} (aliases: {have})"
        elif version is not None:
            versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
            missing = not versions if version == "latest" else not version.isdigit() or int(version) not in versions
            if missing:
                have = ", ".join(map(str, versions)) or "none"
                return f"{name} has no version {version} in {store} (versions: {have})"
    except Exception:
        return None
    return None


class CachedPredictor:
    """A predictor loaded from the local cache: the same `predict(layers)` and `.metadata.metadata`
    as the MLflow pyfunc it was copied from, without importing MLflow."""

    def __init__(self, predictor, metadata: dict, family: str):
        from types import SimpleNamespace

        self.predictor, self.family = predictor, family
        self.metadata = SimpleNamespace(metadata=metadata)

    def predict(self, layers):
        from nnenergy.learn import outputs

        fn = outputs.predict_frame if self.family == "layerwise" else outputs.predict_totals
        return fn(self.predictor, layers)


def _store_uri(tracking_uri: str | None) -> str:
    """The tracking URI `load_predictor` will use, resolved without importing MLflow."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def _cache_dir(model_uri: str, store: str) -> Path | None:
    """Where a resolved predictor is cached: keyed by the SQLite store's path, size and mtime and
    the model URI, so any write to the store (a new version, a moved alias) misses the cache.
    Remote stores are always resolved through the registry (None)."""
    import hashlib

    if not store.startswith("sqlite:///"):
        return None
    try:
        st = Path(store[len("sqlite:///"):]).stat()
    except OSError:
        return None
    ident = f"{store}|{st.st_size}|{st.st_mtime_ns}|{model_uri}"
    root = Path(os.environ.get("NNENERGY_CACHE", ".nnenergy_cache")) / "predictors"
    return root / hashlib.sha1(ident.encode()).hexdigest()[:16]


def load_predictor(model_uri: str | None = None, tracking_uri: str | None = None, cache: bool = True):
    """Load a registered predictor; returns (model with `predict(layers)`, resolved info dict).

    `info["version"]` is the registered version the URI resolved to (the alias's version, the
    explicit version of `models:/NAME/3`), or None when the URI names no registered version.
    With a local SQLite store the resolved predictor is cached under `.nnenergy_cache/predictors/`
    and reused, without MLflow, until the store changes (`cache=False` always resolves)."""
    import joblib

    uri = model_uri or DEFAULT_MODEL_URI
    where = _cache_dir(uri, _store_uri(tracking_uri)) if cache else None
    if where is not None and (where / "info.json").exists():
        try:
            saved = json.loads((where / "info.json").read_text())
            return CachedPredictor(joblib.load(where / "predictor.joblib"), saved["metadata"],
                                   saved["family"]), saved["info"]
        except Exception:  # a broken cache entry: resolve through the registry below
            pass
    model, info = _load_registered(model_uri, tracking_uri)
    if where is not None:
        _write_cache(where, model, info)
    return model, info


def _write_cache(where: Path, model, info: dict) -> None:
    import shutil

    try:
        impl = model.unwrap_python_model()
        family = "layerwise" if type(impl).__name__ == "LayerwisePyfunc" else "modelwise"
        src = Path(model._model_impl.context.artifacts["predictor"])
        tmp = where.with_name(f"{where.name}.{os.getpid()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp / "predictor.joblib")
        (tmp / "info.json").write_text(json.dumps({"info": info, "family": family,
                                                   "metadata": model.metadata.metadata or {}}, default=str))
        tmp.replace(where)  # atomic: a parallel reader sees all of it or nothing
    except Exception:  # caching is an optimisation: never fail a prediction over it
        shutil.rmtree(where.with_name(f"{where.name}.{os.getpid()}.tmp"), ignore_errors=True)


def _load_registered(model_uri: str | None = None, tracking_uri: str | None = None):
    """Load a registered pyfunc predictor; returns (pyfunc model, resolved info dict).

    `info["version"]` is the registered version the URI resolved to (the alias's version, the
    explicit version of `models:/NAME/3`), or None when the URI names no registered version."""
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
    name, version, alias = _parse_model_uri(uri)
    info = {"uri": uri, "version": version if version and version.isdigit() else None}
    try:
        if alias is not None:
            info["version"] = MlflowClient().get_model_version_by_alias(name, alias).version
        elif version == "latest":
            versions = MlflowClient().search_model_versions(f"name='{name}'")
            info["version"] = str(max(int(v.version) for v in versions)) if versions else None
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        msg = str(exc).splitlines()[0][:300]
        if uri.startswith("models:/"):
            why = _missing_predictor(uri, store)
            if why:
                raise PredictError(why) from None
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PredictError(f"no predictor at {uri} in {store}: {msg}") from None
        raise PredictError(f"cannot load predictor {uri} from {store}: {msg}") from None
    except OSError as exc:
        raise PredictError(f"cannot load predictor {uri} from {store}: {exc}") from None
    except Exception as exc:  # connection errors from a remote tracking server
        raise PredictError(f"cannot reach MLflow at {store}: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    return model, info


def hardware_model_uri(profile: str) -> str:
    """The registered predictor of one hardware profile: its own champion alias."""
    return f"models:/{DEFAULT_MODEL_NAME}@champion-{profile}"


def hardware_profiles(tracking_uri: str | None = None, data_root: str | Path = "data") -> list[dict]:
    """Every hardware profile with measured data or a registered predictor: name, device, backend,
    measured configurations per dataset, and its champion's version (None when not trained).
    Reads Parquet footers and the registry; no TensorFlow."""
    import pyarrow.parquet as pq

    from nnenergy.measure.hardware import current_profile_name

    rows: dict[str, dict] = {}
    for folder in sorted(Path(data_root).glob("*/*/models.parquet")):
        profile, dataset = folder.parent.parent.name, folder.parent.name
        r = rows.setdefault(profile, {"profile": profile, "device": None, "backend": "tensorflow", "datasets": {},
                                      "predictor_version": None})
        r["datasets"][dataset] = pq.ParquetFile(folder).metadata.num_rows
        if r["device"] is None:
            cols = [c for c in ("cpu_model", "cpu_cores", "gpu_model", "backend", "device")
                    if c in pq.read_schema(folder).names]
            table = pq.read_table(folder, columns=cols)
            if not table.num_rows:
                continue
            last = table.slice(table.num_rows - 1, 1).to_pylist()[0]  # one profile: any row says it
            gpu = str(last.get("gpu_model") or "none")
            # A CPU profile on a machine that also has a GPU measured the CPU: name the GPU only for gpu rows.
            on_gpu = last.get("device") == "gpu" or (last.get("device") is None and gpu not in ("none", "None", "nan"))
            r["device"] = f"GPU {gpu}" if on_gpu else f"CPU {last.get('cpu_model')} ({last.get('cpu_cores')} cores)"
            r["backend"] = last.get("backend") or r["backend"]
    try:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(_store_uri(tracking_uri))
        aliases = MlflowClient().get_registered_model(DEFAULT_MODEL_NAME).aliases or {}
    except Exception:  # no store or no registered predictor yet: the data side still lists
        aliases = {}
    for alias, version in aliases.items():
        if alias.startswith("champion-"):
            profile = alias[len("champion-"):]
            rows.setdefault(profile, {"profile": profile, "device": None, "backend": None, "datasets": {},
                                      "predictor_version": None})["predictor_version"] = str(version)
    mine = current_profile_name()
    for r in rows.values():
        r["this_machine"] = r["profile"] == mine
    return list(rows.values())


def _calibration(calibration):
    if calibration is None:
        return None
    from nnenergy.calibrate import Calibration

    try:
        return calibration if isinstance(calibration, Calibration) else Calibration.load(Path(calibration))
    except (OSError, ValueError, TypeError) as exc:
        raise PredictError(f"cannot read calibration {calibration}: {exc}") from None


def _describe(model, batch_size: int, input_shape, config_id_prefix: str = "") -> list[tuple]:
    """(name, layer table, input shape, batch size) of each configuration `model` stands for: one for a
    Keras model, file or name; one per configuration of a layer table file (read without TensorFlow)."""
    if _is_table(model):
        return [(name, layers.assign(config_id=f"{config_id_prefix}{name}"), shape, batch)
                for name, layers, shape, batch in read_layer_table(Path(model))]
    from nnenergy.describe import describe_layers

    if isinstance(model, str) and not _looks_like_path(model):
        model = canonical_name(model)  # an unknown name fails before MLflow loads
    km, name = resolve_model(model, input_shape)
    try:
        layers = describe_layers(km, batch_size, config_id=f"{config_id_prefix}{name}")
    except ValueError as exc:  # a nested model without a layer graph
        raise PredictError(str(exc).splitlines()[0]) from None
    return [(name, layers, [int(d) for d in km.inputs[0].shape[1:]], batch_size)]


def _unmeasured(layers, per_layer, meta: dict, static: set) -> list[str]:
    """Known-kind layer types the predictor never trained on (from its metadata; else a static list)."""
    types = set(layers["layer_type"])
    trained = meta.get("layer_types")
    if trained is None:
        return sorted(types & static)
    unknown = set(per_layer.loc[~per_layer["known"].astype(bool), "layer_type"])
    return sorted(types - set(trained) - unknown)


def _fused_into(row, names: dict) -> str:
    unit = row.unit_index
    return "" if unit != unit or unit == row.layer_index else names.get(unit, "")


def _assemble(name, input_shape, batch_size, layers, out, meta, info, cal) -> Prediction:
    """One model's rows of the pyfunc output -> a `Prediction`."""
    import pandas as pd

    from nnenergy.features.layer_features import UNMEASURED_TYPES

    if "out_of_range" not in out:
        out = out.assign(out_of_range=False)
    per_layer = out[out["row"] == "layer"]
    if "unit_index" not in per_layer:
        per_layer = per_layer.assign(unit_index=per_layer["layer_index"])
    names = dict(zip(per_layer["layer_index"], per_layer["layer_name"]))
    total = out[out["row"] == "total"].iloc[0]
    corr = out[out["row"] == "correction"]  # model-wise predictors have none (and no layer rows)
    corr_e, corr_t = (float(corr["energy_j"].iloc[0]), float(corr["latency_s"].iloc[0])) if len(corr) else (0.0, 0.0)
    lo, hi = total["energy_lo_j"], total["energy_hi_j"]
    interval = [float(lo), float(hi)] if pd.notna(lo) and pd.notna(hi) else None
    return Prediction(
        model_name=name,
        batch_size=batch_size,
        input_shape=list(input_shape),
        energy_j=float(total["energy_j"]),
        latency_s=float(total["latency_s"]),
        power_w=float(total["energy_j"] / total["latency_s"]) if total["latency_s"] > 0 else float("nan"),
        energy_interval_j=interval,
        correction_energy_j=corr_e,
        correction_latency_s=corr_t,
        layers=[LayerPrediction(r.layer_name, r.layer_type, r.kind, float(r.energy_j), float(r.latency_s),
                                bool(r.known), bool(r.out_of_range), _fused_into(r, names))
                for r in per_layer.itertuples()],
        unknown_layer_types=sorted(set(per_layer.loc[~per_layer["known"].astype(bool), "layer_type"])),
        predictor={**info, "name": meta.get("predictor"), "source": meta.get("source"),
                   "dataset": meta.get("dataset")},
        hardware=meta.get("hardware", {}),
        heldout_error=meta.get("heldout", {}),
        unmeasured_layer_types=_unmeasured(layers, per_layer, meta, UNMEASURED_TYPES),
        out_of_range_layers=int(per_layer["out_of_range"].sum()),
        calibration=None if cal is None else {"from": cal.source_profile, "to": cal.target_profile,
                                              "speed_ratio": cal.speed_ratio, "measured_at": cal.measured_at},
    )


def predict(model, batch_size: int = 1, input_shape=None, model_uri: str | None = None,
            tracking_uri: str | None = None, calibration=None, _loaded=None) -> Prediction:
    """Predict one forward pass of `model` (a keras.Model, `.keras`/`.h5` path or application name).

    `input_shape` (no batch dimension) overrides the model's input shape, or supplies it where
    the model has none (a Sequential model saved before it was built). Nested models (a
    backbone inside a model, Sequential blocks) are predicted layer by layer. `calibration`
    (a file from `nnenergy calibrate`, or a `Calibration`) adapts the prediction to that machine.
    """
    return predict_many([model], batch_size, input_shape, model_uri, tracking_uri, calibration, _loaded)[0]


def predict_many(models, batch_size: int = 1, input_shape=None, model_uri: str | None = None,
                 tracking_uri: str | None = None, calibration=None, _loaded=None) -> list[Prediction]:
    """Predict many candidates at once (architecture search, a CI check): the predictor loads once
    and all layer tables go through it in one call. Candidates are Keras models, files, names, or
    layer-table files (`nnenergy describe`; these keep their own batch size and need no TensorFlow)."""
    import pandas as pd

    models = list(models)
    for m in models:
        check_arguments(m, batch_size, input_shape)  # before anything heavy loads
    cal = _calibration(calibration)
    pyfunc, info = _loaded or load_predictor(model_uri, tracking_uri)
    described = [d for i, m in enumerate(models) for d in _describe(m, batch_size, input_shape, f"{i}:")]
    out = pyfunc.predict(pd.concat([d[1] for d in described], ignore_index=True))
    if cal is not None:
        out = cal.apply(out)
    meta = pyfunc.metadata.metadata or {}
    by_id = dict(tuple(out.groupby("config_id", sort=False)))
    return [_assemble(name, shape, batch, layers, by_id[layers["config_id"].iloc[0]], meta, info, cal)
            for name, layers, shape, batch in described]
