"""Energy meter: one long-lived CodeCarbon tracker in task mode, and the window loop.

Energy per pass is the tracker's mean power over a window times the wall time per pass
measured inside it, so the tracker's own start/stop cost (well under a millisecond) does
not inflate short windows.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

KWH_TO_J = 3.6e6


class MeasurementError(RuntimeError):
    """A reading that must never become a data row (zero, negative or NaN energy)."""


@dataclass(frozen=True)
class WindowReading:
    """What the tracker saw over one window: joules per component and seconds."""

    energy_j: float
    cpu_j: float
    ram_j: float
    gpu_j: float
    duration_s: float


# The shortest window of an isolated layer, seconds: the one default (`conf/sweep/_measurement.yaml`
# sets the same for every sweep; tests/test_configs.py checks that they agree).
LAYER_MIN_SECONDS = 0.015


@dataclass(frozen=True)
class MeterSettings:
    """How long and how often to measure one callable (an isolated layer, in the sweeps)."""

    warmup: int = 2
    min_seconds: float = LAYER_MIN_SECONDS
    min_passes: int = 3
    min_windows: int = 3
    max_windows: int = 5
    tolerance: float = 0.05


@dataclass
class Measurement:
    """Per-pass figures of one callable: medians over windows."""

    # `protocol.Result` lists the same per-pass fields (power to spread) between its own rather than
    # inheriting them: its field order is the models table's column order (`Result.as_row`).

    energy_j: float
    latency_s: float
    power_w: float
    cpu_j: float
    ram_j: float
    gpu_j: float
    passes: int
    windows: int
    spread: float  # (max - min) / median of per-window energy per pass
    window_energies_j: list[float] = field(default_factory=list)

    def as_row(self, prefix: str = "") -> dict:
        d = asdict(self)
        d["window_energies_j"] = list(d["window_energies_j"])
        return {f"{prefix}{k}": v for k, v in d.items()}


def _relative_spread(values: list[float]) -> float:
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med > 0 else math.inf


class EnergyMeter:
    """Wraps one `OfflineEmissionsTracker`; `begin()`/`end()` bracket a window.

    Creating a tracker costs about a second and CodeCarbon allows one per process to be
    trusted, so a meter is created once per process and reused for every measurement.
    """

    def __init__(self, country_iso_code: str = "USA", sync: Callable[[], None] | None = None,
                 require_gpu: bool = False):
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.tracker = OfflineEmissionsTracker(
            country_iso_code=country_iso_code,
            log_level="error",
            save_to_file=False,
            tracking_mode="machine",
            allow_multiple_runs=True,
        )
        self.sync = sync or (lambda: None)
        self.require_gpu = require_gpu
        self._window = 0
        # The first task initialises the hardware (about a second); keep it out of data.
        self.begin()
        self.end(validate=False)

    def begin(self) -> None:
        self._window += 1
        self.tracker.start_task(f"window-{self._window}")

    def end(self, validate: bool = True) -> WindowReading:
        # Task names must be unique: CodeCarbon times a task from its first start under a name.
        data = self.tracker.stop_task(f"window-{self._window}")
        self.tracker._tasks.clear()  # keep the tracker's task history from growing
        if data is None:
            raise MeasurementError("CodeCarbon returned no data for the window")
        reading = WindowReading(
            energy_j=float(data.energy_consumed) * KWH_TO_J,
            cpu_j=float(data.cpu_energy) * KWH_TO_J,
            ram_j=float(data.ram_energy) * KWH_TO_J,
            gpu_j=float(data.gpu_energy) * KWH_TO_J,
            duration_s=float(data.duration),
        )
        if validate:
            check_reading(reading, self.require_gpu)
        return reading

    def measure(self, fn: Callable[[], object], settings: MeterSettings) -> Measurement:
        """Warm up, then run windows of `fn` until their spread is under tolerance."""
        for _ in range(settings.warmup):
            fn()
        self.sync()
        per_pass: list[tuple[float, float, float, float, float, float]] = []
        passes_total = 0
        while len(per_pass) < settings.max_windows:
            n = 0
            self.begin()
            t0 = time.perf_counter()
            while n < settings.min_passes or time.perf_counter() - t0 < settings.min_seconds:
                fn()
                n += 1
            self.sync()
            elapsed = time.perf_counter() - t0
            reading = self.end()
            latency = elapsed / n
            scale = latency / reading.duration_s  # mean power x time per pass
            per_pass.append(
                (
                    reading.energy_j * scale,
                    latency,
                    reading.energy_j / reading.duration_s,
                    reading.cpu_j * scale,
                    reading.ram_j * scale,
                    reading.gpu_j * scale,
                )
            )
            passes_total += n
            if len(per_pass) >= settings.min_windows:
                if _relative_spread([p[0] for p in per_pass]) <= settings.tolerance:
                    break
        energies = [p[0] for p in per_pass]
        med = lambda i: statistics.median(p[i] for p in per_pass)  # noqa: E731
        energy = med(0)
        # Components split the median energy as in the median window, so they add up to it.
        mid = sorted(per_pass, key=lambda p: p[0])[(len(per_pass) - 1) // 2]
        return Measurement(
            energy_j=energy,
            latency_s=med(1),
            power_w=med(2),
            cpu_j=energy * mid[3] / mid[0],
            ram_j=energy * mid[4] / mid[0],
            gpu_j=energy * mid[5] / mid[0],
            passes=passes_total,
            windows=len(per_pass),
            spread=_relative_spread(energies),
            window_energies_j=energies,
        )


def check_reading(reading: WindowReading, require_gpu: bool = False) -> None:
    """Reject readings that cannot be energy: zero, negative, NaN or infinite (and, measuring a
    GPU, a window in which NVML's counter did not move)."""
    e = reading.energy_j
    if not math.isfinite(e) or e <= 0:
        raise MeasurementError(
            f"invalid energy reading {e!r} J over {reading.duration_s:.4f} s: "
            "the power source reported nothing (a GPU without an NVML energy counter, "
            "a window shorter than the counter period, or a stopped tracker)"
        )
    if require_gpu and not (math.isfinite(reading.gpu_j) and reading.gpu_j > 0):
        raise MeasurementError(
            f"GPU energy reading {reading.gpu_j!r} J over {reading.duration_s:.4f} s: NVML reported nothing "
            "(no NVML energy counter on this GPU, or a window shorter than its ~100 ms update period)")
    if not math.isfinite(reading.duration_s) or reading.duration_s <= 0:
        raise MeasurementError(f"invalid window duration {reading.duration_s!r} s")
