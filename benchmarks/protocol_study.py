"""Protocol study: which way of measuring gives labels that agree with themselves, per second spent?

One measuring *pass* records raw windows, and every protocol is then computed from the same windows,
so they are compared on the same configurations, the same minutes and equal measuring time:

- a fresh process first runs the speed probe candidates (`nnenergy.speed_windows.probe_windows`: the
  reference network and a memory-bound kernel, 0.1 s windows, exactly as `predict` would);
- then every configuration (keras.applications, generated architectures, kernels; >= 24) gets
  `PAIRS` pairs of windows, target then reference (A-R-A-R), in two rounds of random order
  (Abedi and Brecht's randomized multiple interleaved trials at the round level).

Passes repeat every few minutes (`--loop`), waiting between passes while `scripts/when-idle` holds
the machine. `--report` compares, for every pair of passes >= 20 min apart, each protocol's
labels after one common factor: RMS of the ratio, share within +-3% and +-5%, and the probe's
agreement with the many-model ratio (issue 29). Log: `benchmarks/protocol_study/<profile>.jsonl`.

A pass runs in one of four *modes* (`--modes`, one fresh process each, in turn):
- `graph`: compiled calls, TensorFlow's pools as every sweep sets them (the labels' own way);
- `eager`: the same windows with eager calls (`model(x, training=False)`, no `tf.function`);
- `pinned1`: compiled calls on one intra-op thread, the process pinned to one core;
- `duet`: the target on one pinned core while a second process runs the reference on the other, both
  one-threaded, and each target window's time is divided by the reference's time in the same
  seconds (Bulej et al.'s duet benchmarking; time only: CodeCarbon's power is the whole machine's).

    .venv/bin/python benchmarks/protocol_study.py --loop 12 --every 9   # ~2.5 min per pass
    .venv/bin/python benchmarks/protocol_study.py --loop 5 --every 12 --modes graph,eager,pinned1,duet
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


MODES = ("graph", "eager", "pinned1", "duet")


def build_configs(eager: bool = False) -> dict:
    from nnenergy import zoo
    from nnenergy.calibrate.panel import panel_models
    from nnenergy.measure.sweep import inference_call

    def call(m, batch):
        shape = tuple(int(d) for d in m.inputs[0].shape[1:])
        if not eager:
            return inference_call(m, shape, batch)
        import numpy as np

        x = np.random.default_rng(1).random((batch, *shape), dtype="float32")
        return lambda: m(x, training=False)

    calls = {}
    for name, size, batch in APPS:
        calls[f"app:{name}|{size}|{batch}"] = call(zoo.build(name, size).model, batch)
    for name, batch in GENERATED:
        calls[f"gen:{name}|{batch}"] = call(zoo.build(name, None).model, batch)
    for name, m, batch in panel_models():
        if name in KERNELS:
            calls[f"kernel:{name}|{batch}"] = call(m, batch)
    return calls


def _pin_one_thread(core: int) -> None:
    os.sched_setaffinity(0, {core})
    from nnenergy.measure.sweep import Threads, set_threads

    set_threads(Threads(intra_op=1, inter_op=1))


def duet_partner(out: str, core: int) -> None:
    """The duet's second process: the reference network, one thread on `core`, call after call until the
    target process closes stdin; then every call's (start, end) on the shared monotonic clock."""
    _pin_one_thread(core)
    from nnenergy.measure.sweep import reference_call

    ref = reference_call()
    for _ in range(5):
        ref()
    print("ready", flush=True)
    import select

    spans = []
    while not select.select([sys.stdin], [], [], 0)[0]:
        t0 = time.monotonic()
        ref()
        spans.append((t0, time.monotonic()))
    Path(out).write_text(json.dumps(spans))


