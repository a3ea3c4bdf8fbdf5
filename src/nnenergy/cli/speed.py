"""`nnenergy speed`: this machine's speed index, as `nnenergy predict` applies it, and this host's readings."""

from __future__ import annotations

import json
import math
import os
import statistics

from nnenergy.cli.predict import Parser, _error, _positive_int, _quiet_before_tensorflow, _quiet_python

HISTORY_HOURS = 24  # the summary's span, back from now


def parser() -> Parser:
    p = Parser(prog="nnenergy speed",
               description="This machine's speed index: the reference network's cost now over its cost when the "
                           "predictor's data were measured, as `nnenergy predict` applies it (read with the "
                           "predictor's canonical reference), and this host's readings.")
    p.add_argument("--speed", default=None, choices=("auto", "now", "last", "canonical"),
                   help="which reading: auto (default, or $NNENERGY_SPEED: the last reading when younger than "
                        "$NNENERGY_SPEED_MAX_AGE_MIN, 10 min, else a ~2.5 s probe), now (a probe), last, canonical")
    p.add_argument("--history", type=_positive_int, nargs="?", const=20, default=None, metavar="N",
                   help="list this host's last N readings (default 20) instead of reading the speed")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="plot this host's readings over time")
    p.add_argument("--model-uri", default=None, help="the predictor whose canonical reference the index is read "
                   "against (default: the one `nnenergy predict` uses here)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: as `nnenergy predict`)")
    p.add_argument("--json", action="store_true", help="print one JSON object and nothing else on stdout")
    p.add_argument("--verbose", action="store_true", help="let the libraries print their start-up lines")
    p.epilog = ("exit status: 0 done; 2 bad usage or input (a corrupt history file, a reading of another profile); "
                "1 a failure while running (no predictor to load, an unreachable store)")
    return p


def summary(readings: list[dict], hours: float = HISTORY_HOURS) -> dict:
    """The readings of the last `hours` before now: how many, their median and range (5-95% from 20 readings
    on, else min-max), and the sd of their log index (how much the machine's speed moved)."""
    from datetime import datetime, timezone

    from nnenergy.dataset import parse_utc

    now = datetime.now(timezone.utc)
    timed = sorted(((parse_utc(r["read_at"]), r) for r in readings), key=lambda tr: tr[0])
    recent = [r for t, r in timed if (now - t).total_seconds() <= hours * 3600]
    if not recent:
        return {"readings": 0, "hours": hours}
    idx = sorted(float(r["speed_index"]) for r in recent)
    wide = len(idx) >= 20

    def q(p):
        return idx[min(len(idx) - 1, round(p * (len(idx) - 1)))] if wide else idx[0 if p < 0.5 else -1]

    logs = [math.log(v) for v in idx]
    return {"readings": len(recent), "hours": hours, "median": statistics.median(idx), "low": q(0.05),
            "high": q(0.95), "range": "5-95%" if wide else "min-max",
            "sd_log": statistics.stdev(logs) if len(logs) >= 2 else 0.0,
            "first_at": recent[0]["read_at"], "last_at": recent[-1]["read_at"]}


