"""Transfer benchmark: how well does a predictor trained on one CPU predict a device it never saw?

Leave one device out. The source predictor is trained on the source profile's `space` only
(default: the shipped AMD EPYC Zen 4 profile); every other profile under data/ that holds a
bring-up set (`space_gen`: the generated architectures of `space`, what `nnenergy calibrate`
measures) is a target. Per target, two test sets, both measured on the target:
  (a) `apps`: keras.applications configurations (`space_apps`): hardware transfer alone, the
      source trained on these architectures at home;
  (b) `external`: published architectures no predictor ever trained on: hardware and
      architectures together.
Rows per target and source predictor:
  none            the source predictor as it is
  speed <M> min   one ratio, measured / predicted, over the whole models of M minutes of bring-up
  size (panel)    the previous release's `nnenergy calibrate`: the target's panel.json (small kernels and
                  small models) against the source's, a per-layer factor by size
  bring-up <M> min  the transfer `nnenergy calibrate --minutes M` fits (nnenergy.learn.transfer):
                  kernel-level map chosen by cross-validation over the bring-up architectures
  ceiling         trained on the target's own data (bring-up + apps): (a) families held out, (b) as is
M minutes of bring-up = the bring-up set's blocks (in the order `nnenergy calibrate` measures them)
that the target's sweep finished within the part of M minutes the command gives its sweep
(`bringup.sweep_budget_s`: M minus typical start-up and the fits of 4 candidate predictors), at
least one block.

    .venv/bin/python benchmarks/transfer.py                    # all targets, rf and poly
    .venv/bin/python benchmarks/transfer.py --predictors rf --targets intel-xeon-avx512-2c

Results: benchmarks/transfer_results.json, a Markdown table on stdout (the README's), and one MLflow
run per (target, predictor) in the experiment `nnenergy-transfer`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
RESULTS = REPO / "benchmarks" / "transfer_results.json"
from nnenergy.calibrate.bringup import BRINGUP_DATASET as BRINGUP  # noqa: E402  (what the command measures)

SOURCE = "amd-epyc-f25m17-avx512-2c"
APPS, EXTERNAL = "space_apps", "external"


def _data(path: Path):
    from nnenergy import dataset as ds

    return ds.load(path) if (path / ds.MODELS_FILE).exists() else None


def blocks_within(path: Path, minutes: float) -> set[str]:
    """Block ids of a sweep folder that finished within its first `minutes` of measuring, at least
    one (sessions in order; a block ends where the next one starts, the last at its session's end)."""
    blocks = json.loads((path / "blocks.json").read_text())
    sessions = json.loads((path / "sessions.json").read_text())
    t = lambda s: datetime.fromisoformat(s).timestamp()  # noqa: E731
    starts = sorted(t(s["session"]) for s in sessions)
    ends = {t(s["session"]): t(s["session"]) + s["wall_time_s"] for s in sessions}
    used, keep = 0.0, set()
    for s0 in starts:
        own = sorted((t(b["block"]), b["block"]) for b in blocks if s0 <= t(b["block"]) <= ends[s0])
        for i, (b0, bid) in enumerate(own):
            b1 = own[i + 1][0] if i + 1 < len(own) else ends[s0]
            # The session's start-up (imports, call overhead, first reference) counts as measuring time.
            elapsed = used + (b1 - s0)
            if elapsed > minutes * 60 and keep:
                return keep
            keep.add(bid)
        used += ends[s0] - s0
    return keep


def subset(data, config_ids: set):
    from nnenergy import dataset as ds

    m = data.models[data.models["config_id"].isin(config_ids)]
    return ds.Dataset(m, data.layers[data.layers["config_id"].isin(set(m["config_id"]))], data.path)


def targets_of(layers) -> np.ndarray:
    from nnenergy.schema import SOURCES

    return layers[list(SOURCES["incontext"])].to_numpy(float)


def train_cfg(name: str):
    """The Hydra training config of predictor `name`, composed as `nnenergy train` composes it (one
    composer for the benchmarks: unseen.train_cfg)."""
    from unseen import train_cfg as compose_train

    return compose_train(name, "unused", ["external_dataset=null"])


def train_source(name: str, data, cache: Path):
    """The source predictor `name` (a conf/predictor option) trained on every row of `data`."""
    import joblib

    from nnenergy.apps.train import make_predictor
    from nnenergy.features.cache import features_of

    st = (Path(data.path) / "layers.parquet").stat()
    key = hashlib.sha1(f"{name}|{Path(data.path).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    path = cache / f"source-{name}-{key}.joblib"
    if path.exists():
        return joblib.load(path)
    pred = make_predictor(train_cfg(name), "incontext")().fit(features_of(data), targets_of(data.layers), data.models)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(pred, path, compress=3)
    return pred


def errors(measured: pd.Series, predicted: pd.Series) -> dict:
    from nnenergy.evaluate import metrics

    predicted = predicted.loc[measured.index]
    return {k: round(v, 2) for k, v in metrics.summary(measured, predicted).items()}


def measured(data) -> pd.Series:
    return data.models.set_index("config_id")["energy_j"]


def totals(pred, data) -> pd.Series:
    from nnenergy.features.cache import features_of

    return pred.predict_whole(features_of(data)).set_index("config_id")["energy_j"]


_PANEL: dict = {}


def size_calibrated(source, source_profile: str, target_dir: Path, tests: dict) -> dict | None:
    """The previous release's calibration from the target's recorded panel (needs TensorFlow to
    describe the panel's models; nothing is measured here)."""
    from functools import partial

    from nnenergy.calibrate import calibrate_with_panel, panel_models
    from nnenergy.describe import describe_layers
    from nnenergy.learn.outputs import predict_frame

    panel_file, source_file = target_dir / "panel.json", REPO / "data" / source_profile / "panel.json"
    if not panel_file.exists():
        return None
    items = json.loads(panel_file.read_text())["items"]
    if "tables" not in _PANEL:  # the panel's models are the same for every target: described once
        _PANEL["tables"] = pd.concat([describe_layers(m, b, config_id=n) for n, m, b in panel_models()],
                                     ignore_index=True)
    tables = _PANEL["tables"][_PANEL["tables"]["config_id"].isin(items)]
    shim = type("P", (), {"predict": staticmethod(partial(predict_frame, source))})
    src_panel = json.loads(source_file.read_text()) if source_file.exists() else None
    cal = calibrate_with_panel(shim, source_profile, source_panel=src_panel, panel=(items, tables), model="size")
    out = {}
    for name, data in tests.items():
        frame = cal.apply(predict_frame(source, data.layers))
        out[name] = errors(measured(data), frame[frame["row"] == "total"].set_index("config_id")["energy_j"])
    return out


def ceiling(name: str, target: "object", external) -> dict:
    """Trained on the target's own data: level 1 (families held out) on (a), level 2 on (b)."""
    from nnenergy.apps.train import make_predictor
    from nnenergy.evaluate.levels import evaluate

    cfg = train_cfg(name)
    opts = {"n_folds": 5, "seed": 0, "generated_folds": 2}
    ev = evaluate(make_predictor(cfg, "incontext"), target, "incontext", opts, external)
    out = {}
    for level, test in (("family", "apps"), ("external", "external")):
        if level in ev.predictions:
            w = ev.predictions[level].set_index("config_id")
            out[test] = errors(w["measured_energy_j"], w["energy_j"])
    return out


def run_target(profile: str, predictors: list[str], minutes: list[float], sources: dict, cache: Path) -> list[dict]:
    from nnenergy import dataset as ds
    from nnenergy.calibrate.bringup import TYPICAL_START_S, sweep_budget_s
    from nnenergy.features.cache import features_of
    from nnenergy.learn.transfer import fit_transfer, transferred

    root = REPO / "data" / profile
    bring, apps, ext = (_data(root / n) for n in (BRINGUP, APPS, EXTERNAL))
    tests = {k: v for k, v in (("apps", apps), ("external", ext)) if v is not None}
    rows = []
    merged = ds.Dataset(pd.concat([bring.models, *(d.models for d in [apps] if d)], ignore_index=True),
                        pd.concat([bring.layers, *(d.layers for d in [apps] if d)], ignore_index=True),
                        root / "merged-not-on-disk")
    bring_feats = features_of(bring)
    for pname in predictors:
        source, source_profile = sources[pname]
        row = {"target": profile, "predictor": pname, "n": {k: len(v.models) for k, v in tests.items()},
               "bringup_configs_total": len(bring.models), "methods": {}}

        def add(method, preds: dict, **extra):
            row["methods"][method] = {k: errors(measured(tests[k]), p) for k, p in preds.items()} | extra

        add("none", {k: totals(source, d) for k, d in tests.items()})
        for m in minutes:
            budget = sweep_budget_s(m, TYPICAL_START_S, 4) / 60
            ids = set(bring.models.loc[bring.models["block"].isin(blocks_within(root / BRINGUP, budget)), "config_id"])
            if not ids:
                continue
            b = subset(bring, ids)
            keep = bring.layers["config_id"].isin(ids).to_numpy()
            feats, y = bring_feats[keep], targets_of(bring.layers)[keep]
            t0 = time.perf_counter()
            speed, _ = fit_transfer(source, feats, y, b.models, methods=("speed",))
            tr, held = fit_transfer(source, feats, y, b.models)
            fit_s = time.perf_counter() - t0
            extra = {"configs": len(ids), "architectures": int(b.models["architecture"].nunique()),
                     "sweep_budget_min": round(budget, 2)}
            add(f"speed {m:g} min", {k: totals(transferred(source, speed, {}), d) for k, d in tests.items()},
                ratio=round(speed.whole_ratio[0], 3), **extra)
            add(f"bring-up {m:g} min", {k: totals(transferred(source, tr, {}), d) for k, d in tests.items()},
                chosen=tr.method, fallback=tr.fallback, cv={k: round(v, 2) for k, v in tr.cv.items()},
                fit_seconds=round(fit_s, 1), **extra)
        size = size_calibrated(source, source_profile, root, tests)
        if size:
            row["methods"]["size (panel)"] = size
        row["methods"]["ceiling"] = ceiling(pname, merged, ext)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| target | predictor | method | (a) apps RMSPE / ±10% | (b) external RMSPE / ±10% | note |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        for method, res in r["methods"].items():
            cell = lambda k: (f"{res[k]['rmspe']:.1f} / {res[k]['within10']:.0f}" if k in res else "–")  # noqa: E731
            note = ""
            if "chosen" in res:
                note = f"{res['chosen']}{' (fallback)' if res['fallback'] else ''}, {res['configs']} configs"
            elif "ratio" in res:
                note = f"ratio {res['ratio']:.2f}, {res['configs']} configs"
            lines.append(f"| {r['target']} | {r['predictor']} | {method} | {cell('apps')} | {cell('external')} "
                         f"| {note} |")
    return "\n".join(lines)


def log_mlflow(rows: list[dict], tracking_uri: str) -> None:
    import mlflow

    from nnenergy import tracking

    tracking.setup(tracking_uri, "nnenergy-transfer")
    for r in rows:
        with mlflow.start_run(run_name=f"{r['target']}-{r['predictor']}"):
            mlflow.set_tags({"target": r["target"], "predictor": r["predictor"], "source": SOURCE})
            for method, res in r["methods"].items():
                key = method.replace(" ", "_").replace("(", "").replace(")", "")
                for test in ("apps", "external"):
                    if test in res:
                        mlflow.log_metrics({f"{key}.{test}_rmspe": res[test]["rmspe"],
                                            f"{key}.{test}_within10": res[test]["within10"]})
            mlflow.log_dict(r, "transfer_result.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=SOURCE, help="the source profile (its `space` trains the source predictor)")
    ap.add_argument("--targets", default="", help="comma-separated target profiles (default: every profile with a "
                                                  f"{BRINGUP} set)")
    ap.add_argument("--predictors", default="rf,poly")
    ap.add_argument("--minutes", default="1,10")
    ap.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args(argv)
    from nnenergy.paths import cache_dir

    data_root = REPO / "data"
    targets = args.targets.split(",") if args.targets else sorted(
        p.name for p in data_root.iterdir() if (p / BRINGUP / "models.parquet").exists() and p.name != args.source)
    src = _data(data_root / args.source / "space")
    cache = cache_dir() / "transfer"
    sources = {}
    for name in args.predictors.split(","):
        t0 = time.perf_counter()
        sources[name] = (train_source(name, src, cache), args.source)
        print(f"source {name} on {args.source}: {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for t in targets:
        rows += run_target(t, args.predictors.split(","), [float(m) for m in args.minutes.split(",")], sources, cache)
    RESULTS.write_text(json.dumps({"source": args.source, "rows": rows}, indent=1))
    print(table(rows))
    if not args.no_mlflow:
        log_mlflow(rows, args.tracking_uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
