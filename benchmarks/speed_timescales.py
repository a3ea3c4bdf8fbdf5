"""The speed's time scales: can any reading of <= 3 s tell the speed of the minute that follows it?

The drift benchmark scores the speed probe against a many-model ratio measured right after it, one pair per run.
This benchmark asks the question under it, on one continuous record: the reference network (the probe's) and three
networks (ResNet50 128 px batch 1, MobileNetV2 128 px batch 4, VGG16 96 px batch 1: ~25-40 ms per pass) run in
turn, window after window (0.1-0.2 s each), for `--seconds` (default 480), under the host's measurement lock,
timed only: on these CPUs CodeCarbon *estimates* the power from the CPU load, so a window's energy per pass is its
latency times a near-constant power (the speed index of energy and of latency differ by 0.8% RMS over the EPYC
Zen 4's probes). From the record it reports:
- how much each series moves at block scales of ~1 s to ~20 s, and how closely the networks move with the
  reference (correlation of their block medians);
- every 5 s, a *probe* (the first 2.4 s: the reference's windows, or the networks' own) against the *pass* that
  follows (the median over the networks of their median over the next 20, 60 or 120 s, each relative to its median
  over the record): the regression slope, the correlation and the RMS left, next to the pass's own spread around
  the record's median (what an estimate that knew the record's level, and nothing of the moment, would leave) and
  to the reference read *inside* the pass (what the sweeps' rounds normalise by).
Each run writes its windows to `benchmarks/speed_timescales/<profile>-<time>.json` and logs its summary to MLflow
(experiment `nnenergy-speed-timescales`); `--report` writes `benchmarks/speed_timescales.md` from every record.

    scripts/measure-exclusively .venv/bin/python benchmarks/speed_timescales.py   # 8 min; idle machine
    .venv/bin/python benchmarks/speed_timescales.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "benchmarks" / "speed_timescales"
REPORT = REPO / "benchmarks" / "speed_timescales.md"
# kind -> (architecture, input size, batch, window seconds); R is the probe's reference network
NETWORKS = {"A": ("ResNet50", 128, 1, 0.2), "B": ("MobileNetV2", 128, 4, 0.1), "C": ("VGG16", 96, 1, 0.2)}
REFERENCE_WINDOW_S = 0.1
PROBE_S = 2.4  # the probe's windows fit in its 3 s with the reference built
PASSES_S = (20, 60, 120)
STEP_S = 5.0
BLOCKS = (1, 3, 10, 30)  # cycles per block (a cycle: one window of each kind, ~0.65 s)
LABEL_WINDOWS = (4, 12, 36, 72)  # a one-visit label of today's protocol has 4 windows, three visits 12
EXPONENTS = (0.0, 0.3, 0.45, 0.6, 1.0)
LABEL_MIN_APART_S = 20.0
LABEL_DRAWS = 2000


def measure(seconds: float) -> dict:
    """The record: [kind, seconds since start, latency per pass, passes] for each window, in turn R A B C."""
    from nnenergy.measure.hardware import current_profile_name
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.sweep import built_call
    from nnenergy.speed_windows import reference_fn, run_for

    calls = {"R": (reference_fn(), REFERENCE_WINDOW_S)}
    for kind, (arch, size, batch, window_s) in NETWORKS.items():
        calls[kind] = (built_call(arch, size, batch), window_s)
    for fn, _ in calls.values():
        for _ in range(3):  # a fresh call's first passes run slow
            fn()
    windows = []
    with MeasurementLock(wait_s=900):
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for kind, (fn, window_s) in calls.items():
                t = time.perf_counter()
                took, n = run_for(fn, window_s)
                windows.append([kind, round(t - t0, 4), took / n, n])
    return {"profile": current_profile_name(), "started_at": started, "seconds": seconds,
            "networks": {k: list(v) for k, v in NETWORKS.items()}, "windows": windows}


def _series(record: dict) -> tuple[dict, dict]:
    """Each kind's window times and log latencies relative to its median over the record."""
    t, logs = {}, {}
    for kind in "RABC":
        rows = [w for w in record["windows"] if w[0] == kind]
        t[kind] = np.array([w[1] for w in rows])
        v = np.log([w[2] for w in rows])
        logs[kind] = v - np.median(v)
    return t, logs


