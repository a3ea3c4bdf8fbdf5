"""Drift benchmark: does `nnenergy predict` state its figures at the machine's speed now?

On the machine it runs on, with the predictor `predict` uses here (`champion-<profile>`, trained
here or transferred by `nnenergy calibrate`):
1. probe the speed (`nnenergy.speed.probe`, ~2.5 s);
2. measure >= 12 keras.applications configurations now (the sweep's protocol, raw: what a user
   would measure);
3. predict them with speed `canonical` (no scaling), `last` (the newest reading >= 1 h old in this
   host's history, when there is one) and `now` (the probe of step 1);
4. report RMSPE and the share within +-10% for each, and the probe's agreement: its ratio against
   the many-model ratio (median measured / predicted at the canonical speed).
Each run appends to `benchmarks/drift_log.jsonl` and logs to MLflow (experiment `nnenergy-drift`).
Run it at >= 2 times >= 1 h apart; `--report` writes the table (`benchmarks/drift.md`).

    .venv/bin/python benchmarks/drift.py            # ~3 min; idle machine
    .venv/bin/python benchmarks/drift.py --report
    .venv/bin/python benchmarks/drift.py --rescore  # past runs' measurements, re-predicted by today's predictor

`--rescore` measures nothing: it predicts the logged runs' configurations with the predictor `predict`
uses here now (speed `canonical`) and scores the runs' own measurements against it, with each run's own
probe and last reading applied as that predictor applies them (its canonical's elasticity), for the runs
read against the same canonical reference (`benchmarks/drift_rescored_<profile>.md`). The measurements predate the
predictor: an offline comparison of predictors on the same runs, beside the runs measured with it.

A predictor trained on the rows measured before a date (`python -m nnenergy.apps.train
measured_before=2026-12-07`, never registered; its run's model given as `--model-uri runs:/<id>/model`) is
scored on the runs measured on or after that date only (`benchmarks/drift_after_data.md`): the defaults'
recipe judged on days its data does not cover.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "drift_log.jsonl"
# (architecture, input size, batch): ~5 ms to ~400 ms per pass on these 2-core VMs.
CONFIGS = [("MobileNetV3Small", 96, 1), ("MobileNetV2", 96, 1), ("MobileNetV2", 160, 4), ("EfficientNetB0", 128, 1),
           ("DenseNet121", 96, 2), ("ResNet50", 128, 2), ("ResNet50", 224, 1), ("InceptionV3", 160, 2),
           ("Xception", 128, 2), ("VGG16", 128, 2), ("NASNetMobile", 96, 2), ("MobileNetV3Large", 128, 4)]
LAST_MIN_AGE_H = 1.0
OLD_PROBE_WARMUP_S = 0.3  # readings before 2026-12-06 do not record their warm-up: it was this
TARGET_RMSPE, TARGET_WITHIN10 = 10, 70  # issue 29: the defaults' RMSPE and share within +-10%
MIN_RUNS_FOR_ERROR = 5
HISTORY_ESTIMATOR = "geometric mean of the probe and the median of the host's readings of the last 24 h"


def _applied(reading: float, el, latency_s=None):
    """What a prediction is multiplied by for a lone speed reading under elasticity `el`, at `latency_s` per pass
    (a number or an array; None: the pivot latency): `speed.Speed.factors`, the one definition."""
    from nnenergy import speed

    return speed.Speed("", reading, reading, None, "probe", None, 0.0, scaling=el).factors(latency_s)[0]


def _readings(profile: str, at: datetime, canon: dict, min_age_s: float = 0.0,
              max_age_s: float = float("inf")) -> list[dict]:
    """This host's readings of `profile` against the canonical reference `canon`, read between `max_age_s` and
    `min_age_s` before `at` (a reading without a time zone is UTC, as `nnenergy.speed` reads it), oldest
    first."""
    from nnenergy import speed
    from nnenergy.dataset import parse_utc

    aged = ((r, (at - parse_utc(r["read_at"])).total_seconds()) for r in speed.history(profile, canon))
    return [r for r, age in aged if 0 < age and min_age_s <= age <= max_age_s]


def _last_reading(profile: str, canon: dict) -> dict | None:
    old = _readings(profile, datetime.now(timezone.utc), canon, min_age_s=LAST_MIN_AGE_H * 3600)
    return old[-1] if old else None


def _median_speed_last_24h(profile: str, at: datetime, canon: dict) -> float | None:
    """The median speed index of this host's readings of the 24 h before `at`: kept in each run's log line,
    so the report's history-based estimator needs no host cache."""
    past = [r["speed_index"] for r in _readings(profile, at, canon, max_age_s=24 * 3600)]
    return statistics.median(past) if past else None


