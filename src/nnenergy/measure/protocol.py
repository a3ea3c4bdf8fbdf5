"""The measurement protocol: interleaved rounds with a reference, robust statistics, clean windows.

A shared 2-core cloud VM changes speed over minutes (neighbours, frequency) without any
steal showing, so measuring all windows of one configuration back to back bakes that drift
into its label. Instead, a block of configurations is measured in `rounds`; in each round
every configuration gets `windows` short windows, in a fresh random order, and a fixed
reference model is measured too. Per configuration and round the statistic is taken over
that round's windows; across rounds, the median. The reference's value in the same round
divided by its canonical value is the round's *speed index*; the normalised value is the raw
value divided by it. Windows during which other processes or the hypervisor used the CPU are
discarded and measured again.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import random
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Hashable

import numpy as np

from nnenergy.measure import contention
from nnenergy.measure.meter import EnergyMeter, MeasurementError

log = logging.getLogger(__name__)

STATISTICS = ("median", "min", "q25", "round_min_median", "trim20")
NORMALISE = ("round", "window", "adjacent")
# Busy windows are kept (and flagged in their row) instead of redone: for a host shared on purpose.
BUSY_WINDOWS_ENV = "NNENERGY_BUSY_WINDOWS"


@dataclass(frozen=True)
class ProtocolSettings:
    rounds: int = 3
    windows: int = 2  # per configuration per round
    min_seconds: float = 0.1
    min_passes: int = 1
    warmup: int = 2
    statistic: str = "round_min_median"  # which of STATISTICS becomes `energy_j` (chosen by the benchmark)
    # round: each round's speed index from the reference windows opening and closing it; window: each
    # window divided by the reference window measured right after it (A-R-A-R); adjacent: A-R-A-R too,
    # the statistic of the windows over the same statistic of their adjacent reference windows (the
    # winner of benchmarks/protocol_study, docs/measurement.md).
    normalise: str = "round"
    max_other_cores: float = 0.3  # other processes' CPU use during a window above which it is redone
    max_steal_cores: float = 0.1
    max_retries: int = 3  # per window, before the reading is kept and flagged
    # A label spread over time: each configuration is measured on `visits` separate blocks, each
    # >= `visit_gap_min` after the one before, and its label is the geometric mean of the visits'.
    # The speed of a shared VM drifts in ways the reference only half follows; visits average that
    # drift out (benchmarks/protocol_study: 3 visits of 4 pairs, 2.8% run to run on the Xeon).
    visits: int = 1
    visit_gap_min: float = 10.0

    @property
    def reference_statistic(self) -> str:
        """How the reference's windows become one value (its canonical value, a probe's reading): per
        window normalising reads the reference as the labels are read; per round, by its round minima."""
        return "round_min_median" if self.normalise == "round" else self.statistic

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise ValueError(f"protocol.statistic must be one of {STATISTICS}, not {self.statistic!r}")
        if self.rounds < 1 or self.windows < 1:
            raise ValueError("protocol.rounds and protocol.windows must be >= 1")
        if self.visits < 1:
            raise ValueError(f"protocol.visits must be >= 1, got {self.visits}")
        if not self.visit_gap_min >= 0:
            raise ValueError(f"protocol.visit_gap_min must be >= 0, got {self.visit_gap_min}")
        if self.normalise not in NORMALISE:
            raise ValueError(f"protocol.normalise must be one of {NORMALISE}, not {self.normalise!r}")


@dataclass
class Window:
    round: int
    energy_j: float  # per pass
    latency_s: float  # per pass
    power_w: float
    cpu_j: float
    ram_j: float
    gpu_j: float
    passes: int
    other_cores: float
    steal_cores: float
    contended: bool


@dataclass
class Series:
    """All windows of one callable across the rounds of a block."""

    windows: list[Window] = field(default_factory=list)

    def per_round(self, attr: str, how: str) -> list[float]:
        rounds = sorted({w.round for w in self.windows})
        out = []
        for r in rounds:
            vals = [getattr(w, attr) for w in self.windows if w.round == r]
            out.append(min(vals) if how == "min" else statistics.median(vals))
        return out

    def stat(self, attr: str, how: str) -> float:
        vals = [getattr(w, attr) for w in self.windows]
        if how == "median":
            return statistics.median(vals)
        if how == "min":
            return min(vals)
        if how == "q25":
            return float(np.quantile(vals, 0.25))
        if how == "round_min_median":
            return statistics.median(self.per_round(attr, "min"))
        if how == "trim20":  # the mean of the middle 60%: a slow window (another process, a hiccup) is outvoted
            return trimmed_mean(vals, 0.2)
        raise ValueError(how)


def trimmed_mean(values: list[float], cut: float) -> float:
    v = sorted(values)
    k = int(len(v) * cut)
    kept = v[k:len(v) - k] if len(v) > 2 * k else v
    return statistics.fmean(kept)


@dataclass
class Result:
    """One configuration's figures from a block: raw, speed index and normalised."""

    energy_j: float  # normalised, by the chosen statistic: what predictors learn
    latency_s: float
    energy_raw_j: float  # the chosen statistic before normalisation
    latency_raw_s: float
    speed_index: float  # reference now / reference canonical (energy); 1.0 = nominal speed
    latency_speed_index: float
    power_w: float
    cpu_j: float
    ram_j: float
    gpu_j: float
    passes: int
    windows: int
    contended_windows: int
    other_cores_max: float
    steal_cores_max: float
    spread: float  # (max - min) / median of the per-round minima; over visits: of the visits' labels
    window_energies_j: list[float]
    stats_raw: dict[str, float]  # every statistic, raw
    stats_normalised: dict[str, float]  # every statistic, normalised round by round

    def as_row(self) -> dict:
        row = {k: v for k, v in self.__dict__.items() if k not in ("stats_raw", "stats_normalised")}
        row |= {f"energy_raw_{k}_j": v for k, v in self.stats_raw.items()}
        row |= {f"energy_norm_{k}_j": v for k, v in self.stats_normalised.items()}
        return row


