"""Search benchmark: rank many generated candidates by predicted energy, as an architecture search would.

1. Builds N generated architectures (`gen1_s020000`... : seeds no training set uses), describes
   them and predicts them all in one `predict_many`-style call with the registered champion;
   reports the time per candidate for building (Keras, the user's cost), describing and predicting.
2. Checks the ranking against measurement on the candidates measured by `sweep=search` (same seed
   range, never trained on): Spearman rank correlation, RMSPE and share within ±10%.

Run after `make run`, on an idle machine (the measured subset once, beforehand):
    .venv/bin/nnenergy measure sweep=search
    .venv/bin/python benchmarks/search.py [--candidates 1000] [--batch-size 8]
Writes its figures into benchmarks/results.json under this CPU's profile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
FIRST_SEED = 20000


def _describe_all(names_batches, progress: str):
    """(layer tables, build seconds, describe seconds) for (name, batch) pairs."""
    from tqdm import tqdm

    from nnenergy import zoo
    from nnenergy.describe import describe_layers

    tables, build_s, describe_s = [], [], []
    for i, (name, batch) in enumerate(tqdm(names_batches, desc=progress, unit="model")):
        t0 = time.perf_counter()
        km = zoo.build(name, None).model
        t1 = time.perf_counter()
        tables.append(describe_layers(km, batch, f"{i}:{name}"))
        t2 = time.perf_counter()
        build_s.append(t1 - t0)
        describe_s.append(t2 - t1)
    return tables, build_s, describe_s


def rank_candidates(pyfunc, n: int, batch: int) -> dict:
    import pandas as pd

    names = [f"gen1_s{FIRST_SEED + i:06d}" for i in range(n)]
    tables, build_s, describe_s = _describe_all([(nm, batch) for nm in names], "candidates")
    layers = pd.concat(tables, ignore_index=True)
    pyfunc.predict(layers.iloc[:200])  # warm
    t0 = time.perf_counter()
    out = pyfunc.predict(layers)
    predict_s = time.perf_counter() - t0
    totals = out[out["row"] == "total"].sort_values("energy_j")
    return {
        "candidates": n, "batch_size": batch, "layers": len(layers),
        "build_ms_per_candidate": statistics.median(build_s) * 1e3,
        "describe_ms_per_candidate": statistics.median(describe_s) * 1e3,
        "predict_ms_per_candidate": predict_s / n * 1e3,
        "predict_all_s": predict_s,
        "cheapest": totals["config_id"].head(3).str.split(":").str[1].tolist(),
        "dearest": totals["config_id"].tail(3).str.split(":").str[1].tolist(),
    }


def check_against_measurement(pyfunc, dataset: Path) -> dict:
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr

    from nnenergy import dataset as ds
    from nnenergy.evaluate import metrics

    models = ds.load(dataset).models  # labels as predictors learn them (the canonical's elasticity)
    pairs = list(zip(models["architecture"], models["batch_size"].astype(int)))
    tables, _, _ = _describe_all(pairs, "measured subset")
    out = pyfunc.predict(pd.concat(tables, ignore_index=True))
    pred = out[out["row"] == "total"].set_index("config_id")["energy_j"]
    predicted = np.array([pred[f"{i}:{a}"] for i, (a, _) in enumerate(pairs)])
    measured = models["energy_j"].to_numpy(float)
    s = metrics.summary(measured, predicted, "")
    return {"measured_configs": len(models), "spearman": float(spearmanr(measured, predicted).statistic),
            "rmspe": s["rmspe"], "within10": s["within10"],
            "measured_energy_range_j": [float(measured.min()), float(measured.max())]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from nnenergy.measure.hardware import current_profile_name
    from nnenergy.predict.loading import load_predictor

    profile = current_profile_name()
    pyfunc, info = load_predictor()
    res = {"predictor": info, "ranking": rank_candidates(pyfunc, args.candidates, args.batch_size)}
    measured = REPO / "data" / profile / "search"
    if (measured / "models.parquet").exists():
        res["measured"] = check_against_measurement(pyfunc, measured)
    else:
        res["measured"] = f"no measured subset for {profile}: run `nnenergy measure sweep=search` first"
    path = REPO / "benchmarks" / "results.json"
    allres = json.loads(path.read_text()) if path.exists() else {"profiles": {}}
    allres.setdefault("profiles", {}).setdefault(profile, {})["search"] = res | {"date": time.strftime("%Y-%m-%d")}
    path.write_text(json.dumps(allres, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
