"""The machine's speed index: one definition, read by a short probe, stored, applied to predictions.

A shared VM's speed drifts by the hour (0.69 -> 0.75 -> 0.97 within two hours on one Zen 4), so a
profile's measured data are stated at one fixed scale, its *canonical reference*
(`data/<profile>/reference.json`: the reference network's energy and latency per pass, fixed by the
profile's first sweep), and a prediction is moved to the speed now by

    speed_index         = energy per pass of the reference now  / its canonical energy
    latency_speed_index = latency per pass of the reference now / its canonical latency

1.0 = as fast as when the profile's data were measured; 1.4 = 40% more energy per pass today.
A network's cost does not follow the reference's one for one: on the Intel Xeon a configuration
measured twice moved by the ratio of its speed indices to a power of ~0.65 (0.70 for a 30 ms network,
more for smaller ones, less for larger; latency alike),
fitted on its dataset's measure-twice pairs (`measure.elasticity`). That exponent, the canonical
reference's `elasticity`, is applied on both sides: labels are `raw / speed_index ** elasticity`
(`scale.relabel`, when a dataset is loaded) and predictions are multiplied by
`speed_index ** elasticity` (`apply`); 1.0 (the default) is plain division. On the same drift
measurements it took the defaults from 12.7% to 10.5% RMSPE (docs/measurement.md, ninth session).
The exponent may depend on the network's size (`scale.Elasticity`: small networks followed the
reference nearly one for one, 1 s ones by a third of it); a prediction reads it at its configuration's
latency, and states the exponent and factors it got. Where single readings are noisy, the elasticity may split the
index (`scale`, `slow_window_min`): the median of this host's readings of the window before a prediction is applied
one for one, the reading over it to the exponent (`Speed.with_slow`).
Sweeps read the same ratio round by round (`measure.protocol`); this module reads it between
sweeps: `probe` (~2.4 s on the Intel Xeon, ~3 s on the EPYC Zen 1), `record`/`history` (per profile,
`<cache>/speed/<profile>.jsonl`), `resolve` (which reading a prediction uses: `auto`, `now`, `last`,
`canonical`), `for_predictor` (which applies to a given predictor, and why not) and `apply`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

# The scale a dataset's labels are stated at, defined with the datasets (`nnenergy.scale`), used here too.
from nnenergy.scale import (  # noqa: F401
    ELASTICITY_KEY,
    Elasticity,
    canonical_key,
    canonical_of_dataset,
    elasticity,
    relabel,
)

# The probe's windows, a busy one measured again (`nnenergy.speed_windows`).
from nnenergy.speed_windows import clean_windows, load_fn, reference_fn, run_for

MODES = ("auto", "now", "last", "canonical")
MAX_AGE_ENV = "NNENERGY_SPEED_MAX_AGE_MIN"
MODE_ENV = "NNENERGY_SPEED"
# A reading younger than this is used as it is; an older one is replaced by a probe (`auto`).
# Chosen from the drift measured in benchmarks/protocol_study (docs/measurement.md, "The speed probe"):
# on the Zen 1 readings 0-12 min apart already differed by a median 19%, so an older one is re-probed,
# while a probe on every call costs ~2.5 s for no gain measured over a reading a few minutes old.
DEFAULT_MAX_AGE_MIN = 10.0
# A fresh process runs its first passes up to 40% slow: discarded. A longer warm-up (1.2 s, run while the
# tracker starts) was tried on the Intel Xeon on 2026-12-06: its agreement with the many-model ratio could
# not be told from this one's within the drift runs' noise (benchmarks/drift.md), so this one stays.
PROBE_WARMUP_S = 0.3
# 0.1 s windows of the reference after the warm-up: in benchmarks/protocol_study, 5 windows agreed with
# the many-model ratio as well as 30 did (the machine's own minute-to-minute swings dominate).
PROBE_WINDOWS = 8
# In context (`context=True`): each reference window follows a window of the load (`speed_windows.LOAD`), as the
# sweeps read the reference after each configuration's window; fewer windows, as each costs two. A candidate only:
# on the EPYC Zen 4 (10 drift runs, 2026-12-08) it read what the standalone probe read (-1.2%, RMS 7.5%).
PROBE_CONTEXT_WINDOWS = 6
PROBE_ROUND = 3  # windows per round: the canonical reference's statistic is a median of round minima
# A window during which the hypervisor stole CPU or another process ran (the sweeps' clean-window rule,
# `measure.protocol.ProtocolSettings`) is measured again while the probe stays within its budget (issue 29:
# <= 3 s after the framework's import); on the EPYC Zen 4 of 2026-12-07 steal reached 0.2-0.4 cores.
PROBE_BUDGET_S = 3.0
HISTORY_SPAN = 30  # the readings the speed's own variability is estimated from
# The probe's own error against the many-model ratio (benchmarks/protocol_study, RMS): the least the
# interval of a freshly probed prediction widens by.
PROBE_ERROR = 0.03
Z90 = 1.645


class SpeedError(ValueError):
    """Bad input: an unknown mode, a corrupt history file, a reading from another profile."""

    exit_code = 2


@dataclass
class Speed:
    """The speed a prediction is stated at."""

    profile: str
    speed_index: float
    latency_speed_index: float
    read_at: str | None  # when it was read (None: canonical, no scaling)
    source: str  # probe | last reading | canonical | bring-up
    canonical_at: str | None  # when the profile's canonical reference was measured
    variability: float  # relative sd of the speed a prediction may be off by (widens its interval)
    note: str = ""  # one line for the user, when the reading is not what was asked for
    scaling: Elasticity = Elasticity()  # the predictor's canonical's elasticity (plain: one for one)
    # the slow parts of (speed_index, latency_speed_index) where the elasticity splits the index
    # (`scale`: the median of this host's readings over its window); None: the reading itself
    slow: tuple[float, float] | None = None

    @property
    def energy_factor(self) -> float:
        """What a prediction at the canonical speed is multiplied by (at the pivot latency; `factors`)."""
        return self.factors()[0]

    @property
    def latency_factor(self) -> float:
        return self.factors()[1]

    def factors(self, latency_s=None) -> tuple:
        """(energy, latency) multipliers of a configuration of `latency_s` per pass at the canonical speed
        (a number or an array; None: at the pivot)."""
        el = self.scaling
        at = el.pivot_ms / 1e3 if latency_s is None else latency_s
        se, sl = self.slow_parts()
        return (se * (self.speed_index / se) ** el.energy_at(at),
                sl * (self.latency_speed_index / sl) ** el.latency_at(at))

    def slow_parts(self) -> tuple[float, float]:
        """The slow parts of the two indices applied one for one ((1, 1) where the elasticity has no window)."""
        if not self.scaling.slow_window_min:
            return 1.0, 1.0
        return self.slow or (self.speed_index, self.latency_speed_index)

    def with_elasticity(self, canon: dict | None) -> "Speed":
        return replace(self, scaling=elasticity(canon))

    def with_slow(self, readings: list[dict], window_min: float | None) -> "Speed":
        """This speed with its slow parts: the medians of `readings` (this host's, this canonical's) read within
        `window_min` minutes before it, itself included (unchanged without a window or a time)."""
        if not window_min or self.read_at is None:
            return self
        from nnenergy.dataset import parse_utc

        now = parse_utc(self.read_at)
        others = [r for r in readings if r.get("read_at") != self.read_at  # itself, where the history holds it
                  and 0 <= _seconds_before(now, r.get("read_at")) <= window_min * 60]
        e = [self.speed_index, *(float(r["speed_index"]) for r in others)]
        t = [self.latency_speed_index, *(float(r.get("latency_speed_index", r["speed_index"])) for r in others)]
        return replace(self, slow=(_geometric_median(e), _geometric_median(t)))

    def as_dict(self, latency_s=None) -> dict:
        """What a prediction records of its speed: the reading, and the exponents and factors applied to a
        configuration of `latency_s` per pass (None: at the pivot latency)."""
        el = self.scaling
        at = el.pivot_ms / 1e3 if latency_s is None else float(latency_s)
        out = {k: v for k, v in asdict(self).items() if k not in ("scaling", "slow")}
        fe, fl = self.factors(at)
        out |= {"elasticity": float(el.energy_at(at)), "latency_elasticity": float(el.latency_at(at)),
                "energy_factor": float(fe), "latency_factor": float(fl)}
        if el.slow_window_min:
            se, sl = self.slow_parts()
            out |= {"slow_index": float(se), "latency_slow_index": float(sl), "slow_window_min": el.slow_window_min}
        if el.energy_per_decade or el.latency_per_decade:
            out["elasticity_per_decade"] = [el.energy_per_decade, el.latency_per_decade]
        return out


def canonical(profile: str, data_root: Path | None = None) -> dict | None:
    """The profile's canonical reference (`data/<profile>/reference.json`), or None."""
    from nnenergy.profiles import DATA_ROOT

    path = Path(data_root or DATA_ROOT) / profile / "reference.json"
    try:
        return json.loads(path.read_text())
    except OSError:
        return None
    except ValueError:
        raise SpeedError(f"{path} is not JSON: the profile's canonical reference is corrupt") from None


