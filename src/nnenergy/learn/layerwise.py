"""Layer-wise predictor: one regressor per layer kind, summed per model, plus a validated
model-level correction for non-additivity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from nnenergy.features.layer_features import ALL_FEATURES, KIND_FEATURES, NEWER_FEATURES, RANGE_FEATURES
from nnenergy.features.units import FUSED_KIND, UNIT_FLAGS, fuse
from nnenergy.learn.ranges import outside_range
from nnenergy.learn.sampling import SUBSAMPLES, sources, subsample
from nnenergy.schema import INTERVAL_KEY, TARGETS

FALLBACK = "other"
# Out-of-range layers widen the model's interval by this many log units per unit of energy share.
OUT_OF_RANGE_WIDENING = float(np.log(2.0))


def range_features(kind: str) -> list[str]:
    """What a layer of `kind` is checked against the training data on: its size (FLOPs, elements,
    bytes), its context (batch size, model depth, fused role) and every structural feature of its
    kind (kernel area, groups, stride, units, ...), so an 11x11 kernel, a group count or a batch
    size never seen is flagged, not only a larger layer."""
    own = [f for f in KIND_FEATURES.get(kind, []) if f not in RANGE_FEATURES]
    return RANGE_FEATURES + own


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


def _is_identity(transformer) -> bool:
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(transformer, str):
        return transformer == "passthrough"
    return isinstance(transformer, FunctionTransformer) and transformer.func is None


def _pipeline_predict(pipe, x: np.ndarray) -> np.ndarray | None:
    """A fitted pipeline of column selection, scaling, polynomial expansion and a linear model,
    evaluated in numpy; None when a step is of another kind (the caller then uses `predict`)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    for _, step in pipe.steps:
        if isinstance(step, ColumnTransformer):
            parts = [(t, c) for _, t, c in step.transformers_ if not (isinstance(t, str) and t == "drop")]
            # fitted, "passthrough" becomes an identity FunctionTransformer
            if not all(_is_identity(t) for t, _ in parts):
                return None
            x = x[:, [i for _, c in parts for i in c]]
        elif isinstance(step, StandardScaler):
            if step.mean_ is not None:
                x = x - step.mean_
            if step.scale_ is not None:
                x = x / step.scale_
        elif isinstance(step, PolynomialFeatures):
            x = np.prod(x[:, None, :] ** step.powers_[None, :, :], axis=2)
        elif isinstance(step, (Ridge, LinearRegression)):
            x = x @ np.asarray(step.coef_).T + step.intercept_
        else:
            return None
    return x


