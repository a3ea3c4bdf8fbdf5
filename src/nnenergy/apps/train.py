"""`train` entry point (and MLproject `main`): train one predictor, evaluate it on held-out
architecture families, log everything to MLflow, register it and promote the champion."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import hydra
import joblib
import mlflow
from hydra.utils import instantiate
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from nnenergy import dataset as ds
from nnenergy import registry, tracking
from nnenergy.apps import CONF_DIR
from nnenergy.apps.callbacks import PARENT_ENV
from nnenergy.evaluate import metrics as mx
from nnenergy.evaluate import plots
from nnenergy.evaluate.crossval import SourceResult, evaluate_source

log = logging.getLogger(__name__)
PINNED = ["mlflow", "scikit-learn", "xgboost", "catboost", "pandas", "numpy", "joblib", "torch"]


def split_id(data: ds.Dataset, test_families) -> str:
    key = json.dumps([data.hardware_id, sorted(data.models["config_id"]), sorted(test_families)])
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in PINNED:
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            pass
    return reqs


def _start_run(cfg: DictConfig):
    """Nested under the multirun parent when there is one; else resumes `mlflow run`'s run or starts one."""
    parent = os.environ.get(PARENT_ENV)
    name = cfg.predictor.name
    if parent:
        exp = MlflowClient().get_run(parent).info.experiment_id
        return mlflow.start_run(run_name=name, experiment_id=exp, parent_run_id=parent)
    return mlflow.start_run(run_name=name)


def _log_figure(fig, path: str) -> None:
    if fig is not None:
        mlflow.log_figure(fig, path)
        import matplotlib.pyplot as plt

        plt.close(fig)


SUMMARY_KEYS = ("cv_whole_energy_j_rmspe", "cv_whole_energy_j_within10", "cv_whole_energy_j_mape",
                "fixed_whole_energy_j_rmspe", "cv_whole_latency_s_rmspe", "train_seconds")
HARDWARE_KEYS = ("hardware_id", "cpu_model", "cpu_cores", "gpu_model", "cpu_measurement", "ram_measurement",
                 "gpu_measurement")


def log_predictor(result: SourceResult, pyfunc_model, data: ds.Dataset, cfg: DictConfig, sid: str):
    """Log the fixed-split predictor as a pyfunc (signature, input example, pinned requirements, own code).

    Its `heldout` metadata is its own error on the fixed split's test families, which it never saw.
    """
    from mlflow.models import infer_signature

    from nnenergy.learn.pyfunc import INPUT_COLUMNS

    pred = result.fixed_predictor
    pred.metadata |= {
        "hardware": {k: str(data.models[k].iloc[0]) for k in HARDWARE_KEYS},
        "predictor": cfg.predictor.name,
        "source": result.source,
        "split_id": sid,
        "test_families": sorted(cfg.evaluation.test_families),
        "heldout": {k: result.metrics[k] for k in ("fixed_whole_energy_j_rmspe", "fixed_whole_energy_j_within10",
                                                   "fixed_whole_energy_j_n")},
    }
    example = data.layers[data.layers["config_id"] == data.layers["config_id"].iloc[0]][INPUT_COLUMNS].copy()
    for col in ("flops", "params", "in_elems", "out_elems", "mem_bytes"):
        example[col] = example[col].astype(float)
    for col in ("layer_index", "batch_size", "n_inputs"):
        example[col] = example[col].astype("int64")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"predictor-{cfg.predictor.name}.joblib"
        joblib.dump(pred, path)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_model,
            artifacts={"predictor": str(path)},
            code_paths=[str(Path(__file__).resolve().parents[1])],
            signature=infer_signature(example, pyfunc_model.predict_fn(pred, example)),
            input_example=example.head(3),
            pip_requirements=_requirements(),
            metadata=json.loads(json.dumps(pred.metadata, default=str)),
        )


def log_headline_metrics(m: dict) -> None:
    """The metrics every predictor variant logs under the same names, for one comparison table."""
    mlflow.log_metrics({
        "heldout_whole_energy_rmspe": m["cv_whole_energy_j_rmspe"],
        "heldout_whole_energy_within10": m["cv_whole_energy_j_within10"],
        "heldout_whole_energy_mape": m["cv_whole_energy_j_mape"],
        "fixed_whole_energy_rmspe": m["fixed_whole_energy_j_rmspe"],
    })