def default_mode() -> str:
    """`$NNENERGY_SPEED` when set (the tests set `canonical`), else `auto`."""
    return check_mode(os.environ.get(MODE_ENV, "auto"))


def history_file(profile: str) -> Path:
    from nnenergy.paths import cache_dir

    return cache_dir() / "speed" / f"{profile}.jsonl"


def history(profile: str, canon: dict | None = None, data_root: Path | None = None) -> list[dict]:
    """This host's readings of `profile`, oldest first; with `canon`, only those read against that canonical
    reference. Readings from before they recorded theirs (2026-12-07) were read against the profile's
    reference file. A corrupt file is an error, never overwritten."""
    path = history_file(profile)
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            indices = float(rec["speed_index"]), float(rec["latency_speed_index"])
            datetime.fromisoformat(str(rec["read_at"]))  # a time every reader of the history can place
            if not all(0 < v < math.inf for v in indices):
                raise ValueError("an index is not a positive number")
        except (ValueError, KeyError, TypeError):
            raise SpeedError(f"{path} line {i} is not a speed reading: fix or remove that line "
                             f"(`--speed canonical` predicts without it)") from None
        if rec.get("profile", profile) != profile:
            raise SpeedError(f"{path} line {i} is a reading of {rec['profile']}, not {profile}: remove that line")
        out.append(rec)
    if canon is None:
        return out
    from nnenergy.paths import data_root as default_root  # from any folder: the checkout's data

    key, legacy = canonical_key(canon), canonical_key(canonical(profile, data_root or default_root()))
    # a reading that names no canonical, of a profile with no reference file, is taken as read against any
    return [r for r in out if (r.get("canonical") or legacy) in (key, None)]


