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
# Sources whose share comes on top of the cap: the kernel sweep's single layers. At a fixed cap their equal
# share crowded the networks' own rows (the Intel Xeon's 1,591 kernels took a quarter of each capped kind,
# rf levels 1 / 3 8.5% / 10.5%), while raising the cap for every profile (20,000) cost the EPYC Zen 4, which
# has no kernels, 12.1% -> 17.1% at level 1 and 24% -> 40% at level 2 (xgb; docs/measurement.md, fourteenth
# study session): so the cap counts the networks' sources, and each kernel source gets one more share.
ON_TOP = ("kernel",)


def subsample(rows: np.ndarray, cap: int | None, strata: np.ndarray | None, rng) -> np.ndarray:
    """A subsample of `rows` (sorted), drawn without replacement: at most `cap`, uniformly, or with `strata`
    (a label per row of the full table) an equal share per stratum, where a stratum with fewer rows than its
    share keeps them all and leaves the rest to the others. With `strata`, the `ON_TOP` strata are drawn apart
    within one more share each (cap / the other strata), also where the rows are under the cap: the others
    get what they would get without them, and the result may exceed `cap`."""
    if strata is not None and cap:
        top = np.isin(strata[rows], ON_TOP)
        main = len(np.unique(strata[rows[~top]]))
        if top.any() and main:
            extra = cap * len(np.unique(strata[rows[top]])) // main
            return np.sort(np.concatenate([_draw(rows[~top], cap, strata, rng), _draw(rows[top], extra, strata, rng)]))
    return _draw(rows, cap, strata, rng)


def _draw(rows: np.ndarray, cap: int | None, strata: np.ndarray | None, rng) -> np.ndarray:
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
