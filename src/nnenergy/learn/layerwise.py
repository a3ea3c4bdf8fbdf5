"""Layer-wise predictor: one regressor per layer kind, summed per model, plus a validated
model-level correction for non-additivity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from nnenergy.features.layer_features import KIND_FEATURES, RANGE_FEATURES
from nnenergy.schema import INTERVAL_KEY, TARGETS

FALLBACK = "other"
# Out-of-range layers widen the model's interval by this many log units per unit of energy share.
OUT_OF_RANGE_WIDENING = float(np.log(2.0))


def energy_interval(metadata: dict, energy, out_of_range_share=0.0):
    """(low, high) joules around `energy` from a predictor's held-out log-ratio quantiles (NaN if
    none), widened by the share of the predicted energy that lies in out-of-range layers."""
    lo, hi = metadata.get(INTERVAL_KEY, (np.nan, np.nan))
    widen = OUT_OF_RANGE_WIDENING * np.asarray(out_of_range_share, dtype=float)
    return energy * np.exp(lo - widen), energy * np.exp(hi + widen)


def _roofline_x(x: np.ndarray, cols: list[str]) -> np.ndarray:
    """Per-call overhead, FLOPs and bytes of each row (features store them as log1p)."""
    flops, mem = x[:, cols.index("log_flops")], x[:, cols.index("log_mem_bytes")]
    return np.column_stack([np.ones(len(x)), np.expm1(flops), np.expm1(mem)])


def _fit_roofline(x: np.ndarray, y: np.ndarray, cols: list[str]) -> np.ndarray:
    """Per target: non-negative (overhead, per-FLOP, per-byte) by least squares on joules.

    Absolute (not relative) error on purpose: the large layers set the per-FLOP and per-byte
    costs, which is what extrapolation to layers larger than the training ones needs; the
    regressor corrects the small ones in log space.
    """
    from scipy.optimize import nnls

    a = _roofline_x(x, cols)
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


def _roofline(coefs: np.ndarray, x: np.ndarray, cols: list[str]) -> np.ndarray:
    return np.maximum(_roofline_x(x, cols) @ coefs, 1e-12)


@dataclass
class LayerwisePredictor:
    """Fit on layer features and per-layer targets; predict per layer and per model."""

    make_regressor: Callable[[], object]
    source: str = "incontext"
    min_rows_per_kind: int = 20
    correction: str = "loglinear"  # or "none"
    baseline: str = "roofline"  # per-kind a + b*FLOPs + c*bytes that the regressor corrects; or "none"
    max_rows_per_kind: int | None = None  # a stable random subsample above this (training time)
    seed: int = 0
    models_: dict = field(default_factory=dict)
    ranges_: dict = field(default_factory=dict)  # kind -> (min, max) of RANGE_FEATURES seen in training
    eps_: np.ndarray | None = None
    log_range_: tuple | None = None
    correction_: LinearRegression | None = None
    metadata: dict = field(default_factory=dict)

    # -- fitting --------------------------------------------------------------------
    def fit(self, feats: pd.DataFrame, layer_targets: np.ndarray,
            models: pd.DataFrame | None = None) -> "LayerwisePredictor":
        """`layer_targets`: (n, 2) joules and seconds per pass; `models`: whole-model rows for the correction."""
        y = np.asarray(layer_targets, dtype=float)
        ok = np.isfinite(y).all(axis=1)
        incomplete = set(feats.loc[~ok, "config_id"])  # their layer sums would be partial
        feats, y = feats[ok], y[ok]
        # Fused ops give exact zeros in context; a small floor keeps the log finite.
        self.eps_ = np.array([1e-3 * np.median(col[col > 0]) for col in y.T])
        logy = np.log(y + self.eps_)
        # Predictions are clipped to a generous band around the training targets, so a
        # polynomial extrapolating wildly cannot overflow a model's sum.
        self.log_range_ = (logy.min(axis=0) - 3.0, logy.max(axis=0) + 3.0)
        self.metadata["layer_types"] = sorted(set(feats["layer_type"]))  # what `predict` may call measured
        self.models_, self.ranges_ = {}, {}
        rng = np.random.default_rng(self.seed)
        pos = np.arange(len(feats))
        for kind, rows in pd.Series(pos).groupby(feats["kind"].to_numpy()):
            rows = rows.to_numpy()
            r = feats[RANGE_FEATURES].to_numpy(float)[rows]
            self.ranges_[kind] = (r.min(axis=0), r.max(axis=0))
            if kind == FALLBACK or len(rows) < self.min_rows_per_kind:
                continue
            if self.max_rows_per_kind and len(rows) > self.max_rows_per_kind:
                rows = np.sort(rng.choice(rows, self.max_rows_per_kind, replace=False))
            self.models_[kind] = self._fit_one(feats.iloc[rows][KIND_FEATURES[kind]], logy[rows])
        rows = pos
        if self.max_rows_per_kind and len(rows) > self.max_rows_per_kind:
            rows = np.sort(rng.choice(rows, self.max_rows_per_kind, replace=False))
        self.models_[FALLBACK] = self._fit_one(feats.iloc[rows][KIND_FEATURES[FALLBACK]], logy[rows])
        self.correction_ = None
        if self.correction == "loglinear" and models is not None:
            self._fit_correction(feats, y, models[~models["config_id"].isin(incomplete)])
        return self

    def _fit_one(self, x: pd.DataFrame, logy: np.ndarray):
        cols = list(x.columns)
        x = x.to_numpy(dtype=float)
        base = None
        if self.baseline == "roofline":
            # Trees cannot extrapolate to layers larger than any seen in training. A non-negative
            # linear cost model (per-call overhead + per-FLOP + per-byte) can, as compute- and
            # memory-bound layers do; the regressor then learns the log-ratio to it.
            base = (_fit_roofline(x, np.exp(logy) - self.eps_, cols), cols)
            logy = logy - np.log(_roofline(base[0], x, cols))
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
        return pred + np.log(_roofline(base[0], x, base[1])) if base is not None else pred

    @staticmethod
    def _correction_x(sums: np.ndarray, n_layers: np.ndarray, batch: np.ndarray) -> np.ndarray:
        return np.column_stack([np.log(sums[:, 0]), np.log(sums[:, 1]), np.log(n_layers), np.log(batch)])

    def _fit_correction(self, feats: pd.DataFrame, y: np.ndarray, models: pd.DataFrame) -> None:
        """log(whole energy, latency) ~ log(sums of measured layer energies, latencies), layer count, batch.

        Fitted on measured sums of the training models, so nothing about the held-out
        architectures enters it; at prediction time the predicted sum is plugged in.
        """
        sums = pd.DataFrame(y, columns=TARGETS).groupby(feats["config_id"].to_numpy()).sum()
        sums = sums.loc[sums.index.isin(models["config_id"])]
        m = models.set_index("config_id").loc[sums.index]
        x = self._correction_x(np.maximum(sums.to_numpy(), 1e-12), m["n_layers"].to_numpy(float),
                               m["batch_size"].to_numpy(float))
        self.correction_ = LinearRegression().fit(x, np.log(m[list(TARGETS)].to_numpy(float)))

    # -- prediction -----------------------------------------------------------------
    def predict_layers(self, feats: pd.DataFrame) -> pd.DataFrame:
        """Per-layer joules and seconds; `known` is False where the fallback answered;
        `out_of_range` where the layer's size lies outside what its kind was trained on."""
        out = np.zeros((len(feats), 2))
        used = np.empty(len(feats), dtype=object)
        oor = np.zeros(len(feats), dtype=bool)
        kinds = feats["kind"].to_numpy()
        sizes = feats[RANGE_FEATURES].to_numpy(float) if self.ranges_ else None
        for kind in np.unique(kinds):
            mask = kinds == kind
            model_kind = kind if kind in self.models_ else FALLBACK
            x = feats.loc[mask, KIND_FEATURES[model_kind]].to_numpy(dtype=float)
            pred = np.clip(self._predict_one(self.models_[model_kind], x), *self.log_range_)
            out[mask] = np.clip(np.exp(pred) - self.eps_, 0.0, None)
            used[mask] = model_kind
            if sizes is not None:
                lo, hi = self.ranges_.get(kind, (None, None))
                if lo is None:  # a kind never seen in training
                    oor[mask] = True
                else:  # log features: 0.1 = 10% beyond the largest or smallest seen
                    s = sizes[mask]
                    oor[mask] = ((s < lo - 0.1) | (s > hi + 0.1)).any(axis=1)
        res = feats[["config_id", "layer_index", "layer_name", "layer_type", "kind"]].copy()
        res["energy_j"], res["latency_s"] = out[:, 0], out[:, 1]
        res["known"] = feats["known"].to_numpy() & (used != FALLBACK)
        res["out_of_range"] = oor | ~res["known"].to_numpy()
        return res

    def predict_models(self, per_layer: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
        """Sum per model, then apply the correction; returns sums, corrections and totals."""
        g = per_layer.groupby("config_id", sort=False)
        sums = g[list(TARGETS)].sum()
        meta = feats.groupby("config_id", sort=False).agg(n_layers=("layer_index", "count"),
                                                          batch=("batch_size", "first"))
        meta = meta.loc[sums.index]
        totals = sums.to_numpy().copy()
        if self.correction_ is not None:
            x = self._correction_x(np.maximum(sums.to_numpy(), 1e-12), meta["n_layers"].to_numpy(float),
                                   meta["batch"].to_numpy(float))
            totals = np.exp(self.correction_.predict(x))
        res = pd.DataFrame(index=sums.index)
        res["layer_sum_energy_j"], res["layer_sum_latency_s"] = sums["energy_j"], sums["latency_s"]
        res["energy_j"], res["latency_s"] = totals[:, 0], totals[:, 1]
        res["correction_energy_j"] = res["energy_j"] - res["layer_sum_energy_j"]
        res["correction_latency_s"] = res["latency_s"] - res["layer_sum_latency_s"]
        if "out_of_range" in per_layer:
            oor_e = per_layer["energy_j"].where(per_layer["out_of_range"], 0.0).groupby(per_layer["config_id"],
                                                                                        sort=False).sum()
            res["out_of_range_share"] = (oor_e.loc[sums.index] / sums["energy_j"].clip(lower=1e-12)).clip(0, 1)
        else:
            res["out_of_range_share"] = 0.0
        res["energy_lo_j"], res["energy_hi_j"] = energy_interval(self.metadata, res["energy_j"],
                                                                 res["out_of_range_share"])
        return res.reset_index(names="config_id")

    def predict_whole(self, feats: pd.DataFrame) -> pd.DataFrame:
        """Per configuration: totals, layer sums, correction and interval."""
        return self.predict_models(self.predict_layers(feats), feats)
