"""Transfer a layer-wise predictor to another device from a few minutes of measurements there.

The base predictor (trained on a source device) knows what each fused kernel costs there. On
another device (another CPU, a capped ISA, fewer cores, other kernels) the cost changes *per kind
and size of work*: large GEMMs gain most from AVX-512, one core loses most on parallel work, and
a panel of small kernels does not speak for large ones. Bring-up therefore measures whole
generated architectures of the `space` in context on the target, up to its largest layers, and
learns the log-ratio of each kernel's measured cost there to the base predictor's prediction
for it, over the kernel's kind, size (its base-predicted latency) and arithmetic intensity.
That is Habitat's intensity-weighted scaling and LitePred's fine-tuning of kernel predictors,
learned from the target's own kernels. A whole-model ratio on the bring-up models absorbs what the
kernel sum misses (overlap of branches, per-call overhead).

Which map is used, one speed ratio, a ridge on kernel features or gradient-boosted trees, is
decided by cross-validation over the bring-up *architectures*: a transfer that cannot beat the
speed ratio on architectures it did not see falls back to the speed ratio, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnenergy.schema import TARGETS

METHODS = ("speed", "ridge", "trees")
_NUMERIC = ["log_base_latency", "log_intensity", "log_flops", "log_mem_bytes", "log_batch"]
_RIDGE_ALPHA = 3.0  # on standardised features, weights normalised to mean 1 per model
_MIN_KERNEL_ROWS = 30  # fewer measured kernels than this: a speed ratio is all the data supports


class TransferError(ValueError):
    """Bring-up data that cannot fit a transfer; one line for the user."""


def _kernel_features(per_layer: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    """One row per kernel head of `per_layer` (a base predictor's `predict_layers(feats)`)."""
    head = (per_layer["kind"] != "fused").to_numpy()
    f = feats[head]
    out = pd.DataFrame({
        "config_id": per_layer["config_id"].to_numpy()[head],
        "unit_index": per_layer["unit_index"].to_numpy(float)[head],
        "kind": per_layer["kind"].to_numpy(dtype=object)[head],
        "log_base_latency": np.log(np.maximum(per_layer["latency_s"].to_numpy(float)[head], 1e-7)),
        "log_intensity": f["log_intensity"].to_numpy(float),
        "log_flops": f["log_flops"].to_numpy(float),
        "log_mem_bytes": f["log_mem_bytes"].to_numpy(float),
        "log_batch": np.log(f["batch_size"].to_numpy(float)),
        "base_energy_j": per_layer["energy_j"].to_numpy(float)[head],
        "base_latency_s": per_layer["latency_s"].to_numpy(float)[head],
    }, index=per_layer.index[head])
    return out


def measured_kernels(per_layer: pd.DataFrame, feats: pd.DataFrame, layer_targets: np.ndarray) -> pd.DataFrame:
    """Kernels of measured configurations (`per_layer`: the base's `predict_layers(feats)`): features,
    the base's predictions, the measured in-context cost of the kernel (its members' costs summed)
    and its weight (share of its model's measured energy: a model's error is carried by its large
    kernels)."""
    y = pd.DataFrame(np.asarray(layer_targets, float), columns=list(TARGETS), index=feats.index)
    y["config_id"], y["unit_index"] = feats["config_id"].to_numpy(), per_layer["unit_index"].to_numpy(float)
    sums = y.groupby(["config_id", "unit_index"], sort=False)[list(TARGETS)].sum(min_count=1)
    k = _kernel_features(per_layer, feats)
    m = sums.reindex(pd.MultiIndex.from_arrays([k["config_id"], k["unit_index"]])).to_numpy()
    k["measured_energy_j"], k["measured_latency_s"] = m[:, 0], m[:, 1]
    ok = np.isfinite(m).all(axis=1) & (m > 0).all(axis=1) & (k["base_energy_j"] > 0) & (k["base_latency_s"] > 0)
    k = k[ok].copy()
    total = k.groupby("config_id")["measured_energy_j"].transform("sum")
    k["weight"] = k["measured_energy_j"] / total
    return k


@dataclass
class KernelMap:
    """log(target cost / base prediction) of a kernel, per target (energy, latency)."""

    method: str  # ridge | trees
    kinds: list[str] = field(default_factory=list)
    models: list = field(default_factory=list)  # per target
    bounds: list = field(default_factory=list)  # per target: (lo, hi) of the fitted log-ratios

    def _x(self, k: pd.DataFrame) -> np.ndarray:
        num = k[_NUMERIC].to_numpy(float)
        onehot = np.column_stack([(k["kind"].to_numpy() == kind).astype(float) for kind in self.kinds]) \
            if self.kinds else np.zeros((len(k), 0))
        if self.method == "trees":
            code = np.full(len(k), -1.0)
            for i, kind in enumerate(self.kinds):
                code[k["kind"].to_numpy() == kind] = i
            return np.column_stack([code, num])
        # Per kind: an offset and a slope in size and intensity; shared slopes for the rest.
        size, inten = num[:, [0]], num[:, [1]]
        return np.column_stack([num, onehot, onehot * size, onehot * inten])

    def fit(self, k: pd.DataFrame) -> "KernelMap":
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.kinds = sorted(set(k["kind"]))
        x = self._x(k)
        w = k["weight"].to_numpy(float)
        w = w / w.mean()
        self.models, self.bounds = [], []
        for t in TARGETS:
            r = np.log(k[f"measured_{t}"].to_numpy(float) / k[f"base_{t}"].to_numpy(float))
            if self.method == "ridge":
                reg = make_pipeline(StandardScaler(), Ridge(alpha=_RIDGE_ALPHA))
                reg.fit(x, r, ridge__sample_weight=w)
            else:
                reg = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.05, max_leaf_nodes=15,
                                                    min_samples_leaf=20, l2_regularization=1.0,
                                                    categorical_features=[0], random_state=0)
                reg.fit(x, r, sample_weight=w)
            self.models.append(reg)
            self.bounds.append((float(np.quantile(r, 0.01)), float(np.quantile(r, 0.99))))
        return self

    def factors(self, k: pd.DataFrame) -> np.ndarray:
        """(n, 2) multiplicative factors for kernels described like `measured_kernels` rows."""
        if not len(k):
            return np.ones((0, 2))
        x = self._x(k)
        return np.column_stack([np.exp(np.clip(m.predict(x), *b)) for m, b in zip(self.models, self.bounds)])