def combine_visits(results: list[Result]) -> Result:
    """One label from a configuration's visits (`ProtocolSettings.visits`): geometric means of the
    normalised and raw figures and of every statistic; counts summed; the spread is that of the visits."""
    if len(results) == 1:
        return results[0]
    gmean = statistics.geometric_mean
    last = results[-1]
    e, t = gmean(r.energy_j for r in results), gmean(r.latency_s for r in results)
    e_raw, t_raw = gmean(r.energy_raw_j for r in results), gmean(r.latency_raw_s for r in results)
    return replace(
        last, energy_j=e, latency_s=t, energy_raw_j=e_raw, latency_raw_s=t_raw,
        speed_index=e_raw / e, latency_speed_index=t_raw / t,
        power_w=statistics.median(r.power_w for r in results),
        cpu_j=e * last.cpu_j / last.energy_j, ram_j=e * last.ram_j / last.energy_j,
        gpu_j=e * last.gpu_j / last.energy_j,
        passes=sum(r.passes for r in results), windows=sum(r.windows for r in results),
        contended_windows=sum(r.contended_windows for r in results),
        other_cores_max=max(r.other_cores_max for r in results),
        steal_cores_max=max(r.steal_cores_max for r in results),
        spread=_spread([r.energy_j for r in results]),
        window_energies_j=[w for r in results for w in r.window_energies_j],
        stats_raw={h: gmean(r.stats_raw[h] for r in results) for h in last.stats_raw},
        stats_normalised={h: gmean(r.stats_normalised[h] for r in results) for h in last.stats_normalised})


def _spread(values: list[float]) -> float:
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med > 0 else math.inf


