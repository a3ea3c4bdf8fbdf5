"""`nnenergy speed`: this machine's speed index, as `nnenergy predict` applies it, and this host's readings."""

from __future__ import annotations

import json
import statistics

from nnenergy.cli.predict import Parser, _error, _positive_int, _quiet_before_tensorflow, _quiet_python

HISTORY_HOURS = 24  # the summary's span: the drift a reading is judged against


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
    """The readings of the last `hours` (before the newest): how many, their median and 5-95% range; and the
    variability a prediction's interval widens by (`speed.variability`, over the newest readings)."""
    from nnenergy import speed
    from nnenergy.dataset import parse_utc

    if not readings:
        return {"readings": 0, "hours": hours}
    newest = max(parse_utc(r["read_at"]) for r in readings)
    recent = [r for r in readings if (newest - parse_utc(r["read_at"])).total_seconds() <= hours * 3600]
    idx = sorted(float(r["speed_index"]) for r in recent)

    def q(p):
        return idx[min(len(idx) - 1, round(p * (len(idx) - 1)))]

    return {"readings": len(recent), "hours": hours, "median": statistics.median(idx), "p5": q(0.05), "p95": q(0.95),
            "variability": speed.variability(readings), "first_at": recent[0]["read_at"],
            "last_at": recent[-1]["read_at"]}


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


def _lines(profile: str, stated: dict, hist: dict, listed: list[dict] | None) -> list[str]:
    out = [f"profile            {profile}"]
    if listed is not None:
        out += ["", f"{'read at (UTC)':<26} {'index':>6} {'latency':>8} {'spread':>7}  source"]
        for r in listed:
            spread = f"{100 * r['spread']:.0f}%" if r.get("spread") is not None else "-"
            out.append(f"{r['read_at']:<26} {float(r['speed_index']):>6.3f} "
                       f"{float(r.get('latency_speed_index', r['speed_index'])):>8.3f} {spread:>7}  "
                       f"{r.get('source', '-')}")
    elif stated.get("speed_index") is None:
        out.append(f"speed              {stated.get('note') or 'not applied'}")
    else:
        ratio = stated["speed_index"]
        faster = "faster" if ratio < 1 else "slower"
        how = f"{100 * abs(1 - ratio):.0f}% {faster} than" if round(ratio, 2) != 1 else "as fast as"
        out += [f"speed index        {ratio:.3f} (energy), {stated['latency_speed_index']:.3f} (latency): the "
                f"reference network runs {how} when the predictor's data were measured",
                f"read at            {stated['read_at'] or '-'} ({stated['source']})",
                f"canonical          measured {stated['canonical_at'] or '-'}",
                f"a 30 ms network    x{stated['energy_factor']:.3f} energy, x{stated['latency_factor']:.3f} latency "
                + (f"(exponent {stated['elasticity']:.2f}: networks follow the reference partly)"
                   if stated["elasticity"] < 1 else "(one for one)")]
        if stated.get("note"):
            out.append(f"note               {stated['note']}")
    if hist["readings"]:
        out.append(f"last {hist['hours']:g} h          {hist['readings']} readings: median {hist['median']:.3f}, "
                   f"5-95% {hist['p5']:.3f}-{hist['p95']:.3f}, variability {100 * hist['variability']:.1f}% "
                   "(widens every prediction's interval)")
    else:
        out.append("history            no reading on this host yet")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _quiet_before_tensorflow(args.verbose)
    from nnenergy import speed
    from nnenergy.predict.errors import PredictError, first_line
    from nnenergy.predict.loading import load_predictor

    try:
        with _quiet_python(args.verbose):
            pyfunc, _ = load_predictor(args.model_uri, args.tracking_uri, this_machine=True)
        meta = pyfunc.metadata.metadata or {}
        profile = (meta.get("hardware") or {}).get("profile", "")
        canon = meta.get("canonical_reference")
        readings = speed.history(profile, canon) if canon else []
        listed = readings[-args.history:] if args.history else None
        stated = {}
        if listed is None:
            _, stated = speed.for_predictor(meta, speed.chosen_mode(args.speed))
            readings = speed.history(profile, canon) if canon else []  # a probe just added one
        if args.plot and readings:
            plot(readings, args.plot, profile)
    except (PredictError, speed.SpeedError) as exc:
        return _error(exc, "nnenergy speed")
    except Exception as exc:  # anything else still gets one line
        return _error(f"{type(exc).__name__}: {first_line(exc)}", "nnenergy speed", code=1)
    hist = summary(readings)
    if args.json:
        print(json.dumps({"profile": profile, "speed": stated or None, "history": hist, "readings": listed}))
    else:
        print("\n".join(_lines(profile, stated, hist, listed)))
        if args.plot and not readings:
            print(f"no reading to plot: {args.plot} not written")
    return 0
