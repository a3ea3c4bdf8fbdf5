"""`train` entry point (and MLproject `main`): train one predictor, evaluate it on three levels
(held-out families, an external test set, held-out generated architectures), log everything to
MLflow, register it and promote the champion (mean of level-1 and level-3 RMSPE; never level 2)."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
import mlflow
from hydra.utils import instantiate
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from nnenergy import dataset as ds
from nnenergy import registry, scale, tracking
from nnenergy.apps import CONF_DIR
from nnenergy.apps.callbacks import PARENT_ENV
from nnenergy.evaluate import metrics as mx
from nnenergy.evaluate import plots
from nnenergy.evaluate.levels import LEVELS, Evaluation, evaluate
from nnenergy.measure.datasheet import label_noise
from nnenergy.schema import EXTERNAL_HUB

log = logging.getLogger(__name__)
# Every level's RMSPE and share within 10%, external_hub's too, and each level's transformer and recurrent
# configurations alone (with their count) where it has any: the short names of `tracking.HEADLINE_NAMES`.
HEADLINE = list(tracking.HEADLINE_NAMES)


class TrainInputError(ValueError):
    """A user error (missing dataset, unusable split): one line, no traceback."""


def _start_run(cfg: DictConfig):
    """Nested under the multirun parent when there is one; else resumes `mlflow run`'s run or starts one."""
    parent = os.environ.get(PARENT_ENV)
    name = cfg.predictor.name
    if parent:
        exp = MlflowClient().get_run(parent).info.experiment_id
        return mlflow.start_run(run_name=name, experiment_id=exp, parent_run_id=parent)
    return mlflow.start_run(run_name=name)


def make_predictor(cfg: DictConfig, target_source: str):
    """A factory of fresh predictors as `conf/predictor/<name>.yaml` describes them, learning the
    per-layer targets of `target_source` (incontext | isolated; ignored by model-wise predictors)."""
    build = instantiate(cfg.predictor.model)
    if cfg.predictor.family == "layerwise":
        regressor = instantiate(cfg.predictor.regressor)
        return lambda: build(make_regressor=regressor, target_source=target_source)
    return lambda: build()


def log_predictor(ev: Evaluation, data: ds.Dataset, cfg: DictConfig):
    """Log the final predictor as a pyfunc (signature, input example, requirements, own code)."""
    from nnenergy.learn.pyfunc import log_pyfunc

    pred = ev.predictor
    pred.metadata |= {
        "hardware": data.hardware(),
        # The scale its labels are stated at: predictions move from it to the machine's speed now.
        "canonical_reference": data.canonical,
        "predictor": cfg.predictor.name,
        "source": ev.target_source,  # metadata key: where the per-layer targets came from
        "dataset": str(cfg.dataset),
        "measured_before": _cut(cfg),  # None: every row
        "heldout": {k: ev.metrics[k] for k in ev.metrics if k.split("_whole_energy_")[-1] in ("rmspe", "within10", "n")
                    and k.split("_whole_energy_")[0] in LEVELS},
    }
    return log_pyfunc(pred, data.layers, cfg.predictor.family, cfg.predictor.name)


def _log_evaluation(ev: Evaluation, cfg: DictConfig) -> None:
    name, src = cfg.predictor.name, ev.target_source
    tracking.log_metrics({f"{src}.{k}": v for k, v in ev.metrics.items()})
    for lvl, whole in ev.predictions.items():
        tracking.log_figure(plots.predicted_vs_measured(whole, f"{name}, {src}: level {lvl} (held out)"),
                            f"plots/{src}/{lvl}_pred_vs_measured.png")
        with tempfile.TemporaryDirectory() as tmp:
            whole.to_csv(Path(tmp) / f"{lvl}_predictions.csv", index=False)
            mlflow.log_artifact(str(Path(tmp) / f"{lvl}_predictions.csv"), f"predictions/{src}")
    for h in getattr(ev.predictor, "history_", []):  # model-wise nets: the final fit's curves
        tracking.log_metrics({"train_loss": h["train_loss"], "val_loss": h["val_loss"]}, step=h["epoch"])
    if len(ev.layers):
        worst = (ev.predictions["family"].assign(err=lambda d: (d["energy_j"] / d["measured_energy_j"] - 1).abs())
                 .groupby("family")["err"].mean().idxmax())
        tracking.log_figure(plots.per_layer_family(ev.layers, worst, f"{name}, {src}: {worst} per layer (held out)"),
                            f"plots/{src}/worst_family_per_layer.png")
        tracking.log_figure(plots.error_by_kind(ev.metrics, src, name), f"plots/{src}/error_by_kind.png")


