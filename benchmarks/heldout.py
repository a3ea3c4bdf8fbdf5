"""A measured held-out dataset against `nnenergy predict`: RMSPE and the shares within +-10% / +-35%.

Every configuration of the dataset (keras.applications, keras-hub `hub_` names, generated names, or
`.keras` files found in `--models DIR`) is rebuilt at its input size, predicted at its batch size with
this machine's default predictor and compared with its measured energy. Stored labels (`energy_j`) are
on the profile's canonical scale (raw energy / the speed index read while they were measured), so
predictions are compared at speed `canonical`: the same as stating each prediction at the speed of
its measurement and comparing with the raw energy. (The speed *now* belongs to a measurement made now:
`benchmarks/drift.py`.) Each run appends one line to `benchmarks/heldout_log.jsonl`.

    .venv/bin/python benchmarks/heldout.py data/<profile>/external_hub
    .venv/bin/python benchmarks/heldout.py data/<profile>/small --models /tmp/small
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
LOG = Path(__file__).resolve().parent / "heldout_log.jsonl"


def score(truth: list[float], pred: list[float]) -> dict:
    """RMSPE and the shares within +-10% and +-35%, all in % (`nnenergy.evaluate.metrics`)."""
    from nnenergy.evaluate import metrics

    return {"n": len(truth), "rmspe": metrics.rmspe(truth, pred), "within10": metrics.within(truth, pred, 0.10),
            "within35": metrics.within(truth, pred, 0.35)}


def by_group(rows: list[dict], mode: str = "canonical") -> dict[str, dict]:
    """The score of each architecture, and of each kind of work (`workload`: transformer, recurrent, other)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["config"].split("|")[0], []).append(r)
        groups.setdefault(f"[{r.get('workload', 'other')}]", []).append(r)
    return {g: score([r["measured_j"] for r in rs], [r[mode] for r in rs]) for g, rs in sorted(groups.items())}


def run(dataset: Path, models_dir: Path | None, modes: list[str]) -> dict:
    from nnenergy import zoo
    from nnenergy.features.workload import workload_of
    from nnenergy.predict.api import predict
    from nnenergy.predict.loading import load_predictor

    loaded = load_predictor(this_machine=True)  # once: the predictor `nnenergy predict` uses here
    from nnenergy import dataset as ds

    data = ds.load(dataset)  # labels as predictors learn them (the canonical's elasticity)
    rows = data.models
    work = workload_of(data.layers)  # transformer / recurrent / other
    per_row = []
    for _, r in rows.iterrows():
        name = str(r["architecture"])
        path = models_dir / f"{name}.keras" if models_dir else None
        model = zoo.build(str(path) if path and path.exists() else name, int(r["input_size"])).model
        rec = {"config": r["config_id"], "measured_j": float(r["energy_j"]), "workload": work.get(r["config_id"])}
        for m in modes:
            p = predict(model, batch_size=int(r["batch_size"]), speed=m, predictor=loaded)
            rec[m] = p.energy_j
        rec["out_of_range_layers"] = p.out_of_range_layers
        per_row.append(rec)
    result = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dataset": str(dataset),
              "predictor": {k: loaded[1].get(k) for k in ("uri", "version")}, "speed": p.speed,
              "metrics": {m: score([r["measured_j"] for r in per_row], [r[m] for r in per_row]) for m in modes},
              "groups": by_group(per_row, modes[0]), "rows": per_row}
    with open(LOG, "a") as fh:
        fh.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--models", default=None, help="folder of the dataset's .keras files (file models)")
    ap.add_argument("--speed", nargs="+", default=["canonical"], choices=["canonical"],
                    help="stored labels are on the canonical scale (see above)")
    a = ap.parse_args()
    res = run(Path(a.dataset), Path(a.models) if a.models else None, a.speed)
    print(json.dumps(res["metrics"], indent=1))
    print(f"{'group':24s} {'n':>3s} {'RMSPE':>7s} {'±10%':>5s} {'±35%':>5s}")
    for g, s in res["groups"].items():
        print(f"{g:24s} {s['n']:3d} {s['rmspe']:6.1f}% {s['within10']:4.0f}% {s['within35']:4.0f}%")
    for row in res["rows"]:
        errs = (f"{m} {row[m] / row['measured_j'] - 1:+.0%}" for m in a.speed)
        print(row["config"], f"{row['measured_j']:.4g} J", *errs)
