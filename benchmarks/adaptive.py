"""Adaptive resampling, one round at a time (nn-Meter's fine-grained sampling, by macro kind).

After a training run, the level-3 held-out predictions (generated architectures held out by seed)
say where the predictor is worst. This groups their errors by the generator's macro kind (the
kind cycles with the seed), appends the round to `benchmarks/adaptive_log.jsonl` and prints the
kinds to measure more of:

    .venv/bin/python benchmarks/adaptive.py --round 1            # after `make run`
    .venv/bin/nnenergy measure sweep=adaptive "sweep.generated.focus_kinds=[...]"   # idle machine
    make run && .venv/bin/python benchmarks/adaptive.py --round 2

The log then shows how each kind's error moved from round to round.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "adaptive_log.jsonl"


def latest_predictions(predictor: str, tracking_uri: str):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list",
                              filter_string=f"tags.predictor = '{predictor}'", order_by=["start_time DESC"])
    runs = [r for r in runs if r.info.status == "FINISHED" and "measured_before" not in r.data.tags]
    if not runs:
        raise SystemExit(f"no finished {predictor} run in {tracking_uri}: run `make run` first")
    run = runs[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="predictions/incontext/generated_predictions.csv", dst_path=tmp)
        return run, pd.read_csv(path)


def _dataset_configs(run) -> int | None:
    """Configurations in the dataset the run trained on (its `dataset` parameter), if still on disk."""
    import pyarrow.parquet as pq

    path = Path(run.data.params.get("dataset", "")) / "models.parquet"
    if not path.is_absolute():
        path = REPO / path
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else None


def per_kind(pred) -> dict:
    from nnenergy.arch import macro_kind
    from nnenergy.evaluate import metrics

    pred = pred.assign(macro_kind=pred["architecture"].map(macro_kind)).dropna(subset=["macro_kind"])
    out = {}
    for kind, g in pred.groupby("macro_kind"):
        s = metrics.summary(g["measured_energy_j"], g["energy_j"])
        out[kind] = {"rmspe": round(s["rmspe"], 2), "within10": round(s["within10"], 1), "configs": s["n"]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--round", type=int, required=True, help="which round this run's data is (1 = before resampling)")
    ap.add_argument("--predictor", default="rf")
    ap.add_argument("--focus", type=int, default=3, help="how many of the worst kinds to suggest")
    ap.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from nnenergy.evaluate import metrics

    run, pred = latest_predictions(args.predictor, args.tracking_uri)
    kinds = per_kind(pred)
    overall = metrics.summary(pred["measured_energy_j"], pred["energy_j"])
    worst = sorted(kinds, key=lambda k: -kinds[k]["rmspe"])[: args.focus]
    rec = {"round": args.round, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "predictor": args.predictor,
           "run_id": run.info.run_id, "dataset_configs": _dataset_configs(run),
           "generated_heldout": {"rmspe": round(overall["rmspe"], 2), "within10": round(overall["within10"], 1),
                                 "configs": overall["n"]},
           "per_kind": kinds, "focus_next": worst}
    with LOG.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec, indent=1))
    print(f'\nnext round: nnenergy measure sweep=adaptive "sweep.generated.focus_kinds=[{",".join(worst)}]"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