def record(profile: str, reading: dict) -> dict:
    """Append a reading to the profile's history (one line, appended: nothing recorded is lost)."""
    if reading.get("profile", profile) != profile:
        raise SpeedError(f"a reading of {reading['profile']} cannot be recorded as {profile}'s")
    rec = {"profile": profile, **{k: v for k, v in reading.items() if k != "profile"}}
    path = history_file(profile)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
    except OSError:  # a read-only cache: the reading still serves this prediction
        pass
    return rec


def round_min_median(values: list[float], per_round: int = PROBE_ROUND) -> float:
    """The canonical reference's statistic: the median over rounds of each round's minimum."""
    rounds = [values[i:i + per_round] for i in range(0, len(values) - per_round + 1, per_round)] or [values]
    return statistics.median(min(r) for r in rounds)


def reader(statistic: str):
    """The probe's windows -> one value, read as the canonical reference was (its `statistic`)."""
    from nnenergy.measure.protocol import Series, Window

    if statistic == "round_min_median":
        return round_min_median

    def read(values: list[float]) -> float:
        return Series([Window(0, v, v, 0, 0, 0, 0, 1, 0, 0, False) for v in values]).stat("energy_j", statistic)
    return read


def probe(profile: str, data_root: Path | None = None, windows: int | None = None, canon: dict | None = None,
          context: bool = False) -> dict:
    """Read the speed index now: the reference network in 0.1 s windows after a warm-up, under the
    host's measurement lock (raises `MeasurementLockError` while another process measures); `context`: each
    window after one of the load, as the sweeps read it."""
    from nnenergy.measure.lock import MeasurementLock
    from nnenergy.measure.meter import EnergyMeter

    canon = canon or canonical(profile, data_root)
    if canon is None:
        raise SpeedError(f"{profile} has no canonical reference: `nnenergy calibrate` measures one")
    from nnenergy.measure import backends

    backends.current()  # the framework's import is the command's, not the probe's (`seconds`)
    t0 = time.perf_counter()
    with MeasurementLock(wait_s=0):
        fn = reference_fn()
        load = load_fn() if context else None
        meter = EnergyMeter()
        for f in (fn, load):
            if f is not None:
                run_for(f, PROBE_WARMUP_S / (2 if context else 1))
        windows = windows or (PROBE_CONTEXT_WINDOWS if context else PROBE_WINDOWS)
        measured, redone, busy = clean_windows(fn, meter, windows, t0 + PROBE_BUDGET_S, load)
        latency, energy = zip(*measured)
    read = reader(canon.get("statistic", "round_min_median"))
    energy, latency = list(energy), list(latency)
    e, lat = read(energy), read(latency)
    return {"profile": profile, "speed_index": e / canon["energy_j"], "latency_speed_index": lat / canon["latency_s"],
            "read_at": _now(), "source": "probe", "canonical": canonical_key(canon),
            "spread": (max(energy) - min(energy)) / e,
            "seconds": round(time.perf_counter() - t0, 2), "warmup_s": PROBE_WARMUP_S,
            "windows_redone": redone, "busy_windows": busy, "load_1min": _load_1min(), "context": context}


