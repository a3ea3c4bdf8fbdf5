"""Measure-twice checks: every dataset carries its own label-noise figure.

A sweep re-measures a small fixed share of its configurations (`remeasure_share`, chosen by a
stable hash of the configuration id, so a resumed sweep picks the same ones) at least
`remeasure_after_min` minutes after their first measurement, in the same session, with the same
protocol. The pairs are kept in `progress/remeasure.jsonl` (appended one configuration at a time:
a sweep killed in the middle of a re-measure loses nothing already stored) and summarised in the
datasheet: the RMS of second / first after the pairs' common factor (the machine's speed moved
between them; labels are normalised by the reference, so that factor is near 1), and the shares
within +-3% and +-5%. `nnenergy train` logs that figure beside every accuracy.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from datetime import datetime

REMEASURE_FILE = "remeasure.json"
# a pair side's slow speed indices (`with_slow_indices`), where its labels use them: per index column
SLOW_KEYS = {"speed_index": "slow_index", "latency_speed_index": "latency_slow_index"}
MIN_PAIRS = 3  # fewer pairs than this give no noise figure (after the common factor one pair is always 0%)


def selected(config_id: str, share: float, seed: int = 0) -> bool:
    """Whether `config_id` is in the re-measured share (stable across sessions and processes)."""
    if share <= 0:
        return False
    h = int(hashlib.sha1(f"{seed}|{config_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < share


def due(rows: list[dict], done: set, share: float, after_min: float, session_start: str, now: datetime,
        seed: int = 0) -> list[dict]:
    """Rows of this session's selected configurations measured >= `after_min` ago, not re-measured yet."""
    out = []
    for r in rows:
        block = str(r.get("block") or "")
        if not block or block < session_start or r["config_id"] in done:
            continue
        if not selected(r["config_id"], share, seed):
            continue
        if (now - datetime.fromisoformat(block)).total_seconds() >= after_min * 60:
            out.append(r)
    return out


RAW_KEYS = ("energy_raw_j", "speed_index", "latency_raw_s", "latency_speed_index")


def raw_figures(which: str, result: dict) -> dict:
    """A pair side's raw figures and speed indices (`first_energy_raw_j`, ...): what its label is
    normalised from, so the pair can be judged again under another elasticity (`nnenergy.scale`)."""
    return {f"{which}_{k}": float(result[k]) for k in RAW_KEYS if result.get(k) is not None}


def label_ratio(pair: dict, elasticity=1.0) -> float | None:
    """second / first energy label of a pair, normalised with `elasticity` (an exponent, or a
    `scale.Elasticity` read at the first label's latency) where the pair carries its raw figures (pairs
    recorded before they did: their stored labels, the speed index applied one for one)."""
    from nnenergy.scale import Elasticity, normalised

    el = Elasticity.of(elasticity)
    if not el.plain and all(float(pair.get(f"{w}_{k}") or 0) > 0
                            for w in ("first", "second") for k in ("energy_raw_j", "speed_index")):
        beta = el.energy_at(pair_latency(pair))
        slow = {w: slow_of(pair, w, "speed_index") if el.slow_window_min else 1.0 for w in ("first", "second")}
        return (normalised(pair["second_energy_raw_j"], pair["second_speed_index"], beta, slow["second"])
                / normalised(pair["first_energy_raw_j"], pair["first_speed_index"], beta, slow["first"]))
    if pair.get("first_energy_j", 0) > 0 and pair.get("second_energy_j", 0) > 0:
        return pair["second_energy_j"] / pair["first_energy_j"]
    return None


def slow_of(pair: dict, side: str, col: str) -> float:
    """A pair side's slow part of its index `col` (`with_slow_indices`), else that index itself: one for one."""
    return float(pair.get(f"{side}_{SLOW_KEYS[col]}") or pair[f"{side}_{col}"])


