"""Benchmarks (not tests): prediction speed, training time and held-out accuracy of the last `make run`.

Accuracy against measurement lives in the training runs themselves (levels 1-3, level 2 being
published architectures measured on this machine and never trained on); the measurement
benchmarks are `repeatability.py` and `calibration.py`. Run after `make run`, on an idle machine:
    .venv/bin/python benchmarks/run.py
Writes benchmarks/results.json (keyed by CPU profile), prints a Markdown summary for the README, and
re-executes the notebooks in place (their figures and tables read the same store: `--no-notebooks`
skips them), so that the README's figures and the notebooks never show two different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
def _median_ms(fn, repeats: int = 20) -> float:
    """Median wall time of `fn()` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench_prediction(results: dict) -> None:
    import mlflow

    from nnenergy.describe import describe_layers as describe_model
    from nnenergy.predict.describing import resolve_model
    from nnenergy.predict.loading import load_predictor

    pyfunc, info = load_predictor()
    km, _ = resolve_model("ResNet50", None)
    layers = describe_model(km, 32, "ResNet50")
    results["predict_step_resnet50_ms"] = _median_ms(lambda: pyfunc.predict(layers))
    results["predict_step_layers"] = len(layers)
    # The same step with the newest rf version (the forest: the slowest of the four to evaluate).
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions("name='nnenergy-layerwise'")
    rf = [v for v in versions if v.tags.get("predictor") == "rf"]
    if rf:
        newest = max(rf, key=lambda v: int(v.version))
        rf_pyfunc, _ = load_predictor(f"models:/nnenergy-layerwise/{newest.version}")
        results["predict_step_resnet50_rf_ms"] = _median_ms(lambda: rf_pyfunc.predict(layers))
    # Many models per call: 20 copies of the table in one call, per model.
    import pandas as pd

    many = pd.concat([layers.assign(config_id=f"{i}:ResNet50") for i in range(20)], ignore_index=True)
    pyfunc.predict(many)
    t0 = time.perf_counter()
    pyfunc.predict(many)
    results["predict_step_resnet50_batched_ms_per_model"] = (time.perf_counter() - t0) / 20 * 1e3
    results["describe_resnet50_ms"] = _median_ms(lambda: describe_model(km, 32, "ResNet50"), repeats=5)
    walls = []
    for _ in range(4):  # the first call resolves through the registry and fills the local cache
        t0 = time.perf_counter()
        subprocess.run([str(REPO / ".venv/bin/nnenergy"), "predict", "ResNet50", "--batch-size", "32", "--json"],
                       check=True, capture_output=True, cwd=REPO)
        walls.append(time.perf_counter() - t0)
    results["cli_first_call_resnet50_s"] = walls[0]
    results["cli_end_to_end_resnet50_s"] = statistics.median(walls[1:])
    results["predictor"] = info
    del mlflow


def bench_training(results: dict) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{REPO / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list",
                              filter_string="tags.predictor_family = 'layerwise'", order_by=["start_time DESC"])
    latest = {}
    for r in runs:
        if "measured_before" not in r.data.tags:  # trained on a dated subset: not the benchmark's training
            latest.setdefault(r.data.tags["predictor"], r)
    results["train_seconds"] = {
        p: (r.info.end_time - r.info.start_time) / 1e3 for p, r in latest.items() if r.info.end_time
    }
    from nnenergy.tracking import headline_of  # runs log short names; results.json keeps the evaluation's

    results["heldout"] = {p: headline_of(r.data.metrics) for p, r in latest.items()}


def markdown(r: dict) -> str:
    out = [f"Hardware: {r['machine']}", ""]
    if "predict_step_resnet50_ms" in r:
        rf_ms = r.get("predict_step_resnet50_rf_ms", float("nan"))
        batched = r.get("predict_step_resnet50_batched_ms_per_model", float("nan"))
        out += [f"- Prediction step, ResNet50 ({r['predict_step_layers']} layers, features → totals): "
                f"{r['predict_step_resnet50_ms']:.1f} ms (rf: {rf_ms:.1f} ms; "
                f"20 models in one call: {batched:.1f} ms each)",
                f"- Describing ResNet50 (Keras model → layer table): {r['describe_resnet50_ms']:.1f} ms",
                f"- `nnenergy predict ResNet50 --batch-size 32 --json`, process start to JSON: "
                f"{r['cli_end_to_end_resnet50_s']:.1f} s (first call, which fills the local predictor cache: "
                f"{r.get('cli_first_call_resnet50_s', float('nan')):.1f} s)"]
    if "train_seconds" in r:
        out.append("- Training + evaluation wall time per predictor: "
                   + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(r["train_seconds"].items())))
    if "heldout" in r:
        head = " | ".join(f"level {i} RMSPE | within ±10%" for i in (1, 2, 3))
        out += ["", f"| predictor | {head} |", "|---|---|---|---|---|---|---|"]
        levels = ("family", "external", "generated")
        for p, m in sorted(r["heldout"].items()):
            cells = [f"{m.get(f'{lvl}_whole_energy_{k}', float('nan')):.1f}%" for lvl in levels
                     for k in ("rmspe", "within10")]
            out.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def refresh_notebooks() -> list[str]:
    """Regenerate (notebooks/_make.py) and execute every notebook in place, as GitHub shows them."""
    import nbformat
    from nbclient import NotebookClient

    subprocess.run([sys.executable, str(REPO / "notebooks" / "_make.py")], check=True)
    done = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        done.append(path.name)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-notebooks", action="store_true", help="do not re-execute the notebooks")
    args = ap.parse_args()
    os.chdir(REPO)
    from nnenergy.measure.hardware import current_profile_name

    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "profile": current_profile_name(), "date": time.strftime("%Y-%m-%d")}
    bench_training(results)
    bench_prediction(results)
    path = REPO / "benchmarks" / "results.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old = old if "profiles" in old else {"profiles": {}}
    old["profiles"].setdefault(results["profile"], {}).update(results)  # both CPUs' figures side by side
    path.write_text(json.dumps(old, indent=1, default=str))
    print(markdown(results))
    if not args.no_notebooks:
        print("notebooks re-executed: " + ", ".join(refresh_notebooks()))


if __name__ == "__main__":
    sys.exit(main())