def _load_1min() -> float | None:
    """The host's 1-minute load average when the probe read: on the EPYC Zen 4 the probe read 24-106% high
    within minutes of heavy work (training, a sweep), so each reading records how busy the host just was."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _seconds_before(now: datetime, read_at) -> float:
    """How long before `now` a reading was read (-1 where its time cannot be read: never in a window)."""
    from nnenergy.dataset import parse_utc

    try:
        return (now - parse_utc(read_at)).total_seconds()
    except ValueError:
        return -1.0


def _geometric_median(values: list[float]) -> float:
    return math.exp(statistics.median(math.log(v) for v in values))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _age_min(read_at: str) -> float:
    from nnenergy.dataset import parse_utc  # a reading without a time zone is UTC

    return (datetime.now(timezone.utc) - parse_utc(read_at)).total_seconds() / 60


def max_age_min() -> float:
    text = os.environ.get(MAX_AGE_ENV)
    if text is None:
        return DEFAULT_MAX_AGE_MIN
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise SpeedError(f"{MAX_AGE_ENV}={text!r}: minutes, a number >= 0")
    return value


def variability(readings: list[dict]) -> float:
    """The relative sd of the machine's speed over its recent readings (0 with fewer than 3)."""
    idx = [float(r["speed_index"]) for r in readings[-HISTORY_SPAN:]]
    return statistics.stdev(math.log(v) for v in idx) if len(idx) >= 3 else 0.0


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise SpeedError(f"--speed must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def resolve(profile: str, mode: str = "auto", data_root: Path | None = None,
            fallback: dict | None = None, canon: dict | None = None) -> Speed | None:
    """The speed a prediction of `profile` on this machine is stated at; None when there is no
    canonical reference (`canon`, the predictor's own, else the profile's file): its predictions stay
    at the scale they were trained at. `fallback` is a reading to use when this host has none yet (a
    transferred predictor's bring-up reading)."""
    check_mode(mode)
    canon = canon or canonical(profile, data_root)
    if canon is None:
        return None
    at = canon.get("measured_at")
    if mode == "canonical":
        return Speed(profile, 1.0, 1.0, None, "canonical", at, 0.0)
    past = history(profile, canon, data_root)  # readings on this predictor's scale only
    window = elasticity(canon).slow_window_min
    spread = variability(past)
    last = past[-1] if past else fallback
    note = ""
    if mode == "last" and last is None:
        mode, note = "now", "no earlier speed reading of this machine: probed now"
    if mode == "auto":
        limit = max_age_min()
        mode = "last" if last is not None and _age_min(str(last["read_at"])) <= limit else "now"
    if mode == "now":
        from nnenergy.measure.lock import MeasurementLockError
        from nnenergy.measure.meter import MeasurementError

        try:
            reading = record(profile, probe(profile, data_root, canon=canon))
            return Speed(profile, reading["speed_index"], reading["latency_speed_index"], reading["read_at"],
                         "probe", at, max(PROBE_ERROR, 0.0), note).with_slow(past, window)
        except (MeasurementLockError, MeasurementError) as exc:
            why = ("another process is measuring on this host" if isinstance(exc, MeasurementLockError)
                   else f"the speed probe failed ({str(exc).splitlines()[0][:120]})")
            if last is None:
                return Speed(profile, 1.0, 1.0, None, "canonical", at, spread,
                             f"{why} and there is no earlier reading: stated at the canonical speed")
            note = f"{why}: stated at the last speed reading ({last['read_at']})"
    return Speed(profile, float(last["speed_index"]), float(last.get("latency_speed_index", last["speed_index"])),
                 str(last["read_at"]), last.get("source", "last reading") if last is not fallback else "bring-up",
                 at, max(spread, PROBE_ERROR), note).with_slow(past, window)


