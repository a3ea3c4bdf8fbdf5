"""Loading a registered predictor: which one (the default URI, filled in here only), the local predictor
cache, MLflow behind it, and why it failed, in one line.

A predictor resolved from a local SQLite store is copied under `<cache>/predictors/` and reused, without
MLflow, until the store changes; remote stores are always resolved through the registry."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from nnenergy.paths import cache_dir
from nnenergy.predict.errors import PredictorUnavailable, first_line
from nnenergy.stores import missing_store_hint, redact
from nnenergy.tracking import sqlite_file, store_uri

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
    path = sqlite_file(store)
    if path is not None:
        import sqlite3

        if not path.exists():
            return False
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return db.execute("SELECT 1 FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                  (name, alias)).fetchone() is not None
        except sqlite3.Error:
            return False
    reachable(store)
    try:
        from mlflow import MlflowClient

        with bounded_calls(store):
            MlflowClient(tracking_uri=store, registry_uri=store).get_model_version_by_alias(name, alias)
        return True
    except Exception:
        return False


def reachable(store: str) -> None:
    """Raise `PredictorUnavailable` (one line, no credentials) when a remote store does not answer, in
    seconds (`nnenergy.stores.probe`)."""
    from nnenergy.stores import StoreUnreachable, probe

    try:
        probe(store)
    except StoreUnreachable as exc:
        raise PredictorUnavailable(str(exc)) from None


@contextlib.contextmanager
def bounded_calls(store: str):
    """MLflow's calls for a prediction, bounded while inside: no HTTP retries, 5 s timeouts, one try at a
    database (MLflow retries one it cannot open 15 times with growing sleeps, minutes in all). A user waits
    on them; on the way out the caller's own settings come back, so training in the same process keeps
    MLflow's defaults."""
    import mlflow.store.db.utils as db_utils

    bounds = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    saved = {k: os.environ.get(k) for k in bounds}
    saved_retries = db_utils.MAX_RETRY_COUNT
    for k, v in bounds.items():
        os.environ.setdefault(k, v)
    if store.split("://", 1)[0].split("+")[0] in ("postgresql", "mysql", "mssql"):
        db_utils.MAX_RETRY_COUNT = 1
    try:
        yield
    finally:
        db_utils.MAX_RETRY_COUNT = saved_retries
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def missing_sqlite(store: str, tracking_uri: str | None) -> str:
    """The error for a SQLite store file that does not exist: what was looked for, how to point elsewhere."""
    if tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        return (f"no MLflow store at {redact(store)}, so no registered predictor: {TRAIN_HINT}, or point "
                "--tracking-uri (or MLFLOW_TRACKING_URI) to a store that exists")
    return f"no MLflow store, so no registered predictor: {missing_store_hint()}"


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


def load_predictor(model_uri: str | None = None, tracking_uri: str | None = None, cache: bool = True, *,
                   this_machine: bool = False):
    """Load a registered predictor; returns (model with `predict(layers)`, resolved info dict).

    `model_uri` None: the global `champion` (DEFAULT_MODEL_URI), or with `this_machine` (what `predict`
    uses) this machine's own (`machine_model_uri`). `info["version"]` is the registered version the URI
    resolved to (the alias's version, the explicit version of `models:/NAME/3`), or None when the URI
    names no registered version. With a local SQLite store the resolved predictor is cached under
    `<cache>/predictors/` (`nnenergy.paths.cache_dir()`) and reused, without MLflow, until the store
    changes (`cache=False` always resolves)."""
    import joblib

    uri = model_uri or (machine_model_uri(tracking_uri) if this_machine else DEFAULT_MODEL_URI)
    where = _cache_entry(uri, store_uri(tracking_uri)) if cache else None
    if where is not None and (where / "info.json").exists():
        try:
            saved = json.loads((where / "info.json").read_text())
            kind = saved.get("predictor_kind", saved.get("family"))  # "family": entries written before the rename
            return CachedPredictor(joblib.load(where / "predictor.joblib"), saved["metadata"], kind), saved["info"]
        except Exception:  # a broken cache entry: resolve through the registry below
            pass
    model, info = _load_registered(uri, tracking_uri)
    if where is not None:
        _write_cache(where, model, info)
    return model, info


