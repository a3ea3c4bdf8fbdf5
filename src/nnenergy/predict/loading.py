"""Loading a registered predictor from MLflow (through the local cache), and why it failed, in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnenergy.predict.cache import CachedPredictor, _cache_dir, _write_cache
from nnenergy.predict.errors import PredictorUnavailable
from nnenergy.tracking import DEFAULT_TRACKING_URI, resolve_tracking_uri, store_uri

DEFAULT_MODEL_NAME = "nnenergy-layerwise"
DEFAULT_MODEL_URI = f"models:/{DEFAULT_MODEL_NAME}@champion"
TRAIN_HINT = "train one with `make run` (or `.venv/bin/nnenergy main`)"


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


def _has_alias(store: str, name: str, alias: str) -> bool:
    """Whether `name@alias` is registered: read straight from a local SQLite store (milliseconds, no
    MLflow import), through MLflow's client otherwise."""
    if store.startswith("sqlite:///"):
        import sqlite3

        path = Path(store[len("sqlite:///"):])
        if not path.exists():
            return False
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return db.execute("SELECT 1 FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                  (name, alias)).fetchone() is not None
        except sqlite3.Error:
            return False
    try:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(store)
        MlflowClient().get_model_version_by_alias(name, alias)
        return True
    except Exception:
        return False


def machine_model_uri(tracking_uri: str | None = None) -> str:
    """What `predict` uses when no predictor is named: this machine's own `champion-<profile>`
    (trained on its data, or transferred to it by `nnenergy calibrate`) when registered, else the
    global `champion` (`predict` then says the predictor belongs to another profile)."""
    from nnenergy.measure.hardware import current_profile_name
    from nnenergy.registry import profile_alias

    alias = profile_alias(current_profile_name())
    if _has_alias(store_uri(tracking_uri), DEFAULT_MODEL_NAME, alias):
        return f"models:/{DEFAULT_MODEL_NAME}@{alias}"
    return DEFAULT_MODEL_URI


def load_predictor(model_uri: str | None = None, tracking_uri: str | None = None, cache: bool = True):
    """Load a registered predictor; returns (model with `predict(layers)`, resolved info dict).

    `info["version"]` is the registered version the URI resolved to (the alias's version, the
    explicit version of `models:/NAME/3`), or None when the URI names no registered version.
    With a local SQLite store the resolved predictor is cached under `<cache>/predictors/`
    (`nnenergy.paths.cache_dir()`) and reused, without MLflow, until the store changes (`cache=False`
    always resolves)."""
    import joblib

    uri = model_uri or DEFAULT_MODEL_URI
    where = _cache_dir(uri, store_uri(tracking_uri)) if cache else None
    if where is not None and (where / "info.json").exists():
        try:
            saved = json.loads((where / "info.json").read_text())
            kind = saved.get("predictor_kind", saved.get("family"))  # "family": entries written before the rename
            return CachedPredictor(joblib.load(where / "predictor.joblib"), saved["metadata"], kind), saved["info"]
        except Exception:  # a broken cache entry: resolve through the registry below
            pass
    model, info = _load_registered(model_uri, tracking_uri)
    if where is not None:
        _write_cache(where, model, info)
    return model, info


def _load_registered(model_uri: str | None = None, tracking_uri: str | None = None):
    """Load a registered pyfunc predictor; returns (pyfunc model, resolved info dict).

    `info["version"]` is the registered version the URI resolved to (the alias's version, the
    explicit version of `models:/NAME/3`), or None when the URI names no registered version."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = model_uri or DEFAULT_MODEL_URI
    if tracking_uri or not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri or DEFAULT_TRACKING_URI))
    store = mlflow.get_tracking_uri()
    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).exists() and uri.startswith("models:/"):
        raise PredictorUnavailable(f"no MLflow store at {store}, so no registered predictor: {TRAIN_HINT}")
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
                raise PredictorUnavailable(why) from None
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PredictorUnavailable(f"no predictor at {uri} in {store}: {msg}") from None
        raise PredictorUnavailable(f"cannot load predictor {uri} from {store}: {msg}") from None
    except OSError as exc:
        raise PredictorUnavailable(f"cannot load predictor {uri} from {store}: {exc}") from None
    except Exception as exc:  # connection errors from a remote tracking server
        raise PredictorUnavailable(f"cannot reach MLflow at {store}: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    return model, info
