"""`analyze` entry point: the report's dataset analysis and further experiments, as MLflow artifacts."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from nnenergy import dataset as ds
from nnenergy import tracking
from nnenergy.analyze import figures
from nnenergy.apps import CONF_DIR

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    data = ds.load(cfg.dataset)
    m, lay = data.models, data.layers
    tracking.setup(cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
    results: dict = {}
    with mlflow.start_run(run_name=f"analyze-{Path(cfg.dataset).name}"):
        from nnenergy.stores import public_config

        mlflow.log_dict(public_config(OmegaConf.to_container(cfg, resolve=True)), "config/resolved.yaml")
        mlflow.set_tag("hardware_id", data.hardware_id)
        jobs = {
            "energy_distribution": lambda: figures.energy_distribution(m),
            "layer_type_counts": lambda: figures.layer_type_counts(lay),
            "energy_by_kind": lambda: figures.energy_by_kind(lay),
            "flops_vs_energy": lambda: figures.flops_vs_energy(m),
            "additivity": lambda: figures.additivity(m),
            "noise_vs_window": lambda: figures.noise_vs_window(m, lay),
        }
        dense_path = Path(cfg.dense_dataset) if cfg.get("dense_dataset") else None
        if dense_path and (dense_path / ds.MODELS_FILE).exists():
            dm = ds.load(dense_path).models
            jobs["flops_vs_energy_dense_only"] = lambda: figures.flops_vs_energy(
                dm, "FLOPs vs energy, Dense-only models")
        for name, job in jobs.items():
            fig, mets = job()
            mlflow.log_figure(fig, f"figures/{name}.png")
            plt.close(fig)
            results |= {f"{name}.{k}": float(v) for k, v in mets.items()}
        results["flops_only_heldout_rmspe"] = figures.flops_only_heldout_rmspe(m, cfg.n_folds)
        tracking.log_metrics(results)
        table = pd.DataFrame(sorted(results.items()), columns=["metric", "value"])
        mlflow.log_table(table, "metrics_table.json")
    return results


@hydra.main(config_path=CONF_DIR, config_name="analyze", version_base="1.3")
def main(cfg: DictConfig) -> None:
    import sys

    try:
        results = run(cfg)
    except ds.DatasetError as exc:  # a folder that is no dataset: bad input, one line
        print(f"nnenergy analyze: {exc}", file=sys.stderr)
        sys.exit(2)
    for k, v in results.items():
        print(f"{k:55s} {v:.4g}")


if __name__ == "__main__":
    main()
