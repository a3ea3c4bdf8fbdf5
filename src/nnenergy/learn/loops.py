"""The loop term of a layer-wise predictor: what a recurrent layer's loop costs beyond its rows.

`describe` prices a traced LSTM/GRU by its ops, with the steps folded into each product's shape: the
regressors then price a loop of 128 steps of [1, 256] x [256, 1024] as one [128, 256] x [256, 1024] product.
The loop runs 128 small products instead, each with its own call, its re-read of the weights and a few
element-wise ops too small to run fast, and nothing in the rows says so. Measured on the Zen 1 (2026-12-05),
that costs ~2 mJ and ~100 us a step at batch 1, more at larger batches, and the layer-wise sum misses
LSTM/GRU models by 2-7x.

The term, per configuration, is linear in its loops' steps (`features.loops`):

    steps x (c_op x its ops + c_batch x batch + c_weight x weight MB read a step + c_flop x MFLOPs a step)

where c_weight may depend on the batch and on the loop's weights: at batch 1 each step is a matrix-vector
product bound by where its weights live (weights that fit the CPU's cache are read from there every step,
larger ones stream from memory), above batch 1 a matrix product. Training chooses, by cross-validation on
the kernels, one c_weight or four (batch 1 or more x a cache size from `CACHE_MB`), the four either
splitting loops whole (a loop's weights all under or all over the cache size) or splitting each loop's
weights (the part that fits the cache, the part that spills past it: a 2.1 MB LSTM step against a 2 MB
cache reads 2 MB at the cache's rate, not 2.1 MB at memory's). Measured on the Zen 1 (2026-12-06), one rate
left the batch-1 kernels' median error between -27% and +17% by the size of their weights; on 948
kernel configurations the spilled split at 4 MB cross-validated best (19.8% against 20.0% for whole loops
at 2 MB and 20.4% for one rate). The same four terms over the second directions of Bidirectional layers are
subtracted, each with its own coefficient (what running beside the first direction saves; 0 when nothing).
Coefficients are non-negative, per target (energy, latency), fitted at training time on the sequence
kernels' recurrent configurations (`kernel_dataset`'s sibling `kernels_seq`: LSTM/GRU layers, single,
stacked or Bidirectional, whole model measured): measured whole model minus the predictor's own total,
least squares relative to the measured value (the evaluation's RMSPE). It is added to the total after the
model-level correction. A predictor trained without such kernels has no term: its predictions are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnenergy.features.loops import loop_rows
from nnenergy.schema import TARGETS

BASE = ("op_steps", "steps_x_batch", "weight_mb_steps", "mflop_steps")  # every loop alike (the first design)
WEIGHT_SPLIT = ("weight_mb_steps_b1_cached", "weight_mb_steps_b1_streamed", "weight_mb_steps_batched_cached",
                "weight_mb_steps_batched_streamed")  # loops whole: all their weights under or over the cache
WEIGHT_SPILL = ("weight_mb_steps_b1_in_cache", "weight_mb_steps_b1_spilled", "weight_mb_steps_batched_in_cache",
                "weight_mb_steps_batched_spilled")  # each loop's weights: the cache's share, the rest
PAIRED = tuple(f"paired_{c}" for c in BASE)
CACHE_MB = (0.5, 1.0, 2.0, 4.0, 8.0)  # candidate sizes of the cache a loop's weights may stay in
MIN_CONFIGS = 10  # recurrent kernel configurations needed to fit the term
FOLDS = 5


def columns(cache_mb: float | None, spill: bool = False) -> tuple[str, ...]:
    """The design's columns: with a cache size, the weight term split four ways (by loop, or with `spill`
    within each loop)."""
    if cache_mb is None:
        return BASE + PAIRED
    return ("op_steps", "steps_x_batch", *(WEIGHT_SPILL if spill else WEIGHT_SPLIT), "mflop_steps", *PAIRED)


def loop_table(feats: pd.DataFrame) -> pd.DataFrame:
    """`features.loops.loop_rows` of `feats`, each loop with its configuration's `batch` size."""
    loops = loop_rows(feats)
    batch = feats.groupby("config_id", sort=False)["batch_size"].first()
    return loops.assign(batch=batch.reindex(loops["config_id"]).to_numpy(float))


def design(feats: pd.DataFrame, cache_mb: float | None = None, loops: pd.DataFrame | None = None,
           spill: bool = False) -> pd.DataFrame:
    """Per configuration of `feats` (index `config_id`, order of first appearance; zeros without a loop) its
    `columns(cache_mb, spill)`, from `loops` (`loop_table(feats)` unless given: one reading serves several designs).
    The paired columns (a Bidirectional's second direction) are negative: a non-negative coefficient on them
    is a saving."""
    ids = pd.unique(feats["config_id"].to_numpy(dtype=object))
    loops = loop_table(feats) if loops is None else loops
    if not len(loops):
        return pd.DataFrame(0.0, index=ids, columns=list(columns(cache_mb, spill)))
    b = loops["batch"].to_numpy(float)
    steps, weight_mb = loops["steps"].to_numpy(float), loops["weights"].to_numpy(float) * 4 / 1e6
    terms = {"op_steps": steps * loops["ops"].to_numpy(float), "steps_x_batch": steps * b,
             "weight_mb_steps": steps * weight_mb, "mflop_steps": steps * loops["flops"].to_numpy(float) / 1e6}
    paired = loops["paired"].to_numpy(bool)
    per_loop = {f"paired_{k}": -v * paired for k, v in terms.items()}
    if cache_mb is not None:
        one = b == 1
        if spill:
            inside, beyond = steps * np.minimum(weight_mb, cache_mb), steps * np.maximum(weight_mb - cache_mb, 0.0)
            parts = (inside * one, beyond * one, inside * ~one, beyond * ~one)
        else:
            cached, w = weight_mb <= cache_mb, terms["weight_mb_steps"]
            parts = (w * (one & cached), w * (one & ~cached), w * (~one & cached), w * (~one & ~cached))
        per_loop |= dict(zip(WEIGHT_SPILL if spill else WEIGHT_SPLIT, parts))
    per_loop |= terms
    table = pd.DataFrame(per_loop).assign(config_id=loops["config_id"].to_numpy(dtype=object))
    return table.groupby("config_id").sum().reindex(ids, columns=list(columns(cache_mb, spill))).fillna(0.0)