def plot(readings: list[dict], path: str, profile: str) -> None:
    """The readings' energy and latency indices over time, against the canonical speed (1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnenergy.dataset import parse_utc

    t = [parse_utc(r["read_at"]) for r in readings]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, [r["speed_index"] for r in readings], "o-", ms=3, label="energy speed index")
    ax.plot(t, [r.get("latency_speed_index", r["speed_index"]) for r in readings], "x", ms=3, alpha=0.6,
            label="latency speed index")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="the canonical reference (1)")
    ax.set_ylabel("cost now / canonical cost")
    ax.set_title(f"{profile}: this host's speed readings ({len(readings)})")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _speed_lines(stated: dict, pivot_ms: float) -> list[str]:
    if stated.get("speed_index") is None:
        return [f"speed              {stated.get('note') or 'not applied'}"]
    ratio = stated["speed_index"]
    how = (f"costs {100 * abs(1 - ratio):.0f}% {'less' if ratio < 1 else 'more'} than"
           if round(ratio, 2) != 1 else "costs what it cost")
    exponent = stated["elasticity"]
    out = [f"speed index        {ratio:.3f} (energy), {stated['latency_speed_index']:.3f} (latency): the reference "
           f"network {how} when the predictor's data were measured",
           f"read at            {stated['read_at'] or '-'} ({stated['source']})",
           f"canonical          measured {stated['canonical_at'] or '-'}",
           f"a {pivot_ms:g} ms network    x{stated['energy_factor']:.3f} energy, x{stated['latency_factor']:.3f} "
           "latency " + (f"(exponent {exponent:.2f}: networks follow the reference partly)" if exponent < 1
                         else f"(exponent {exponent:.2f})"),
           f"interval           widened by {100 * stated['variability']:.1f}% (the speed's own variability)"]
    if stated.get("note"):
        out.append(f"note               {stated['note']}")
    return out


def _lines(profile: str, stated: dict, hist: dict, listed: list[dict] | None, pivot_ms: float) -> list[str]:
    out = [f"profile            {profile}"]
    if listed is not None:
        out += ["", f"{'read at (UTC)':<26} {'index':>6} {'latency':>8} {'spread':>7}  source"]
        for r in listed:
            spread = f"{100 * float(r['spread']):.0f}%" if r.get("spread") is not None else "-"
            out.append(f"{r['read_at']:<26} {float(r['speed_index']):>6.3f} "
                       f"{float(r.get('latency_speed_index', r['speed_index'])):>8.3f} {spread:>7}  "
                       f"{r.get('source', '-')}")
    else:
        out += _speed_lines(stated, pivot_ms)
    if hist["readings"]:
        out.append(f"last {hist['hours']:g} h          {hist['readings']} readings of {profile} on this host: median "
                   f"{hist['median']:.3f}, {hist['range']} {hist['low']:.3f}-{hist['high']:.3f}, sd "
                   f"{100 * hist['sd_log']:.1f}%")
    else:
        out.append(f"last {hist['hours']:g} h          no reading of {profile} on this host")
    return out


def _read(args) -> tuple[str, dict, list[dict], list[dict] | None, float]:
    """(the predictor's profile, the speed it would be stated at, this host's readings against its canonical
    reference in time order, the ones to list, the canonical's pivot latency in ms)."""
    from nnenergy import speed
    from nnenergy.dataset import parse_utc
    from nnenergy.predict.loading import load_predictor

    pyfunc, _ = load_predictor(args.model_uri, args.tracking_uri, this_machine=True)
    meta = pyfunc.metadata.metadata or {}
    profile = (meta.get("hardware") or {}).get("profile", "")
    # as `resolve` reads them: the predictor's own canonical, else (predictors that stored none) the profile's file;
    # a predictor whose labels carry no speed index has none, and no readings apply to it
    canon = meta["canonical_reference"] if "canonical_reference" in meta else speed.canonical(profile)
    listed, stated = None, {}
    if not args.history:  # read before the history: a probe adds a reading to it
        _, stated = speed.for_predictor(meta, speed.chosen_mode(args.speed))
    past = sorted(speed.history(profile, canon), key=lambda r: parse_utc(r["read_at"])) if canon else []
    if args.history:
        listed = past[-args.history:]
    return profile, stated, past, listed, speed.elasticity(canon).pivot_ms


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.history and args.speed:
        return _error("give --history (no reading: this host's readings) or --speed, not both", "nnenergy speed")
    _quiet_before_tensorflow(args.verbose)
    from nnenergy import speed
    from nnenergy.predict.errors import PredictError, first_line

    try:
        with _quiet_python(args.verbose):  # a probe imports TensorFlow
            profile, stated, readings, listed, pivot_ms = _read(args)
            hist = summary(readings)
            if args.plot and (listed or readings):
                plot(listed if listed is not None else readings, args.plot, profile)
        text = (json.dumps({"profile": profile, "speed": stated or None, "history": hist, "readings": listed})
                if args.json else "\n".join(_lines(profile, stated, hist, listed, pivot_ms)))
    except (PredictError, speed.SpeedError) as exc:
        return _error(exc, "nnenergy speed")
    except Exception as exc:  # anything else still gets one line; NNENERGY_DEBUG=1 shows the traceback
        if os.environ.get("NNENERGY_DEBUG"):
            raise
        return _error(f"{type(exc).__name__}: {first_line(exc)}", "nnenergy speed", code=1)
    print(text)
    if args.plot and not (listed or readings) and not args.json:
        print(f"no reading to plot: {args.plot} not written")
    return 0