def _sibling(cfg: DictConfig, key: str, data: ds.Dataset, refuse=None) -> ds.Dataset | None:
    """The dataset named by `cfg[key]` (None when unset), refused by `refuse(dataset)` (a reason, or None)
    or unless measured on `data`'s profile."""
    if not cfg.get(key):
        return None
    try:
        other = ds.load(cfg[key])
    except ds.DatasetError as exc:
        raise TrainInputError(str(exc)) from None
    reason = refuse(other) if refuse else None
    if reason:
        raise TrainInputError(f"{key} {cfg[key]} {reason}")
    mine, theirs = data.hardware().get("profile"), other.hardware().get("profile")
    if mine != theirs:
        raise TrainInputError(f"{key} {cfg[key]} was measured on {theirs}, the dataset on {mine}: "
                              "rows of two CPUs never train one predictor")
    return other


def _not_a_kernel_sweep(kernels: ds.Dataset) -> str | None:
    if "source" not in kernels.models or not (kernels.models["source"] == "kernel").all():
        return ("is not a kernel sweep (`nnenergy measure sweep=kernels`): only single-kernel rows may join "
                "training unscored")
    return None


def _kernels(cfg: DictConfig, data: ds.Dataset) -> ds.Dataset | None:
    """The kernel sweep's rows (`kernel_dataset`), refused unless a kernel sweep of the dataset's profile."""
    return _sibling(cfg, "kernel_dataset", data, _not_a_kernel_sweep)


def _loop_kernels(cfg: DictConfig, data: ds.Dataset) -> ds.Dataset | None:
    """The sequence kernels that fit the loop term (`loop_kernel_dataset`), refused unless measured on the
    dataset's profile; None when there are none (no loop term: predictions as before)."""
    return _sibling(cfg, "loop_kernel_dataset", data)


_SAID: set = set()


def _external_hub(cfg: DictConfig) -> ds.Dataset | None:
    """The second level-2 set (`external_hub_dataset`), or None with one info line (once per process: a
    multirun's jobs share it) when there is none."""
    if not cfg.get("external_hub_dataset"):
        if str(cfg.dataset) not in _SAID:
            _SAID.add(str(cfg.dataset))
            log.info("no %s dataset beside %s: level 2 on keras-hub models (L2h) skipped", EXTERNAL_HUB,
                     cfg.dataset)
        return None
    try:
        return ds.load(cfg.external_hub_dataset)
    except ds.DatasetError as exc:
        raise TrainInputError(str(exc)) from None


def _cut(cfg: DictConfig) -> str | None:
    """`measured_before` as an ISO time in UTC (None when unset)."""
    if cfg.get("measured_before") is None:
        return None
    try:
        return ds.parse_utc(cfg.measured_before).isoformat()
    except ValueError as exc:
        raise TrainInputError(f"measured_before={exc}") from None


def _before(cut: str | None, data: ds.Dataset | None, sibling: bool = False) -> ds.Dataset | None:
    """`data`'s rows measured before `cut` (all when None); a `sibling` set (kernels) measured only later is
    None: none of it joins."""
    if data is None or cut is None:
        return data
    try:
        return ds.measured_before(data, cut)
    except ds.NothingMeasuredBefore as exc:
        if sibling:
            log.info("%s: none of it joins", exc)
            return None
        raise TrainInputError(str(exc)) from None


