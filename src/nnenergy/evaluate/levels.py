"""Honest evaluation on three levels, for every predictor (layer-wise or model-wise):

1. `family`: grouped K-fold over the real architecture families (keras.applications, or every
   non-generated architecture when there are none); each fold trains on everything but the
   held-out families *and their generated variants*, and is scored on the held-out real models.
2. `external`: published architectures absent from training (a separate dataset), predicted by
   the final model; never used for training, tuning or model selection. `external_hub` (the keras-hub
   backbones and recurrent text models of the profile's `external_hub` dataset) is a second level-2 set,
   scored the same way and reported on its own, so `external`'s figures keep their meaning.
3. `generated`: generated architectures held out by generator seed (K folds over them).

Every level is also scored on its transformer and its recurrent configurations alone, where it has any
(`features.workload`): `<level>_transformer_whole_energy_rmspe`, `<level>_recurrent_...`.

The final predictor trains on all rows of the dataset. Its interval comes from the level-1
held-out errors only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from nnenergy.dataset import Dataset
from nnenergy.evaluate import metrics
from nnenergy.evaluate.splits import grouped_folds
from nnenergy.features.cache import features_of
from nnenergy.features.layer_features import layer_features
from nnenergy.features.units import per_unit
from nnenergy.features.workload import OTHER, RECURRENT, TRANSFORMER, workload_of
from nnenergy.schema import EXTERNAL_HUB, INTERVAL_KEY, SOURCES, TARGETS

LEVELS = ("family", "external", "generated")  # the headline levels (level 2: `external`)
# the second level-2 set is reported beside `external`, never in its figures
REPORTED_LEVELS = ("family", "external", EXTERNAL_HUB, "generated")
_MEASURED_COLS = ("architecture", "family", "source", "batch_size", "input_size", "flops", "n_layers")


@dataclass
class Evaluation:
    """What evaluating one predictor on one target source produced."""

    target_source: str  # where the targets come from: incontext | isolated | modelwise
    predictions: dict[str, pd.DataFrame]  # level -> per configuration: measured, predicted, fold
    layers: pd.DataFrame  # level-1 held-out per-layer predictions (layer-wise only; else empty)
    predictor: object  # trained on every row of the dataset
    metrics: dict = field(default_factory=dict)
    train_seconds: float = 0.0


def real_mask(models: pd.DataFrame) -> np.ndarray:
    """Configurations of real architectures: keras.applications when present, else all but generated."""
    src = models["source"].astype(str)
    apps = (src == "keras.applications").to_numpy()
    return apps if apps.any() else ~src.isin(["generated", "variant", "kernel"]).to_numpy()


def generated_folds(models: pd.DataFrame, n_folds: int, seed: int) -> list[set[str]]:
    """Held-out architecture names per fold, over generated architectures (grouped by seed)."""
    names = np.array(sorted(models.loc[models["source"] == "generated", "architecture"].unique()))
    if len(names) < 2:
        return []
    rng = np.random.default_rng(seed)
    names = names[rng.permutation(len(names))]
    return [set(part) for part in np.array_split(names, min(n_folds, len(names)))]


def _targets(data: Dataset, target_source: str) -> np.ndarray:
    cols = SOURCES.get(target_source)
    if cols is None:  # model-wise predictors learn whole-model targets only
        return np.full((len(data.layers), 2), np.nan)
    return data.layers[list(cols)].to_numpy(dtype=float)


def _with_measured(whole: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    measured = models.set_index("config_id").loc[whole["config_id"]]
    for col in _MEASURED_COLS:
        if col in measured:
            whole[col] = measured[col].to_numpy()
    for t in TARGETS:
        whole[f"measured_{t}"] = measured[t].to_numpy()
    return whole


def interval_from(heldout: pd.DataFrame, coverage: float = 0.9) -> tuple[float, float]:
    """A split-conformal interval in log space: +-q, q the finite-sample `coverage` quantile of
    |log(measured / predicted)| over held-out predictions.

    Symmetric on purpose: level 1 holds out 14 families, so the *sign* of its errors says which
    families happened to be hard (VGG, ConvNeXt under-predicted), not how an unseen model will miss;
    the size of the errors is what transfers."""
    log_ratio = np.log(heldout["measured_energy_j"] / heldout["energy_j"]).to_numpy()
    r = np.abs(log_ratio[np.isfinite(log_ratio)])
    if not len(r):
        return (np.nan, np.nan)  # nothing held out: no interval (energy_interval gives NaN bounds)
    level = min(1.0, np.ceil((len(r) + 1) * coverage) / len(r))
    q = float(np.quantile(r, level, method="higher"))
    return (-q, q)


def evaluate(make: Callable[[], object], data: Dataset, target_source: str, opts: dict,
             external: Dataset | None = None, extra: Dataset | None = None,
             external_hub: Dataset | None = None, loops: Dataset | None = None) -> Evaluation:
    """Evaluate `make()` predictors on the three levels, then train the final one on everything.
    `extra` (the kernel sweep) joins the training rows of every fold and is never held out or scored;
    `external_hub`, like `external`, is only predicted by the final one (level `external_hub`); `loops` (the
    sequence kernels) fits every fold's loop term (`learn.loops`, layer-wise predictors), never scored."""
    t0 = time.perf_counter()
    feats = features_of(data)
    y = _targets(data, target_source)
    cid = data.layers["config_id"]
    models = data.models
    layer_meta = data.layers[["family", "batch_size", "input_size"]]
    if extra is not None and len(extra.models):
        feats = pd.concat([feats, features_of(extra)], ignore_index=True)
        y = np.vstack([y, _targets(extra, target_source)])
        cid = pd.concat([cid, extra.layers["config_id"]], ignore_index=True)
        models = pd.concat([models, extra.models], ignore_index=True)
        layer_meta = pd.concat([layer_meta, extra.layers[list(layer_meta.columns)]], ignore_index=True)

    def rows_of(ids: set) -> np.ndarray:
        return cid.isin(ids).to_numpy()  # hashed: np.isin on 300k strings took ~80 s per job

    loop_kw = {"loops": (features_of(loops), loops.models)} if loops is not None and len(loops.models) else {}

    def fit(train_ids: set):
        keep = rows_of(train_ids)
        return make().fit(feats[keep], y[keep], models[models["config_id"].isin(train_ids)], **loop_kw)

    def predict(pred, test_ids: set, fold: int):
        keep = rows_of(test_ids)
        whole = _with_measured(pred.predict_whole(feats[keep]), models)
        whole["fold"] = fold
        return whole, keep

    all_ids = set(models["config_id"])
    real = models[real_mask(models)]
    out: dict[str, list[pd.DataFrame]] = {lvl: [] for lvl in REPORTED_LEVELS}
    layer_rows = []
    # Level 1: held-out real families; their variants (same family tag) leave training too.
    for k, (_, test_fam) in enumerate(grouped_folds(real, opts["n_folds"], opts["seed"])):
        train_ids = set(models.loc[~models["family"].isin(test_fam), "config_id"])
        test_ids = set(real.loc[real["family"].isin(test_fam), "config_id"])
        pred = fit(train_ids)
        whole, keep = predict(pred, test_ids, k)
        out["family"].append(whole)
        if hasattr(pred, "predict_layers") and target_source in SOURCES:
            per_layer = pred.predict_layers(feats[keep])
            for t in TARGETS:
                per_layer[f"measured_{t}"] = y[keep][:, TARGETS.index(t)]
            for col in ("family", "batch_size", "input_size"):
                per_layer[col] = layer_meta[col].to_numpy()[keep]
            per_layer = per_unit(per_layer, [f"measured_{t}" for t in TARGETS])  # scored per kernel
            layer_rows.append(per_layer.assign(fold=k))
    # The interval every predictor below states: level-1 held-out errors only.
    family = pd.concat(out["family"], ignore_index=True) if out["family"] else pd.DataFrame()
    interval = interval_from(family) if len(family) else None
    # Level 3: generated architectures held out by seed.
    for k, names in enumerate(generated_folds(models, opts.get("generated_folds", 3), opts["seed"])):
        test_ids = set(models.loc[models["architecture"].isin(names), "config_id"])
        pred = fit(all_ids - test_ids)
        if interval is not None:
            pred.metadata[INTERVAL_KEY] = interval
        out["generated"].append(predict(pred, test_ids, k)[0])
    # The final predictor: every row.
    final = fit(all_ids)
    if interval is not None:
        final.metadata[INTERVAL_KEY] = interval
    # Level 2: the external sets, which nothing above has seen.
    for lvl, ext in (("external", external), (EXTERNAL_HUB, external_hub)):
        out[lvl] += _external(final, ext)
    work = workload_of(pd.concat([t.layers for t in (data, external, external_hub) if t is not None],
                                 ignore_index=True))
    predictions = {lvl: pd.concat(v, ignore_index=True).assign(workload=lambda d: d["config_id"].map(work)
                                                               .fillna(OTHER))
                   for lvl, v in out.items() if v}
    layers = pd.concat(layer_rows, ignore_index=True) if layer_rows else pd.DataFrame()
    m = _scores(predictions, layers, family)
    m["train_seconds"] = time.perf_counter() - t0
    return Evaluation(target_source, predictions, layers, final, m, m["train_seconds"])