def _duet_windows(calls: dict, rng: random.Random, partner_core: int) -> dict:
    """Target windows of >= WINDOW_S on this process's core while the partner runs the reference on
    `partner_core`; each window is logged as a T entry and an R entry holding the reference's mean call
    time in it."""
    import tempfile

    for fn in calls.values():  # the pass's warm-up, one-threaded as measured
        fn()
        fn()
    spans_file = Path(tempfile.mkstemp(suffix=".json")[1])
    partner = subprocess.Popen([sys.executable, __file__, "--duet-partner", str(spans_file),
                                "--core", str(partner_core)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert partner.stdout.readline().strip() == "ready"
    raw, t0 = {k: [] for k in calls}, time.perf_counter()
    for rnd in range(2):
        keys = list(calls)
        rng.shuffle(keys)
        for k in keys:
            for _ in range(PAIRS // 2):
                n, start = 0, time.monotonic()
                while True:
                    calls[k]()
                    n += 1
                    if time.monotonic() - start >= WINDOW_S:
                        break
                raw[k].append((rnd, round(time.perf_counter() - t0, 3), n, start, time.monotonic()))
    partner.stdin.close()
    partner.wait(timeout=120)
    spans = json.loads(spans_file.read_text())
    spans_file.unlink()
    series = {}
    for k, ws in raw.items():
        series[k] = []
        for rnd, t, n, start, end in ws:
            inside = [e - s for s, e in spans if s >= start and e <= end]
            if not inside:  # a reference call longer than the window: the one that overlaps it most
                s0, e0 = max(spans, key=lambda se: min(se[1], end) - max(se[0], start))
                inside = [e0 - s0]
            lat, ref_lat = (end - start) / n, sum(inside) / len(inside)
            series[k] += [["T", rnd, t, n, lat, lat, 0.0, 0.0], ["R", rnd, t, len(inside), ref_lat, ref_lat, 0.0, 0.0]]
    return series


def one_pass(seed: int, mode: str = "graph") -> dict:
    """The probe in a fresh process, then every configuration's A-R windows (measured the `mode`'s way);
    one log record."""
    probe = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from nnenergy.speed_windows import probe_windows; "
                               "print(json.dumps(probe_windows(seconds=3.0, kernel_seconds=1.5)))"],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    from nnenergy.measure.meter import EnergyMeter
    from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings
    from nnenergy.measure.sweep import Threads, reference_call, set_threads

    cores = sorted(os.sched_getaffinity(0))
    if mode in ("pinned1", "duet"):  # before TensorFlow runs anything: its pools are fixed once
        _pin_one_thread(cores[0])
    else:
        set_threads(Threads())
    t_build = time.perf_counter()
    calls = build_configs(eager=mode == "eager")
    ref = reference_call()
    build_s = time.perf_counter() - t_build
    rng = random.Random(seed)
    if mode == "duet":
        t0 = time.perf_counter()
        series = _duet_windows(calls, rng, partner_core=cores[-1])
        return _record(seed, mode, probe, build_s, time.perf_counter() - t0, series)
    meter = EnergyMeter()
    m = InterleavedMeasurer(meter, ProtocolSettings(min_seconds=WINDOW_S, max_retries=2), ref)
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
    return _record(seed, mode, probe, build_s, time.perf_counter() - t0, series)


def _record(seed, mode, probe, build_s, measure_s, series) -> dict:
    return {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile(), "mode": mode,
            "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(), "seed": seed,
            "build_s": round(build_s, 1), "measure_s": round(measure_s, 1), "probe": probe, "windows": series}


def run_loop(n: int, every_min: float, modes: list[str]) -> None:
    from nnenergy.measure.lock import MeasurementLock

    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{profile()}.jsonl"
    for i in range(n):
        start = time.time()
        wait_for_idle_machine()
        with MeasurementLock(wait_s=600):  # each pass in a fresh process: no model piles up in memory
            try:
                for mode in modes:
                    subprocess.run([sys.executable, __file__, "--one-pass", str(log), "--seed", str(int(start)),
                                    "--mode", mode], check=True)
            finally:
                WANTED.unlink(missing_ok=True)
        print(f"pass {i + 1}/{n} done at {datetime.now(timezone.utc):%H:%M:%S}", flush=True)
        if i + 1 < n:  # at least MIN_GAP_S idle between passes: the other work on the machine gets its turn
            time.sleep(max(MIN_GAP_S, every_min * 60 - (time.time() - start)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", type=int, default=1, help="passes to measure")
    ap.add_argument("--every", type=float, default=9.0, help="minutes from one pass's start to the next")
    ap.add_argument("--modes", default="graph", help=f"comma-separated, each pass in turn: {', '.join(MODES)}")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--mode", default="graph", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--duet-partner", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--core", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--one-pass", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        ap.error(f"--modes: choose from {', '.join(MODES)}")
    if a.duet_partner:
        duet_partner(a.duet_partner, a.core)
    elif a.one_pass:
        rec = one_pass(a.seed, a.mode)
        with open(a.one_pass, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    elif a.report:
        from protocol_report import report  # noqa: E402 (benchmarks/ is on sys.path as the script's folder)

        report(OUT)
    else:
        run_loop(a.loop, a.every, modes)