def run(cfg: DictConfig) -> dict:
    cut = _cut(cfg)
    try:
        data = _before(cut, ds.load(cfg.dataset))
    except ds.DatasetError as exc:
        raise TrainInputError(str(exc)) from None
    external = ds.load(cfg.external_dataset) if cfg.get("external_dataset") else None
    hub = _external_hub(cfg)
    # Single kernels are layer rows to learn from; a model-wise predictor would take each for a network.
    kernels = _before(cut, _kernels(cfg, data), sibling=True) if cfg.predictor.family == "layerwise" else None
    loops = _before(cut, _loop_kernels(cfg, data), sibling=True) if cfg.predictor.family == "layerwise" else None
    from nnenergy.evaluate.levels import real_mask

    families = data.models.loc[real_mask(data.models), "family"].nunique()
    if families < 2:
        raise TrainInputError(f"{cfg.dataset} holds {families} real architecture famil{'y' if families == 1 else 'ies'}"
                              + (f" measured before {cut}" if cut else "")
                              + ": held-out evaluation (level 1) needs at least 2 (measure more architectures)")
    tracking.setup(cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
    opts = OmegaConf.to_container(cfg.evaluation, resolve=True)
    opts["n_folds"] = min(opts["n_folds"], families)
    sources = list(cfg.evaluation.sources) if cfg.predictor.family == "layerwise" else ["modelwise"]
    with _start_run(cfg):
        tracking.log_resolved_config(cfg)
        mlflow.set_tags({"predictor": cfg.predictor.name, "predictor_family": cfg.predictor.family,
                         "hardware_id": data.hardware_id, "profile": data.hardware().get("profile", "")})
        if cut:
            mlflow.set_tag("measured_before", cut)
        tracking.log_dataset(data.models, data.path, Path(cfg.dataset).name, "training",
                             (ds.MODELS_FILE, ds.DATASHEET_FILE))
        if kernels is not None:
            tracking.log_dataset(kernels.models, kernels.path, "kernels", "training", (ds.DATASHEET_FILE,))
        if loops is not None:
            tracking.log_dataset(loops.models, loops.path, "loop_kernels", "training", (ds.DATASHEET_FILE,))
        if external is not None:
            tracking.log_dataset(external.models, external.path, "external", "evaluation", (ds.DATASHEET_FILE,))
        if hub is not None:
            tracking.log_dataset(hub.models, hub.path, EXTERNAL_HUB, "evaluation", (ds.DATASHEET_FILE,))
        tracking.log_metrics({"noise_floor_whole_rmspe":
                              mx.window_noise_rmspe(data.models["window_energies_j"].map(json.loads))})
        # The dataset's own measure-twice figure (its datasheet): accuracy is read beside it.
        noise = label_noise(data.path, scale.elasticity(data.canonical))  # the exponent `ds.load` relabelled with
        if noise["n"]:
            tracking.log_metrics({"label_noise_rms_pct": noise["rms_pct"], "label_noise_pairs": noise["n"],
                                  "label_noise_within5_pct": noise["within5_pct"]})
        results = {}
        for src in sources:
            ev = evaluate(make_predictor(cfg, src), data, src, opts, external, extra=kernels, external_hub=hub,
                          loops=loops)
            _log_evaluation(ev, cfg)
            results[src] = ev
        chosen = results.get(cfg.register.source) or next(iter(results.values()))
        # The headline, under one short name for every predictor: compare runs in the UI at a glance.
        headline = {tracking.HEADLINE_NAMES[k]: chosen.metrics[k] for k in HEADLINE if k in chosen.metrics}
        tracking.log_metrics(headline | {"train_seconds": sum(r.train_seconds for r in results.values())})
        mlflow.set_tags({f"headline.{k}": f"{tracking.rounded(v):g}" for k, v in headline.items()})  # as the metric
        info = log_predictor(chosen, data, cfg)
        if "family_whole_energy_rmspe" in chosen.metrics:
            tracking.log_metrics({tracking.SCORE_METRIC: registry.champion_score(chosen.metrics)})  # registered or not
            if cut:
                log.info("not registered: trained on the rows measured before %s only", cut)
            elif cfg.register.enabled:
                registry.register(info.model_uri, cfg.predictor.registered_name, registry.split_id(data, opts),
                                  chosen.metrics,
                                  {"predictor": cfg.predictor.name, "profile": data.hardware().get("profile", "")})
    return {src: {k: ev.metrics[k] for k in HEADLINE + ["train_seconds"] if k in ev.metrics}
            for src, ev in results.items()}


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        summary = run(cfg)
    except TrainInputError as exc:
        print(f"nnenergy train: {exc}", file=sys.stderr)
        sys.exit(2)
    if not os.environ.get(PARENT_ENV):  # a sweep's jobs: the sweep prints one table for them all (callbacks)
        print(f"[{cfg.predictor.name}] "
              + json.dumps({s: {k: round(v, 2) for k, v in m.items()} for s, m in summary.items()}))
    # The objective for `hydra/sweeper=optuna`: the champion score (mean of level-1 and level-3 RMSPE).
    first = summary.get(cfg.register.source) or next(iter(summary.values()))
    return float(registry.champion_score(first))


if __name__ == "__main__":
    main()