def apply(out, speed: Speed | None, size=None):
    """Scale a predictor's output (rows of energy_j, energy_lo_j, energy_hi_j, latency_s) to `speed`
    (its speed index to the power of the predictor's elasticity, read at each configuration's latency at
    the canonical speed: its `total` row's, where the output has them, else each row's own; `size`: those
    latencies per row, `configuration_latency(out)`, where the caller has them already),
    widening the energy interval by the speed's own variability (root-sum-square with the model's,
    in log space)."""
    if speed is None:
        return out
    import numpy as np

    out = out.copy()
    size = configuration_latency(out) if size is None else size
    fe, fl = speed.factors(size.to_numpy(float))
    for col in ("energy_j", "energy_lo_j", "energy_hi_j"):
        if col in out:
            out[col] = out[col] * fe
    out["latency_s"] = out["latency_s"] * fl
    # the speed's own variability enters as the index does: to its exponent, or one for one where the index is split
    # (its slow part, what a prediction's speed mostly is, is applied one for one)
    exponent = 1.0 if speed.scaling.slow_window_min else np.asarray(speed.scaling.energy_at(size.to_numpy(float)))
    w = np.abs(Z90 * speed.variability * exponent)
    if np.any(w > 0) and {"energy_lo_j", "energy_hi_j"} <= set(out.columns):
        e = out["energy_j"]
        lo = np.log(e / out["energy_lo_j"]).clip(lower=0)
        hi = np.log(out["energy_hi_j"] / e).clip(lower=0)
        out["energy_lo_j"] = e / np.exp(np.sqrt(lo ** 2 + w ** 2))
        out["energy_hi_j"] = e * np.exp(np.sqrt(hi ** 2 + w ** 2))
    return out


def configuration_latency(out):
    """Each output row's configuration latency at the canonical speed (what a size-dependent
    elasticity is read at): its configuration's `total` row's, else the sum of its rows' (so every row of
    a configuration gets one factor and its layers still add up), else, without configurations, the row's own."""
    if "config_id" not in out.columns:
        return out["latency_s"]
    rows = out[out["row"] != "total"] if "row" in out.columns else out
    per = rows.groupby("config_id")["latency_s"].sum()
    if "row" in out.columns:
        totals = out[out["row"] == "total"].drop_duplicates("config_id").set_index("config_id")["latency_s"]
        per = totals.combine_first(per)
    return out["config_id"].map(per).fillna(out["latency_s"])


def chosen_mode(mode) -> str | Speed:
    """The speed a prediction asks for: a `Speed` reading as it is, a mode checked, None: the default."""
    if isinstance(mode, Speed):
        return mode
    return check_mode(mode) if mode is not None else default_mode()


def for_predictor(meta: dict, mode: str | Speed, panel: bool = False) -> tuple[Speed | None, dict]:
    """The speed a prediction by the predictor of metadata `meta` is stated at (None: left unscaled),
    and what the prediction records of it (`Speed.as_dict()` and a `note`: why none, or why another
    reading). A predictor of this machine's profile is moved to the speed now; another profile's, or one
    adapted by a panel calibration file (`panel`: it states the machine's speed when its panel was
    measured), is not."""
    s, note = _for_predictor(meta, mode, panel)
    stated = s.as_dict() if s is not None else {"speed_index": None, "latency_speed_index": None, "read_at": None,
                                                "source": "none", "canonical_at": None, "variability": 0.0}
    return s, stated | {"note": note}


def _for_predictor(meta: dict, mode: str | Speed, panel: bool) -> tuple[Speed | None, str]:
    from nnenergy.measure.hardware import current_profile_name

    profile = (meta.get("hardware") or {}).get("profile", "")
    if isinstance(mode, Speed):  # a reading given by the caller (benchmarks/drift.py)
        if mode.profile != profile:
            raise SpeedError(f"speed: a reading of {mode.profile} cannot state a predictor of {profile}")
        canon = meta.get("canonical_reference")
        window = elasticity(canon).slow_window_min
        given = mode.with_slow(history(profile, canon), window) if window and mode.slow is None else mode
        return given.with_elasticity(canon), ""
    if panel:
        return None, "not applied: the calibration file states this machine's speed when its panel was measured"
    if profile != current_profile_name():
        return None, (f"not applied: the predictor's profile {profile or '(unknown)'} is not this machine's "
                      "(`nnenergy calibrate` brings this machine up)")
    if "canonical_reference" in meta and not meta["canonical_reference"]:
        return None, ("not applied: the predictor's training labels carry no speed index (measured before "
                      "the protocol had a reference), so they are on no reference's scale")
    c = meta.get("calibrated") or {}
    bringup = {"speed_index": c["speed_index"], "latency_speed_index": c.get("latency_speed_index", c["speed_index"]),
               "read_at": c.get("at")} if c.get("speed_index") and c.get("at") else None
    s = resolve(profile, mode, fallback=bringup, canon=meta.get("canonical_reference"))
    if s is None:
        return None, f"not applied: {profile} has no canonical reference (`nnenergy calibrate` measures one)"
    # the elasticity its labels were normalised with: none for a predictor logged before it stored its canonical
    return s.with_elasticity(meta.get("canonical_reference")), s.note
