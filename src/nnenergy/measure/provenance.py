"""Where and how a row was measured: hardware, measurement methods, software versions."""

from __future__ import annotations

import hashlib
import platform
import re

from nnenergy.measure.hardware import current_profile

# CodeCarbon CPU modes -> how the CPU energy was obtained.
_CPU_METHODS = {
    "intel_rapl": "rapl",
    "intel_power_gadget": "intel_power_gadget",
    "windows_emi": "windows_emi",
    "cpu_load": "cpu_load_estimate",
    "constant": "constant_tdp_estimate",
}


def _cpu_method(tracker) -> str:
    for hw in tracker._hardware:  # CodeCarbon exposes no public accessor
        name = type(hw).__name__
        if name == "CPU":
            return _CPU_METHODS.get(getattr(hw, "_mode", ""), str(getattr(hw, "_mode", "unknown")))
        if name == "AppleSiliconChip":
            return "powermetrics"
    return "none"


def _ram_method(tracker) -> str:
    conf = tracker._conf
    if conf.get("rapl_include_dram") and _cpu_method(tracker) == "rapl":
        return "rapl_dram"
    return "size_based_estimate"


def _gpu_method(tracker) -> str:
    return "nvml" if any(type(hw).__name__ == "GPU" for hw in tracker._hardware) else "none"


def hardware_provenance(tracker, backend) -> dict:
    """Provenance columns stored on every energy row (`backend`: a `measure.backends.Backend`)."""
    import codecarbon

    conf = tracker._conf
    cpu_model = (conf.get("cpu_model") or platform.processor() or "unknown").strip()
    cpu_model = re.sub(r"\s+", " ", cpu_model)
    gpu_model = conf.get("gpu_model") or ""
    if isinstance(gpu_model, (list, tuple)):
        gpu_model = ", ".join(map(str, gpu_model))
    cpu = current_profile()
    cores = cpu.cores
    run = backend.provenance()  # backend, its version, device and the profile they make
    # Two CPUs can share a model string ("AMD EPYC"): family, model and ISA tell them apart. The
    # backend and device enter only where they are not TensorFlow on a CPU (older ids stay valid).
    extra = "" if run["profile"] == cpu.name else f"|{run['backend']}|{run['device']}"
    ident = f"{cpu_model}|{cpu.family}|{cpu.model}|{cpu.isa}|{cores}|{gpu_model}|{platform.machine()}{extra}"
    return {
        **cpu.as_row(),
        **run,
        "hardware_id": f"{run['profile']}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}",
        "cpu_model": cpu_model,
        "cpu_cores": cores,
        "gpu_model": gpu_model or "none",
        "cpu_measurement": _cpu_method(tracker),
        "ram_measurement": _ram_method(tracker),
        "gpu_measurement": _gpu_method(tracker),
        "codecarbon_version": codecarbon.__version__,
        "platform": platform.platform(),
    }
