"""Splits by architecture family: no variant (batch, input size) of a test family is trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold


def grouped_folds(models: pd.DataFrame, n_folds: int, seed: int = 0) -> list[tuple[set, set]]:
    """(train families, test families) per fold; every family is tested exactly once."""
    families = np.array(sorted(models["family"].unique()))
    k = max(2, min(n_folds, len(families)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(families))
    # One sample per family: folds balance family counts. The shuffle keeps them from
    # following the alphabet.
    shuffled = families[order]
    idx = np.arange(len(shuffled))
    return [(set(shuffled[tr]), set(shuffled[te])) for tr, te in GroupKFold(n_splits=k).split(idx, groups=idx)]

