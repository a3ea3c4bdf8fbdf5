"""Hydra callback: a multirun becomes one MLflow parent run with one nested run per job."""

from __future__ import annotations

import os

from hydra.experimental.callback import Callback
from mlflow import MlflowClient

from nnenergy import tracking

PARENT_ENV = "NNENERGY_PARENT_RUN_ID"


class MlflowParentRun(Callback):
    """Creates the experiment and parent run once, before any job (no SQLite races on
    creation); a run id from `mlflow run` becomes the parent instead of being resumed by
    every job."""

    def __init__(self) -> None:
        self.created = False

    def on_multirun_start(self, config, **kwargs) -> None:
        exp_id = tracking.setup(config.mlflow.tracking_uri, config.mlflow.experiment)
        parent = os.environ.pop("MLFLOW_RUN_ID", None)
        if parent is None:
            run = MlflowClient().create_run(exp_id, run_name=f"{config.mlflow.experiment}-sweep",
                                            tags={"nnenergy.sweep": "parent"})
            parent, self.created = run.info.run_id, True
        os.environ[PARENT_ENV] = parent

    def on_multirun_end(self, config, **kwargs) -> None:
        parent = os.environ.pop(PARENT_ENV, None)
        if config.get("register", {}).get("enabled"):
            from nnenergy.registry import reconcile_champions

            reconcile_champions(MlflowClient())
        if parent:  # after the promotion: the comparison shows the aliases the registry holds
            summary = tracking.summarise_children(parent)
            if summary:  # the sweep's one summary (its jobs print none of their own)
                print(f"\n{summary}", flush=True)
        if parent and self.created:
            MlflowClient().set_terminated(parent)

