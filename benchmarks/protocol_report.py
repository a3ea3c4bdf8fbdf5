"""The protocol study's report (`benchmarks/protocol_study.py --report`): every protocol computed
from the same raw windows, judged by run-to-run agreement per second of measuring, and the speed
probe judged against the many-model ratio."""

from __future__ import annotations

import json
import math
import re
import statistics
from itertools import combinations
from pathlib import Path

import numpy as np

MIN_GAP_S = 20 * 60  # passes compared are >= 20 min apart (issue 30)
PARTIAL_EXPONENTS = (0.3, 0.45)


def _trim(v, frac=0.2):
    v = sorted(v)
    k = int(len(v) * frac)
    return float(np.mean(v[k:len(v) - k] if len(v) > 2 * k else v))


STATS = {"median": statistics.median, "min": min, "q25": lambda v: float(np.quantile(v, 0.25)),
         "trim20": _trim}


def _pairs(ws):
    """[(target, reference after it)] windows of one configuration in one pass, in time order."""
    out, pending = [], None
    for w in ws:
        if w[0] == "T":
            pending = w
        elif pending is not None:
            out.append((pending, w))
            pending = None
    return out


def _first(ws, n):
    """The first ceil(n/2) pairs of round 0 and floor(n/2) of round 1: n windows spread over the pass."""
    pairs = _pairs(ws)
    return [p for p in pairs if p[0][1] == 0][: (n + 1) // 2] + [p for p in pairs if p[0][1] == 1][: n // 2]


def _value(w, what):
    return w[5] if what == "energy" else w[4]


def protocols(pass_ref: dict, what: str = "energy") -> dict:
    """name -> (function(windows of a config) -> label, measuring seconds charged per config)."""
    def raw(n, stat, rounds_mixed=True, skip=0):
        def f(ws):
            if rounds_mixed:
                pairs = _first(ws, n + 2 * skip)
                pairs = pairs[skip:(n + 2 * skip + 1) // 2] + pairs[(n + 2 * skip + 1) // 2 + skip:]
            else:
                pairs = [p for p in _pairs(ws) if p[0][1] == 0][:n]
            return STATS[stat]([_value(t, what) for t, _ in pairs])
        return f, n

    def adjacent(n, stat):  # A-R-A-R: each window as a ratio to the reference window after it
        def f(ws):
            pairs = _first(ws, n)
            return STATS[stat]([_value(t, what) / _value(r, what) for t, r in pairs])
        return f, 2 * n

    def partial(n, stat, b):  # A-R with each window divided by its reference window to the exponent b
        def f(ws):
            return STATS[stat]([_value(t, what) / _value(r, what) ** b for t, r in _first(ws, n)])
        return f, 2 * n

    def ratio_of_stats(n, stat):  # A-R windows, the statistic of the targets over that of their references
        def f(ws):
            pairs = _first(ws, n)
            return STATS[stat]([_value(t, what) for t, _ in pairs]) / STATS[stat]([_value(r, what) for _, r in pairs])
        return f, 2 * n

    def per_round(n, stat):  # rounds: a round's statistic over the block's reference in that round
        def f(ws):
            vals = []
            for rnd in (0, 1):
                ts = [_value(t, what) for t, _ in _first(ws, n) if t[1] == rnd]
                if ts:
                    vals.append(STATS[stat](ts) / pass_ref[rnd])
            return statistics.median(vals)
        return f, n + 0.2  # the round's reference windows, shared by the block

    def grouped(g, groups):  # longer windows: g consecutive 0.1 s windows as one, median over groups
        def f(ws):
            pairs = _pairs(ws)
            vals = []
            for i in range(groups):
                chunk = pairs[i * g:(i + 1) * g]
                if len(chunk) == g:
                    vals.append(sum(_value(t, what) * t[3] for t, _ in chunk) / sum(t[3] for t, _ in chunk))
            return statistics.median(vals)
        return f, g * groups

    out = {}
    for n in (2, 4, 6, 10):
        for stat in STATS:
            out[f"raw {stat} of {n}x0.1s"] = raw(n, stat)
            out[f"A-R ratio {stat} of {n}"] = adjacent(n, stat)
            out[f"A-R {stat}/{stat} of {n}"] = ratio_of_stats(n, stat)
            out[f"rounds norm {stat} of {n}"] = per_round(n, stat)
    # The speed's time scales (benchmarks/speed_timescales.py, the EPYC Zen 4 of 2026-12-08): the networks moved with
    # the reference window beside them to a power of ~0.3-0.45, not one for one.
    for n in (4, 10):
        for b in PARTIAL_EXPONENTS:
            out[f"A-R ratio^{b:g} q25 of {n}"] = partial(n, "q25", b)
    out["raw median of 4x0.1s, one round"] = raw(4, "median", rounds_mixed=False)
    out["raw median of 4x0.1s, warm-up +1"] = raw(4, "median", skip=1)
    out["raw median of 8x0.1s, warm-up +1"] = raw(8, "median", skip=1)
    out["1 window of 1s"] = grouped(10, 1)
    out["median of 2x0.5s"] = grouped(5, 2)
    out["median of 5x0.2s"] = grouped(2, 5)
    return out


def load(folder: Path) -> list[dict]:
    recs = []
    for f in sorted(folder.glob("*.jsonl")):
        recs += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return recs


def _t(rec) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rec["at"]).timestamp()


def agreement(labels: list[dict], times: list[float], lo_s: float = MIN_GAP_S, hi_s: float = math.inf) -> dict:
    """Pairs of passes lo_s..hi_s apart (by default >= MIN_GAP_S): per-config ratio after the pair's common factor."""
    devs, pairs = [], 0
    for i, j in combinations(range(len(labels)), 2):
        if not lo_s <= abs(times[j] - times[i]) < hi_s:
            continue
        pairs += 1
        common = [k for k in labels[i] if k in labels[j]]
        r = np.array([labels[j][k] / labels[i][k] for k in common])
        devs += list(r / np.median(r) - 1)
    d = np.array(devs)
    if not len(d):
        return {}
    return {"rms_pct": 100 * float(np.sqrt(np.mean(d ** 2))), "within3": float(np.mean(abs(d) <= 0.03)),
            "within5": float(np.mean(abs(d) <= 0.05)), "n": len(d), "pairs": pairs}


def study(recs: list[dict], what: str = "energy") -> list[dict]:
    times = [_t(r) for r in recs]
    rows = []
    names = None
    per_pass = []
    for rec in recs:
        ref_round = {}
        for rnd in (0, 1):
            ref_round[rnd] = statistics.median(_value(w, what) for ws in rec["windows"].values() for w in ws
                                               if w[0] == "R" and w[1] == rnd)
        protos = protocols(ref_round, what)
        names = names or list(protos)
        per_pass.append({name: {k: f(ws) for k, ws in rec["windows"].items()} for name, (f, _) in protos.items()})
    protos = protocols({0: 1, 1: 1}, what)
    for name in names:
        a = agreement([p[name] for p in per_pass], times)
        if not a:
            continue
        # seconds of measuring per configuration: 0.1 s windows (longer for configurations slower than that)
        w_s = statistics.median(max(0.1, w[4] * w[3]) for ws in recs[0]["windows"].values() for w in ws)
        secs = protos[name][1] * w_s
        # Averaging n independent windows cuts the RMS by sqrt(n): RMS x sqrt(seconds) is the noise per
        # unit of measuring time, what "repeatability per second of measuring" compares.
        rows.append({"protocol": name, **a, "s_per_config": secs, "rms_sqrt_s": a["rms_pct"] * math.sqrt(secs)})
    rows.sort(key=lambda r: r["rms_pct"])
    return rows, per_pass, times


def probe_agreement(recs, per_pass, label: str) -> list[dict]:
    """Probe ratio vs the many-model ratio (median over the keras.applications configurations of
    measured now / their median over passes), pass by pass; both relative to their own medians."""
    apps = [k for k in per_pass[0][label] if k.startswith("app:")]
    canon = {k: statistics.median(p[label][k] for p in per_pass) for k in apps}
    many = np.array([statistics.median(p[label][k] / canon[k] for k in apps) for p in per_pass])
    # the many-model ratio's own sampling error: per-model scatter / sqrt(n)
    scatter = [np.std([p[label][k] / canon[k] / m for k in apps]) for p, m in zip(per_pass, many)]
    out = []
    for n_ref in (5, 10, 15, 20, 30):
        for stat in ("median", "q25", "trim20"):
            for skip in (0, 2):
                for with_kernel in (False, True):
                    vals = []
                    for rec in recs:
                        ws = rec["probe"]["windows"]
                        r = [w[3] for w in ws if w[0] == "R"][skip:skip + n_ref]
                        v = STATS[stat](r)
                        if with_kernel:
                            k = [w[3] for w in ws if w[0] == "K"]
                            if not k:
                                continue
                            v = math.sqrt(v * STATS[stat](k[: max(3, n_ref // 2)]))
                        vals.append(v)
                    if len(vals) != len(recs):
                        continue
                    p = np.array(vals) / np.median(vals)
                    d = p / many - 1
                    secs = 0.1 * (n_ref + skip + (max(3, n_ref // 2) if with_kernel else 0))
                    out.append({"probe": f"ref {n_ref}x0.1s {stat}" + (f" skip {skip}" if skip else "")
                                + (" x dw kernel (geo-mean)" if with_kernel else ""),
                                "window_s": round(secs, 1), "rms_pct": 100 * float(np.sqrt(np.mean(d ** 2))),
                                "max_pct": 100 * float(np.max(abs(d))), "pairs": len(d)})
    out.sort(key=lambda r: r["rms_pct"])
    # The same reference network read during the pass, in the same minutes as the models (its A-R windows):
    # what a reading taken together with the work achieves, against a probe taken before it.
    inpass = np.array([float(np.quantile([w[5] for ws in rec["windows"].values() for w in ws if w[0] == "R"], 0.25))
                       for rec in recs])
    d = inpass / np.median(inpass) / many - 1
    out.insert(0, {"probe": "the reference inside the pass (same minutes as the models; not a probe)",
                   "window_s": "-", "rms_pct": 100 * float(np.sqrt(np.mean(d ** 2))),
                   "max_pct": 100 * float(np.max(abs(d))), "pairs": len(d)})
    return out, 100 * float(np.median(scatter) / math.sqrt(len(apps))), many


def spread_agreement(per_pass: list[dict], times: list[float], name: str, k: int, cap: int = 20000) -> dict:
    """Labels averaged (geometric mean) over k passes >= 10 min apart, against k other passes >= 20 min
    from them: how the noise falls when one configuration's measuring is spread over time."""
    keys = sorted(set.intersection(*[set(p[name]) for p in per_pass]))
    logs = np.log(np.array([[p[name][c] for c in keys] for p in per_pass]))
    spaced = [g for g in combinations(range(len(per_pass)), k)
              if all(abs(times[a] - times[b]) >= 600 for a, b in combinations(g, 2))]
    devs = []
    for g, h in combinations(spaced, 2):
        if set(g) & set(h) or min(abs(times[a] - times[b]) for a in g for b in h) < MIN_GAP_S:
            continue
        d = logs[list(h)].mean(0) - logs[list(g)].mean(0)
        devs.append(np.exp(d - np.median(d)) - 1)
        if len(devs) >= cap:
            break
    if not devs:
        return {}
    d = np.concatenate(devs)
    return {"rms_pct": 100 * float(np.sqrt(np.mean(d ** 2))), "within3": float(np.mean(abs(d) <= 0.03)),
            "within5": float(np.mean(abs(d) <= 0.05)), "comparisons": len(devs)}


# Pair lags for the table of agreement by time apart: within a working session, hours apart, sessions apart.
LAGS_H = ((MIN_GAP_S / 3600, 1), (1, 3), (3, 12), (12, math.inf))
LAG_PROTOCOLS = ("A-R ratio q25 of 4", "A-R ratio^0.45 q25 of 4", "A-R ratio^0.45 q25 of 10", "raw q25 of 10x0.1s")


def lag_table(per_pass: list[dict], times: list[float]) -> list[str]:
    """The main table's agreement split by how far apart the two passes were: does a label measured
    today agree with one measured hours (or a session) earlier as well as with one 20 minutes earlier?"""
    lines = ["", "## Agreement by time apart (passes of one session, and of sessions hours apart)", "",
             "The main table's pairs split by the time between the two passes (RMS % / within ±5%, pairs).", "",
             "| protocol | " + " | ".join(f"{lo:.2g}-{hi:g} h" if hi < math.inf else f">= {lo:g} h"
                                          for lo, hi in LAGS_H) + " |",
             "|---|" + "---|" * len(LAGS_H)]
    for name in LAG_PROTOCOLS:
        cells = []
        for lo, hi in LAGS_H:
            a = agreement([p[name] for p in per_pass], times, lo * 3600, hi * 3600)
            cells.append(f"{a['rms_pct']:.2f} / {100 * a['within5']:.0f}% ({a['pairs']})" if a else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


# The protocols the mode comparison shows: the labels' own, and the bare raw statistics.
MODE_PROTOCOLS = ("A-R q25/q25 of 6", "A-R ratio q25 of 6", "A-R ratio median of 10", "raw q25 of 6x0.1s",
                  "raw min of 4x0.1s")


def mode_comparison(recs: list[dict]) -> list[str]:
    """The modes measured in turn in the same rounds (records that name their mode), each judged like the
    main table on its own passes >= 20 min apart; the duet's windows are time only."""
    by_mode: dict[str, list[dict]] = {}
    for r in recs:
        if "mode" in r:
            by_mode.setdefault(r["mode"], []).append(r)
    if len(by_mode) < 2:
        return []
    lines = ["", "## Ways of running the same windows (measured in turn, in the same rounds)", "",
             "Each mode's passes compared with its own passes >= 20 min apart. `duet` has no energy of its own "
             "(CodeCarbon's power is the machine's, shared by both processes): its rows are time ratios.", "",
             "| mode | passes | protocol | energy RMS % | within ±5% | latency RMS % | within ±5% |",
             "|---|---|---|---|---|---|---|"]
    for mode, rs in by_mode.items():
        rows = {w: {r["protocol"]: r for r in study(rs, w)[0]} for w in ("energy", "latency")}
        for name in MODE_PROTOCOLS:
            e, lat = rows["energy"].get(name), rows["latency"].get(name)
            if lat is None:
                continue
            energy = "- | -" if mode == "duet" or e is None else f"{e['rms_pct']:.2f} | {100 * e['within5']:.0f}%"
            lines.append(f"| {mode} | {len(rs)} | {name} | {energy} | "
                         f"{lat['rms_pct']:.2f} | {100 * lat['within5']:.0f}% |")
    return lines


def _cpu(profile: str) -> str:
    """The CPU a pass ran on: its profile without the core count (a pinned pass's profile ends in -1c)."""
    return re.sub(r"-\d+c$", "", profile)


def report(folder: Path) -> None:
    """One report per CPU kind (`<profile>.md`): passes of two kinds of CPU are never paired."""
    loaded = load(folder)
    written = [report_profile(folder, [r for r in loaded if _cpu(r["profile"]) == cpu])
               for cpu in sorted({_cpu(r["profile"]) for r in loaded})]
    if not any(written):
        raise SystemExit(f"no CPU in {folder} has 2 graph passes yet: measure more with --loop")


def report_profile(folder: Path, every: list[dict]) -> bool:
    """The report of one CPU's passes; False when it has fewer than 2 graph passes (nothing written)."""
    # The main tables: the labels' own way of running (records before the modes existed are that way).
    recs = [r for r in every if r.get("mode", "graph") == "graph"]
    if len(recs) < 2:
        print(f"{_cpu(every[0]['profile'])}: {len(recs)} graph passes in {folder}: measure more with --loop")
        return False
    rows, per_pass, times = study(recs)
    span = (max(times) - min(times)) / 60
    lines = [f"# Protocol study: {len(recs)} passes over {span:.0f} min, profile {recs[0]['profile']}", "",
             f"{len(recs[0]['windows'])} configurations; pairs of passes >= {MIN_GAP_S // 60} min apart; "
             "ratio of the later label to the earlier, after the pair's common factor.", "",
             "| protocol | RMS % | within ±3% | within ±5% | s per configuration | RMS × √s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['protocol']} | {r['rms_pct']:.2f} | {100 * r['within3']:.0f}% | {100 * r['within5']:.0f}% | "
              f"{r['s_per_config']:.1f} | {r['rms_sqrt_s']:.2f} |" for r in rows]
    lines += ["", "## Spreading one configuration's measuring over time", "",
              "The label averaged over k passes >= 10 min apart (geometric mean), against k other passes "
              ">= 20 min from them. Measuring time per configuration grows k-fold.", "",
              "| label per pass | k passes | RMS % | within ±3% | within ±5% | comparisons |",
              "|---|---|---|---|---|---|"]
    # "A-R ratio^0.45 q25 of 4" over 3 passes is the sweeps' label (3 visits of 4 window pairs, relabelled to 0.45)
    spread = ("A-R ratio q25 of 4", "A-R ratio^0.45 q25 of 4", "A-R ratio q25 of 10",
              *(f"A-R ratio^{b:g} q25 of 10" for b in PARTIAL_EXPONENTS), "raw q25 of 10x0.1s")
    for name in spread:
        for k in (1, 2, 3, 4):
            a = spread_agreement(per_pass, times, name, k)
            if a:
                lines.append(f"| {name} | {k} | {a['rms_pct']:.2f} | {100 * a['within3']:.0f}% | "
                             f"{100 * a['within5']:.0f}% | {a['comparisons']} |")
    lines += lag_table(per_pass, times)
    lat_rows, _, _ = study(recs, "latency")
    lines += ["", "Latency labels, the five best:", ""]
    lines += [f"- {r['protocol']}: RMS {r['rms_pct']:.2f}%, within ±5% {100 * r['within5']:.0f}%" for r in lat_rows[:5]]
    probes, sampling, many = probe_agreement(recs, per_pass, "raw q25 of 10x0.1s")
    lines += ["", f"## Speed probe against the many-model ratio ({len(recs)} passes)", "",
              f"Many-model ratio: median over the keras.applications configurations of label now / its median "
              f"over passes (raw q25 of 10x0.1 s); its own sampling error is about {sampling:.1f}%. "
              f"Range over passes: {many.min():.3f}-{many.max():.3f}.", "",
              "| probe | measuring s | RMS % | max % |", "|---|---|---|---|"]
    lines += [f"| {p['probe']} | {p['window_s']} | {p['rms_pct']:.2f} | {p['max_pct']:.2f} |" for p in probes[:12]]
    lines += ["", "## How fast the speed moves (choosing how long a reading stays fresh)", "",
              "The pass's own reference windows (median over ~260 windows of 0.1 s per pass) at lags between passes: "
              "median and 90th percentile of |index(t + lag) / index(t) - 1|.", "",
              "| lag | pairs | median change | 90th percentile |", "|---|---|---|---|"]
    ref = [statistics.median(w[5] for ws in r["windows"].values() for w in ws if w[0] == "R") for r in recs]
    for lo, hi in ((0, 12), (12, 25), (25, 45), (45, 75), (75, 120), (120, 400)):
        ch = [abs(ref[j] / ref[i] - 1) for i, j in combinations(range(len(recs)), 2)
              if lo * 60 <= abs(times[j] - times[i]) < hi * 60]
        if ch:
            lines.append(f"| {lo}-{hi} min | {len(ch)} | {100 * statistics.median(ch):.1f}% | "
                         f"{100 * float(np.quantile(ch, 0.9)):.1f}% |")
    pt = [r["probe"]["total_s"] for r in recs]
    lines += ["", f"Probe process (3 s of reference + 1.5 s of kernel windows, CodeCarbon tracker included): "
              f"build {statistics.median(r['probe']['build_s'] for r in recs):.2f} s, tracker "
              f"{statistics.median(r['probe']['meter_s'] for r in recs):.2f} s, total {statistics.median(pt):.1f} s."]
    lines += mode_comparison(every)
    text = "\n".join(lines) + "\n"
    out = folder / f"{recs[0]['profile']}.md"
    out.write_text(text)
    (folder / f"{recs[0]['profile']}_rows.json").write_text(json.dumps({"protocols": rows, "probes": probes}, indent=1))
    print(text)
    return True
