"""Protocol study: which way of measuring gives labels that agree with themselves, per second spent?

One measuring *pass* records raw windows, and every protocol is then computed from the same windows,
so they are compared on the same configurations, the same minutes and equal measuring time:

- a fresh process first runs the speed probe candidates (`nnenergy.speed.probe_windows`: the
  reference network and a memory-bound kernel, 0.1 s windows, exactly as `predict` would);
- then every configuration (keras.applications, generated architectures, kernels; >= 24) gets
  `PAIRS` pairs of windows, target then reference (A-R-A-R), in two rounds of random order
  (Abedi and Brecht's randomized multiple interleaved trials at the round level).

Passes repeat every few minutes (`--loop`), waiting between passes while `scripts/when-idle` holds
the machine. `--report` compares, for every pair of passes >= 20 min apart, each protocol's
labels after one common factor: RMS of the ratio, share within +-3% and +-5%, and the probe's
agreement with the many-model ratio (issue 29). Log: `benchmarks/protocol_study/<profile>.jsonl`.

    .venv/bin/python benchmarks/protocol_study.py --loop 12 --every 9   # ~2.5 min per pass
    .venv/bin/python benchmarks/protocol_study.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "protocol_study"
PAUSE_DIR = Path(os.environ.get("NNENERGY_PAUSE_DIR", "/tmp/nnenergy-pause.d"))
PAIRS = 10  # target/reference window pairs per configuration per pass (two rounds of 5)
WINDOW_S = 0.1
MIN_GAP_S = 150
# (source, name, input size or None, batch): tiny kernels to the largest models that fit a pass.
APPS = [("MobileNetV3Small", 96, 1), ("MobileNetV2", 96, 1), ("MobileNetV2", 160, 4), ("EfficientNetB0", 128, 1),
        ("DenseNet121", 96, 2), ("ResNet50", 128, 2), ("ResNet50", 224, 1), ("InceptionV3", 160, 2),
        ("Xception", 128, 2), ("ResNet101", 128, 2), ("VGG16", 128, 2), ("ConvNeXtTiny", 128, 1),
        ("NASNetMobile", 96, 2), ("MobileNetV3Large", 128, 4)]
GENERATED = [("gen1_s000000", 8), ("gen1_s000002", 16), ("gen1_s000004", 8), ("gen1_s000006", 4),
             ("gen1_s000008", 4), ("gen1_s000010", 2)]
KERNELS = ["conv3x3_28x128", "conv1x1_56x64to256", "dw3x3_56x144", "dense_1024", "add_28x256", "maxpool_112x64"]


def profile() -> str:
    from nnenergy.measure.hardware import current_profile_name

    return current_profile_name()


WANTED = Path("/tmp/nnenergy-measure.wanted")


def _running_marks() -> list[Path]:
    """Marks of scripts/when-idle commands whose process is alive (a killed one leaves a stale mark)."""
    if not PAUSE_DIR.exists():
        return []
    return [m for m in PAUSE_DIR.iterdir() if m.name.isdigit() and Path(f"/proc/{m.name}").exists()]


def wait_for_idle_machine() -> None:
    """Raise the flag (new heavy commands back off), then wait for the running ones to finish."""
    WANTED.touch()
    while _running_marks():
        time.sleep(3)


def build_configs() -> dict:
    from nnenergy import zoo
    from nnenergy.calibrate.panel import panel_models
    from nnenergy.measure.sweep import inference_call

    calls = {}
    for name, size, batch in APPS:
        m = zoo.build(name, size).model
        calls[f"app:{name}|{size}|{batch}"] = inference_call(m, tuple(int(d) for d in m.inputs[0].shape[1:]), batch)
    for name, batch in GENERATED:
        m = zoo.build(name, None).model
        calls[f"gen:{name}|{batch}"] = inference_call(m, tuple(int(d) for d in m.inputs[0].shape[1:]), batch)
    for name, m, batch in panel_models():
        if name in KERNELS:
            calls[f"kernel:{name}|{batch}"] = inference_call(m, tuple(int(d) for d in m.inputs[0].shape[1:]), batch)
    return calls


def one_pass(seed: int) -> dict:
    """The probe in a fresh process, then every configuration's A-R windows; one log record."""
    probe = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from nnenergy.speed import probe_windows; "
                               "print(json.dumps(probe_windows(seconds=3.0, kernel_seconds=1.5)))"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    from nnenergy.measure.meter import EnergyMeter
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import Threads, reference_call, set_threads

    set_threads(Threads())
    t_build = time.perf_counter()
    calls = build_configs()
    ref = reference_call()
    build_s = time.perf_counter() - t_build
    meter = EnergyMeter()
    m = InterleavedMeasurer(meter, ProtocolSettings(min_seconds=WINDOW_S, max_retries=2), ref)
    rng = random.Random(seed)
    for fn in [ref, *calls.values()]:  # the pass's warm-up, as the sweep's
        fn()
        fn()
    series = {k: [] for k in calls}
    t0 = time.perf_counter()
    for rnd in range(2):
        keys = list(calls)
        rng.shuffle(keys)
        for k in keys:
            for i in range(PAIRS // 2):
                for who, fn in (("T", calls[k]), ("R", ref)):
                    w = m._window(fn, rnd)
                    series[k].append([who, rnd, round(time.perf_counter() - t0, 3), w.passes,
                                      w.latency_s, w.energy_j, round(w.other_cores, 3), round(w.steal_cores, 3)])
    return {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile(),
            "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(), "seed": seed,
            "build_s": round(build_s, 1), "measure_s": round(time.perf_counter() - t0, 1),
            "probe": probe, "windows": series}


def run_loop(n: int, every_min: float) -> None:
    from nnenergy.measure.lock import MeasurementLock

    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{profile()}.jsonl"
    for i in range(n):
        start = time.time()
        wait_for_idle_machine()
        with MeasurementLock(wait_s=600):  # each pass in a fresh process: no model piles up in memory
            try:
                subprocess.run([sys.executable, __file__, "--one-pass", str(log), "--seed", str(int(start))],
                               check=True)
            finally:
                WANTED.unlink(missing_ok=True)
        print(f"pass {i + 1}/{n} done at {datetime.now(timezone.utc):%H:%M:%S}", flush=True)
        if i + 1 < n:  # at least MIN_GAP_S idle between passes: the other work on the machine gets its turn
            time.sleep(max(MIN_GAP_S, every_min * 60 - (time.time() - start)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", type=int, default=1, help="passes to measure")
    ap.add_argument("--every", type=float, default=9.0, help="minutes from one pass's start to the next")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--one-pass", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one_pass:
        rec = one_pass(a.seed)
        with open(a.one_pass, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    elif a.report:
        from protocol_report import report  # noqa: E402 (benchmarks/ is on sys.path as the script's folder)

        report(OUT)
    else:
        run_loop(a.loop, a.every)