def measure_now(profile: str, canon: dict) -> dict:
    """The probe against the predictor's canonical reference `canon` (and a second one), then the configurations
    measured now (raw), under the measurement lock."""
    from nnenergy import speed
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.meter import EnergyMeter
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import built_call, reference_call
    from nnenergy.speed_windows import probe_windows

    last = _last_reading(profile, canon)
    past = _median_speed_last_24h(profile, datetime.now(timezone.utc), canon)
    reading = speed.record(profile, speed.probe(profile, canon=canon))  # takes the lock itself
    # A second probe right after it, in the same (now warm) process, not recorded: does the first probe of a
    # process read off (the EPYC Zen 4 of 2026-12-07: 1.88 and 1.21 first, ~0.85 after)? ~1.2 s. Each probe
    # takes the lock itself.
    second = speed.probe(profile, canon=canon)
    # A third, in context (each reference window after a window of a heavier load, as the sweeps read it): does an
    # idle process read the VM fast? On the EPYC Zen 4 (2026-12-08, 10 runs) it read what the first probe read.
    in_context = speed.probe(profile, canon=canon, context=True)
    calls = {f"{arch}|{size}|{batch}": built_call(arch, size, batch) for arch, size, batch in CONFIGS}
    from omegaconf import OmegaConf

    # The sweeps' own protocol: the raw labels are read as the training labels were.
    protocol = OmegaConf.to_container(OmegaConf.load(REPO / "conf/sweep/_measurement.yaml"))["protocol"]
    with MeasurementLock(wait_s=900):
        # Probe candidates for the study of issue 29 item 2, read once the models are built, just before their
        # pass: 2 s of the reference and 1 s of a memory-bound kernel, raw windows (scored offline against the
        # many-model ratio).
        candidates = probe_windows(seconds=2.0, kernel_seconds=1.0)
        res, _ = InterleavedMeasurer(EnergyMeter(), ProtocolSettings(**protocol), reference_call(),
                                     canonical=canon).run(calls)
    return {"probe": reading, "probe_second": second, "probe_context": in_context, "last": last,
            "probe_candidates": candidates,
            "history_median_24h": past,
            # the reference read inside the pass, round by round (each configuration's speed index)
            "inpass_speed_index": statistics.median(r.speed_index for r in res.values()),
            "inpass_indices": {k: r.speed_index for k, r in res.items()},
            "measured": {k: {"energy_j": r.energy_raw_j, "latency_s": r.latency_raw_s} for k, r in res.items()}}