def _regressor_predict(reg, x: np.ndarray) -> np.ndarray:
    """`reg.predict` without sklearn's per-call validation, which costs more than the model itself
    for the few layers of one kind in one model: forests tree by tree, polynomial pipelines in
    numpy, XGBoost in place. Equal to `reg.predict` (tested)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(reg, RandomForestRegressor):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        return np.mean([est.tree_.predict(x32)[:, :, 0] for est in reg.estimators_], axis=0)
    if isinstance(reg, Pipeline):
        out = _pipeline_predict(reg, x)
        if out is not None:
            return out
    if type(reg).__name__ == "XGBRegressor":
        return np.asarray(reg.get_booster().inplace_predict(x))
    return np.asarray(reg.predict(x))


def _roofline(coefs: np.ndarray, x: np.ndarray, cols: list[str]) -> np.ndarray:
    return np.maximum(_roofline_x(x, cols) @ coefs, 1e-12)


def _fit_efficiency(x: np.ndarray, y: np.ndarray, cols: list[str], kind: str) -> np.ndarray:
    """Per target, the attainable rates of a `kind` baseline (ANNETTE-style: the regressor then learns
    log(cost / baseline), an efficiency, which trees extrapolate as constant instead of constant cost):

    - `efficiency`: cost = max(FLOPs / peak, bytes / bandwidth, floor), peak and bandwidth the 90th
      percentiles of the rates the training layers reached;
    - `per_flop`: cost = (FLOPs + bytes) x the median cost per FLOP-or-byte (log time per FLOP)."""
    f, b = _roofline_x(x, cols)[:, 1:].T
    out = []
    for t in range(y.shape[1]):
        yt = np.maximum(y[:, t], 1e-12)
        floor = float(np.quantile(yt, 0.05))
        if kind == "per_flop":
            out.append([float(np.median(yt / (f + b + 1.0))), 0.0, floor])
            continue
        # Rates from rows with a real cost: a kernel's fused ops read ~0 in context, and their rates
        # would set the peak.
        pos = y[:, t][y[:, t] > 0]
        real = yt > 0.01 * (np.median(pos) if len(pos) else 0.0)
        rf = f[real & (f > 0)] / yt[real & (f > 0)]
        rb = b[real & (b > 0)] / yt[real & (b > 0)]
        peak = float(np.quantile(rf, 0.9)) if len(rf) else np.inf
        bw = float(np.quantile(rb, 0.9)) if len(rb) else np.inf
        out.append([1.0 / peak, 1.0 / bw, floor])
    return np.array(out).T  # (3, targets): per-FLOP, per-byte, floor


def _efficiency(coefs: np.ndarray, x: np.ndarray, cols: list[str], kind: str) -> np.ndarray:
    f, b = _roofline_x(x, cols)[:, 1:].T
    if kind == "per_flop":
        return np.maximum((f + b + 1.0)[:, None] * coefs[0], 1e-12)
    return np.maximum.reduce([f[:, None] * coefs[0], b[:, None] * coefs[1],
                              np.broadcast_to(coefs[2], (len(f), coefs.shape[1]))])


BASELINES = ("roofline", "efficiency", "per_flop", "none")
KERNEL_ROWS = ("rescaled", "raw", "drop")
COMPUTE_KINDS = ("conv", "dense", "depthwise_conv", "attention")


def unattributed(feats: pd.DataFrame, y: np.ndarray, min_flops: float = 1e6, share: float = 0.01) -> np.ndarray:
    """Compute units of >= `min_flops` whose measured energy per FLOP is below `share` of their kind's
    median: the in-context profile charged their time to another unit (1.3% of the Zen 4's convolution
    units, all in generated blocks), so they are attribution artifacts, not costs."""
    out = np.zeros(len(feats), dtype=bool)
    flops = np.expm1(feats["log_flops"].to_numpy(float))
    kinds = feats["kind"].to_numpy()
    for kind in COMPUTE_KINDS:
        m = (kinds == kind) & (flops >= min_flops) & np.isfinite(y[:, 0])
        if m.sum() < 10:
            continue
        per_flop = y[m, 0] / flops[m]
        # The median of the units that cost something: where most read 0, zero is no yardstick.
        ref = np.median(per_flop[per_flop > 0]) if (per_flop > 0).any() else 0.0
        out[np.flatnonzero(m)[per_flop < share * ref]] = True
    return out


def _baseline(base, x: np.ndarray) -> np.ndarray:
    """The cost a fitted baseline gives rows `x`; `base` = (coefs, cols[, kind]) (pickles before
    efficiency baselines hold two items: a roofline)."""
    kind = base[2] if len(base) > 2 else "roofline"
    return _roofline(base[0], x, base[1]) if kind == "roofline" else _efficiency(base[0], x, base[1], kind)


@dataclass
class LayerwisePredictor:
    """Fit on layer features and per-layer targets; predict per layer and per model."""

    make_regressor: Callable[[], object]
    target_source: str = "incontext"  # where its per-layer targets came from (schema.SOURCES)
    min_rows_per_kind: int = 20
    correction: str = "loglinear"  # or "none"
    # The per-kind cost the regressor corrects (BASELINES): "roofline" a + b*FLOPs + c*bytes; "efficiency"
    # max(FLOPs/peak, bytes/bandwidth); "per_flop" log cost per FLOP; "none": the regressor learns log cost.
    baseline: str = "roofline"
    # Rows of the kernel sweep (models with source `kernel`) in training: "raw" as measured; "rescaled"
    # per kind by the median ratio of in-context to isolated cost (a first fit on in-context rows only,
    # scored on the kernels inside its range); "drop" leaves them out.
    kernel_rows: str = "rescaled"
    min_kernels_per_kind: int = 10  # in-range kernels a kind needs before its kernel rows are rescaled
    # Leave out compute units that the profiler charged (almost) nothing: their time went to another unit,
    # and learning them teaches "this convolution costs nothing" (VGG's second convs, held out, read ~0).
    drop_unattributed: bool = True
    max_rows_per_kind: int | None = None  # a stable random subsample above this (training time)
    # How that subsample is drawn: "rows" uniformly over rows; "sources" an equal share per configuration
    # source (keras.applications, generated, variant, kernel), what a small source leaves given to the
    # others. Uniform rows let the generated space crowd out the real networks' layers as it grows.
    subsample: str = "rows"
    units: str = "kernels"  # learn per kernel (a layer + the layers fused into it, features.units); or "layers"
    seed: int = 0
    models_: dict = field(default_factory=dict)
    ranges_: dict = field(default_factory=dict)  # kind -> (min, max) of its range features seen in training
    eps_: np.ndarray | None = None
    log_range_: tuple | None = None
    correction_: LinearRegression | None = None
    kind_features_: dict = field(default_factory=dict)  # kind -> feature columns it was trained on
    kernel_context_: dict = field(default_factory=dict)  # kind -> (J, s) ratio alone / in context
    loop_term_: object = None  # recurrent loops' cost beyond their rows (`learn.loops`), fitted on sequence kernels
    metadata: dict = field(default_factory=dict)

    # -- fitting --------------------------------------------------------------------
    def fit(self, feats: pd.DataFrame, layer_targets: np.ndarray,
            models: pd.DataFrame | None = None, loops: tuple | None = None) -> "LayerwisePredictor":
        """`layer_targets`: (n, 2) joules and seconds per pass; `models`: whole-model rows for the correction;
        `loops`: (features, models) of sequence kernels, whose recurrent configurations fit the loop term."""
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, not {self.baseline!r}")
        if self.kernel_rows not in KERNEL_ROWS:
            raise ValueError(f"kernel_rows must be one of {KERNEL_ROWS}, not {self.kernel_rows!r}")
        if self.subsample not in SUBSAMPLES:
            raise ValueError(f"subsample must be one of {SUBSAMPLES}, not {self.subsample!r}")
        y = np.asarray(layer_targets, dtype=float)
        self.metadata["units"] = self.units
        kernel_ids = set(models.loc[models["source"] == "kernel", "config_id"]) if (
            models is not None and "source" in models) else set()
        # What `predict` may call measured: the types of the rows it learns from (kernel rows left out
        # with `kernel_rows: drop` do not count).
        learned = ~feats["config_id"].isin(kernel_ids) if self.kernel_rows == "drop" else slice(None)
        self.metadata["layer_types"] = sorted(set(feats.loc[learned, "layer_type"]))
        if self.units == "kernels":
            feats, y, _ = fuse(feats, y)
        ok = np.isfinite(y).all(axis=1)
        incomplete = set(feats.loc[~ok, "config_id"])  # their layer sums would be partial
        feats, y = feats[ok], y[ok]
        if self.drop_unattributed:
            keep = ~unattributed(feats, y)
            feats, y = feats[keep], y[keep]
        from_kernels = feats["config_id"].isin(kernel_ids).to_numpy()
        # A kernel measured alone cannot cost nothing: its units that read 0 in context (a traced RNN's loop,
        # whose ops carry no layer scope) are gaps of the profile, and as a kind's median they poisoned its
        # rescaling (dense x670 on the Zen 1, docs/unseen.md). "drop" leaves out every kernel row.
        gap = from_kernels & ((self.kernel_rows == "drop") | ~(y > 0).any(axis=1))
        if gap.any():
            feats, y, from_kernels = feats[~gap], y[~gap], from_kernels[~gap]
        # Fused ops give exact zeros in context; a small floor keeps the log finite.
        self.eps_ = np.array([1e-3 * np.median(col[col > 0]) for col in y.T])
        logy = np.log(y + self.eps_)
        # Predictions are clipped to a generous band around the training targets, so a
        # polynomial extrapolating wildly cannot overflow a model's sum.
        self.log_range_ = (logy.min(axis=0) - 3.0, logy.max(axis=0) + 3.0)
        self.kind_features_ = {k: list(v) for k, v in KIND_FEATURES.items()}  # as trained, whatever changes later
        strata = sources(feats, models) if self.subsample == "sources" else None
        if self.kernel_rows == "rescaled" and from_kernels.any() and (~from_kernels).any():
            logy = self._rescale_kernels(feats, logy, from_kernels, strata)
            self.metadata["kernel_context"] = self.kernel_context_
        self.models_, self.ranges_, self.range_names_ = self._fit_kinds(feats, logy, strata)
        self.correction_ = None
        if self.correction == "loglinear" and models is not None:
            # Learned on whole networks only: a one-kernel model says nothing about their non-additivity.
            networks = models[~models["config_id"].isin(incomplete | kernel_ids)]
            keep = ~from_kernels
            self._fit_correction(feats[keep], y[keep], networks)
        self.loop_term_ = None
        if loops is not None:
            from nnenergy.learn.loops import fit_loop_term

            self.loop_term_ = fit_loop_term(self, *loops)
            if self.loop_term_ is not None:
                self.metadata["loop_term"] = self.loop_term_.summary()
        return self

    def _fit_kinds(self, feats: pd.DataFrame, logy: np.ndarray, strata: np.ndarray | None = None
                   ) -> tuple[dict, dict, dict]:
        """One model per kind with enough rows, the fallback on all rows; the ranges each kind saw
        (`strata`: each row's source, where the subsample is drawn by source)."""
        models, ranges, names = {}, {}, {}
        rng = np.random.default_rng(self.seed)
        pos = np.arange(len(feats))
        for kind, rows in pd.Series(pos).groupby(feats["kind"].to_numpy()):
            rows = rows.to_numpy()
            names[kind] = range_features(kind)  # as trained, whatever changes later
            r = feats[names[kind]].to_numpy(float)[rows]
            ranges[kind] = (r.min(axis=0), r.max(axis=0))
            if kind == FALLBACK or len(rows) < self.min_rows_per_kind:
                continue
            rows = subsample(rows, self.max_rows_per_kind, strata, rng)
            models[kind] = self._fit_one(feats.iloc[rows][KIND_FEATURES[kind]], logy[rows])
        rows = subsample(pos, self.max_rows_per_kind, strata, rng)
        models[FALLBACK] = self._fit_one(feats.iloc[rows][KIND_FEATURES[FALLBACK]], logy[rows])
        return models, ranges, names

    def _rescale_kernels(self, feats: pd.DataFrame, logy: np.ndarray, from_kernels: np.ndarray,
                         strata: np.ndarray | None = None) -> np.ndarray:
        """Put the kernel sweep's rows on the in-context scale, kind by kind: a first fit on in-context
        rows predicts the kernels inside its range, and their median log ratio (measured alone vs
        predicted in context: call overhead, cold caches) is taken off every kernel row of that kind.
        Kinds with fewer than `min_kernels_per_kind` such kernels keep their rows as measured."""
        ctx = ~from_kernels
        models, _, _ = self._fit_kinds(feats[ctx], logy[ctx], None if strata is None else strata[ctx])
        logy = logy.copy()
        self.kernel_context_ = {}
        kinds = feats["kind"].to_numpy()
        # Inside = sizes and batch within what the networks' layers of the kind span; not their context
        # features (model depth, neighbours), which a kernel measured alone never shares.
        size = feats[RANGE_FEATURES + ["batch_size"]].to_numpy(float)
        for kind in set(kinds[from_kernels]):
            if kind not in models:
                continue
            rows = np.flatnonzero(from_kernels & (kinds == kind))
            seen = size[~from_kernels & (kinds == kind)]
            if not len(seen):
                continue
            r = size[rows]
            inside = rows[((r >= seen.min(axis=0)) & (r <= seen.max(axis=0))).all(axis=1)]
            if len(inside) < self.min_kernels_per_kind:
                continue
            x = feats.iloc[inside][self.kind_features_[kind]].to_numpy(float)
            shift = np.median(logy[inside] - self._predict_one(models[kind], x), axis=0)
            logy[rows] -= shift
            self.kernel_context_[kind] = [float(v) for v in np.exp(shift)]  # alone / in context, (J, s)
        return logy

    def _fit_one(self, x: pd.DataFrame, logy: np.ndarray):
        cols = list(x.columns)
        x = x.to_numpy(dtype=float)
        base = None
        if self.baseline in ("efficiency", "per_flop"):
            base = (_fit_efficiency(x, np.exp(logy) - self.eps_, cols, self.baseline), cols, self.baseline)
            logy = logy - np.log(_baseline(base, x))
        elif self.baseline == "roofline":
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
        return pred + np.log(_baseline(base, x)) if base is not None else pred

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
        `out_of_range` where the layer's size lies outside what its kind was trained on.
        Learned per kernel, a kernel's cost is reported on its head layer; the layers fused into
        it show 0, kind `fused` and the head's `unit_index`.

        The hot path of every prediction: arrays throughout, one feature matrix, one regressor
        call per kind, one DataFrame at the end."""
        n = len(feats)
        index = feats["layer_index"].to_numpy()
        kernels = getattr(self, "units", "layers") == "kernels"  # older pickles predate kernel units
        unit = feats["unit_index"].to_numpy(dtype=float) if kernels else index.astype(float)
        head = index == unit
        kinds = feats["kind"].to_numpy(dtype=object)
        x_all = feats[ALL_FEATURES].to_numpy(dtype=float)
        col = {f: i for i, f in enumerate(ALL_FEATURES)}
        kind_features = getattr(self, "kind_features_", None) or {  # pickled before kernel units: no unit flags
            k: [f for f in v if f not in UNIT_FLAGS and f not in NEWER_FEATURES] for k, v in KIND_FEATURES.items()}
        out = np.zeros((n, 2))
        known = feats["known"].to_numpy(dtype=bool).copy()
        oor = np.zeros(n, dtype=bool)
        why = np.full(n, "", dtype=object)  # the reason of each flag, for the user
        types = feats["layer_type"].to_numpy(dtype=object)
        measured_types = self.metadata.get("layer_types")
        measured_types = np.asarray(measured_types, dtype=object) if measured_types else None
        head_kinds = kinds[head]
        head_pos = np.flatnonzero(head)
        for kind in set(head_kinds):
            rows = head_pos[head_kinds == kind]
            model_kind = kind if kind in self.models_ else FALLBACK
            x = x_all[np.ix_(rows, [col[f] for f in kind_features[model_kind]])]
            model = self.models_[model_kind]
            pred = self._predict_one(model, x)
            if measured_types is not None and model[0] is not None:
                # A layer type training never saw (an LSTM under `dense`): the regressor's correction was
                # learned on other types' features, so it could make a larger layer cheaper. The kind's
                # baseline alone at least scales with the layer's own FLOPs and bytes.
                new = ~np.isin(types[rows], measured_types)
                if new.any():
                    pred[new] = np.log(_baseline(model[0], x[new]))
            pred = np.clip(pred, *self.log_range_)
            out[rows] = np.clip(np.exp(pred) - self.eps_, 0.0, None)
            if model_kind == FALLBACK:
                known[rows] = False
            lo, hi = self.ranges_.get(kind, (None, None)) if self.ranges_ else (None, None)
            if lo is None:
                oor[rows] = bool(self.ranges_)  # a kind never seen in training
                why[rows] = f"no {kind} layer in the training data" if self.ranges_ else ""
            else:
                # pickled before structural ranges: the four size features
                names = getattr(self, "range_names_", {}).get(kind, RANGE_FEATURES)
                s = x_all[np.ix_(rows, [col[f] for f in names])]
                oor[rows], why[rows] = outside_range(s, lo, hi, names, kind)
        why[~known & (why == "")] = "unknown layer type: generic fallback"
        oor |= ~known
        oor &= kinds != "input"  # an InputLayer runs no op: no size of it is out of range
        res_kind = kinds.copy()
        if not head.all():  # fused layers take their kernel's known / out-of-range flags
            codes, _ = pd.factorize(feats["config_id"].to_numpy(dtype=object))
            span = float(index.max()) + 1.0
            head_keys = codes[head] * span + index[head]
            sort = np.argsort(head_keys)
            members = ~head
            member_keys = codes[members] * span + unit[members]
            at = sort[np.minimum(np.searchsorted(head_keys, member_keys, sorter=sort), len(sort) - 1)]
            found = head_keys[at] == member_keys  # a head outside `feats` (a partial model): unknown
            known[members] = known[head][at] & found
            oor[members] = oor[head][at] | ~found
            why[members] = np.where(found, why[head][at], "its kernel's head is not in the table")
            res_kind[members] = FUSED_KIND
        return pd.DataFrame({
            "config_id": feats["config_id"].to_numpy(), "layer_index": index,
            "layer_name": feats["layer_name"].to_numpy(), "layer_type": feats["layer_type"].to_numpy(),
            "kind": res_kind, "energy_j": out[:, 0], "latency_s": out[:, 1], "known": known,
            "out_of_range": oor, "out_of_range_reason": np.where(oor, why, ""), "unit_index": unit,
        }, index=feats.index)

    def predict_models(self, per_layer: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
        """Sum per model, then apply the correction; returns sums, corrections and totals.
        `per_layer` is `predict_layers(feats)` (same rows, same order)."""
        codes, ids = pd.factorize(per_layer["config_id"].to_numpy(dtype=object))
        k = len(ids)
        y = per_layer[list(TARGETS)].to_numpy(dtype=float)
        sums = np.column_stack([np.bincount(codes, weights=y[:, t], minlength=k) for t in range(2)])
        n_layers = np.bincount(codes, minlength=k).astype(float)
        batch = np.empty(k)
        batch[codes[::-1]] = feats["batch_size"].to_numpy(dtype=float)[::-1]  # each model's first row
        totals = sums.copy()
        if self.correction_ is not None:
            x = self._correction_x(np.maximum(sums, 1e-12), n_layers, batch)
            totals = np.exp(x @ self.correction_.coef_.T + self.correction_.intercept_)
        if getattr(self, "loop_term_", None) is not None:  # pickled before the loop term: none
            totals = totals + self.loop_term_.costs(feats, ids)
        if "out_of_range" in per_layer:
            oor_e = np.bincount(codes, weights=np.where(per_layer["out_of_range"].to_numpy(bool), y[:, 0], 0.0),
                                minlength=k)
            share = np.clip(oor_e / np.maximum(sums[:, 0], 1e-12), 0, 1)
        else:
            share = np.zeros(k)
        lo, hi = energy_interval(self.metadata, totals[:, 0], share)
        return pd.DataFrame({
            "config_id": ids, "layer_sum_energy_j": sums[:, 0], "layer_sum_latency_s": sums[:, 1],
            "energy_j": totals[:, 0], "latency_s": totals[:, 1],
            "correction_energy_j": totals[:, 0] - sums[:, 0], "correction_latency_s": totals[:, 1] - sums[:, 1],
            "out_of_range_share": share, "energy_lo_j": lo, "energy_hi_j": hi,
        })

    def predict_whole(self, feats: pd.DataFrame) -> pd.DataFrame:
        """Per configuration: totals, layer sums, correction and interval."""
        return self.predict_models(self.predict_layers(feats), feats)