def _external(final, ext: Dataset | None) -> list[pd.DataFrame]:
    """The final predictor's whole-model predictions of a level-2 set (none when there is no set)."""
    if ext is None or not len(ext.models):
        return []
    whole = _with_measured(final.predict_whole(layer_features(ext.layers)), ext.models)
    return [whole.assign(fold=-1)]


def _scores(predictions: dict[str, pd.DataFrame], layers: pd.DataFrame, family: pd.DataFrame) -> dict:
    """The metrics of every level's whole-model predictions and of the level-1 held-out layers."""
    m = {}
    for lvl, whole in predictions.items():
        m |= metrics.summary(whole["measured_energy_j"], whole["energy_j"], f"{lvl}_whole_energy_")
        for sub in (TRANSFORMER, RECURRENT):  # the level's transformer / recurrent configurations alone
            part = whole[whole["workload"] == sub]
            if len(part):
                m |= metrics.summary(part["measured_energy_j"], part["energy_j"], f"{lvl}_{sub}_whole_energy_")
        m[f"{lvl}_whole_latency_rmspe"] = metrics.rmspe(whole["measured_latency_s"], whole["latency_s"])
        if "energy_hi_j" in whole and whole["energy_hi_j"].notna().any():  # levels 2 and 3 (level 1 made it)
            inside = ((whole["energy_lo_j"] <= whole["measured_energy_j"])
                      & (whole["measured_energy_j"] <= whole["energy_hi_j"]))
            m[f"{lvl}_interval_coverage"] = float(inside.mean() * 100)
            m[f"{lvl}_interval_median_width"] = float((whole["energy_hi_j"] / whole["energy_lo_j"]).median())
        if "out_of_range_share" in whole:
            m[f"{lvl}_out_of_range_configs"] = float((whole["out_of_range_share"] > 0).mean() * 100)
    if len(layers):
        for kind, g in layers.groupby("kind"):
            m |= metrics.summary(g["measured_energy_j"], g["energy_j"], f"family_layer_{kind}_energy_")
        m["unknown_layer_share"] = float((~layers["known"]).mean() * 100)
        if "layer_sum_energy_j" in family:
            m |= metrics.summary(family["measured_energy_j"], family["layer_sum_energy_j"],
                                 "family_whole_uncorrected_energy_")
    return m
