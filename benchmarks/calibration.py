"""Calibration benchmark: predict a CPU the predictor never saw from a one-minute panel.

1. `cross-cpu`: a predictor trained on another profile's data (`--source`, default the Intel Xeon
   dataset) predicts the keras.applications configurations measured on THIS machine's profile
   (its `space` dataset): error before calibration, then after `nnenergy.calibrate` fitted on the
   panel alone (the panel holds no keras.applications model).
2. `one-core`: run under `taskset -c 0` with `--measure-apps N`: measures N keras.applications
   configurations on one core here (a profile of its own), calibrates this machine's two-core
   predictor to it with the panel, and reports before/after.

    .venv/bin/python benchmarks/calibration.py                           # cross-cpu (idle machine)
    .venv/bin/python benchmarks/calibration.py --source data/<this profile>/space --save /tmp/p.joblib
    taskset -c 0 .venv/bin/python benchmarks/calibration.py --predictor /tmp/p.joblib --measure-apps 12
(`--without-source keras.applications` with `--save`: the targets' architectures unseen as well.)
Results append to benchmarks/calibration_log.jsonl; the README quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "calibration_log.jsonl"
APPS = ["MobileNetV2", "ResNet50", "EfficientNetB0", "DenseNet121", "VGG16", "InceptionV3", "Xception",
        "MobileNetV3Small", "ResNet50V2", "EfficientNetV2B0", "ConvNeXtTiny", "NASNetMobile"]


class _Pyfunc:
    """A fitted layer-wise predictor behind the pyfunc's `predict(layers) -> rows` interface."""

    def __init__(self, predictor):
        from nnenergy.learn.pyfunc import predict_frame

        self.predictor = predictor
        self.predict = partial(predict_frame, predictor)


def train_rf(dataset: Path, without_source: str | None = None):
    """An rf predictor of `dataset`; `without_source` (e.g. keras.applications) leaves those rows out,
    so that calibration is judged on architectures the predictor never saw, as well as new hardware."""
    from sklearn.ensemble import RandomForestRegressor

    from nnenergy import dataset as ds
    from nnenergy.features.layer_features import layer_features
    from nnenergy.learn.layerwise import LayerwisePredictor
    from nnenergy.schema import SOURCES

    data = ds.load(dataset)
    if without_source:
        keep = data.models["source"] != without_source
        ids = data.models.loc[keep, "config_id"]
        data = ds.Dataset(data.models[keep], data.layers[data.layers["config_id"].isin(ids)], data.path)
    pred = LayerwisePredictor(partial(RandomForestRegressor, n_estimators=40, min_samples_leaf=2, max_features=0.7,
                                      n_jobs=2, random_state=0), max_rows_per_kind=30000)
    pred.fit(layer_features(data.layers), data.layers[list(SOURCES["incontext"])].to_numpy(float), data.models)
    return pred, data


def _errors(measured, predicted) -> dict:
    from nnenergy.evaluate import metrics

    return metrics.summary(measured, predicted)


def measure_apps(n: int, seed: int = 0) -> list[dict]:
    """N keras.applications configurations measured here with the interleaved protocol."""
    from nnenergy import zoo
    from nnenergy.describe import describe_layers
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.meter import EnergyMeter
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import inference_call, reference_call, set_threads
    from nnenergy.measure.sweep_spec import Threads

    set_threads(Threads())  # as the sweep and the panel: before TensorFlow runs anything
    rng = random.Random(seed)
    configs = [(a, rng.choice([96, 128, 160]), rng.choice([1, 2, 4, 8])) for a in APPS[:n]]
    calls, tables = {}, {}
    for arch, size, batch in configs:
        built = zoo.build(arch, size)
        cid = f"{arch}|{size}|{batch}"
        calls[cid] = inference_call(built.model, built.input_shape, batch)
        tables[cid] = describe_layers(built.model, batch, cid)
    with MeasurementLock(wait_s=600):
        res, _ = InterleavedMeasurer(EnergyMeter(), ProtocolSettings(rounds=2, windows=2), reference_call()).run(calls)
    return [{"config_id": c, "measured_energy_j": r.energy_raw_j, "table": tables[c]} for c, r in res.items()]


