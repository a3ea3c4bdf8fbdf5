"""Fit a profile's speed elasticity from a dataset's measure-twice pairs, and write it down.

    python -m nnenergy.measure.elasticity data/intel-xeon-avx512-2c/space           # print the fit
    python -m nnenergy.measure.elasticity data/intel-xeon-avx512-2c/space --write   # and store it

The exponent (`fit_elasticity`) is stored as `elasticity` in the canonical reference
the dataset's labels are normalised to: its `canonical.json`, every sibling dataset's of the same
canonical, and the profile's reference file(s) of the same canonical, so that its labels
(`scale.relabel`) and the predictions of predictors trained on them (`speed.apply`) use the same exponents.
Pairs recorded before they carried their raw figures (2026-12-07) get them from the dataset's rows and
the sweep's stored visits (`progress/visits.jsonl`, kept on the host that measured them); `--write`
stores them in the pairs too. A one-visit sweep stored no visits of its re-measures, so its older pairs
cannot be fitted; pairs recorded since carry their figures. `--write` takes the host's measurement
lock: it refuses while a sweep measures (and appends to the pairs it rewrites).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

from nnenergy.measure.remeasure import RAW_KEYS, REMEASURE_FILE, pair_latency, slow_of, with_slow_indices
from nnenergy.scale import PIVOT_MS, SLOW_WINDOW_KEY

PAIRS_LOG = Path("progress") / "remeasure.jsonl"
MIN_FIT_PAIRS = 10




def fit_elasticity(pairs: list[dict], slow: bool = False, chosen: float | None = None) -> dict:
    """The exponents from measure-twice pairs that carry their raw figures and speed indices: the slope
    of log(raw second / raw first) on log(speed index second / first), after the pairs' common factor
    (an intercept), for energy and latency; with each exponent's standard error and the pairs' RMS under
    the fitted and the plain (1.0) exponent, fitted on one half and judged on the other (both ways: the
    gain is not in-sample). On the Intel Xeon the slope (0.64) was not the index's own reading noise: a
    1-30 min median of the reference readings in its place left it at 0.62-0.65 (docs/measurement.md,
    ninth study session).

    The size term (`size`): the exponent may change with the configuration's latency (the first label's,
    at the speed index one for one), linearly in log10(latency / `PIVOT_MS`) between the pairs' smallest
    and largest latency (the energy pairs'). It is kept only where it also wins on the held-out halves, for
    energy; latency then gets its own slope where it wins there too.

    `slow`: the pairs carry each side's slow speed index (`remeasure.with_slow_indices`); the exponent is then
    the fast part's, the slow part applied one for one. `chosen`: an exponent the pairs are also judged under
    (`{name}_chosen_rms_pct`, held out as the fit's)."""
    import numpy as np

    out: dict = {"pairs": 0}
    size: dict = {}
    sides = (("energy", "energy_raw_j", "speed_index"), ("latency", "latency_raw_s", "latency_speed_index"))
    for name, raw, idx in sides:
        rows = [p for p in pairs if all(_positive(p.get(f"{w}_{k}")) for w in ("first", "second") for k in (raw, idx))]
        y = np.log([p[f"second_{raw}"] / p[f"first_{raw}"] for p in rows])
        x = np.log([p[f"second_{idx}"] / p[f"first_{idx}"] for p in rows])
        if slow:  # the slow part one for one, the exponent fitted on the rest (`scale.normalised`)
            s = np.log([slow_of(p, "second", idx) / slow_of(p, "first", idx) for p in rows])
            y, x = y - s, x - s
        sxx = float(np.sum((x - x.mean()) ** 2)) if len(rows) else 0.0
        if len(rows) < MIN_FIT_PAIRS or sxx <= 0:  # too few pairs, or the speed never moved between them
            out["pairs"] = max(out["pairs"], len(rows))
            continue
        line = np.polyfit(x, y, 1)
        slope, resid = line[0], y - np.polyval(line, x)
        se = math.sqrt(float(np.sum(resid ** 2)) / (len(x) - 2) / sxx)
        ms = np.array([_latency_ms(p) for p in rows])
        lo, hi = size.get("range_ms") or (float(ms.min()), float(ms.max()))  # one range: the energy side's
        decades = np.log10(np.clip(ms, lo, hi) / PIVOT_MS)
        held = {"fitted": _heldout(y, x, None), "plain": _heldout(y, x, 1.0), "size": _heldout(y, x, decades)}
        if chosen is not None:
            out[f"{name}_chosen_rms_pct"] = round(_heldout(y, x, chosen), 2)
        out[name] = round(float(slope), 3)
        out[f"{name}_se"] = round(se, 3)
        out[f"{name}_heldout_rms_pct"] = round(held["fitted"], 2)
        out[f"{name}_plain_rms_pct"] = round(held["plain"], 2)
        out["pairs"] = max(out["pairs"], len(rows))
        wins = held["size"] < held["fitted"] and (name == "energy" or bool(size))  # energy's first
        if len(rows) >= 2 * MIN_FIT_PAIRS and wins:
            coef, se2 = _size_fit(y, x, decades)
            size |= {f"{name}_at_pivot": round(coef[0], 3), f"{name}_per_decade": round(coef[1], 3),
                     f"{name}_per_decade_se": round(se2, 3), f"{name}_heldout_rms_pct": round(held["size"], 2),
                     "pivot_ms": PIVOT_MS, "range_ms": size.get("range_ms") or [round(lo, 3), round(hi, 1)]}
    if size:
        out["size"] = size
    return out  # an exponent left out where it could not be fitted (1.0 where applied)


def _size_fit(y, x, decades) -> tuple[list[float], float]:
    """y = (b + k * decades) * x + c by least squares: ([b, k], the standard error of k)."""
    import numpy as np

    a = np.c_[x, x * decades, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ coef
    cov = float(np.sum(resid ** 2)) / (len(y) - 3) * np.linalg.pinv(a.T @ a)
    return [float(coef[0]), float(coef[1])], math.sqrt(max(cov[1, 1], 0.0))


def _heldout(y, x, how) -> float:
    """RMS (%) of the pairs after their common factor, each half judged by a fit on the other: `how`
    None: one slope; a number: that exponent; an array: the slope changing along it (the size term)."""
    import numpy as np

    half = len(x) // 2
    r = np.empty(len(x))
    for test, train in ((slice(half, None), slice(0, half)), (slice(0, half), slice(half, None))):
        if how is None:
            d = y[test] - np.polyfit(x[train], y[train], 1)[0] * x[test]
        elif np.ndim(how) == 0:
            d = y[test] - float(how) * x[test]
        else:
            (b, k), _ = _size_fit(y[train], x[train], how[train])
            d = y[test] - (b + k * how[test]) * x[test]
        r[test] = d - np.median(d)
    return 100 * math.sqrt(float(np.mean((np.exp(r) - 1) ** 2)))


def _latency_ms(pair: dict) -> float:
    return 1e3 * pair_latency(pair)


def _positive(v) -> bool:
    try:
        return float(v) > 0
    except (TypeError, ValueError):
        return False


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def with_raw_figures(folder: Path, pairs: list[dict]) -> list[dict]:
    """`pairs` with `first_*`/`second_*` raw figures filled where missing: the first from the dataset's
    stored row, the second from the sweep's `again` visits (combined as the sweep combines them: the
    geometric mean of each figure) or left out when those visits are gone."""
    import pandas as pd

    rows = pd.read_parquet(folder / "models.parquet").set_index("config_id")
    again: dict[str, list[dict]] = {}
    log = folder / "progress" / "visits.jsonl"
    for rec in _lines(log.read_text()) if log.exists() else []:
        if rec.get("purpose") == "again":
            again.setdefault(rec["config_id"], []).append(rec["result"])
    out = []
    for p in pairs:
        p = dict(p)
        cid = p["config_id"]
        if (cid in rows.index and not all(f"first_{k}" in p for k in RAW_KEYS)
                and abs(rows.at[cid, "energy_j"] / p["first_energy_j"] - 1) < 1e-6):  # the row the label came from
            p |= {f"first_{k}": float(rows.at[cid, k]) for k in RAW_KEYS if k in rows and pd.notna(rows.at[cid, k])}
        visits = again.get(cid)
        if visits and not all(f"second_{k}" in p for k in RAW_KEYS):
            close = abs(_geomean([v["energy_j"] for v in visits]) / p["second_energy_j"] - 1) < 1e-6
            if close:  # the visits are the ones this pair's second label combined
                p |= {f"second_{k}": _geomean([v[k] for v in visits]) for k in RAW_KEYS}
        out.append(p)
    return out


def fit(folder: Path, slow_window_min: float | None = None, chosen: float | None = None) -> tuple[dict, list[dict]]:
    """The elasticity fitted on the dataset's pairs (the index split at `slow_window_min`, where given; the pairs
    also judged under a `chosen` exponent), and the pairs with their raw figures (what `write` stores; their slow
    parts are derived when read, never stored)."""
    import pandas as pd

    from nnenergy.measure.datasheet import remeasured_pairs

    pairs = with_raw_figures(folder, remeasured_pairs(folder))
    if not slow_window_min:
        return fit_elasticity(pairs, chosen=chosen), pairs
    models = pd.read_parquet(folder / "models.parquet")
    fitted = fit_elasticity(with_slow_indices(pairs, models, slow_window_min), slow=True)
    return fitted | {SLOW_WINDOW_KEY: slow_window_min}, pairs


def same_canonical(folder: Path) -> list[Path]:
    """The files holding the canonical reference `folder`'s labels are normalised to."""
    from nnenergy import scale

    canon = scale.canonical_of_dataset(folder)
    key = scale.canonical_key(canon)
    if key is None:
        return []
    profile_dir = folder.parent
    candidates = [*sorted(profile_dir.glob("reference*.json")), *sorted(profile_dir.glob("*/canonical.json"))]
    out = []
    for path in candidates:
        try:
            if scale.canonical_key(json.loads(path.read_text())) == key:
                out.append(path)
        except (OSError, ValueError):
            continue
    return out


def write(folder: Path, fitted: dict, pairs: list[dict], chosen: float | None = None) -> list[Path]:
    """Store the exponents in every file of the dataset's canonical (`chosen`: that exponent for energy and latency
    at the pivot latency, the fit's size slope kept where it found one, the fit beside it under `one_exponent`), and
    the pairs' raw figures."""
    from nnenergy import scale

    size = dict(fitted.get("size") or {})
    if chosen is not None:  # the chosen exponent at the pivot; the fit's change with size, where it found one, kept
        fitted = {k: v for k, v in fitted.items() if k != SLOW_WINDOW_KEY}
        size = size and size | {"energy_at_pivot": chosen, "latency_at_pivot": chosen}
    entry = {"energy": chosen if chosen is not None else size.get("energy_at_pivot", fitted["energy"]),
             "latency": chosen if chosen is not None else size.get("latency_at_pivot", fitted.get("latency", 1.0)),
             "pairs": fitted["pairs"],
             "fitted_on": str(folder.as_posix()), "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             **{k: v for k, v in fitted.items() if k.endswith(("_se", "_rms_pct"))}}
    if fitted.get(SLOW_WINDOW_KEY):
        entry[SLOW_WINDOW_KEY] = fitted[SLOW_WINDOW_KEY]
    if size or chosen is not None:  # `scale.elasticity` reads `size`; the exponents above are then at its pivot
        one = {k: entry.pop(k) for k in list(entry) if k.endswith(("_se", "_rms_pct"))}
        entry["one_exponent"] = one | {"energy": fitted["energy"], "latency": fitted.get("latency")}
        if size:
            entry["size"] = size
        if chosen is not None:
            entry["chosen"] = True
    written = []
    for path in same_canonical(folder):
        canon = json.loads(path.read_text())
        canon[scale.ELASTICITY_KEY] = entry
        path.write_text(json.dumps(canon, indent=1))
        written.append(path)
    by_id = {p["config_id"]: p for p in pairs}
    # every record kept (a re-measure that failed is recorded so it is never retried), the pairs enriched
    for path, as_lines in ((folder / REMEASURE_FILE, False), (folder / PAIRS_LOG, True)):
        if not path.exists():
            continue
        text = path.read_text()
        records = _lines(text) if as_lines else json.loads(text)
        records = [by_id.get(r.get("config_id"), r) if "second_energy_j" in r else r for r in records]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records) if as_lines else json.dumps(records, indent=1))
        tmp.replace(path)
    return written


def _lines(text: str) -> list[dict]:
    """JSON lines, a line cut by a kill skipped (as the sweep's own store skips it)."""
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nnenergy.measure.elasticity", description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--write", action="store_true", help="store the fit in the canonical reference files")
    ap.add_argument("--slow-window", type=float, default=None, metavar="MIN",
                    help="split the speed index: its median over +-MIN minutes one for one, the exponent on the rest")
    ap.add_argument("--exponent", type=float, default=None, metavar="B",
                    help="write this exponent (energy and latency, at the pivot latency; the fit's change with size "
                         "kept where it found one) instead of the fit, which is recorded beside it with the pairs' "
                         "held-out RMS under both: where the pairs' slope is flattened by the indices' own noise "
                         "(docs/measurement.md, seventeenth study session)")
    args = ap.parse_args(argv)
    if not (args.dataset / "models.parquet").exists():
        print(f"elasticity: no dataset at {args.dataset}", file=sys.stderr)
        return 2
    if args.slow_window is not None and not args.slow_window > 0:
        print(f"elasticity: --slow-window must be minutes > 0, not {args.slow_window:g}", file=sys.stderr)
        return 2
    if args.exponent is not None and not (0 < args.exponent <= 2 and args.slow_window is None):
        print(f"elasticity: --exponent must be in (0, 2] and without --slow-window, not {args.exponent:g}",
              file=sys.stderr)
        return 2
    fitted, pairs = fit(args.dataset, args.slow_window, args.exponent)
    if "energy" not in fitted:
        print(f"elasticity: no fit from {fitted['pairs']} pairs with raw figures (a fit needs {MIN_FIT_PAIRS}, "
              "and speed indices that differ between a pair's two sides)", file=sys.stderr)
        return 2
    print(json.dumps(fitted, indent=1))
    if args.write:
        from nnenergy.measure.lock import MeasurementLock, MeasurementLockError

        try:
            with MeasurementLock(wait_s=0):  # a sweep appends to the pairs this rewrites
                for path in write(args.dataset, fitted, pairs, args.exponent):
                    print(f"wrote elasticity into {path}")
        except MeasurementLockError:
            print("elasticity: another process is measuring on this host (a sweep appends to the pairs "
                  "`--write` rewrites): run it when the sweep has stopped", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