def run_once(tracking_uri: str | None) -> dict:
    from nnenergy.measure.hardware import current_profile_name
    from nnenergy.predict.api import predict_many
    from nnenergy.predict.loading import load_predictor, machine_model_uri

    profile = current_profile_name()
    uri = machine_model_uri(tracking_uri)
    loaded = load_predictor(uri, tracking_uri)
    meta = loaded[0].metadata.metadata or {}
    if (meta.get("hardware") or {}).get("profile") != profile:
        raise SystemExit(f"the predictor here ({uri}) is not this machine's ({profile}): run `nnenergy calibrate`")
    from nnenergy import speed

    canon = meta.get("canonical_reference") or speed.canonical(profile)
    m = measure_now(profile, canon)
    names = list(m["measured"])
    args = [(n.split("|")[0], int(n.split("|")[1]), int(n.split("|")[2])) for n in names]
    stated = {"canonical": "canonical"}
    for mode, r in (("last", m["last"]), ("now", m["probe"])):
        if r is not None:  # the reading as `predict --speed last` would have used it then, and the probe now
            stated[mode] = speed.Speed(profile, r["speed_index"], r["latency_speed_index"], r["read_at"], mode,
                                       canon.get("measured_at"), 0.0)
    preds = {mode: [predict_many([a], batch_size=b, input_shape=(s, s, 3), model_uri=uri, tracking_uri=tracking_uri,
                                 speed=how, predictor=loaded)[0].energy_j for a, s, b in args]
             for mode, how in stated.items()}
    truth = [m["measured"][n]["energy_j"] for n in names]
    # Trained on this profile's own data, or transferred here by `nnenergy calibrate` (same alias either way).
    origin = "transferred" if "transferred" in str(meta.get("predictor", "")) else "trained here"
    out = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile, "predictor": uri,
           "origin": origin, "canonical": canon, "version": loaded[1].get("version"),
           "trained_on": f"{meta.get('predictor')} on {meta.get('dataset')}", "probe": m["probe"],
           "probe_second": m["probe_second"], "probe_context": m["probe_context"], "last": m["last"],
           "probe_candidates": m["probe_candidates"],
           "history_median_24h": m["history_median_24h"],
           "inpass_speed_index": m["inpass_speed_index"], "inpass_indices": m["inpass_indices"],
           "configs": names, "measured": truth,
           "predicted": preds}
    ratios = [t / p for t, p in zip(truth, preds["canonical"])]
    out["many_model_ratio"] = statistics.median(ratios)
    # What the predictions multiplied by, as `predict` applied the probe (its exponent, and the slow part of the
    # host's readings where the canonical's index is split): the median over the models of now / canonical.
    # (Until 2026-12-07 23:25 this was the index to the whole-index exponent, which a split index does not apply.)
    out["probe_factor"] = statistics.median(n / c for n, c in zip(preds["now"], preds["canonical"]))
    out["probe_agreement"] = out["probe_factor"] / out["many_model_ratio"] - 1
    out["metrics"] = {mode: _metrics(truth, p) for mode, p in preds.items()}
    return out


# a predictor trained on the rows measured before a date (`nnenergy train measured_before=...`), on the runs after it
RESCORED_AFTER_DATA = REPO / "benchmarks" / "drift_after_data.md"


def runs_to_rescore(runs: list[dict], profile: str, key: str, cut: str | None = None) -> list[dict]:
    """The logged runs a predictor trained on `profile` against the canonical reference `key` can be judged
    on: its own profile's, read against the same reference, and with `cut` (the predictor learnt only the
    rows measured before it) measured on or after it."""
    from nnenergy import speed
    from nnenergy.dataset import parse_utc

    since = parse_utc(cut) if cut else None
    return [r for r in runs if r["profile"] == profile and r.get("origin") == "trained here"
            and speed.canonical_key(r.get("canonical")) == key and (since is None or parse_utc(r["at"]) >= since)]