def evaluate(pyfunc, targets, cal) -> dict:
    import pandas as pd

    table = pd.concat([t["table"] for t in targets], ignore_index=True)
    out = pyfunc.predict(table)
    after = cal.apply(out)
    tot_b, tot_a = (o[o["row"] == "total"].set_index("config_id")["energy_j"] for o in (out, after))
    measured = pd.Series({t["config_id"]: t["measured_energy_j"] for t in targets})
    return {"before": _errors(measured, tot_b.loc[measured.index]),
            "after": _errors(measured, tot_a.loc[measured.index]),
            "per_config": {c: {"measured": float(measured[c]), "before": float(tot_b[c]), "after": float(tot_a[c])}
                           for c in measured.index}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=str(REPO / "data/intel-xeon-avx512-2c/cpu"), help="dataset to train on")
    ap.add_argument("--measure-apps", type=int, default=0, help="measure this many apps configs here (one-core test)")
    ap.add_argument("--predictor", help="a joblib file: load it instead of training (--save writes one)")
    ap.add_argument("--save", help="train on --source, save the predictor to this file and stop")
    ap.add_argument("--without-source", help="train without the rows of this source (e.g. keras.applications: "
                                             "the targets' architectures are then unseen)")
    ap.add_argument("--source-panel", help="the source profile's panel.json (`nnenergy calibrate --record`): "
                                           "calibrate against measurements instead of predictions")
    args = ap.parse_args()
    import joblib

    from nnenergy.calibrate import FIT_ON, MODELS, calibrate_with_panel, measure_panel
    from nnenergy.measure.hardware import current_profile_name

    here = current_profile_name()
    if args.predictor:
        pred, source_profile, without = joblib.load(args.predictor)
    else:
        without = args.without_source
        pred, src = train_rf(Path(args.source), without)
        source_profile = str(src.models["profile"].iloc[0]) if "profile" in src.models else "intel-xeon-avx512-2c"
        if args.save:  # train on two cores, measure later under `taskset -c 0` without retraining there
            joblib.dump((pred, source_profile, without), args.save)
            print(f"saved {source_profile} predictor to {args.save}")
            return
    pyfunc = _Pyfunc(pred)
    if args.measure_apps:  # the targets are measured now, in this (possibly taskset) process
        targets = measure_apps(args.measure_apps)
    else:  # the targets are this profile's measured keras.applications configurations
        from nnenergy import dataset as ds
        from nnenergy.schema import INPUT_COLUMNS

        mine = ds.load(REPO / "data" / here / "space")
        apps = mine.models[mine.models["source"] == "keras.applications"]
        targets = [{"config_id": c, "measured_energy_j": float(e),
                    "table": mine.layers.loc[mine.layers["config_id"] == c, INPUT_COLUMNS]}
                   for c, e in zip(apps["config_id"], apps["energy_raw_j"])]
    source_panel = json.loads(Path(args.source_panel).read_text()) if args.source_panel else None
    t0 = time.perf_counter()
    panel = measure_panel()  # measured once; each fitting method below uses the same measurements
    panel_seconds = time.perf_counter() - t0
    for fit_on, model in [(f, m) for m in MODELS for f in FIT_ON]:
        cal = calibrate_with_panel(pyfunc, source_profile, source_panel=source_panel, fit_on=fit_on, panel=panel,
                                   model=model)
        res = evaluate(pyfunc, targets, cal)
        record = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "target_profile": here,
                  "source_profile": source_profile, "source_dataset": args.predictor or args.source,
                  "trained_without": without,
                  "n_targets": len(targets), "panel_seconds": panel_seconds,
                  "calibration": {k: getattr(cal, k) for k in (
                      "method", "fit_on", "model", "size_params", "speed_ratio", "spread", "energy_factors",
                      "panel_error_before", "panel_error_after", "seconds")},
                  **res}
        with LOG.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps({k: record[k] for k in ("target_profile", "source_profile", "n_targets", "calibration",
                                                  "before", "after")}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
