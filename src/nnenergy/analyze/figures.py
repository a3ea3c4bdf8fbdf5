"""Each function takes the dataset and returns (figure, metrics): the `analyze` entry point logs
both to MLflow, and the notebooks call the same functions."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from nnenergy.evaluate import metrics as mx  # noqa: E402
from nnenergy.evaluate.splits import grouped_folds  # noqa: E402
from nnenergy.features.layer_features import kind_of  # noqa: E402


def energy_distribution(models: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(np.log10(models["energy_j"]), bins=30)
    ax.set(xlabel="log10 whole-model energy per pass (J)", ylabel="configurations", title="Whole-model energies")
    fig.tight_layout()
    return fig, {"energy_min_j": models["energy_j"].min(), "energy_max_j": models["energy_j"].max(),
                 "energy_median_j": models["energy_j"].median()}


def layer_type_counts(layers: pd.DataFrame):
    counts = layers["layer_type"].value_counts()
    fig, ax = plt.subplots(figsize=(6, max(3, 0.25 * len(counts))))
    ax.barh(counts.index[::-1], counts.values[::-1])
    ax.set(xscale="log", xlabel="layer rows", title="Layer types in the dataset")
    fig.tight_layout()
    return fig, {"layer_types": len(counts)}


def energy_by_kind(layers: pd.DataFrame, column: str = "iso_energy_j"):
    kinds = layers["layer_type"].map(kind_of)
    top = kinds.value_counts().index[:10]
    data = [np.log10(layers.loc[(kinds == k) & (layers[column] > 0), column]) for k in top]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot(data, tick_labels=list(top))
    ax.set(ylabel=f"log10 {column}", title="Energy per pass by layer kind")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig, {}


def _corr(x, y) -> dict:
    lx, ly = np.log(x), np.log(y)
    return {"pearson_log": float(stats.pearsonr(lx, ly)[0]), "pearson": float(stats.pearsonr(x, y)[0]),
            "spearman": float(stats.spearmanr(x, y)[0])}


def flops_vs_energy(models: pd.DataFrame, title: str = "FLOPs vs energy, whole models"):
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for b, g in models.groupby("batch_size"):
        ax.scatter(g["flops"], g["energy_j"], s=12, label=f"batch {b}")
    c = _corr(models["flops"], models["energy_j"])
    ax.set(xscale="log", yscale="log", xlabel="analytic FLOPs per pass", ylabel="energy per pass (J)",
           title=f"{title}\nPearson(log) {c['pearson_log']:.2f}, Spearman {c['spearman']:.2f}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, c


def flops_only_heldout_rmspe(models: pd.DataFrame, n_folds: int = 5) -> float:
    """RMSPE of the best FLOPs-only fit (log E ~ log FLOPs + log batch) on held-out families."""
    y_true, y_pred = [], []
    for train, test in grouped_folds(models, n_folds):
        tr, te = models[models["family"].isin(train)], models[models["family"].isin(test)]
        x = lambda d: np.column_stack([np.ones(len(d)), np.log(d["flops"]), np.log(d["batch_size"])])  # noqa: E731
        coef, *_ = np.linalg.lstsq(x(tr), np.log(tr["energy_j"]), rcond=None)
        y_true += list(te["energy_j"])
        y_pred += list(np.exp(x(te) @ coef))
    return mx.rmspe(y_true, y_pred)


def additivity(models: pd.DataFrame):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    a = models["additivity"].dropna()
    axes[0].hist(a, bins=30)
    axes[0].axvline(1, color="k", lw=1)
    axes[0].set(xlabel="whole ÷ Σ isolated layers", ylabel="configurations", title="Additivity factor")
    axes[1].scatter(models["flops"], models["additivity"], s=10)
    axes[1].set(xscale="log", xlabel="FLOPs per pass", ylabel="additivity", title="vs model complexity")
    axes[2].scatter(models["n_layers"], models["additivity"], s=10)
    axes[2].set(xlabel="layers", ylabel="additivity", title="vs layer count")
    fig.tight_layout()
    out = {"additivity_min": a.min(), "additivity_median": a.median(), "additivity_max": a.max(),
           "additivity_spearman_flops": float(stats.spearmanr(models["flops"], models["additivity"],
                                                              nan_policy="omit")[0]),
           "additivity_spearman_layers": float(stats.spearmanr(models["n_layers"], models["additivity"],
                                                               nan_policy="omit")[0])}
    if "wall_over_op_time" in models:
        out["wall_over_op_time_median"] = models["wall_over_op_time"].median()
    return fig, out


def noise_vs_window(models: pd.DataFrame, layers: pd.DataFrame):
    """Spread of repeated windows against window length (whole models and isolated layers)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    wm = models["latency_s"] * models["passes"] / models["windows"]
    ax.scatter(wm, models["spread"] * 100, s=10, label="whole models")
    sig = layers.drop_duplicates("signature")
    sig = sig[sig["iso_windows"].fillna(0) > 0]
    wl = sig["iso_latency_s"] * sig["iso_passes"] / sig["iso_windows"]
    ax.scatter(wl, sig["iso_spread"] * 100, s=3, alpha=0.3, label="isolated layers")
    ax.set(xscale="log", yscale="log", xlabel="window length (s)", ylabel="spread of windows (%)",
           title="Measurement noise vs window length")
    ax.legend()
    fig.tight_layout()
    return fig, {"noise_floor_whole_rmspe": mx.window_noise_rmspe(models["window_energies_j"].map(json.loads)),
                 "noise_floor_layer_rmspe": mx.window_noise_rmspe(sig["iso_window_energies_j"].map(json.loads))}