def rescore(tracking_uri: str | None, model_uri: str | None = None) -> str:
    """The logged runs on this profile and canonical, re-predicted by the current predictor (or `model_uri`;
    see the module)."""
    import numpy as np

    from nnenergy import speed
    from nnenergy.measure.hardware import current_profile_name
    from nnenergy.predict.api import predict_many
    from nnenergy.predict.loading import load_predictor, machine_model_uri

    profile = current_profile_name()
    uri = model_uri or machine_model_uri(tracking_uri)
    loaded = load_predictor(uri, tracking_uri)
    meta = loaded[0].metadata.metadata or {}
    canon = meta.get("canonical_reference")
    key, el = speed.canonical_key(canon), speed.elasticity(canon)
    runs = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    cut = meta.get("measured_before")
    runs = runs_to_rescore(runs, profile, key, cut)
    if not runs:
        return (f"no logged run of {profile} against this predictor's canonical reference ({key})"
                + (f" measured on or after {cut}, the end of its data" if cut else ""))
    cache: dict[str, tuple[float, float]] = {}  # energy and latency at the canonical speed
    for name in sorted({c for r in runs for c in r["configs"]}):
        a, s, b = name.split("|")
        p = predict_many([a], batch_size=int(b), input_shape=(int(s), int(s), 3), model_uri=uri,
                         tracking_uri=tracking_uri, speed="canonical", predictor=loaded)[0]
        cache[name] = p.energy_j, p.latency_s
    version = loaded[1].get("version")
    trained = f"{meta.get('predictor')} on {meta.get('dataset')}" + (f", rows measured before {cut}" if cut else "")
    label = f"version {version}" if version else uri
    lines = [f"# Past drift runs re-scored by {label} ({trained}, energy elasticity {el.energy:g}"
             f"{f', index split at ±{el.slow_window_min:g} min' if el.slow_window_min else ''})", "",
             *([f"Only the runs measured on or after {cut}: days the predictor's data does not cover.", ""] if cut
               else []),
             "Measured nothing: each run's logged measurements against today's predictor, each run's own probe (and "
             "last reading >= 1 h old) applied as this predictor applies it. Written by `benchmarks/drift.py "
             "--rescore`.", "",
             "| run (UTC) | measured with version | probe index (factor) | many-model ratio | probe / many - 1 | "
             "canonical: RMSPE, ±10% | last: RMSPE, ±10% | now: RMSPE, ±10% | perfect probe: RMSPE |",
             "|---" * 9 + "|"]
    agree, scored, pseudo = [], [], []
    for r in runs:
        truth = r["measured"]
        pred = [cache[c][0] for c in r["configs"]]
        sizes = np.array([cache[c][1] for c in r["configs"]])  # as `speed.apply` reads each model's exponent
        many = statistics.median(t / p for t, p in zip(truth, pred))
        factor = _applied(r["probe"]["speed_index"], el)
        agree.append(factor / many - 1)
        cells = {"canonical": _metrics(truth, pred),
                 "now": _metrics(truth, list(np.asarray(pred) * _applied(r["probe"]["speed_index"], el, sizes))),
                 "perfect": _metrics(truth, [p * many for p in pred])}
        if r.get("last"):
            cells["last"] = _metrics(truth, list(np.asarray(pred) * _applied(r["last"]["speed_index"], el, sizes)))
        scored.append({"metrics": cells})
        pseudo.append(r | {"many_model_ratio": many, "predicted": {"canonical": pred}})  # as this predictor saw it
        cell = lambda k: f"{cells[k]['rmspe']:.1f}%, {cells[k]['within10']:.0f}%" if k in cells else "n/a"  # noqa: E731
        lines.append(f"| {r['at'][:16]} | {r.get('version', '?')} | {r['probe']['speed_index']:.3f} ({factor:.3f}) | "
                     f"{many:.3f} | {100 * (factor / many - 1):+.1f}% | {cell('canonical')} | {cell('last')} | "
                     f"{cell('now')} | {cells['perfect']['rmspe']:.1f}% |")
    lines += ["", f"Probe agreement over the {len(agree)} runs: RMS {_rms(agree):.1f}%.",
              *_speed_mode_summary(scored, ("canonical", "last", "now", "perfect")), *_estimators(pseudo, canon)]
    text = "\n".join(lines) + "\n"
    # one file per profile: a host re-scores its own profile's runs only
    (RESCORED_AFTER_DATA if cut else REPO / "benchmarks" / f"drift_rescored_{profile}.md").write_text(text)
    return text


def _metrics(truth, pred) -> dict:
    from nnenergy.evaluate import metrics

    return {"rmspe": metrics.rmspe(truth, pred), "within10": metrics.within(truth, pred, 0.10), "n": len(truth)}


