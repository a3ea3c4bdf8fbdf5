"""Analysis: the `analyze` entry point on the tiny dataset, and every notebook executes."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import nbformat
import pytest
from conftest import compose_cfg
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_analyze_logs_figures_and_metrics(tiny_sweep, tracking_uri):
    from nnenergy.apps import analyze

    _, result = tiny_sweep
    cfg = compose_cfg("analyze", [f"dataset={result.output_dir}", f"dense_dataset={result.output_dir}",
                                  f"mlflow.tracking_uri={tracking_uri}", "n_folds=3"])
    out = analyze.run(cfg)
    assert out["flops_vs_energy.spearman"] > 0.3  # larger models cost more, even on tiny data
    assert out["additivity.additivity_min"] <= out["additivity.additivity_median"] <= out["additivity.additivity_max"]
    assert math.isfinite(out["flops_only_heldout_rmspe"])  # every held-out fold predicted
    mlflow.set_tracking_uri(tracking_uri)
    run = mlflow.search_runs(experiment_names=["nnenergy-analyze"], output_format="list")[0]
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "figures")}
    for name in ("energy_distribution", "layer_type_counts", "flops_vs_energy", "additivity", "noise_vs_window",
                 "flops_vs_energy_dense_only"):
        assert f"figures/{name}.png" in arts


def _figures(nb) -> int:
    return sum("image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebooks_are_committed_executed_with_their_figures():
    """GitHub shows a notebook's stored outputs: each one is committed executed, figures included."""
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), path.name
        assert _figures(nb) >= 1, f"{path.name} shows no figure"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_on_tiny_data_and_draws(path, tiny_sweep, trained_rf, tracking_uri, monkeypatch):
    _, result = tiny_sweep
    monkeypatch.setenv("NNENERGY_DATASET", str(result.output_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = []
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert _figures(nb) >= 1, f"{path.name} drew no figure"