@dataclass
class Transfer:
    """What maps a base predictor's costs to one target device."""

    method: str  # speed | ridge | trees
    whole_ratio: list[float]  # per target: median measured / predicted whole-model cost on the bring-up
    kernel_map: KernelMap | None = None
    cv: dict = field(default_factory=dict)  # method -> held-out whole-model RMSPE (energy) on the bring-up
    fallback: bool = False  # the kernel map could not beat the speed ratio on held-out architectures

    def scale_layers(self, per_layer: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
        """The base's per-layer output, each kernel rescaled to the target."""
        out = per_layer.copy()
        if self.kernel_map is None:
            return out
        k = _kernel_features(per_layer, feats)
        f = self.kernel_map.factors(k)
        for i, t in enumerate(TARGETS):
            out.loc[k.index, t] = out.loc[k.index, t].to_numpy(float) * f[:, i]
        return out

    def scale_models(self, totals: pd.DataFrame) -> pd.DataFrame:
        """A base's `predict_models` output (on rescaled layers) times the whole-model ratio."""
        out = totals.copy()
        re, rt = self.whole_ratio
        out["energy_j"] *= re
        out["latency_s"] *= rt
        for col in ("energy_lo_j", "energy_hi_j"):
            out[col] *= re
        out["correction_energy_j"] = out["energy_j"] - out["layer_sum_energy_j"]
        out["correction_latency_s"] = out["latency_s"] - out["layer_sum_latency_s"]
        return out


@dataclass
class TransferredPredictor:
    """A base layer-wise predictor and its transfer to one device: the same interface as
    `LayerwisePredictor` (`predict_layers`, `predict_models`, `predict_whole`, `metadata`), so the
    pyfunc, the cache and `nnenergy predict` serve it unchanged."""

    base: object
    transfer: Transfer
    metadata: dict = field(default_factory=dict)

    def predict_layers(self, feats: pd.DataFrame) -> pd.DataFrame:
        return self.transfer.scale_layers(self.base.predict_layers(feats), feats)

    def predict_models(self, per_layer: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
        # The base's own interval is replaced by the transfer's (metadata), same arithmetic.
        base_meta, self.base.metadata = self.base.metadata, self.metadata
        try:
            totals = self.base.predict_models(per_layer, feats)
        finally:
            self.base.metadata = base_meta
        return self.transfer.scale_models(totals)

    def predict_whole(self, feats: pd.DataFrame) -> pd.DataFrame:
        return self.predict_models(self.predict_layers(feats), feats)


def _rmspe(y, p) -> float:
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(np.sqrt(np.mean(((y - p) / y) ** 2)) * 100)


def _fit_one(method: str, base, kernels: pd.DataFrame, feats: pd.DataFrame, models: pd.DataFrame,
             per_layer: pd.DataFrame) -> Transfer:
    """A transfer of `method` fitted on these kernels and whole models (same configurations)."""
    kmap = None if method == "speed" else KernelMap(method).fit(kernels)
    t = Transfer(method, [1.0, 1.0], kmap)
    scaled = t.scale_layers(per_layer, feats)
    totals = base.predict_models(scaled, feats).set_index("config_id")
    m = models.set_index("config_id").loc[totals.index]
    t.whole_ratio = [float(np.median(m[c] / totals[c])) for c in TARGETS]
    return t


def _predict_totals(t: Transfer, base, per_layer, feats) -> pd.DataFrame:
    return t.scale_models(base.predict_models(t.scale_layers(per_layer, feats), feats))


def fit_transfer(base, feats: pd.DataFrame, layer_targets: np.ndarray, models: pd.DataFrame,
                 methods: tuple[str, ...] = METHODS, n_folds: int = 5, seed: int = 0,
                 group_col: str = "architecture") -> tuple[Transfer, pd.DataFrame]:
    """Fit every candidate with grouped K-fold over the bring-up architectures, keep the one with
    the lowest held-out whole-model energy RMSPE (never a kernel map that does not beat the speed
    ratio), refit it on everything. Returns the transfer and the held-out predictions of the chosen
    method (what its interval is made of)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise TransferError(f"unknown transfer method(s) {unknown}; known: {list(METHODS)}")
    models = models[models["config_id"].isin(set(feats["config_id"]))]
    if not len(models):
        raise TransferError("no measured whole model in the bring-up data")
    per_layer = base.predict_layers(feats)
    kernels = measured_kernels(per_layer, feats, layer_targets)
    groups = models.set_index("config_id")[group_col]
    names = np.array(sorted(groups.unique()))
    usable = [m for m in methods if m == "speed" or len(kernels) >= _MIN_KERNEL_ROWS]
    if len(names) < 2:
        usable = ["speed"]
    cv_pred: dict[str, list[pd.DataFrame]] = {m: [] for m in usable}
    if len(names) >= 2:
        rng = np.random.default_rng(seed)
        parts = np.array_split(names[rng.permutation(len(names))], min(n_folds, len(names)))
        cid_group = feats["config_id"].map(groups).to_numpy()
        k_group = kernels["config_id"].map(groups).to_numpy()
        for part in parts:
            test = np.isin(cid_group, part)
            train_k = kernels[~np.isin(k_group, part)]
            train_models = models[~models[group_col].isin(part)]
            for m in usable:
                if m != "speed" and len(train_k) < _MIN_KERNEL_ROWS:
                    continue
                t = _fit_one(m, base, train_k, feats[~test], train_models, per_layer[~test])
                cv_pred[m].append(_predict_totals(t, base, per_layer[test], feats[test]))
    scores = {}
    for m, parts in cv_pred.items():
        if parts:
            p = pd.concat(parts, ignore_index=True)
            meas = models.set_index("config_id").loc[p["config_id"], "energy_j"].to_numpy()
            scores[m] = _rmspe(meas, p["energy_j"])
    best = min(scores, key=scores.get) if scores else "speed"
    fallback = best == "speed" and len(usable) > 1
    final = _fit_one(best, base, kernels, feats, models, per_layer)
    final.cv, final.fallback = scores, fallback
    heldout = pd.concat(cv_pred[best], ignore_index=True) if cv_pred.get(best) else pd.DataFrame()
    if len(heldout):
        heldout["measured_energy_j"] = models.set_index("config_id").loc[heldout["config_id"], "energy_j"].to_numpy()
    return final, heldout


def transferred(base, transfer: Transfer, metadata: dict) -> TransferredPredictor:
    """The deployable predictor: the base, the transfer, the base's metadata updated with
    `metadata` (which names the target, and carries the interval made of the transfer's held-out
    bring-up errors: `evaluate.levels.interval_from(heldout)`)."""
    return TransferredPredictor(base, transfer, {**getattr(base, "metadata", {}), **metadata})