def report() -> str:
    runs = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    lines = ["| run (UTC) | profile | predictor | speed now (probe) | many-model ratio | probe / many - 1 | "
             "in-pass reference / many - 1 | canonical: RMSPE, ±10% | last (>= 1 h old): RMSPE, ±10% | "
             "now: RMSPE, ±10% |", "|---" * 10 + "|"]
    from nnenergy import speed

    for r in runs:
        cell = lambda k: (f"{r['metrics'][k]['rmspe']:.1f}%, {r['metrics'][k]['within10']:.0f}%"  # noqa: E731
                          if k in r["metrics"] else "n/a (no reading >= 1 h old)")
        inpass = r.get("inpass_speed_index")
        el = speed.elasticity(r.get("canonical"))  # as its predictor applied a reading
        inpass = f"{100 * (_applied(inpass, el) / r['many_model_ratio'] - 1):+.1f}%" if inpass else "n/a"
        factor = r.get("probe_factor", r["probe"]["speed_index"])
        # A split index's factor is logged as the predictions' median (`run_once`); else the power at the pivot,
        # where each model got its own exponent (a size term), or the one power applied.
        where = "median applied" if el.slow_window_min else "at 30 ms" if el.energy_per_decade else "applied"
        index = f"{r['probe']['speed_index']:.3f}" + (f" (×{factor:.3f} {where})" if
                                                     abs(factor - r["probe"]["speed_index"]) > 1e-9 else "")
        lines.append(f"| {r['at'][:16]} | {r['profile']} | {r.get('origin', '?')} | {index} | "
                     f"{r['many_model_ratio']:.3f} | {100 * r['probe_agreement']:+.1f}% | {inpass} | "
                     f"{cell('canonical')} | {cell('last')} | {cell('now')} |")
    # a transferred predictor's pairs measure its bias, not the probe; each profile is its own machine

    def canon_of(r: dict) -> dict | None:  # lines before 2026-12-07 were all on the profile's reference file
        return r.get("canonical") or speed.canonical(r["profile"])

    # One section per profile, canonical reference and registered version: each predictor has its own errors
    # (lines before 2026-12-07 record none: one section per profile and canonical for them).
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if r.get("origin") == "trained here":
            groups.setdefault((r["profile"], speed.canonical_key(canon_of(r)), r.get("version")), []).append(r)
    for (prof, _, _), home in sorted(groups.items(), key=lambda g: (g[0][0], g[1][0]["at"])):
        canon = canon_of(home[0])
        reference_date = (canon or {}).get("measured_at", "?")[:10]
        trained_on = sorted({r.get("trained_on", "?") for r in home})
        lines.append(f"\n### {prof} (canonical reference of {reference_date}, read by "
                     f"{(canon or {}).get('statistic', 'round_min_median')}; {home[0]['at'][:16]} to "
                     f"{home[-1]['at'][:16]}; predictor {', '.join(trained_on)}"
                     + (f", version {home[0]['version']}" if home[0].get("version") else "") + ")\n")
        for warm in sorted({_warmup(r) for r in home}):
            pairs = [r["probe_agreement"] for r in home if _warmup(r) == warm]
            lines.append(f"Probe agreement ({warm:g} s of warm-up) over the {len(pairs)} runs with a predictor trained "
                         f"here: RMS {_rms(pairs):.1f}% (target <= 3% over >= 10 pairs).")
        error = _sampling_error(home)
        lines.append("The many-model ratio's own sampling error (the labels' noise and each model's own speed "
                     f"moves, in a median of {len(home[0]['configs'])} per-model ratios): "
                     + (f"{error:.1f}%." if error is not None else f"n/a (fewer than {MIN_RUNS_FOR_ERROR} runs)."))
        lines += _speed_mode_summary(home)
        lines += _estimators(home, canon)
    text = "\n".join(lines) + "\n"
    (REPO / "benchmarks" / "drift.md").write_text(text)
    return text


def _warmup(run: dict) -> float:
    return run["probe"].get("warmup_s", OLD_PROBE_WARMUP_S)