def run_layerwise(cfg: DictConfig, data: ds.Dataset) -> dict:
    make = instantiate(cfg.predictor.regressor)
    opts = OmegaConf.to_container(cfg.evaluation, resolve=True) | {
        "min_rows_per_kind": cfg.predictor.min_rows_per_kind,
        "correction": cfg.predictor.correction,
    }
    results = {src: evaluate_source(make, data, src, opts | {"interval": src == cfg.register.source})
               for src in cfg.evaluation.sources}
    summary = {}
    for src, res in results.items():
        mlflow.log_metrics({f"{src}.{k}": v for k, v in res.metrics.items()})
        title = f"{cfg.predictor.name}, {src} targets"
        _log_figure(plots.predicted_vs_measured(res.cv_models, f"{title}: held-out families (CV)"), f"plots/{src}/whole_pred_vs_measured.png")
        _log_figure(plots.per_layer_family(res.fixed_layers, "VGG", f"{title}: VGG per layer (held out)"), f"plots/{src}/vgg_per_layer.png")
        _log_figure(plots.error_by_kind(res.metrics, src, cfg.predictor.name), f"plots/{src}/error_by_kind.png")
        with tempfile.TemporaryDirectory() as tmp:
            res.cv_models.to_csv(Path(tmp) / "cv_whole_predictions.csv", index=False)
            mlflow.log_artifact(str(Path(tmp) / "cv_whole_predictions.csv"), f"predictions/{src}")
        summary[src] = {k: res.metrics[k] for k in SUMMARY_KEYS}
    chosen = results[cfg.register.source]
    sid = split_id(data, cfg.evaluation.test_families)
    from nnenergy.learn.pyfunc import LayerwisePyfunc

    info = log_predictor(chosen, LayerwisePyfunc(), data, cfg, sid)
    log_headline_metrics(chosen.metrics)
    if cfg.register.enabled:
        register(info.model_uri, cfg.register.name, sid, chosen.metrics["fixed_whole_energy_j_rmspe"], cfg)
    return summary


def register(model_uri: str, name: str, sid: str, score: float, cfg: DictConfig) -> None:
    client = MlflowClient()
    mv = mlflow.register_model(model_uri, name)
    client.set_model_version_tag(name, mv.version, registry.SPLIT_TAG, sid)
    client.set_model_version_tag(name, mv.version, registry.METRIC_TAG, f"{score:.6f}")
    client.set_model_version_tag(name, mv.version, "predictor", cfg.predictor.name)
    champ = registry.promote_best(client, name, sid)
    mlflow.set_tag("registered_version", mv.version)
    mlflow.set_tag("champion_version", champ)


def run(cfg: DictConfig) -> dict:
    data = ds.load(cfg.dataset)
    tracking.setup(cfg.mlflow.tracking_uri, cfg.experiment)
    with _start_run(cfg):
        resolved = OmegaConf.to_container(cfg, resolve=True)
        mlflow.log_dict(resolved, "config/resolved.yaml")
        mlflow.log_params({k: str(v)[:500] for k, v in tracking.flatten(resolved).items()})
        mlflow.set_tags({"predictor": cfg.predictor.name, "predictor_family": cfg.predictor.family,
                         "hardware_id": data.hardware_id})
        mlflow.log_input(mlflow.data.from_pandas(tracking.ints_as_floats(data.models.drop(columns=["window_energies_j"])),
                                                 source=str(Path(cfg.dataset).resolve()), name=Path(cfg.dataset).name),
                         context="training")
        for f in (ds.MODELS_FILE, ds.LAYERS_FILE, ds.DATASHEET_FILE):
            if (data.path / f).exists():
                mlflow.log_artifact(str(data.path / f), "dataset")
        mlflow.log_metric("noise_floor_whole_rmspe", mx.window_noise_rmspe(data.models["window_energies_j"].map(json.loads)))
        if cfg.predictor.family == "layerwise":
            summary = run_layerwise(cfg, data)
        else:
            from nnenergy.apps.train_modelwise import run_modelwise

            summary = run_modelwise(cfg, data)
    return summary


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    summary = run(cfg)
    print(f"[{cfg.predictor.name}] " + json.dumps({s: {k: round(v, 2) for k, v in m.items()} for s, m in summary.items()}))
    # The objective for `hydra/sweeper=optuna`: held-out whole-model energy RMSPE.
    first = summary.get(cfg.register.source) or next(iter(summary.values()))
    return float(first["cv_whole_energy_j_rmspe"])


if __name__ == "__main__":
    main()
