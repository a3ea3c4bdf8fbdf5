"""Grouped cross-validation over architecture families and the fixed registry split."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from nnenergy.dataset import Dataset
from nnenergy.evaluate import metrics
from nnenergy.evaluate.splits import fixed_split, grouped_folds
from nnenergy.features.layer_features import layer_features
from nnenergy.learn.layerwise import INTERVAL_KEY, SOURCES, TARGETS, LayerwisePredictor

_MEASURED_COLS = ("architecture", "family", "batch_size", "input_size", "flops", "n_layers")


@dataclass
class SourceResult:
    """Everything one target source (isolated, in-context or model-wise) produced."""

    source: str
    cv_models: pd.DataFrame  # per configuration: measured and held-out predictions, fold
    cv_layers: pd.DataFrame  # per layer row: target and held-out prediction (layer-wise only)
    fixed_models: pd.DataFrame
    fixed_layers: pd.DataFrame
    fixed_predictor: object
    metrics: dict
    train_seconds: float


def _with_measured(whole: pd.DataFrame, data: Dataset) -> pd.DataFrame:
    measured = data.models.set_index("config_id").loc[whole["config_id"]]
    for col in _MEASURED_COLS:
        whole[col] = measured[col].to_numpy()
    for t in TARGETS:
        whole[f"measured_{t}"] = measured[t].to_numpy()
    return whole


def _interval(whole: pd.DataFrame) -> tuple[float, float]:
    """5%–95% quantiles of log(measured / predicted) over held-out predictions."""
    log_ratio = np.log(whole["measured_energy_j"] / whole["energy_j"])
    return tuple(np.quantile(log_ratio, [0.05, 0.95]).tolist())


def _cross_validate(run: Callable, models: pd.DataFrame, n_folds: int, seed: int) -> tuple[pd.DataFrame, list]:
    """Held-out whole-model predictions, each family predicted by a model that never saw it;
    also every fold's full `run` output."""
    wholes, outputs = [], []
    for k, (train_fam, test_fam) in enumerate(grouped_folds(models, n_folds, seed)):
        out = run(train_fam, test_fam)
        out[1]["fold"] = k
        wholes.append(out[1])
        outputs.append(out)
    return pd.concat(wholes, ignore_index=True), outputs


def _evaluate(run: Callable, data: Dataset, opts: dict) -> tuple[pd.DataFrame, list, tuple, dict]:
    """CV over all families (the reported figures), then the registry's fixed-split model.

    The registered model's interval comes from an inner grouped CV over the fixed split's
    *training* families only, so nothing about its test families reaches it.
    """
    cv_models, cv_outputs = _cross_validate(run, data.models, opts["n_folds"], opts["seed"])
    train_fam, test_fam = fixed_split(data.models, opts["test_families"])
    metadata = {}
    if opts.get("interval", True):  # only the model that gets registered needs one
        inner, _ = _cross_validate(run, data.models[data.models["family"].isin(train_fam)],
                                   max(2, opts["n_folds"] - 2), opts["seed"])
        metadata[INTERVAL_KEY] = _interval(inner)
    fixed = run(train_fam, test_fam, metadata)
    fixed_models = fixed[1]
    m = {}
    for t in TARGETS:
        m |= metrics.summary(cv_models[f"measured_{t}"], cv_models[t], f"cv_whole_{t}_")
        m |= metrics.summary(fixed_models[f"measured_{t}"], fixed_models[t], f"fixed_whole_{t}_")
    return cv_models, cv_outputs, fixed, m


def evaluate_source(make, data: Dataset, source: str, opts: dict) -> SourceResult:
    """Layer-wise regressors trained on one per-layer target source, summed per model."""
    feats = layer_features(data.layers)
    y = data.layers[list(SOURCES[source])].to_numpy(dtype=float)
    fam = data.layers["family"].to_numpy()

    def run(train_fam, test_fam, metadata=None):
        tr, te = np.isin(fam, list(train_fam)), np.isin(fam, list(test_fam))
        pred = LayerwisePredictor(make, source=source, min_rows_per_kind=opts["min_rows_per_kind"],
                                  correction=opts["correction"])
        pred.fit(feats[tr], y[tr], data.models[data.models["family"].isin(train_fam)])
        pred.metadata.update(metadata or {})
        per_layer = pred.predict_layers(feats[te])
        whole = _with_measured(pred.predict_models(per_layer, feats[te]), data)
        for t in TARGETS:
            per_layer[f"measured_{t}"] = y[te][:, TARGETS.index(t)]
        for col in ("family", "batch_size", "input_size"):
            per_layer[col] = data.layers[col].to_numpy()[te]
        return pred, whole, per_layer

    t0 = time.perf_counter()
    cv_models, cv_outputs, (pred, fixed_models, fixed_layers), m = _evaluate(run, data, opts)
    seconds = time.perf_counter() - t0
    cv_layers = pd.concat([out[2].assign(fold=k) for k, out in enumerate(cv_outputs)], ignore_index=True)
    for t in TARGETS:
        m |= metrics.summary(cv_models[f"measured_{t}"], cv_models[f"layer_sum_{t}"], f"cv_whole_uncorrected_{t}_")
    for kind, g in cv_layers.groupby("kind"):
        m |= metrics.summary(g["measured_energy_j"], g["energy_j"], f"cv_layer_{kind}_energy_j_")
    m["unknown_layer_share"] = float((~cv_layers["known"]).mean() * 100)
    m["train_seconds"] = seconds
    return SourceResult(source, cv_models, cv_layers, fixed_models, fixed_layers, pred, m, seconds)


def evaluate_modelwise(make, data: Dataset, opts: dict) -> SourceResult:
    """The same folds, fixed split and metrics for predictors that see whole architectures."""
    feats = layer_features(data.layers)
    fam = data.layers["family"].to_numpy()

    def run(train_fam, test_fam, metadata=None):
        pred = make().fit(feats[np.isin(fam, list(train_fam))], data.models[data.models["family"].isin(train_fam)])
        pred.metadata.update(metadata or {})
        return pred, _with_measured(pred.predict(feats[np.isin(fam, list(test_fam))]), data)

    t0 = time.perf_counter()
    cv_models, _, (pred, fixed_models), m = _evaluate(run, data, opts)
    seconds = time.perf_counter() - t0
    m["train_seconds"] = seconds
    empty = pd.DataFrame()
    return SourceResult("modelwise", cv_models, empty, fixed_models, empty, pred, m, seconds)
