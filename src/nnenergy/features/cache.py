"""The feature cache: a dataset's layer features computed once, on disk under the cache folder
(`nnenergy.paths.cache_dir()`), keyed by the layers file's identity and the extractor's own tables."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import pandas as pd

from nnenergy.features import units
from nnenergy.features.layer_features import layer_features
from nnenergy.paths import cache_dir


def features_of(data) -> pd.DataFrame:
    """Layer features of a dataset (`nnenergy.dataset.Dataset`), cached on disk by the layers file's
    identity: the four predictors of one `make run` (separate processes) compute them once."""
    from nnenergy.dataset import LAYERS_FILE

    src = Path(data.path) / LAYERS_FILE
    if not src.exists():
        return layer_features(data.layers)
    st = src.stat()
    lf = importlib.import_module("nnenergy.features.layer_features")  # the module, not its function
    # The extractor's own tables are part of the key: a new kind, feature or unit rule invalidates the cache.
    version = repr((sorted(lf._TYPE_TO_KIND.items()), sorted(lf.KIND_FEATURES.items()), lf.ALL_FEATURES,
                    lf._ACTIVATIONS, lf.FEATURES_VERSION, units.VERSION))
    ident = f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{len(data.layers)}|{version}"
    key = hashlib.sha1(ident.encode()).hexdigest()[:16]
    cache = cache_dir() / "features" / f"{key}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    feats = layer_features(data.layers)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    feats.to_parquet(tmp, index=False)
    tmp.replace(cache)  # atomic: parallel jobs never read a half-written file
    return feats
