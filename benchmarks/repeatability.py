"""Repeatability benchmark: how much does the label of one configuration move between runs?

A fixed panel of keras.applications configurations (about 5 ms to 500 ms per pass) is measured
in one process by both protocols:
- `before`: the first release's — all windows of one configuration back to back, the median;
- `after`: interleaved rounds beside the reference model (nnenergy.measure.protocol), every
  statistic raw and normalised by the round's speed index.
Each run appends one line to `benchmarks/repeatability_log.jsonl` (kept in the repo, so drift
across sessions and days stays visible). `--report` computes run-to-run RMSPE of each
configuration against its median across runs, within a session (one machine boot) and across
sessions, writes the table and a drift plot, and logs both to MLflow.

    .venv/bin/python benchmarks/repeatability.py            # one run (about a minute; idle machine!)
    .venv/bin/python benchmarks/repeatability.py --report   # the table and the plot
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "repeatability_log.jsonl"
OUT = REPO / "benchmarks" / "repeatability"
# (architecture, input size, batch): spans ~5 ms to ~500 ms per pass on these 2-core VMs.
PANEL = [
    ("MobileNetV3Small", 96, 1), ("MobileNetV2", 96, 1), ("EfficientNetB0", 128, 1), ("DenseNet121", 96, 2),
    ("ResNet50", 128, 2), ("InceptionV3", 160, 2), ("Xception", 128, 4), ("ResNet101", 160, 4),
    ("VGG16", 160, 4), ("ConvNeXtTiny", 160, 2),
]
BEFORE = dict(warmup=2, min_seconds=0.25, min_passes=2, min_windows=3, max_windows=5, tolerance=0.05)


def boot_id() -> str:
    p = Path("/proc/sys/kernel/random/boot_id")
    return p.read_text().strip() if p.exists() else "unknown"


def measure_once() -> dict:
    from omegaconf import OmegaConf

    from nnenergy.measure.hardware import current_profile
    from nnenergy.measure.meter import EnergyMeter, MeterSettings
    from nnenergy.measure.progress import canonical_reference
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import built_call, reference_call, set_threads
    from nnenergy.measure.sweep_spec import Threads

    # The sweep's own settings are the ones benchmarked.
    base = OmegaConf.to_container(OmegaConf.load(REPO / "conf/sweep/_measurement.yaml"), resolve=False)
    threads = set_threads(Threads(**base["threads"]))
    settings = ProtocolSettings(**base["protocol"])
    meter = EnergyMeter()
    ref = reference_call()
    calls = {}
    for arch, size, batch in PANEL:
        calls[f"{arch}|{size}|{batch}"] = built_call(arch, size, batch)
    # Throw-away first measurement: a fresh process reads high on its first model.
    for _ in range(5):
        ref()
    t0 = time.perf_counter()
    before = {}
    for k in calls:  # the first release's way: one configuration after the other
        before[k] = meter.measure(calls[k], MeterSettings(**BEFORE)).energy_j
    t_before = time.perf_counter() - t0
    profile = current_profile().name
    canonical_file = REPO / "data" / profile / "reference.json"
    canonical = json.loads(canonical_file.read_text()) if canonical_file.exists() else None
    t0 = time.perf_counter()
    measurer = InterleavedMeasurer(meter, settings, ref, canonical, seed=random.randrange(1 << 16))
    results, ref_series = measurer.run(calls)
    t_after = time.perf_counter() - t0
    canonical = canonical or canonical_reference(canonical_file, ref_series, profile)
    return {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "boot_id": boot_id(),
        # The working session (scripts/measure_session.sh sets it; else the machine boot): runs of one
        # session share a machine state, runs of two show drift across hours or days.
        "session": os.environ.get("NNENERGY_SESSION") or boot_id(),
        "profile": profile,
        "threads": threads,
        "protocol": settings.__dict__,
        "canonical_reference_j": canonical["energy_j"],
        "seconds": {"before": t_before, "after": t_after},
        "contended_windows": measurer.contended_total,
        "speed_index": [v / canonical["energy_j"] for v in ref_series.per_round("energy_j", "min")],
        "configs": {k: {"before_median": before[k],
                        "latency_s": results[k].latency_raw_s,
                        "raw": results[k].stats_raw,
                        "normalised": results[k].stats_normalised} for k in calls},
    }


def _rmspe(values: list[float]) -> float:
    med = statistics.median(values)
    return (statistics.fmean(((v - med) / med) ** 2 for v in values)) ** 0.5 * 100


def methods(run: dict) -> dict[str, dict[str, float]]:
    """Every way a run labels each configuration: method name -> config -> joules."""
    out = {"before (back-to-back, median)": {k: c["before_median"] for k, c in run["configs"].items()}}
    for kind in ("raw", "normalised"):
        for stat in next(iter(run["configs"].values()))[kind]:
            out[f"after, {stat}, {kind}"] = {k: c[kind][stat] for k, c in run["configs"].items()}
    return out


def report(profile: str | None = None, log_mlflow: bool = True) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    from nnenergy.measure.hardware import current_profile

    profile = profile or current_profile().name
    runs = [r for r in runs if r["profile"] == profile]
    if len(runs) < 2:
        return f"{len(runs)} run(s) of profile {profile}: need at least 2"
    by_method: dict[str, list[dict]] = {}
    for r in runs:
        for name, vals in methods(r).items():
            by_method.setdefault(name, []).append(vals)
    sessions = {}
    for i, r in enumerate(runs):
        sessions.setdefault(r.get("session") or r["boot_id"], []).append(i)
    rows = []
    for name, per_run in by_method.items():
        configs = per_run[0].keys()
        across = statistics.fmean(_rmspe([pr[c] for pr in per_run]) ** 2 for c in configs) ** 0.5
        within_sq = [_rmspe([per_run[i][c] for i in idx]) ** 2
                     for idx in sessions.values() if len(idx) >= 2 for c in configs]
        within = statistics.fmean(within_sq) ** 0.5 if within_sq else float("nan")
        rows.append((name, within, across))
    span_h = (datetime.fromisoformat(runs[-1]["started_at"]) - datetime.fromisoformat(runs[0]["started_at"]))
    lines = [f"Profile `{profile}`: {len(runs)} runs in {len(sessions)} session(s) over "
             f"{span_h.total_seconds() / 3600:.1f} h, {len(PANEL)} configurations "
             f"({min(c['latency_s'] for r in runs for c in r['configs'].values()) * 1e3:.1f}–"
             f"{max(c['latency_s'] for r in runs for c in r['configs'].values()) * 1e3:.0f} ms per pass).",
             "", "| labelling | run-to-run RMSPE within a session | across sessions (all runs) |", "|---|---|---|"]
    for name, within, across in sorted(rows, key=lambda r: r[2]):
        lines.append(f"| {name} | {within:.1f}% | {across:.1f}% |")
    text = "\n".join(lines)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{profile}.md").write_text(text + "\n")
    # Drift plot: each run's label / the configuration's median across runs, over time.
    fig, ax = plt.subplots(figsize=(8, 4))
    times = [datetime.fromisoformat(r["started_at"]) for r in runs]
    for name, style in (("before (back-to-back, median)", "o-"), ("after, round_min_median, raw", "s--"),
                        ("after, round_min_median, normalised", "^-")):
        per_run = by_method.get(name)
        if not per_run:
            continue
        meds = {c: statistics.median(pr[c] for pr in per_run) for c in per_run[0]}
        devs = [statistics.median(pr[c] / meds[c] - 1 for c in meds) * 100 for pr in per_run]
        ax.plot(times, devs, style, label=name)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("median deviation from the configuration's median (%)")
    ax.set_title(f"Run-to-run drift of the panel, {profile}")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    png = OUT / f"{profile}_drift.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    if log_mlflow:
        import mlflow

        from nnenergy import tracking

        tracking.setup(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"), "nnenergy-benchmarks")
        with mlflow.start_run(run_name=f"repeatability-{profile}"):
            mlflow.set_tags({"profile": profile, "benchmark": "repeatability"})
            for name, within, across in rows:
                key = name.replace(",", "").replace("(", "").replace(")", "").replace(" ", "_")
                mlflow.log_metrics({f"{key}.within_rmspe": within, f"{key}.across_rmspe": across})
            mlflow.log_artifact(str(png), "plots")
            mlflow.log_artifact(str(OUT / f"{profile}.md"))
            mlflow.log_artifact(str(LOG))
    return text


def datasets_report(root: Path = REPO / "data", out: Path = OUT) -> str:
    """The measure-twice checks the sweeps record in every dataset (`measure.remeasure`): per dataset, its
    protocol, how its labels repeat >= 20 min apart within a session, and what they cost per configuration."""
    import pandas as pd

    from nnenergy.measure import datasheet, remeasure

    lines = ["| dataset | protocol | configurations | pairs | minutes apart | RMS % | within ±3% | within ±5% "
             "| configurations per hour |", "|---|---|---|---|---|---|---|---|---|"]
    for folder in sorted(p.parent for p in root.glob("*/*/remeasure.json")):
        el = datasheet.dataset_elasticity(folder)
        pairs = datasheet.scaled_pairs(folder, el)
        a = remeasure.agreement(pairs, el)  # as the datasheet and training
        if not a["n"]:
            continue
        models = pd.read_parquet(folder / "models.parquet", columns=["protocol"])
        proto = json.loads(models["protocol"].dropna().iloc[-1]) if models["protocol"].notna().any() else {}
        how = (f"{proto.get('normalise', 'round')} {proto.get('statistic')}, "
               f"{proto.get('rounds')}x{proto.get('windows')} windows, {proto.get('visits', 1)} visit(s)")
        wall = sum(r["wall_time_s"] for r in json.loads((folder / "sessions.json").read_text()))
        per_hour = len(models) / wall * 3600 if wall else float("nan")
        lines.append(f"| {folder.parent.name}/{folder.name} | {how} | {len(models)} | {a['n']} | "
                     f"{a['minutes_apart_median']:.0f} | {a['rms_pct']:.1f} | {a['within3_pct']:.0f}% | "
                     f"{a['within5_pct']:.0f}% | {per_hour:.0f} |")
    text = "\n".join(lines)
    out.mkdir(exist_ok=True)
    (out / "datasets.md").write_text(
        "# Measure-twice checks of the datasets\n\nEach sweep measures a share of its configurations again "
        ">= 20 min later in the same session (`sweep.remeasure_share`); the RMS of second / first after the pairs' "
        "common factor. Configurations per hour: the sweep's wall time over all its runs (layers traced in "
        "context and isolated samples included).\n\n" + text + "\n")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", action="store_true", help="summarise the log instead of measuring")
    ap.add_argument("--profile", help="profile to report (default: this machine's)")
    ap.add_argument("--datasets", action="store_true",
                    help="report the measure-twice checks recorded in every dataset (data/*/*/remeasure.json)")
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args()
    if args.datasets:
        print(datasets_report())
        return
    if args.report:
        print(report(args.profile, not args.no_mlflow))
        return
    try:
        from nnenergy.measure.lock import MeasurementLock
        lock = MeasurementLock(wait_s=600)
    except ImportError:  # an older checkout measuring (scripts/measure_session.sh with NNENERGY_SRC)
        from contextlib import nullcontext as lock
        lock = lock()
    with lock:
        run = measure_once()
    with LOG.open("a") as fh:
        fh.write(json.dumps(run) + "\n")
    print(json.dumps({"started_at": run["started_at"], "seconds": run["seconds"], "speed_index": run["speed_index"],
                      "contended_windows": run["contended_windows"]}))


if __name__ == "__main__":
    sys.exit(main())