def _speed_mode_summary(runs: list[dict], modes=("canonical", "last", "now")) -> list[str]:
    """Each speed mode's RMSPE and share within +-10% over the runs (each a dict with its `metrics` per mode):
    median and range."""
    out = ["", "| speed | runs | RMSPE: median (range) | within ±10%: median (range) | "
           f"runs meeting ≤ {TARGET_RMSPE}% and ≥ {TARGET_WITHIN10}% |",
           "|---|---|---|---|---|"]
    for mode in modes:
        ms = [r["metrics"][mode] for r in runs if mode in r["metrics"]]
        if not ms:
            continue
        e, w = sorted(m["rmspe"] for m in ms), sorted(m["within10"] for m in ms)
        ok = sum(m["rmspe"] <= TARGET_RMSPE and m["within10"] >= TARGET_WITHIN10 for m in ms)
        out.append(f"| {mode} | {len(ms)} | {statistics.median(e):.1f}% ({e[0]:.1f}-{e[-1]:.1f}%) | "
                   f"{statistics.median(w):.0f}% ({w[0]:.0f}-{w[-1]:.0f}%) | {ok} of {len(ms)} |")
    return out


def _sampling_error(runs: list[dict]) -> float | None:
    """The standard error of a run's many-model ratio (a median of per-model ratios), RMS over the runs:
    each model's ratio over its median over the runs (the predictor's error on that model is the same
    every run, so it does not move the median), sqrt(pi/2) × their scatter ÷ √n. None with too few runs
    to tell a model's own error from its noise."""
    if len(runs) < MIN_RUNS_FOR_ERROR:
        return None
    per: dict[str, list[float]] = {}
    for r in runs:
        for name, t, p in zip(r["configs"], r["measured"], r["predicted"]["canonical"]):
            per.setdefault(name, []).append(t / p / r["many_model_ratio"])
    own = {name: statistics.median(v) for name, v in per.items()}
    errors = []
    for r in runs:
        ratios = [t / p / own[n] for n, t, p in zip(r["configs"], r["measured"], r["predicted"]["canonical"])]
        m = statistics.median(ratios)
        errors.append(math.sqrt(math.pi / 2) * statistics.stdev(x / m - 1 for x in ratios) / len(ratios) ** 0.5)
    return _rms(errors)


def _rms(deviations: list[float]) -> float:
    """RMS of relative deviations, in %."""
    return 100 * statistics.fmean(a * a for a in deviations) ** 0.5


def _unbiased(deviations: list[float]) -> list[float]:
    """Relative deviations (estimate / truth - 1) over their median ratio: the constant offset removed."""
    mid = statistics.median(1 + d for d in deviations)
    return [(1 + d) / mid - 1 for d in deviations]