@dataclass
class LoopTerm:
    """Fitted costs per design column (rows, `columns`) and target (columns: joules, seconds)."""

    coefs: np.ndarray
    n_configs: int
    columns: tuple = BASE  # a term pickled before the other columns existed: every loop priced alike
    cache_mb: float | None = None
    cv_rmspe: float | None = None  # on the kernels, of the chosen design
    spill: bool = False  # the weights split within each loop (False: loops whole; a term pickled before it
    # has no such attribute and reads this class default, as it does `columns`)

    def costs(self, feats: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
        """(len(ids), 2) joules and seconds of the loops of configurations `ids` (0 without a loop)."""
        x = design(feats, self.cache_mb, spill=self.spill)[list(self.columns)]
        per = pd.DataFrame(np.maximum(x.to_numpy(float) @ self.coefs, 0.0), index=x.index)
        return per.reindex(ids).fillna(0.0).to_numpy(float)

    def summary(self) -> dict:
        """The fitted costs by name, for the logged predictor's metadata."""
        return {"n_configs": self.n_configs, "cache_mb": self.cache_mb, "spill": self.spill,
                "cv_rmspe": self.cv_rmspe} | {
            f"{t}_{d}": float(row[j]) for j, t in enumerate(TARGETS) for d, row in zip(self.columns, self.coefs)}


def _fit(x: np.ndarray, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Non-negative coefficients per target, least squares relative to the measured value."""
    from scipy.optimize import nnls

    return np.column_stack([nnls(x / y[:, [t]], (y[:, t] - pred[:, t]) / y[:, t])[0] for t in range(y.shape[1])])


def _cv_rmspe(x: np.ndarray, y: np.ndarray, pred: np.ndarray, kernels: np.ndarray) -> float:
    """Cross-validated RMSPE (%, both targets) of the term on the kernels: seeded folds of whole kernels (a
    kernel's batch sizes are never split between training and test)."""
    names, kernel = np.unique(kernels, return_inverse=True)
    fold = np.random.default_rng(0).integers(0, FOLDS, len(names))[kernel]
    err = np.zeros_like(y)
    for k in range(FOLDS):
        test = fold == k
        if test.any() and (~test).sum() >= MIN_CONFIGS:
            err[test] = (pred[test] + np.maximum(x[test] @ _fit(x[~test], y[~test], pred[~test]), 0)) / y[test] - 1
    return float(100 * np.sqrt(np.mean(err ** 2)))


def fit_loop_term(predictor, feats: pd.DataFrame, models: pd.DataFrame) -> LoopTerm | None:
    """Fit the term on `feats`/`models` (a sequence-kernel dataset: only its configurations with a loop
    count) as residuals of `predictor`'s own totals, with the design (one weight rate, or a cache size and
    loops whole or spilled) that cross-validates best; None with fewer than `MIN_CONFIGS` such configurations."""
    loops = loop_table(feats)
    base = design(feats, loops=loops)
    has_loop = base["op_steps"].to_numpy() > 0
    measured = models.drop_duplicates("config_id").set_index("config_id").reindex(base.index[has_loop])[list(TARGETS)]
    ok = measured.notna().all(axis=1).to_numpy() & (measured.to_numpy(float) > 0).all(axis=1)
    if ok.sum() < MIN_CONFIGS:
        return None
    use = base.index[has_loop][ok]
    rows = feats["config_id"].isin(set(use)).to_numpy()
    whole = predictor.predict_whole(feats[rows]).set_index("config_id")
    y, pred = measured.to_numpy(float)[ok], whole.loc[use, list(TARGETS)].to_numpy(float)
    kernels = np.array([str(c).split("|")[0] for c in use])  # config ids are `architecture|size|batch`
    candidates = {}
    for cache_mb, spill in ((None, False), *((c, s) for s in (False, True) for c in CACHE_MB)):
        x = design(feats, cache_mb, loops, spill).loc[use].to_numpy(float)
        candidates[cache_mb, spill] = (_cv_rmspe(x, y, pred, kernels), x)
    cache_mb, spill = min(candidates, key=lambda c: candidates[c][0])  # ties: the simpler, listed first
    cv, x = candidates[cache_mb, spill]
    return LoopTerm(coefs=_fit(x, y, pred), n_configs=int(len(use)), columns=columns(cache_mb, spill),
                    cache_mb=cache_mb, cv_rmspe=round(cv, 2), spill=spill)