def block_table(record: dict) -> list[dict]:
    """Per block scale: each series' spread of block medians, and the networks' mean correlation with the
    reference and with each other."""
    _, logs = _series(record)
    n = min(len(v) for v in logs.values())
    cycle_s = record["windows"][-1][1] / max(n, 1)
    out = []
    for blk in BLOCKS:
        m = n // blk
        if m < 4:
            continue
        b = {k: np.array([np.median(v[i * blk:(i + 1) * blk]) for i in range(m)]) for k, v in logs.items()}
        corr = lambda x, y: float(np.corrcoef(b[x], b[y])[0, 1])  # noqa: E731
        out.append({"block_s": round(blk * cycle_s, 1), "blocks": m,
                    "sd_pct": {k: round(100 * float(np.std(v)), 1) for k, v in b.items()},
                    "corr_with_reference": round(float(np.mean([corr(k, "R") for k in NETWORKS])), 2),
                    "corr_between_networks": round(float(np.mean([corr(x, y) for x, y in ("AB", "AC", "BC")])), 2)})
    return out


def probe_table(record: dict) -> list[dict]:
    """Every `STEP_S`, a probe of `PROBE_S` against the pass that follows, for each pass length."""
    t, logs = _series(record)
    end = min(v[-1] for v in t.values())
    out = []
    for pass_s in PASSES_S:
        rows = []
        for s in np.arange(0.0, end - pass_s - PROBE_S, STEP_S):
            probe = {k: logs[k][(t[k] >= s) & (t[k] < s + PROBE_S)] for k in logs}
            inside = {k: logs[k][(t[k] >= s + PROBE_S) & (t[k] < s + PROBE_S + pass_s)] for k in logs}
            rows.append({"pass": np.median([np.median(inside[k]) for k in NETWORKS]),
                         "probe: the reference": np.median(probe["R"]),
                         "probe: the networks themselves": np.median([np.median(probe[k]) for k in NETWORKS]),
                         "the reference read inside the pass": np.median(inside["R"])})
        if len(rows) < 6:
            continue
        y = np.array([r["pass"] for r in rows])
        ests = {}
        for name in [k for k in rows[0] if k != "pass"]:
            x = np.array([r[name] for r in rows])
            slope = float(x @ y / (x @ x))
            ests[name] = {"slope": round(slope, 2), "corr": round(float(np.corrcoef(x, y)[0, 1]), 2),
                          "rms_left_pct": round(100 * float(np.std(y - slope * x)), 1),
                          "one_for_one_pct": round(100 * float(np.std(y - x)), 1)}
        out.append({"pass_s": pass_s, "pairs": len(rows), "pass_sd_pct": round(100 * float(np.std(y)), 1),
                    "estimators": ests})
    return out


def label_table(record: dict) -> list[dict]:
    """Issue 30 on the same record: a network's label made twice from `n` of its windows (drawn within a stretch
    of 4n cycles, as a block's rounds spread them), >= 20 s apart, each window divided by the reference window
    of its cycle to `exponent` (0: not normalised), read by q25: the RMS of the two labels' log ratio and the
    shares within +-3% and +-5%, over the three networks."""
    times, logs = _series(record)
    n = min(len(v) for v in logs.values())
    t = times["R"][:n]
    rng = np.random.default_rng(0)
    out = []
    for count in LABEL_WINDOWS:
        span = min(n - 1, 4 * count)
        draws = []
        while len(draws) < LABEL_DRAWS:
            s1, s2 = rng.integers(0, n - span, 2)
            if abs(t[s1] - t[s2]) >= LABEL_MIN_APART_S:
                draws.append([np.sort(rng.choice(np.arange(s, s + span), count, replace=False)) for s in (s1, s2)])
        for b in EXPONENTS:
            def label(k, i):
                return np.percentile(logs[k][i] - b * logs["R"][i], 25)
            d = np.array([[label(k, i) - label(k, j) for k in NETWORKS] for i, j in draws]).ravel()
            out.append({"windows": count, "exponent": b, "rms_pct": round(100 * float(np.sqrt(np.mean(d ** 2))), 1),
                        "within3_pct": round(100 * float(np.mean(np.abs(d) < np.log(1.03)))),
                        "within5_pct": round(100 * float(np.mean(np.abs(d) < np.log(1.05))))})
    return out


