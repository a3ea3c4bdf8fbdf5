"""The local predictor cache: a predictor resolved from a local SQLite store is copied under
`<cache>/predictors/` and reused, without MLflow, until the store changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnenergy.paths import cache_dir


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
    root = cache_dir() / "predictors"
    return root / hashlib.sha1(ident.encode()).hexdigest()[:16]


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