def with_slow_indices(pairs: list[dict], models, window_min: float | None) -> list[dict]:
    """`pairs` with each side's slow speed indices (`first_slow_index`, `second_latency_slow_index`, ...:
    `scale.slow_index` over the dataset's rows, `models`, within +-`window_min` of the first label's row and of
    the second measurement); the pairs themselves where there is no window."""
    if not window_min or not pairs:
        return pairs
    import pandas as pd

    from nnenergy.scale import row_seconds, slow_index

    t = row_seconds(models).to_numpy(float)
    first_at = dict(zip(models["config_id"], t))
    second = row_seconds(pd.DataFrame({"measured_at": [p.get("second_at") for p in pairs]}))
    at = {"first": [first_at.get(p["config_id"], float("nan")) for p in pairs], "second": second.to_numpy(float)}
    out = [dict(p) for p in pairs]
    for col, key in SLOW_KEYS.items():
        if col not in models:
            continue
        for w, when in at.items():
            for p, v in zip(out, slow_index(t, models[col].to_numpy(float), when, window_min)):
                if math.isfinite(v):
                    p[f"{w}_{key}"] = float(v)
    return out


def pair_latency(pair: dict) -> float:
    """The configuration's latency a size-dependent exponent is read at: its first label's, raw over the
    speed index one for one (as `scale.relabel` reads a row's)."""
    raw, idx = pair.get("first_latency_raw_s"), pair.get("first_latency_speed_index")
    if raw and idx:
        return float(raw) / float(idx)
    from nnenergy.scale import PIVOT_MS

    return float(pair.get("first_latency_s") or PIVOT_MS / 1e3)


def agreement(pairs: list[dict], elasticity=1.0) -> dict:
    """RMS (%) of second/first label after the common factor, shares within +-3% and +-5% (labels
    normalised with the dataset's `elasticity`, as its predictors learn them)."""
    ratios = [r for r in (label_ratio(p, elasticity) for p in pairs) if r is not None]
    if len(ratios) < MIN_PAIRS:  # the pairs' common factor absorbs one or two pairs: no figure yet
        return {"n": 0, "pairs": len(ratios)}
    common = statistics.median(ratios)
    dev = [r / common - 1 for r in ratios]
    return {"n": len(dev), "common_factor": common,
            "rms_pct": 100 * math.sqrt(sum(d * d for d in dev) / len(dev)),
            "within3_pct": 100 * sum(abs(d) <= 0.03 for d in dev) / len(dev),
            "within5_pct": 100 * sum(abs(d) <= 0.05 for d in dev) / len(dev),
            "minutes_apart_median": statistics.median(p.get("minutes_apart", 0.0) for p in pairs)}


def datasheet_lines(pairs: list[dict], share: float, elasticity=1.0) -> list[str]:
    """The datasheet's measure-twice section."""
    a = agreement(pairs, elasticity)
    head = ["## Measure-twice check (label noise)", ""]
    if not a["n"]:
        done = f"{a['pairs']} configurations re-measured so far, fewer than the {MIN_PAIRS} a figure needs" \
            if a.get("pairs") else "No configuration re-measured yet"
        return head + [f"{done} (share {share:.0%}; each is re-measured later in the session that first "
                       "measured it)."]
    return head + [
        f"{a['n']} configurations ({share:.0%} of the sweep, chosen by a stable hash) measured again a median "
        f"{a['minutes_apart_median']:.0f} min after the first time, in the same session and protocol. After the "
        f"pairs' common factor ({a['common_factor']:.3f}), the RMS of second / first is **{a['rms_pct']:.1f}%**; "
        f"{a['within3_pct']:.0f}% agree within ±3%, {a['within5_pct']:.0f}% within ±5%. No predictor can be "
        "judged more finely than this: it is the noise floor of this dataset's labels."
        + _elasticity_text(elasticity)]


def _elasticity_text(elasticity) -> str:
    from nnenergy.scale import Elasticity

    el = Elasticity.of(elasticity)
    if el.plain:
        return ""
    size = (f", {el.energy_per_decade:+.2f} per tenfold latency (held between {el.lo_ms:.3g} and {el.hi_ms:.4g} ms)"
            if el.energy_per_decade else "")
    if el.slow_window_min:
        return (f" Labels normalised with the speed index split in two: its slow part (the median of the rows' "
                f"indices within ±{el.slow_window_min:g} min) one for one, the rest to the power {el.energy:.2f} at "
                f"{el.pivot_ms:.0f} ms per pass{size} (the canonical reference's elasticity, `nnenergy.scale`).")
    return (f" Labels normalised with the speed index to the power {el.energy:.2f} at {el.pivot_ms:.0f} ms per pass"
            f"{size} (the canonical reference's elasticity, `nnenergy.scale`).")
