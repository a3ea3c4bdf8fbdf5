"""Model-wise branch of the `train` entry point (MLP, RNN, embedded RNN)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import joblib
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
    from mlflow.models import infer_signature

    from nnenergy.apps.train import _log_figure, _requirements, register, split_id
    from nnenergy.learn.modelwise_pyfunc import ModelwisePyfunc, predict_totals
    from nnenergy.learn.pyfunc import INPUT_COLUMNS

    make = instantiate(cfg.predictor.model)
    opts = OmegaConf.to_container(cfg.evaluation, resolve=True)
    res = evaluate_modelwise(make, data, opts)
    mlflow.log_metrics({f"modelwise.{k}": v for k, v in res.metrics.items()})
    for h in res.fixed_predictor.history_:
        mlflow.log_metrics({"train_loss": h["train_loss"], "val_loss": h["val_loss"]}, step=h["epoch"])
    name = cfg.predictor.name
    _log_figure(_curves(res.fixed_predictor.history_, f"{name}: training curves (fixed split)"), "plots/modelwise/training_curves.png")
    _log_figure(plots.predicted_vs_measured(res.cv_models, f"{name}: held-out families (CV)"), "plots/modelwise/whole_pred_vs_measured.png")
    mlflow.log_metrics({
        "heldout_whole_energy_rmspe": res.metrics["cv_whole_energy_j_rmspe"],
        "heldout_whole_energy_within10": res.metrics["cv_whole_energy_j_within10"],
        "heldout_whole_energy_mape": res.metrics["cv_whole_energy_j_mape"],
        "fixed_whole_energy_rmspe": res.metrics["fixed_whole_energy_j_rmspe"],
    })
    pred = res.fixed_predictor
    sid = split_id(data, cfg.evaluation.test_families)
    pred.metadata |= {"predictor": name, "source": "modelwise", "split_id": sid,
                      "hardware": {k: str(data.models[k].iloc[0]) for k in ("hardware_id", "cpu_model", "cpu_cores",
                                                                           "gpu_model", "cpu_measurement", "ram_measurement")},
                      "heldout": {k: res.metrics[k] for k in ("cv_whole_energy_j_rmspe", "cv_whole_energy_j_within10")}}
    example = data.layers[data.layers["config_id"] == data.layers["config_id"].iloc[0]][INPUT_COLUMNS].copy()
    for col in ("flops", "params", "in_elems", "out_elems", "mem_bytes"):
        example[col] = example[col].astype(float)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"predictor-{name}.joblib"
        joblib.dump(pred, path)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=ModelwisePyfunc(), artifacts={"predictor": str(path)},
            code_paths=[str(Path(__file__).resolve().parents[1])],
            signature=infer_signature(example, predict_totals(pred, example)),
            pip_requirements=_requirements(), metadata=json.loads(json.dumps(pred.metadata, default=str)),
        )
    if cfg.register.enabled:
        register(info.model_uri, f"nnenergy-{name}", sid, res.metrics["fixed_whole_energy_j_rmspe"], cfg)
    return {"modelwise": {k: res.metrics[k] for k in ("cv_whole_energy_j_rmspe", "cv_whole_energy_j_within10",
                                                        "cv_whole_energy_j_mape", "fixed_whole_energy_j_rmspe",
                                                        "cv_whole_latency_s_rmspe", "train_seconds")}}
