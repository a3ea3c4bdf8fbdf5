"""Grouped cross-validation over architecture families and the fixed registry split."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnenergy.dataset import Dataset
from nnenergy.evaluate import metrics
from nnenergy.evaluate.splits import fixed_split, grouped_folds
from nnenergy.features.layer_features import layer_features
from nnenergy.learn.layerwise import SOURCES, TARGETS, LayerwisePredictor


@dataclass
class SourceResult:
    """Everything one target source (isolated or in-context) produced."""

    source: str
    cv_models: pd.DataFrame  # per configuration: measured and held-out predictions, fold
    cv_layers: pd.DataFrame  # per layer row: target and held-out prediction
    fixed_models: pd.DataFrame
    fixed_layers: pd.DataFrame
    fixed_predictor: LayerwisePredictor
    metrics: dict
    train_seconds: float


def _fit_predict(make, data: Dataset, feats, y, train_fam: set, test_fam: set, source, opts, metadata=None):
    fam = data.layers["family"].to_numpy()
    tr, te = np.isin(fam, list(train_fam)), np.isin(fam, list(test_fam))
    train_models = data.models[data.models["family"].isin(train_fam)]
    pred = LayerwisePredictor(make, source=source, min_rows_per_kind=opts["min_rows_per_kind"], correction=opts["correction"])
    pred.fit(feats[tr], y[tr], train_models)
    pred.metadata.update(metadata or {})
    per_layer = pred.predict_layers(feats[te])
    whole = pred.predict_models(per_layer, feats[te])
    measured = data.models.set_index("config_id").loc[whole["config_id"]]
    for col in ("architecture", "family", "batch_size", "input_size", "flops", "n_layers"):
        whole[col] = measured[col].to_numpy()
    for t in TARGETS:
        whole[f"measured_{t}"] = measured[t].to_numpy()
        per_layer[f"measured_{t}"] = y[te][:, TARGETS.index(t)]
    per_layer["family"] = fam[te]
    per_layer["batch_size"] = data.layers["batch_size"].to_numpy()[te]
    per_layer["input_size"] = data.layers["input_size"].to_numpy()[te]
    return pred, per_layer, whole


def evaluate_source(make, data: Dataset, source: str, opts: dict) -> SourceResult:
    feats = layer_features(data.layers)
    y = data.layers[list(SOURCES[source])].to_numpy(dtype=float)
    t0 = time.perf_counter()
    cv_models, cv_layers = [], []
    for k, (train_fam, test_fam) in enumerate(grouped_folds(data.models, opts["n_folds"], opts["seed"])):
        _, per_layer, whole = _fit_predict(make, data, feats, y, train_fam, test_fam, source, opts)
        whole["fold"], per_layer["fold"] = k, k
        cv_models.append(whole)
        cv_layers.append(per_layer)
    cv_models, cv_layers = pd.concat(cv_models, ignore_index=True), pd.concat(cv_layers, ignore_index=True)
    # A 90% interval from held-out (cross-validated) errors, never from training residuals.
    log_ratio = np.log(cv_models["measured_energy_j"] / cv_models["energy_j"])
    interval = {"energy_log_ratio_interval": tuple(np.quantile(log_ratio, [0.05, 0.95]).tolist())}
    train_fam, test_fam = fixed_split(data.models, opts["test_families"])
    pred, fixed_layers, fixed_models = _fit_predict(make, data, feats, y, train_fam, test_fam, source, opts, interval)
    seconds = time.perf_counter() - t0
    m = {}
    for t in TARGETS:
        m |= metrics.summary(cv_models[f"measured_{t}"], cv_models[t], f"cv_whole_{t}_")
        m |= metrics.summary(fixed_models[f"measured_{t}"], fixed_models[t], f"fixed_whole_{t}_")
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
    measured = data.models.set_index("config_id")

    def fit_predict(train_fam, test_fam):
        pred = make().fit(feats[np.isin(fam, list(train_fam))], data.models[data.models["family"].isin(train_fam)])
        out = pred.predict(feats[np.isin(fam, list(test_fam))])
        m = measured.loc[out["config_id"]]
        for col in ("architecture", "family", "batch_size", "input_size", "flops", "n_layers"):
            out[col] = m[col].to_numpy()
        for t in TARGETS:
            out[f"measured_{t}"] = m[t].to_numpy()
        return pred, out

    t0 = time.perf_counter()
    cv = []
    for k, (train_fam, test_fam) in enumerate(grouped_folds(data.models, opts["n_folds"], opts["seed"])):
        _, out = fit_predict(train_fam, test_fam)
        out["fold"] = k
        cv.append(out)
    cv_models = pd.concat(cv, ignore_index=True)
    pred, fixed_models = fit_predict(*fixed_split(data.models, opts["test_families"]))
    seconds = time.perf_counter() - t0
    log_ratio = np.log(cv_models["measured_energy_j"] / cv_models["energy_j"])
    pred.metadata["energy_log_ratio_interval"] = tuple(np.quantile(log_ratio, [0.05, 0.95]).tolist())
    m = {}
    for t in TARGETS:
        m |= metrics.summary(cv_models[f"measured_{t}"], cv_models[t], f"cv_whole_{t}_")
        m |= metrics.summary(fixed_models[f"measured_{t}"], fixed_models[t], f"fixed_whole_{t}_")
    m["train_seconds"] = seconds
    empty = pd.DataFrame()
    return SourceResult("modelwise", cv_models, empty, fixed_models, empty, pred, m, seconds)
