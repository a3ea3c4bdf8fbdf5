"""The speed probe's windows: the reference network run for at least `PROBE_WINDOW_S`, with whether someone else
used the CPU meanwhile (the sweeps' clean-window rule), and the probe candidates' raw windows for the studies
(`probe_windows`). `nnenergy.speed` reads the speed index from them."""

from __future__ import annotations

import os
import time

PROBE_WINDOW_S = 0.1
# The load a probe in context runs before each reference window: the reference network at 128 px, batch 8
# (~8x its work, ~13 ms per pass on the EPYC Zen 4), so that the reference is read as the sweeps read it, right
# after a window of heavier work (`measure.protocol`, A-R-A-R), and it builds as fast as the reference.
LOAD = ("reference_cnn", 128, 8)


def reference_fn():
    """The reference network's compiled call, with the sweeps' thread settings."""
    from nnenergy.measure.sweep import Threads, reference_call, set_threads

    set_threads(Threads())
    return reference_call()


def load_fn():
    """The probe's load in context (`LOAD`), compiled."""
    from nnenergy.measure.sweep import built_call

    return built_call(*LOAD)


def run_for(fn, seconds: float) -> tuple[float, int]:
    """Run `fn` for at least `seconds` (and once): the seconds it took and the passes."""
    t, n = time.perf_counter(), 0
    while n < 1 or time.perf_counter() - t < seconds:
        fn()
        n += 1
    return time.perf_counter() - t, n


def window(fn, meter=None, rule=None) -> tuple[float, float | None, bool]:
    """One window of at least PROBE_WINDOW_S (and one pass): latency and energy per pass (None without a
    meter), and whether another process or the hypervisor used the CPU meanwhile (`rule`: the sweeps'
    `ProtocolSettings`, whose thresholds say how much is too much; None: not checked)."""
    from nnenergy.measure import contention

    before = contention.snapshot()
    if meter is not None:
        meter.begin()
    el, n = run_for(fn, PROBE_WINDOW_S)
    r = meter.end() if meter is not None else None
    busy = rule is not None and contention.between(before, contention.snapshot()).heavy(
        rule.max_other_cores, rule.max_steal_cores)
    return el / n, (None if r is None else r.energy_j * (el / n) / r.duration_s), busy


def clean_windows(fn, meter, windows: int, deadline: float, load=None) -> tuple[list, int, int]:
    """`windows` windows, a busy one measured again while the rest still fit before `deadline` (never in a
    host shared on purpose: `NNENERGY_BUSY_WINDOWS=keep`, the test suite); the windows (latency, energy), how
    many were redone, how many busy ones were kept. `load`: run for a window before each one (in context)."""
    from nnenergy.measure.protocol import BUSY_WINDOWS_ENV, ProtocolSettings

    rule = ProtocolSettings()
    redo = os.environ.get(BUSY_WINDOWS_ENV) != "keep"
    out, redone, kept = [], 0, 0
    per = PROBE_WINDOW_S * (2 if load is not None else 1)
    while len(out) < windows:
        if load is not None:
            run_for(load, PROBE_WINDOW_S)
        lat, e, contended = window(fn, meter, rule)
        if contended and redo and time.perf_counter() + (windows - len(out)) * per < deadline:
            redone += 1
            continue
        kept += contended
        out.append((lat, e))
    return out, redone, kept


def probe_windows(seconds: float = 1.5, kernel_seconds: float = 0.0, energy: bool = True) -> dict:
    """Raw windows of the probe candidates, for the protocol study (`benchmarks/protocol_study.py`):
    the reference network for `seconds` and a memory-bound kernel (depthwise 3x3 on 56x56x144,
    batch 2) for `kernel_seconds`, interleaved R R K, no warm-up dropped: each window's latency and
    energy per pass."""
    from nnenergy.measure.sweep import inference_call

    t0 = time.perf_counter()
    ref = reference_fn()
    kern = None
    if kernel_seconds > 0:
        import keras
        from keras import layers as L

        inp = keras.Input((56, 56, 144), name="x")
        km = keras.Model(inp, L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(inp))))
        kern = inference_call(km, (56, 56, 144), 2)
    built = time.perf_counter()
    meter = None
    if energy:
        from nnenergy.measure.meter import EnergyMeter

        meter = EnergyMeter()
    metered = time.perf_counter()
    plan = ["R"] * round(seconds / PROBE_WINDOW_S)
    if kern is not None:  # interleaved: R R K R R K ...
        k = round(kernel_seconds / PROBE_WINDOW_S)
        step = max(1, len(plan) // max(k, 1))
        for i in range(k):
            plan.insert(min(len(plan), (i + 1) * (step + 1) - 1), "K")
    out = {"windows": [], "build_s": built - t0, "meter_s": metered - built}
    for fn in (ref, kern):
        if fn is not None:
            fn()
            fn()
    for who in plan:
        lat, e, _ = window(ref if who == "R" else kern, meter)
        out["windows"].append([who, max(1, round(PROBE_WINDOW_S / lat)), lat, e])
    out["total_s"] = time.perf_counter() - t0
    return out