@contextmanager
def _no_garbage_collection():
    """No collector pause inside a window: with hundreds of models kept alive, one full collection takes
    about a second. A block's few seconds of calls allocate little that only the collector frees."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class InterleavedMeasurer:
    """Measures a block of callables in interleaved rounds beside a reference callable."""

    def __init__(self, meter: EnergyMeter, settings: ProtocolSettings, reference: Callable[[], object],
                 canonical: dict | None = None, seed: int = 0):
        self.meter = meter
        self.s = settings
        self.reference = reference
        self.canonical = canonical  # {"energy_j": ..., "latency_s": ...} of the reference, or None
        self.rng = random.Random(seed)
        self.contended_total = 0
        # how often a busy window is redone: none where the host is shared on purpose (the suite's workers)
        self.retries = 0 if os.environ.get(BUSY_WINDOWS_ENV) == "keep" else settings.max_retries

    def _window(self, fn: Callable[[], object], rnd: int) -> Window:
        """One clean window: redone while someone else used the CPU, up to `self.retries` times."""
        for attempt in range(self.retries + 1):
            before = contention.snapshot()
            self.meter.begin()
            t0 = time.perf_counter()
            n = 0
            while n < self.s.min_passes or time.perf_counter() - t0 < self.s.min_seconds:
                fn()
                n += 1
            self.meter.sync()
            elapsed = time.perf_counter() - t0
            reading = self.meter.end()
            c = contention.between(before, contention.snapshot())
            heavy = c.heavy(self.s.max_other_cores, self.s.max_steal_cores)
            if heavy:
                self.contended_total += 1
                if attempt < self.retries:
                    log.info("window redone: other processes %.2f cores, steal %.2f", c.other_cores, c.steal_cores)
                    time.sleep(0.2 * (attempt + 1))
                    continue
            latency = elapsed / n
            scale = latency / reading.duration_s
            return Window(rnd, reading.energy_j * scale, latency, reading.energy_j / reading.duration_s,
                          reading.cpu_j * scale, reading.ram_j * scale, reading.gpu_j * scale, n,
                          c.other_cores, c.steal_cores, heavy)
        raise AssertionError("unreachable")

    def run(self, tasks: dict[Hashable, Callable[[], object]]) -> tuple[dict[Hashable, Result], Series]:
        """Measure every task; returns per-task results and the reference's windows."""
        with _no_garbage_collection():
            return self._run(tasks)

    def _run(self, tasks: dict[Hashable, Callable[[], object]]) -> tuple[dict[Hashable, Result], Series]:
        self.failed: dict = {}  # task -> the error that took it out of the block
        for _ in range(self.s.warmup):
            self.reference()
        for k, fn in tasks.items():
            try:  # a task's first call may be its warm-up (a kept model): its failure costs that task only
                for _ in range(self.s.warmup):
                    fn()
            except Exception as exc:
                self.failed[k] = MeasurementError(f"warm-up: {type(exc).__name__}: {exc}")
        series = {k: Series() for k in tasks}
        self.adjacent = {k: Series() for k in tasks}  # normalise=window: the reference right after each window
        ref = Series()
        keys = list(tasks)
        by_window = self.s.normalise != "round"
        for rnd in range(self.s.rounds):
            self.rng.shuffle(keys)
            # The reference opens the round and closes it: the round's speed is what it saw.
            for _ in range(0 if by_window else self.s.windows):
                ref.windows.append(self._window(self.reference, rnd))
            for k in [k for k in keys if k not in self.failed]:
                try:  # one task's bad reading costs that task only, not the block
                    for _ in range(self.s.windows):
                        series[k].windows.append(self._window(tasks[k], rnd))
                        if by_window:
                            self.adjacent[k].windows.append(self._window(self.reference, rnd))
                            ref.windows.append(self.adjacent[k].windows[-1])
                except MeasurementError as exc:
                    self.failed[k] = exc
            for _ in range(0 if by_window else self.s.windows):
                ref.windows.append(self._window(self.reference, rnd))
        how = self.s.reference_statistic
        canonical = self.canonical or {"energy_j": ref.stat("energy_j", how), "latency_s": ref.stat("latency_s", how)}
        results = {}
        for k in tasks:
            if k in self.failed:
                continue
            try:
                results[k] = self._result(series[k], ref, canonical, self.adjacent[k])
            except MeasurementError as exc:
                self.failed[k] = exc
        return results, ref

    def _result(self, s: Series, ref: Series, canonical: dict, adjacent: Series | None = None) -> Result:
        how = self.s.statistic
        raw = {h: s.stat("energy_j", h) for h in STATISTICS}
        paired = adjacent is not None and len(adjacent.windows) == len(s.windows)
        if self.s.normalise == "adjacent" and paired:
            # The windows' statistic over their reference windows' same statistic, on the canonical scale.
            e_norm = {h: s.stat("energy_j", h) / adjacent.stat("energy_j", h) * canonical["energy_j"]
                      for h in STATISTICS}
            t_norm = s.stat("latency_s", how) / adjacent.stat("latency_s", how) * canonical["latency_s"]
            return self._assemble(s, raw, e_norm, t_norm)
        if self.s.normalise == "window" and paired:
            # Each window over the reference window right after it: drift slower than a window cancels.
            pairs = zip(s.windows, adjacent.windows)
            norm_windows = Series([Window(**{**w.__dict__, "energy_j": w.energy_j / r.energy_j * canonical["energy_j"],
                                             "latency_s": w.latency_s / r.latency_s * canonical["latency_s"]})
                                   for w, r in pairs])
        else:
            # The speed index is per round, from the reference's min window of that round.
            idx_e = [v / canonical["energy_j"] for v in ref.per_round("energy_j", "min")]
            idx_t = [v / canonical["latency_s"] for v in ref.per_round("latency_s", "min")]
            norm_windows = Series([
                Window(**{**w.__dict__, "energy_j": w.energy_j / idx_e[w.round],
                          "latency_s": w.latency_s / idx_t[w.round]})
                for w in s.windows
            ])
        norm = {h: norm_windows.stat("energy_j", h) for h in STATISTICS}
        return self._assemble(s, raw, norm, norm_windows.stat("latency_s", how))

    def _assemble(self, s: Series, raw: dict, norm: dict, t: float) -> Result:
        """One configuration's result from its raw windows and its normalised figures."""
        how = self.s.statistic
        e_raw, t_raw = raw[how], s.stat("latency_s", how)
        e = norm[how]
        energies = [w.energy_j for w in s.windows]
        mid = min(s.windows, key=lambda w: abs(w.energy_j - e_raw))
        if not (e > 0 and math.isfinite(e)):
            raise MeasurementError(f"invalid normalised energy {e!r}")
        return Result(
            energy_j=e, latency_s=t, energy_raw_j=e_raw, latency_raw_s=t_raw,
            speed_index=e_raw / e, latency_speed_index=t_raw / t,
            power_w=statistics.median(w.power_w for w in s.windows),
            cpu_j=e * mid.cpu_j / mid.energy_j, ram_j=e * mid.ram_j / mid.energy_j, gpu_j=e * mid.gpu_j / mid.energy_j,
            passes=sum(w.passes for w in s.windows), windows=len(s.windows),
            contended_windows=sum(w.contended for w in s.windows),
            other_cores_max=max(w.other_cores for w in s.windows),
            steal_cores_max=max(w.steal_cores for w in s.windows),
            spread=_spread(s.per_round("energy_j", "min")),
            window_energies_j=energies, stats_raw=raw, stats_normalised=norm,
        )
