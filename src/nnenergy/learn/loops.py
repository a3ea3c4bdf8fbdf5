"""The loop term of a layer-wise predictor: what a recurrent layer's loop costs beyond its rows.

`describe` prices a traced LSTM/GRU by its ops, with the steps folded into each product's shape: the
regressors then price a loop of 128 steps of [1, 256] x [256, 1024] as one [128, 256] x [256, 1024] product.
The loop runs 128 small products instead, each with its own call, its re-read of the weights and a few
element-wise ops too small to run fast, and nothing in the rows says so. Measured on the Zen 1 (2026-12-05),
that costs ~2 mJ and ~100 us a step at batch 1, more at larger batches, and the layer-wise sum misses
LSTM/GRU models by 2-7x.

The term, per configuration, is linear in its loops' steps (`features.loops`):

    steps x (c_op x its ops + c_batch x batch + c_weight x weight MB read a step + c_flop x MFLOPs a step)

minus the same four terms over the second directions of Bidirectional layers, each with its own
coefficient (what running beside the first direction saves; 0 when it saves nothing). The coefficients
are non-negative, per target (energy, latency), fitted at training time on the sequence kernels'
recurrent configurations (`kernel_dataset`'s sibling `kernels_seq`: LSTM/GRU layers, single, stacked or
Bidirectional, whole model measured): measured whole model minus the predictor's own total, least squares
relative to the measured value (the evaluation's RMSPE). It is added to the total after the model-level correction. A
predictor trained without such kernels has no term: its predictions are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnenergy.features.loops import loop_features
from nnenergy.schema import TARGETS

DESIGN = ("op_steps", "steps_x_batch", "weight_mb_steps", "mflop_steps",
          "paired_op_steps", "paired_steps_x_batch", "paired_weight_mb_steps", "paired_mflop_steps")
MIN_CONFIGS = 10  # recurrent kernel configurations needed to fit the term


def design(feats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(config ids in order of first appearance, their `DESIGN` matrix); rows of zeros without a loop. The
    paired columns are negative: a non-negative coefficient on them is a saving."""
    lf = loop_features(feats)
    batch = feats.groupby("config_id", sort=False)["batch_size"].first().reindex(lf.index).to_numpy(float)

    def terms(prefix: str) -> list[np.ndarray]:
        col = {c.removeprefix(prefix): lf[c].to_numpy(float) for c in lf.columns if c.startswith(prefix)}
        return [col["loop_op_steps"], col["loop_steps"] * batch, col["loop_weight_steps"] * 4 / 1e6,
                col["loop_flop_steps"] / 1e6]
    x = np.column_stack([*terms(""), *(-t for t in terms("paired_"))])
    return lf.index.to_numpy(dtype=object), x


@dataclass
class LoopTerm:
    """Fitted costs per `DESIGN` column (rows) and target (columns: joules, seconds)."""

    coefs: np.ndarray
    n_configs: int

    def costs(self, feats: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
        """(len(ids), 2) joules and seconds of the loops of configurations `ids` (0 without a loop)."""
        own_ids, x = design(feats)
        # A term fitted before the paired columns existed has 4 rows: it prices every loop alike, as it did.
        per = pd.DataFrame(np.maximum(x[:, :len(self.coefs)] @ self.coefs, 0.0), index=own_ids)
        return per.reindex(ids).fillna(0.0).to_numpy(float)

    def summary(self) -> dict:
        """The fitted costs by name, for the logged predictor's metadata."""
        return {"n_configs": self.n_configs} | {
            f"{t}_{d}": float(row[j]) for j, t in enumerate(TARGETS) for d, row in zip(DESIGN, self.coefs)}


def fit_loop_term(predictor, feats: pd.DataFrame, models: pd.DataFrame) -> LoopTerm | None:
    """Fit the term on `feats`/`models` (a sequence-kernel dataset: only its configurations with a loop
    count) as residuals of `predictor`'s own totals; None with fewer than `MIN_CONFIGS` such configurations."""
    from scipy.optimize import nnls

    ids, x = design(feats)
    has_loop = x[:, 0] > 0
    measured = models.drop_duplicates("config_id").set_index("config_id").reindex(ids[has_loop])[list(TARGETS)]
    ok = measured.notna().all(axis=1).to_numpy() & (measured.to_numpy(float) > 0).all(axis=1)
    if ok.sum() < MIN_CONFIGS:
        return None
    use = ids[has_loop][ok]
    rows = feats["config_id"].isin(set(use)).to_numpy()
    whole = predictor.predict_whole(feats[rows]).set_index("config_id")
    y = measured.to_numpy(float)[ok]
    pred = whole.loc[use, list(TARGETS)].to_numpy(float)
    xa = x[has_loop][ok]
    coefs = np.column_stack([nnls(xa / y[:, [t]], (y[:, t] - pred[:, t]) / y[:, t])[0] for t in range(len(TARGETS))])
    return LoopTerm(coefs=coefs, n_configs=int(len(use)))
