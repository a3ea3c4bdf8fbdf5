"""Who else used the CPU during a window: other processes and the hypervisor (steal).

On a 2-core VM a test run or a build beside a sweep silently inflates its numbers (seen: 2x
on a small MLP) while the hypervisor's steal can stay at zero, so each window records both,
from `/proc/stat` (all CPUs) minus `/proc/self/stat` (this process, all its threads).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_STAT = Path("/proc/stat")
_SELF = Path("/proc/self/stat")


@dataclass(frozen=True)
class CpuTimes:
    busy_s: float  # all CPUs, all processes: user + nice + system + irq + softirq
    steal_s: float
    own_s: float  # this process: user + system
    wall_s: float


@dataclass(frozen=True)
class Contention:
    """Over one window, in cores: 1.0 = one core fully used by someone else."""

    other_cores: float
    steal_cores: float

    def heavy(self, max_other: float, max_steal: float) -> bool:
        return self.other_cores > max_other or self.steal_cores > max_steal


def snapshot() -> CpuTimes | None:
    """CPU times now; None where /proc is not there (not Linux)."""
    if not _STAT.exists():
        return None
    first = _STAT.read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    # /proc/self/stat: fields after the parenthesised command name; utime, stime are 14th, 15th
    fields = _SELF.read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    return CpuTimes(
        busy_s=(user + nice + system + irq + softirq) / _TICK,
        steal_s=steal / _TICK,
        own_s=own / _TICK,
        wall_s=time.perf_counter(),
    )


def between(a: CpuTimes | None, b: CpuTimes | None) -> Contention:
    """Other processes' and the hypervisor's CPU use from `a` to `b`, in cores."""
    if a is None or b is None or b.wall_s <= a.wall_s:
        return Contention(0.0, 0.0)
    wall = b.wall_s - a.wall_s
    other = max((b.busy_s - a.busy_s) - (b.own_s - a.own_s), 0.0)
    return Contention(other_cores=other / wall, steal_cores=max(b.steal_s - a.steal_s, 0.0) / wall)
