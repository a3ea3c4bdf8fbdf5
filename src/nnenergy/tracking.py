"""MLflow set-up shared by every entry point."""

from __future__ import annotations

import os
import time
from pathlib import Path

import mlflow


def resolve_tracking_uri(uri: str) -> str:
    """Make a relative `sqlite:///file.db` absolute so every process and job hits one store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def setup(tracking_uri: str, experiment: str) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    SQLite stores race when several processes create tables at once, so retry briefly.
    """
    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:  # launched by `mlflow run`: its run (and experiment) is the one to log to
        return mlflow.MlflowClient().get_run(run_id).info.experiment_id
    for attempt in range(5):
        try:
            exp = mlflow.set_experiment(experiment)
            return exp.experiment_id
        except Exception:  # "database is locked" from a concurrent job
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def ints_as_floats(df):
    """MLflow warns that integer columns cannot hold missing values in a schema: log floats."""
    ints = df.select_dtypes("integer").columns
    return df.astype({c: "float64" for c in ints})
