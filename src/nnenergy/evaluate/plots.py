"""Figures logged with every training run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def predicted_vs_measured(whole: pd.DataFrame, title: str):
    """Whole models, held-out predictions against measurements, log axes, ±10% band."""
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for i, (fam, g) in enumerate(whole.groupby("family")):
        ax.scatter(g["measured_energy_j"], g["energy_j"], s=18, label=fam, marker="osD^v"[i // 10 % 5])
    vals = np.concatenate([whole["measured_energy_j"], whole["energy_j"]])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lo, hi = vals.min() * 0.8, vals.max() * 1.25
    xs = np.geomspace(lo, hi, 50)
    ax.plot(xs, xs, "k-", lw=1)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.2, label="±10%")
    ax.set(xscale="log", yscale="log", xlabel="measured energy per pass (J)", ylabel="predicted energy per pass (J)",
           title=title)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def per_layer_family(layers: pd.DataFrame, family: str, title: str, max_panels: int = 4):
    """Per-layer predicted vs measured energy for a few configurations of one (held-out) family."""
    g = layers[layers["family"] == family]
    if g.empty:
        return None
    ids = sorted(g["config_id"].unique(), key=lambda c: (g.loc[g["config_id"] == c, "batch_size"].iloc[0], c))
    ids = ids[:: max(1, len(ids) // max_panels)][:max_panels]
    fig, axes = plt.subplots(1, len(ids), figsize=(4 * len(ids), 3), squeeze=False)
    for ax, cid in zip(axes[0], ids):
        c = g[g["config_id"] == cid]
        ax.plot(c["layer_index"], c["measured_energy_j"] * 1e3, "-", lw=1, label="measured")
        ax.plot(c["layer_index"], c["energy_j"] * 1e3, "--", lw=1, label="predicted")
        arch, size, batch = cid.rsplit("|", 2)
        ax.set_title(f"{arch} {size}px b{batch}", fontsize=8)
        ax.set_xlabel("layer index")
    axes[0][0].set_ylabel("mJ per pass")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def error_by_kind(metrics: dict, target_source: str, title: str):
    """Held-out per-layer RMSPE for each layer kind."""
    prefix, suffix = "family_layer_", "_energy_rmspe"
    rows = {k[len(prefix):-len(suffix)]: v for k, v in metrics.items() if k.startswith(prefix) and k.endswith(suffix)}
    kinds = sorted(rows, key=rows.get)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh(kinds, [rows[k] for k in kinds])
    ax.set(xlabel="held-out RMSPE (%)", title=f"{title} ({target_source} targets)", xscale="log")
    fig.tight_layout()
    return fig
