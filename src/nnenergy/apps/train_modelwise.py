"""Model-wise branch of the `train` entry point (MLP, RNN, embedded RNN)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import mlflow
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nnenergy import dataset as ds
from nnenergy.evaluate import plots
from nnenergy.evaluate.crossval import evaluate_modelwise


def _curves(history: list[dict], title: str):
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([h["train_loss"] for h in history], label="train")
    ax.plot([h["val_loss"] for h in history], label="validation (held-out training families)")
    ax.set(yscale="log", xlabel="epoch", ylabel="MSE of standardised log targets", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def run_modelwise(cfg: DictConfig, data: ds.Dataset) -> dict:
    from nnenergy.apps.train import SUMMARY_KEYS, _log_figure, log_headline_metrics, log_predictor, register, split_id
    from nnenergy.learn.pyfunc import ModelwisePyfunc

    make = instantiate(cfg.predictor.model)
    opts = OmegaConf.to_container(cfg.evaluation, resolve=True)
    res = evaluate_modelwise(make, data, opts)
    mlflow.log_metrics({f"modelwise.{k}": v for k, v in res.metrics.items()})
    for h in res.fixed_predictor.history_:
        mlflow.log_metrics({"train_loss": h["train_loss"], "val_loss": h["val_loss"]}, step=h["epoch"])
    name = cfg.predictor.name
    _log_figure(_curves(res.fixed_predictor.history_, f"{name}: training curves (fixed split)"), "plots/modelwise/training_curves.png")
    _log_figure(plots.predicted_vs_measured(res.cv_models, f"{name}: held-out families (CV)"), "plots/modelwise/whole_pred_vs_measured.png")
    log_headline_metrics(res.metrics)
    sid = split_id(data, cfg.evaluation.test_families)
    info = log_predictor(res, ModelwisePyfunc(), data, cfg, sid)
    if cfg.register.enabled:
        register(info.model_uri, f"nnenergy-{name}", sid, res.metrics["fixed_whole_energy_j_rmspe"], cfg)
    return {"modelwise": {k: res.metrics[k] for k in SUMMARY_KEYS}}