def summary(record: dict) -> dict:
    return {"profile": record["profile"], "started_at": record["started_at"], "seconds": record["seconds"],
            "blocks": block_table(record), "probes": probe_table(record), "labels": label_table(record)}


def report() -> str:
    lines = ["# The speed's time scales (`benchmarks/speed_timescales.py`)", "",
             "Generated from `benchmarks/speed_timescales/*.json`. Log latencies relative to each series' median "
             "over its record; R = the probe's reference network, A/B/C = ResNet50 128 px b1, MobileNetV2 128 px "
             "b4, VGG16 96 px b1.", ""]
    for path in sorted(RECORDS.glob("*.json")):
        s = summary(json.loads(path.read_text()))
        lines += [f"## {s['profile']}, {s['started_at']} ({s['seconds']:.0f} s)", "",
                  "| block | blocks | spread of block medians: R / A / B / C | networks with R: corr | networks "
                  "with each other: corr |", "|---|---|---|---|---|"]
        for b in s["blocks"]:
            sd = b["sd_pct"]
            lines.append(f"| {b['block_s']} s | {b['blocks']} | {sd['R']}% / {sd['A']}% / {sd['B']}% / {sd['C']}% "
                         f"| {b['corr_with_reference']} | {b['corr_between_networks']} |")
        lines += ["", f"A probe of {PROBE_S} s every {STEP_S:g} s against the pass that follows it (the networks' "
                  "median): slope, correlation, the RMS left after the slope, and one for one.", "",
                  "| pass | pairs | pass's spread around the record's median | estimator | slope | corr | RMS left "
                  "| one for one |", "|---|---|---|---|---|---|---|---|"]
        for p in s["probes"]:
            for name, e in p["estimators"].items():
                lines.append(f"| {p['pass_s']} s | {p['pairs']} | {p['pass_sd_pct']}% | {name} | {e['slope']} | "
                             f"{e['corr']} | {e['rms_left_pct']}% | {e['one_for_one_pct']}% |")
        lines += ["", "A label made twice from the record (issue 30): `windows` of a network, each divided by its "
                  "cycle's reference window to `exponent`, read by q25, twice >= 20 s apart (all three networks).",
                  "", "| windows per label | exponent | RMS of the two labels' ratio | within ±3% | within ±5% |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['windows']} | {r['exponent']:g} | {r['rms_pct']}% | {r['within3_pct']}% | "
                  f"{r['within5_pct']}% |" for r in s["labels"]]
        lines.append("")
    lines.append("The pairs overlap (a pass every 5 s), so they are not independent: read the slopes and "
                 "correlations, not a standard error from their count.")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=480.0)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--tracking-uri", default=None)
    a = ap.parse_args()
    if not a.report:
        if not a.seconds >= 3 * max(PASSES_S):
            print(f"--seconds must be >= {3 * max(PASSES_S)} (three of the longest pass), not {a.seconds:g}",
                  file=sys.stderr)
            return 2
        record = measure(a.seconds)
        RECORDS.mkdir(parents=True, exist_ok=True)
        path = RECORDS / f"{record['profile']}-{record['started_at'][:16].replace(':', '')}.json"
        path.write_text(json.dumps(record))
        s = summary(record)
        import mlflow

        from nnenergy import tracking

        tracking.setup(tracking.store_uri(a.tracking_uri), "nnenergy-speed-timescales")
        with mlflow.start_run(run_name=f"timescales-{record['profile']}-{record['started_at'][:16]}"):
            mlflow.set_tags({"profile": record["profile"]})
            mlflow.log_metrics({f"pass{p['pass_s']}_{key}_{stat}": v for p in s["probes"]
                                for name, e in p["estimators"].items()
                                for key in [name.split(":")[-1].strip().replace(" ", "_")]
                                for stat, v in e.items()} | {f"pass{p['pass_s']}_sd_pct": p["pass_sd_pct"]
                                                             for p in s["probes"]})
            mlflow.log_artifact(str(path))
    REPORT.write_text(report())
    print(REPORT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
