"""The hardware profile a measurement belongs to: which CPU (and ISA) ran it.

Machines of one cloud kind come with different CPUs (an Intel Xeon with AVX-512, AMD EPYCs
with or without it), and the same model costs 1.1-2.6x more on one than on another, per
kind of work. A dataset or a predictor is valid for one profile only, so the profile is
derived from what the CPU says about itself, never from a hostname.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

# Ordered from most to least capable: the first flag the CPU has names its vector ISA.
_ISA_LEVELS = (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"), ("sse4_2", "sse4"))


@dataclass(frozen=True)
class CpuProfile:
    """What identifies a CPU for energy purposes; `name` is the profile's folder under data/."""

    vendor: str  # intel | amd | arm | unknown
    model_name: str
    family: str
    model: str
    isa: str
    cores: int
    runtime: str = ""  # what the environment changes about the kernels run: "" or "-isa-avx2-eigen"

    @property
    def name(self) -> str:
        brand = _brand(self.model_name)
        fm = f"-f{self.family}m{self.model}" if self.family and self.vendor == "amd" else ""
        return f"{self.vendor}-{brand}{fm}-{self.isa}-{self.cores}c{self.runtime}"

    def as_row(self) -> dict:
        """Columns for every measured row (`cpu_model`, the model name, comes from the provenance)."""
        return {"profile": self.name, "cpu_vendor": self.vendor, "cpu_family": self.family,
                "cpu_model_id": self.model, "cpu_isa": self.isa, "runtime": self.runtime or "default"}


def _brand(model_name: str) -> str:
    low = model_name.lower()
    for brand in ("xeon", "epyc", "ryzen", "core", "graviton", "neoverse"):
        if brand in low:
            return brand
    return re.sub(r"[^a-z0-9]+", "-", low).strip("-")[:16] or "cpu"


def _vendor(vendor_id: str, model_name: str) -> str:
    text = f"{vendor_id} {model_name}".lower()
    if "intel" in text:
        return "intel"
    if "amd" in text:
        return "amd"
    if "arm" in text or platform.machine() in ("aarch64", "arm64"):
        return "arm"
    return "unknown"


def parse_cpuinfo(text: str, cores: int) -> CpuProfile:
    """A profile from the text of /proc/cpuinfo (its first processor block)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    isa = next((name for flag, name in _ISA_LEVELS if flag in flags), platform.machine() or "unknown")
    model_name = re.sub(r"\s+", " ", fields.get("model name", platform.processor() or "unknown"))
    return CpuProfile(
        vendor=_vendor(fields.get("vendor_id", ""), model_name),
        model_name=model_name,
        family=fields.get("cpu family", ""),
        model=fields.get("model", ""),
        isa=isa,
        cores=cores,
    )


def usable_cores() -> int:
    """Cores this process may run on (`taskset` narrows it), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def runtime_suffix(env=None) -> str:
    """The part of a profile the environment sets: a capped oneDNN ISA, or Eigen instead of oneDNN.

    Both change which kernels run on the same CPU (`ONEDNN_MAX_CPU_ISA=AVX2` made VGG16 1.6x slower
    on an AVX-512 Xeon), so each is a device of its own: a pseudo-device whose rows never mix with
    the CPU's default ones. Core count (`taskset`) is already part of the name.
    """
    env = os.environ if env is None else env
    out = ""
    isa = env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA")
    if isa and isa.strip().upper() not in ("ALL", "DEFAULT"):
        out += "-isa-" + re.sub(r"[^a-z0-9]+", "-", isa.strip().lower()).strip("-")
    if env.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false", "no", "off"):
        out += "-eigen"
    return out


@lru_cache(maxsize=8)
def _profile(cores: int, runtime: str) -> CpuProfile:
    path = Path("/proc/cpuinfo")
    text = path.read_text() if path.exists() else ""
    return replace(parse_cpuinfo(text, cores), runtime=runtime)


def current_profile() -> CpuProfile:
    """This machine's profile, for the cores this process may use and the kernels its environment picks."""
    return _profile(usable_cores(), runtime_suffix())


def current_profile_name() -> str:
    return current_profile().name


def booted_at() -> datetime:
    """When this boot of the machine began (UTC)."""
    import psutil

    return datetime.fromtimestamp(psutil.boot_time(), timezone.utc)


def boot_id() -> str:
    """This boot of the machine (Linux; "unknown" elsewhere): runs of one boot are one measuring session."""
    path = Path("/proc/sys/kernel/random/boot_id")
    return path.read_text().strip() if path.exists() else "unknown"
