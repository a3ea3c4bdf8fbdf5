"""How a layer kind's training rows are subsampled when it has more than `max_rows_per_kind`.

Uniform rows let the generated space crowd the real networks' layers out of the sample as it grows: on
the Intel Xeon, from 2,591 to 4,139 configurations (103 keras.applications among them), the rf champion's
level 1 (held-out keras.applications families) went from 11.0% to 14.0% RMSPE with uniform rows, and to
10.3% with an equal share per source (docs/measurement.md, eleventh study session).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUBSAMPLES = ("rows", "sources")


def subsample(rows: np.ndarray, cap: int | None, strata: np.ndarray | None, rng) -> np.ndarray:
    """At most `cap` of `rows` (sorted), drawn without replacement: uniformly, or with `strata` (a label
    per row of the full table) an equal share per stratum, where a stratum with fewer rows than its share
    keeps them all and leaves the rest to the others."""
    if not cap or len(rows) <= cap:
        return rows
    if strata is None:
        return np.sort(rng.choice(rows, cap, replace=False))
    groups = sorted((rows[strata[rows] == s] for s in np.unique(strata[rows])), key=len)
    out, left = [], cap
    for i, g in enumerate(groups):
        take = min(len(g), left // (len(groups) - i))
        out.append(g if take == len(g) else rng.choice(g, take, replace=False))
        left -= take
    return np.sort(np.concatenate(out))


def sources(feats: pd.DataFrame, models: pd.DataFrame | None) -> np.ndarray | None:
    """Each row's configuration source (`models.source`), "unknown" where the models do not say."""
    if models is None or "source" not in models:
        return None
    return feats["config_id"].map(models.drop_duplicates("config_id").set_index("config_id")["source"]
                                  ).fillna("unknown").astype(str).to_numpy()
