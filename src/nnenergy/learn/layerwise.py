"""Layer-wise predictor: one regressor per layer kind, summed per model, plus a validated
model-level correction for non-additivity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from nnenergy.features.layer_features import KIND_FEATURES

TARGETS = ("energy_j", "latency_s")
SOURCES = {  # where per-layer training targets come from
    "incontext": ("ctx_energy_j", "ctx_latency_s"),
    "isolated": ("iso_energy_j", "iso_latency_s"),
}
FALLBACK = "other"
INTERVAL_KEY = "energy_log_ratio_interval"  # metadata: 5%/95% quantiles of log(measured / predicted)


def energy_interval(metadata: dict, energy):
    """(low, high) joules around `energy` from a predictor's held-out log-ratio quantiles (NaN if none)."""
    lo, hi = metadata.get(INTERVAL_KEY, (np.nan, np.nan))
    return energy * np.exp(lo), energy * np.exp(hi)
# Positions of log_flops and log_mem_bytes in every kind's feature list (COMMON comes first).
_FLOPS_COL, _BYTES_COL = 1, 4


def _roofline_x(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), np.expm1(x[:, _FLOPS_COL]), np.expm1(x[:, _BYTES_COL])])


def _fit_roofline(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per target: non-negative (overhead, per-FLOP, per-byte) by least squares on joules.

    Absolute (not relative) error on purpose: the large layers set the per-FLOP and per-byte
    costs, which is what extrapolation to layers larger than the training ones needs; the
    regressor corrects the small ones in log space.
    """
    from scipy.optimize import nnls

    a = _roofline_x(x)
    scale = a.max(axis=0) + 1e-12
    coefs = []
    for t in range(y.shape[1]):
        c, _ = nnls(a / scale, y[:, t])
        c = c / scale
        c[0] = max(c[0], float(np.quantile(y[:, t], 0.5)) * 1e-2)  # keep the baseline positive
        coefs.append(c)
    return np.array(coefs).T  # (3, targets)


def _regressor_predict(reg, x: np.ndarray) -> np.ndarray:
    """`reg.predict`, with a fast path for forests: sklearn validates input once per tree,
    which costs more than the trees themselves for the few layers of one kind in one model."""
    from sklearn.ensemble import RandomForestRegressor

    if isinstance(reg, RandomForestRegressor):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        return np.mean([est.tree_.predict(x32)[:, :, 0] for est in reg.estimators_], axis=0)
    return np.asarray(reg.predict(x))


def _roofline(coefs: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.maximum(_roofline_x(x) @ coefs, 1e-12)


@dataclass
class LayerwisePredictor:
    """Fit on layer features and per-layer targets; predict per layer and per model."""

    make_regressor: Callable[[], object]
    source: str = "incontext"
    min_rows_per_kind: int = 20
    correction: str = "loglinear"  # or "none"
    baseline: str = "roofline"  # per-kind a + b*FLOPs + c*bytes that the regressor corrects; or "none"
    models_: dict = field(default_factory=dict)
    eps_: np.ndarray | None = None
    log_range_: tuple | None = None
    correction_: LinearRegression | None = None
    metadata: dict = field(default_factory=dict)

    # -- fitting --------------------------------------------------------------------
    def fit(self, feats: pd.DataFrame, layer_targets: np.ndarray, models: pd.DataFrame | None = None) -> "LayerwisePredictor":
        """`layer_targets`: (n, 2) joules and seconds per pass; `models`: whole-model rows for the correction."""
        y = np.asarray(layer_targets, dtype=float)
        ok = np.isfinite(y).all(axis=1)
        feats, y = feats[ok], y[ok]
        # Fused ops give exact zeros in context; a small floor keeps the log finite.
        self.eps_ = np.array([1e-3 * np.median(col[col > 0]) for col in y.T])
        logy = np.log(y + self.eps_)
        # Predictions are clipped to a generous band around the training targets, so a
        # polynomial extrapolating wildly cannot overflow a model's sum.
        self.log_range_ = (logy.min(axis=0) - 3.0, logy.max(axis=0) + 3.0)
        self.models_ = {}
        for kind, idx in feats.groupby("kind").groups.items():
            if kind == FALLBACK or len(idx) < self.min_rows_per_kind:
                continue
            self.models_[kind] = self._fit_one(feats.loc[idx, KIND_FEATURES[kind]], logy[feats.index.get_indexer(idx)])
        self.models_[FALLBACK] = self._fit_one(feats[KIND_FEATURES[FALLBACK]], logy)
        self.correction_ = None
        if self.correction == "loglinear" and models is not None:
            self._fit_correction(feats, y, models)
        return self

    def _fit_one(self, x: pd.DataFrame, logy: np.ndarray):
        x = x.to_numpy(dtype=float)
        base = None
        if self.baseline == "roofline":
            # Trees cannot extrapolate to layers larger than any seen in training. A non-negative
            # linear cost model (per-call overhead + per-FLOP + per-byte) can, as compute- and
            # memory-bound layers do; the regressor then learns the log-ratio to it.
            base = _fit_roofline(x, np.exp(logy) - self.eps_)
            logy = logy - np.log(_roofline(base, x))
        if np.ptp(logy, axis=0).max() < 1e-9:  # constant target (CatBoost refuses to fit one)
            from sklearn.dummy import DummyRegressor

            reg = DummyRegressor()
        else:
            reg = self.make_regressor()
        reg.fit(x, logy)
        if "n_jobs" in reg.get_params():
            # Predicting ~10 layers per kind: a thread pool costs more than it saves.
            reg.set_params(n_jobs=1)
        # What the regressor adds stays within what it saw (trees do this by themselves; a
        # polynomial would extrapolate wildly); extrapolation is the baseline's job.
        return base, reg, logy.min(axis=0), logy.max(axis=0)

    @staticmethod
    def _predict_one(model, x: np.ndarray) -> np.ndarray:
        base, reg, lo, hi = model
        pred = np.clip(_regressor_predict(reg, x).reshape(-1, 2), lo, hi)
        return pred + np.log(_roofline(base, x)) if base is not None else pred

    @staticmethod
    def _correction_x(sums: np.ndarray, n_layers: np.ndarray, batch: np.ndarray) -> np.ndarray:
        return np.column_stack([np.log(sums[:, 0]), np.log(sums[:, 1]), np.log(n_layers), np.log(batch)])

    def _fit_correction(self, feats: pd.DataFrame, y: np.ndarray, models: pd.DataFrame) -> None:
        """log(whole energy, latency) ~ log(sums of measured layer energies, latencies), layer count, batch.

        Fitted on measured sums of the training models, so nothing about the held-out
        architectures enters it; at prediction time the predicted sum is plugged in.
        """
        sums = pd.DataFrame(y, columns=TARGETS).groupby(feats["config_id"].to_numpy()).sum()
        m = models.set_index("config_id").loc[sums.index]
        x = self._correction_x(sums.to_numpy(), m["n_layers"].to_numpy(float), m["batch_size"].to_numpy(float))
        self.correction_ = LinearRegression().fit(x, np.log(m[list(TARGETS)].to_numpy(float)))

    # -- prediction -----------------------------------------------------------------
    def predict_layers(self, feats: pd.DataFrame) -> pd.DataFrame:
        """Per-layer joules and seconds; `known` is False where the fallback answered."""
        out = np.zeros((len(feats), 2))
        used = np.empty(len(feats), dtype=object)
        kinds = feats["kind"].to_numpy()
        for kind in np.unique(kinds):
            mask = kinds == kind
            model_kind = kind if kind in self.models_ else FALLBACK
            x = feats.loc[mask, KIND_FEATURES[model_kind]].to_numpy(dtype=float)
            pred = np.clip(self._predict_one(self.models_[model_kind], x), *self.log_range_)
            out[mask] = np.clip(np.exp(pred) - self.eps_, 0.0, None)
            used[mask] = model_kind
        res = feats[["config_id", "layer_index", "layer_name", "layer_type", "kind"]].copy()
        res["energy_j"], res["latency_s"] = out[:, 0], out[:, 1]
        res["known"] = feats["known"].to_numpy() & (used != FALLBACK)
        return res

    def predict_models(self, per_layer: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
        """Sum per model, then apply the correction; returns sums, corrections and totals."""
        g = per_layer.groupby("config_id", sort=False)
        sums = g[list(TARGETS)].sum()
        meta = feats.groupby("config_id", sort=False).agg(n_layers=("layer_index", "count"), batch=("batch_size", "first"))
        meta = meta.loc[sums.index]
        totals = sums.to_numpy().copy()
        if self.correction_ is not None:
            x = self._correction_x(np.maximum(sums.to_numpy(), 1e-12), meta["n_layers"].to_numpy(float), meta["batch"].to_numpy(float))
            totals = np.exp(self.correction_.predict(x))
        res = pd.DataFrame(index=sums.index)
        res["layer_sum_energy_j"], res["layer_sum_latency_s"] = sums["energy_j"], sums["latency_s"]
        res["energy_j"], res["latency_s"] = totals[:, 0], totals[:, 1]
        res["correction_energy_j"] = res["energy_j"] - res["layer_sum_energy_j"]
        res["correction_latency_s"] = res["latency_s"] - res["layer_sum_latency_s"]
        res["energy_lo_j"], res["energy_hi_j"] = energy_interval(self.metadata, res["energy_j"])
        return res.reset_index(names="config_id")