def _estimators(runs: list[dict], canon: dict | None) -> list[str]:
    """Candidate estimators of the speed over the pass that follows, over one profile's runs (`canon`: its
    canonical reference), each scored on the runs that logged it (RMS of estimate / many-model ratio - 1):
    what a <= 3 s reading, the host's history or the reference read inside the pass (the ideal: it shares the
    pass's time) can do."""
    from nnenergy import speed
    from nnenergy.dataset import parse_utc
    from nnenergy.evaluate import metrics

    cands: dict[str, list[float]] = {}
    ones: dict[str, list[float]] = {}  # the same estimates taken one for one (exponent 1)
    for r in runs:
        el = speed.elasticity(r.get("canonical") or canon)  # each reading as a prediction would apply it
        m, p = r["many_model_ratio"], r["probe"]["speed_index"]
        if "history_median_24h" in r:
            typical = r["history_median_24h"]
        else:  # older lines: from this host's history, which holds them only where the report runs on that host
            at = parse_utc(r["probe"]["read_at"])
            past = [h["speed_index"] for h in _readings(r["profile"], at, canon, max_age_s=24 * 3600)]
            typical = statistics.median(past) if past else None
        est = {f"probe ({_warmup(r):g} s of warm-up, 0.8 s of windows)": p}
        if typical:
            est[HISTORY_ESTIMATOR] = (p * typical) ** 0.5
        if r.get("probe_second"):
            p2 = r["probe_second"]["speed_index"]
            est["a second probe right after the first, same process (~1.2 s more)"] = p2
            est["geometric mean of the two probes"] = (p * p2) ** 0.5
        if r.get("probe_context"):
            est["a third probe, in context: each reference window after a load window (~1.6 s more)"] = \
                r["probe_context"]["speed_index"]
        windows = (r.get("probe_candidates") or {}).get("windows")
        if windows and canon:
            before = statistics.median(w[3] for w in windows if w[0] == "R") / canon["energy_j"]
            est["2 s of reference windows read just before the pass, once its models are built (median)"] = before
        if r.get("inpass_speed_index"):
            est["the reference read inside the pass (not available to a prediction)"] = r["inpass_speed_index"]
        for name, v in est.items():
            cands.setdefault(name, []).append(_applied(v, el) / m - 1)
            ones.setdefault(name, []).append(v / m - 1)
    # With each estimator's constant offset over the runs removed (its median ratio): how well it tracks the
    # many-model ratio's movements, whatever scale it reads on. The reference read inside the pass tracks them
    # best one for one (docs/measurement.md, twelfth study session).
    out = ["", "| estimator of the pass's speed | pairs | RMS of estimate / many-model ratio - 1 | the same, its "
           "constant offset removed | one for one (exponent 1), offset removed |", "|---|---|---|---|---|"]
    for name, v in sorted(cands.items()):
        few = len(v) < MIN_RUNS_FOR_ERROR  # an offset fitted on a few runs would hide their scatter
        fixed = ("n/a", "n/a") if few else (f"{_rms(_unbiased(v)):.1f}%", f"{_rms(_unbiased(ones[name])):.1f}%")
        out.append(f"| {name} | {len(v)} | {_rms(v):.1f}% | {fixed[0]} | {fixed[1]} |")
    if HISTORY_ESTIMATOR not in cands:
        out.append(f"| {HISTORY_ESTIMATOR} | 0 | n/a: this host holds none of these runs' readings | | |")
    # The floor a perfect probe would leave: each run's predictions at its own many-model ratio.
    oracle = sorted(metrics.rmspe(r["measured"], [p * r["many_model_ratio"] for p in r["predicted"]["canonical"]])
                    for r in runs)
    if oracle:
        out.append(f"\nStated at each run's own many-model ratio (a perfect probe), the {len(oracle)} runs would "
                   f"score {oracle[0]:.1f}-{oracle[-1]:.1f}% RMSPE (median {statistics.median(oracle):.1f}%): "
                   "the predictor's scatter and the labels' own noise, which no speed reading removes.")
    return out if cands else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--rescore", action="store_true", help="re-predict the logged runs with today's predictor")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--model-uri", default=None,
                    help="with --rescore: this predictor (default: the machine's champion)")
    a = ap.parse_args()
    if a.report:
        print(report())
        return 0
    if a.rescore:
        print(rescore(a.tracking_uri, a.model_uri))
        return 0
    out = run_once(a.tracking_uri)
    with LOG.open("a") as fh:
        fh.write(json.dumps(out) + "\n")
    import mlflow

    from nnenergy import tracking

    tracking.setup(tracking.store_uri(a.tracking_uri), "nnenergy-drift")
    with mlflow.start_run(run_name=f"drift-{out['profile']}-{out['at'][:16]}"):
        mlflow.set_tags({"profile": out["profile"], "predictor": out["predictor"]})
        mlflow.log_metrics({f"{mode}_{k}": v for mode, m in out["metrics"].items() for k, v in m.items()}
                           | {"probe_speed_index": out["probe"]["speed_index"],
                              "many_model_ratio": out["many_model_ratio"],
                              "probe_agreement_pct": 100 * out["probe_agreement"]})
    print(json.dumps({"at": out["at"], "metrics": out["metrics"], "probe_agreement": out["probe_agreement"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
