"""`measure` entry point: run a sweep, write the dataset, log it to MLflow."""

from __future__ import annotations

import json
import logging
import sys

import hydra
import mlflow
from omegaconf import DictConfig, OmegaConf

from nnenergy import tracking
from nnenergy.apps import CONF_DIR
from nnenergy.measure.datasheet import additivity_summary
from nnenergy.measure.lock import MeasurementLock, MeasurementLockError
from nnenergy.measure.progress import SweepResult
from nnenergy.measure.sweep import Sweep
from nnenergy.measure.sweep_spec import SweepInputError, SweepSpec

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> SweepResult:
    """Measure the configured sweep and log it as one MLflow run."""
    spec = SweepSpec.from_config(OmegaConf.to_container(cfg.sweep, resolve=True))
    with MeasurementLock(wait_s=float(cfg.get("lock_wait_s", 0))):  # never two measuring processes
        result = Sweep(spec).run()
    tracking.setup(cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
    with mlflow.start_run(run_name=f"measure-{spec.name}", nested=mlflow.active_run() is not None):
        log_sweep(cfg, result)
    return result


def log_sweep(cfg: DictConfig, result: SweepResult) -> None:
    tracking.log_resolved_config(cfg)
    mlflow.set_tags({f"hw.{k}": v for k, v in result.provenance.items()} | {"entry_point": "measure"})
    models, layers = result.models, result.layers
    metrics = {
        "configs_measured": len(models),
        "configs_skipped": len(result.skipped),
        "architectures": models["architecture"].nunique() if len(models) else 0,
        "layer_rows": len(layers),
        "unique_signatures": layers["signature"].nunique() if len(layers) else 0,
        "wall_time_s": result.wall_time_s,
    }
    if len(models):
        metrics |= additivity_summary(models)
    tracking.log_metrics(metrics)
    out = result.output_dir
    for name in ("models.parquet", "layers.parquet", "skipped.json", "DATASHEET.md"):
        if (out / name).exists():
            mlflow.log_artifact(str(out / name), artifact_path="dataset")
    if len(models):
        data = mlflow.data.from_pandas(
            tracking.ints_as_floats(models.drop(columns=["window_energies_j"])),
            source=tracking.local_source(out.resolve() / "models.parquet"), name=f"{cfg.sweep.name}-models"
        )
        mlflow.log_input(data, context="measurement")
    log.info("sweep %s: %s", cfg.sweep.name, json.dumps(metrics))


@hydra.main(config_path=CONF_DIR, config_name="measure", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from nnenergy.quiet import import_tensorflow

    import_tensorflow()  # its start-up lines would interleave with the sweep's progress bar
    try:
        result = run(cfg)
    except (SweepInputError, MeasurementLockError) as exc:  # one line, no traceback, nothing measured
        print(f"nnenergy measure: {exc}", file=sys.stderr)
        sys.exit(2)
    state = "" if result.complete else " — stopped by sweep.max_minutes or begin_minutes; rerun to resume"
    print(f"measured {len(result.models)} configurations into {result.output_dir} "
          f"({len(result.skipped)} skipped, {result.wall_time_s:.0f} s){state}")


if __name__ == "__main__":
    main()