class CachedPredictor:
    """A predictor loaded from the local cache: the same `predict(layers)` and `.metadata.metadata`
    as the MLflow pyfunc it was copied from, without importing MLflow."""

    def __init__(self, predictor, metadata: dict, predictor_kind: str):
        from types import SimpleNamespace

        self.predictor, self.predictor_kind = predictor, predictor_kind  # layerwise | modelwise
        self.metadata = SimpleNamespace(metadata=metadata)

    def predict(self, layers):
        from nnenergy.learn import outputs

        fn = outputs.predict_frame if self.predictor_kind == "layerwise" else outputs.predict_totals
        return fn(self.predictor, layers)


def _cache_entry(model_uri: str, store: str) -> Path | None:
    """Where a resolved predictor is cached: keyed by the SQLite store's path, size and mtime and
    the model URI, so any write to the store (a new version, a moved alias) misses the cache.
    Remote stores are always resolved through the registry (None)."""
    import hashlib

    path = sqlite_file(store)
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    ident = f"{store}|{st.st_size}|{st.st_mtime_ns}|{model_uri}"
    return cache_dir() / "predictors" / hashlib.sha1(ident.encode()).hexdigest()[:16]


def _write_cache(where: Path, model, info: dict) -> None:
    import shutil

    try:
        impl = model.unwrap_python_model()
        predictor_kind = "layerwise" if type(impl).__name__ == "LayerwisePyfunc" else "modelwise"
        src = Path(model._model_impl.context.artifacts["predictor"])
        tmp = where.with_name(f"{where.name}.{os.getpid()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp / "predictor.joblib")
        (tmp / "info.json").write_text(json.dumps({"info": info, "predictor_kind": predictor_kind,
                                                   "metadata": model.metadata.metadata or {}}, default=str))
        tmp.replace(where)  # atomic: a parallel reader sees all of it or nothing
    except Exception:  # caching is an optimisation: never fail a prediction over it
        shutil.rmtree(where.with_name(f"{where.name}.{os.getpid()}.tmp"), ignore_errors=True)


def _load_registered(uri: str, tracking_uri: str | None):
    """Load a registered pyfunc predictor from MLflow; returns (pyfunc model, resolved info dict)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    store = store_uri(tracking_uri)
    db = sqlite_file(store)
    if db is not None and not db.exists() and uri.startswith("models:/"):
        raise PredictorUnavailable(missing_sqlite(store, tracking_uri))
    reachable(store)
    mlflow.set_tracking_uri(store)
    shown = redact(store)
    name, version, alias = _parse_model_uri(uri)
    info = {"uri": uri, "version": version if version and version.isdigit() else None}
    with bounded_calls(store):
        try:
            client = MlflowClient(tracking_uri=store, registry_uri=store)
            if alias is not None:
                info["version"] = client.get_model_version_by_alias(name, alias).version
            elif version == "latest":
                versions = client.search_model_versions(f"name='{name}'")
                info["version"] = str(max(int(v.version) for v in versions)) if versions else None
            model = mlflow.pyfunc.load_model(uri)  # reads the store `mlflow.set_tracking_uri` named above
        except MlflowException as exc:
            msg = redact(first_line(exc))
            if uri.startswith("models:/"):
                why = _missing_predictor(uri, shown)
                if why:
                    raise PredictorUnavailable(why) from None
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise PredictorUnavailable(f"no predictor at {uri} in {shown}: {msg}") from None
            raise PredictorUnavailable(f"cannot load predictor {uri} from {shown}: {msg}") from None
        except OSError as exc:
            raise PredictorUnavailable(f"cannot load predictor {uri} from {shown}: {redact(first_line(exc))}") from None
        except Exception as exc:  # connection errors from a remote tracking server, a missing database driver
            raise PredictorUnavailable(f"cannot reach MLflow at {shown}: "
                                       f"{type(exc).__name__}: {redact(first_line(exc, 200))}") from None
    return model, info
