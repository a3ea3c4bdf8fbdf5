"""Measurements that hold: hardware profiles, the interleaved protocol, the store, bad sweep input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FakeMeter

from nnenergy.measure import contention
from nnenergy.measure.hardware import parse_cpuinfo
from nnenergy.measure.protocol import STATISTICS, InterleavedMeasurer, ProtocolSettings, Series, Window, combine_visits
from nnenergy.measure.store import JsonlStore

REPO = Path(__file__).resolve().parents[1]
XEON = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw

processor\t: 1
vendor_id\t: GenuineIntel
"""
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx avx2 fma
"""


def test_profiles_tell_cpus_apart_that_share_a_name():
    xeon, epyc = parse_cpuinfo(XEON, 2), parse_cpuinfo(EPYC_AVX2, 2)
    assert xeon.name == "intel-xeon-avx512-2c"
    assert epyc.name == "amd-epyc-f23m49-avx2-2c"
    zen4 = parse_cpuinfo(EPYC_AVX2.replace("avx2 fma", "avx2 avx512f").replace(": 23", ": 25").replace(": 49", ": 17"),
                         2)
    assert zen4.name == "amd-epyc-f25m17-avx512-2c" != epyc.name
    assert parse_cpuinfo(XEON, 1).name.endswith("-1c")  # taskset to one core is another profile
    assert set(xeon.as_row()) == {"profile", "cpu_vendor", "cpu_family", "cpu_model_id", "cpu_isa", "runtime"}


def _w(rnd, e):
    return Window(rnd, e, e / 20, 20.0, e * 0.8, e * 0.2, 0.0, 1, 0.0, 0.0, False)


def test_series_statistics():
    s = Series([_w(0, 1.0), _w(0, 1.4), _w(1, 1.2), _w(1, 1.1), _w(2, 3.0), _w(2, 2.0)])
    assert s.per_round("energy_j", "min") == [1.0, 1.1, 2.0]
    assert s.stat("energy_j", "round_min_median") == 1.1
    assert s.stat("energy_j", "min") == 1.0
    assert s.stat("energy_j", "median") == pytest.approx(1.3)
    assert 1.0 < s.stat("energy_j", "q25") < 1.3
    with pytest.raises(ValueError):
        ProtocolSettings(statistic="mean")


@pytest.mark.parametrize("normalise", ["round", "window", "adjacent"])
def test_normalisation_removes_a_machine_slowdown(monkeypatch, normalise):
    """Run the same block twice, the second time on a machine 30% slower: raw labels move by 30%,
    normalised ones do not (the reference slowed down alike)."""
    meter = FakeMeter()
    costs = {"a": 0.01, "b": 0.05}
    monkeypatch.setattr("nnenergy.measure.protocol.time.perf_counter", lambda: meter.clock)
    monkeypatch.setattr("nnenergy.measure.protocol.contention.snapshot", lambda: None)

    def call(cost):
        def fn():
            meter.clock += cost * meter.speed
        return fn

    settings = ProtocolSettings(rounds=3, windows=2, min_seconds=0.0, min_passes=1, warmup=0, normalise=normalise,
                                statistic="q25" if normalise == "adjacent" else "round_min_median")
    canonical = {"energy_j": 20.0 * 0.02, "latency_s": 0.02}
    runs = []
    for speed in (1.0, 1.3):
        meter.speed = speed
        m = InterleavedMeasurer(meter, settings, call(0.02), canonical, seed=1)
        res, _ = m.run({k: call(c) for k, c in costs.items()})
        runs.append(res)
    assert runs[1]["a"].energy_raw_j == pytest.approx(1.3 * runs[0]["a"].energy_raw_j)
    assert runs[1]["a"].speed_index == pytest.approx(1.3)
    for k in costs:
        assert runs[1][k].energy_j == pytest.approx(runs[0][k].energy_j)
        assert runs[0][k].energy_j == pytest.approx(20.0 * costs[k])
        assert set(runs[0][k].stats_raw) == set(STATISTICS)


def test_a_task_failing_in_its_warm_up_costs_that_task_only_and_the_collector_is_back_on(monkeypatch):
    """A kept model's first call in a revisit is its warm-up: an error there takes that task out of the block,
    not the block out of the sweep; garbage collection, off during the windows, is on again afterwards."""
    import gc

    meter = FakeMeter()
    monkeypatch.setattr("nnenergy.measure.protocol.time.perf_counter", lambda: meter.clock)
    monkeypatch.setattr("nnenergy.measure.protocol.contention.snapshot", lambda: None)
    seen_gc = []

    def ok():
        seen_gc.append(gc.isenabled())
        meter.clock += 0.02

    def broken():
        raise RuntimeError("resource exhausted")

    settings = ProtocolSettings(rounds=1, windows=1, min_seconds=0.0, min_passes=1, warmup=2, normalise="window",
                                statistic="q25")
    m = InterleavedMeasurer(meter, settings, ok, {"energy_j": 0.4, "latency_s": 0.02}, seed=0)
    results, _ = m.run({"good": ok, "bad": broken})
    assert set(results) == {"good"} and set(m.failed) == {"bad"} and "resource exhausted" in str(m.failed["bad"])
    assert seen_gc and not any(seen_gc) and gc.isenabled()


def test_visits_at_different_speeds_make_one_label_their_geometric_mean(monkeypatch):
    """Three visits of a block, the machine at three speeds and one configuration's cost off by a factor
    in one visit (what the reference does not follow): the label is the visits' geometric mean, on the
    canonical scale, its raw figure and speed index consistent, its counts summed."""
    meter = FakeMeter()
    monkeypatch.setattr("nnenergy.measure.protocol.time.perf_counter", lambda: meter.clock)
    monkeypatch.setattr("nnenergy.measure.protocol.contention.snapshot", lambda: None)
    settings = ProtocolSettings(rounds=2, windows=2, min_seconds=0.0, min_passes=1, warmup=0, normalise="window",
                                statistic="q25", visits=3)
    canonical = {"energy_j": 20.0 * 0.02, "latency_s": 0.02}
    visits = []
    for speed, off in ((1.0, 1.0), (1.25, 1.21), (0.9, 1.0)):
        meter.speed = speed

        def call(cost, meter=meter):
            def fn():
                meter.clock += cost * meter.speed
            return fn
        res, _ = InterleavedMeasurer(meter, settings, call(0.02), canonical, seed=1).run({"a": call(0.01 * off)})
        visits.append(res["a"])
    label = combine_visits(visits)
    assert label.energy_j == pytest.approx(20.0 * 0.01 * 1.21 ** (1 / 3))  # the off visit counts a third, in logs
    assert label.latency_s == pytest.approx(0.01 * 1.21 ** (1 / 3))
    assert label.energy_raw_j == pytest.approx((visits[0].energy_raw_j * visits[1].energy_raw_j
                                                * visits[2].energy_raw_j) ** (1 / 3))
    assert label.speed_index == pytest.approx(label.energy_raw_j / label.energy_j)
    assert label.windows == 12 and len(label.window_energies_j) == 12
    assert label.spread == pytest.approx(0.21 / 1.0, rel=1e-6)  # (max - min) / median of the visits
    assert label.cpu_j + label.ram_j == pytest.approx(label.energy_j)
    assert combine_visits(visits[:1]) is visits[0]
    with pytest.raises(ValueError, match="visits"):
        ProtocolSettings(visits=0)


def test_the_visit_book_says_what_is_due_and_when(tmp_path):
    """Visits >= the gap apart; a configuration with all its visits but no row is due at once (a kill came
    between); finished or given-up ones are never due; the next wait is the shortest gap left."""
    from datetime import datetime, timedelta, timezone

    from nnenergy.measure.visits import AGAIN, LABEL, VisitBook

    book = VisitBook(JsonlStore(tmp_path / "visits.jsonl", key="key"), visits=2, gap_min=10)
    t0 = datetime(2026, 12, 6, 18, 0, tzinfo=timezone.utc)
    res = combine_visits([_result(1.0)])
    book.add(LABEL, "a|96|1", "a", 96, 1, res, t0)
    book.add(LABEL, "g|64|2", "gen1_s000001", None, 2, res, t0 + timedelta(minutes=4))
    book.add(AGAIN, "a|96|1", "a", 96, 1, res, t0 + timedelta(minutes=1), {"first_energy_j": 1.0})
    assert book.due(t0 + timedelta(minutes=9)) == []
    assert book.seconds_to_next(t0 + timedelta(minutes=9)) == pytest.approx(60)
    due = book.due(t0 + timedelta(minutes=11))
    assert [(p.purpose, p.config_id, p.made) for p in due] == [(LABEL, "a|96|1", 1), (AGAIN, "a|96|1", 1)]
    assert due[1].extra == {"first_energy_j": 1.0} and due[0].size == 96
    assert len(book.add(LABEL, "a|96|1", "a", 96, 1, res, t0 + timedelta(minutes=12))) == 2
    # all visits stored, no row yet: due at once, whatever the gap
    assert (LABEL, "a|96|1") in {p.key for p in book.due(t0 + timedelta(minutes=12))}
    finished = {(LABEL, "a|96|1"), (AGAIN, "a|96|1")}
    assert [p.config_id for p in book.pending(finished)] == ["g|64|2"] and book.pending(finished)[0].size is None
    assert book.seconds_to_next(t0 + timedelta(minutes=12), finished) == pytest.approx(120)
    reopened = VisitBook(JsonlStore(tmp_path / "visits.jsonl", key="key"), visits=2, gap_min=10)
    assert [r.energy_j for r in reopened.results(LABEL, "a|96|1")] == [res.energy_j] * 2  # read back from disk
    assert reopened.seconds_to_next(t0, finished | {(LABEL, "g|64|2")}) is None


def _result(e: float):
    from nnenergy.measure.protocol import Result

    return Result(energy_j=e, latency_s=e / 20, energy_raw_j=e, latency_raw_s=e / 20, speed_index=1.0,
                  latency_speed_index=1.0, power_w=20.0, cpu_j=0.8 * e, ram_j=0.2 * e, gpu_j=0.0, passes=1,
                  windows=1, contended_windows=0, other_cores_max=0.0, steal_cores_max=0.0, spread=0.0,
                  window_energies_j=[e], stats_raw={"q25": e}, stats_normalised={"q25": e})


def test_a_slow_window_is_outvoted_by_the_trimmed_mean():
    s = Series([_w(0, 1.0), _w(0, 1.02), _w(1, 0.98), _w(1, 1.01), _w(2, 3.0)])  # one window hit by a neighbour
    assert s.stat("energy_j", "trim20") == pytest.approx(1.01)
    assert s.stat("energy_j", "median") == pytest.approx(1.01)
    assert statistics_mean([1.0, 1.02, 0.98, 1.01, 3.0]) > 1.3  # what a plain mean would have said
    with pytest.raises(ValueError, match="normalise"):
        ProtocolSettings(normalise="block")
    with pytest.raises(ValueError, match=">= 1"):
        ProtocolSettings(windows=0)


def statistics_mean(v):
    return sum(v) / len(v)


def test_per_window_normalisation_cancels_a_slowdown_inside_the_block(monkeypatch):
    """The machine slows down 40% half-way through the block: normalising by round (the reference opens
    and closes each round) mixes both speeds; each window over the reference right after it does not."""
    meter = FakeMeter()
    monkeypatch.setattr("nnenergy.measure.protocol.time.perf_counter", lambda: meter.clock)
    monkeypatch.setattr("nnenergy.measure.protocol.contention.snapshot", lambda: None)
    def call(cost):
        def fn():
            meter.speed = 1.0 if meter.clock - start < 0.35 else 1.4  # one slowdown, half-way through the block
            meter.clock += cost * meter.speed
        return fn

    canonical = {"energy_j": 20.0 * 0.02, "latency_s": 0.02}
    out = {}
    for how in ("round", "window"):
        start = meter.clock
        settings = ProtocolSettings(rounds=2, windows=3, min_seconds=0.0, min_passes=1, warmup=0, statistic="median",
                                    normalise=how)
        res, ref = InterleavedMeasurer(meter, settings, call(0.02), canonical, seed=3).run(
            {"a": call(0.01), "b": call(0.05)})
        out[how] = res
    for k, cost in (("a", 0.01), ("b", 0.05)):
        assert out["window"][k].energy_j == pytest.approx(20.0 * cost, rel=1e-6)
    assert settings.reference_statistic == "median" and ProtocolSettings().reference_statistic == "round_min_median"


def test_contention_counts_only_other_processes():
    a = contention.CpuTimes(busy_s=10.0, steal_s=1.0, own_s=5.0, wall_s=100.0)
    b = contention.CpuTimes(busy_s=12.0, steal_s=1.5, own_s=6.0, wall_s=101.0)
    c = contention.between(a, b)
    assert c.other_cores == pytest.approx(1.0) and c.steal_cores == pytest.approx(0.5)
    assert c.heavy(0.3, 0.1) and not contention.Contention(0.1, 0.0).heavy(0.3, 0.1)
    before = contention.snapshot()
    if before is not None:  # Linux: this process's CPU time, read in the same unit as the machine's busy time
        t0 = time.process_time()
        while time.process_time() - t0 < 0.1:
            pass
        after = contention.snapshot()
        assert before.own_s <= before.busy_s and after.own_s - before.own_s >= 0.05


def test_store_repairs_a_cut_last_line(tmp_path):
    path = tmp_path / "models.jsonl"
    store = JsonlStore(path, key="id")
    store.append({"id": "a", "v": 1})
    store.append({"id": "b", "v": 2})
    with path.open("a") as fh:  # a kill in the middle of writing the third record
        fh.write('{"id": "c", "v"')
    again = JsonlStore(path, key="id")
    assert sorted(r["id"] for r in again.values()) == ["a", "b"]
    again.append({"id": "c", "v": 3})  # the re-measured record lands on its own line
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c"]
    assert sorted(r["id"] for r in JsonlStore(path, key="id").values()) == ["a", "b", "c"]


def _sweep_cfg(tmp_path, *overrides):
    from conftest import compose_cfg

    return compose_cfg("measure", ["sweep=tiny", f"sweep.output_dir={tmp_path / 'p' / 'tiny'}",
                                   f"sweep.cache_dir={tmp_path / 'c'}", *overrides])


def _nothing_written(tmp_path) -> bool:
    out = tmp_path / "p" / "tiny"
    return not (out / "models.parquet").exists() and not (out / "progress" / "models.jsonl").exists()


@pytest.mark.parametrize("override, message", [
    ("sweep.batch_sizes=[0,1]", "positive integers"),
    ("sweep.architectures=[NoSuchNet]", "unknown architecture"),
    ("sweep.model_files=[/nonexistent/m.keras]", "not found"),
    ("+sweep.typo=1", "unknown sweep key"),
    ("sweep.protocol.rounds=0", "rounds"),
    ("sweep.protocol.visits=0", "visits"),
    ("sweep.protocol.visit_gap_min=-1", "visit_gap_min"),
    ("sweep.keep_models_mb=-1", "keep_models_mb"),
])
def test_bad_sweep_input_is_refused_up_front(tmp_path, override, message):
    from nnenergy.apps import measure
    from nnenergy.measure.sweep import SweepInputError

    with pytest.raises(SweepInputError, match=message):
        measure.run(_sweep_cfg(tmp_path, override))
    assert _nothing_written(tmp_path)


def test_a_dataset_is_resumed_only_under_its_own_protocol_and_a_bring_up_takes_it(tmp_path):
    """Labels of two protocols never share a dataset: resuming one under another protocol is refused before
    anything is measured, naming the overrides that continue it; the bring-up continues its dataset under the
    dataset's protocol."""
    from nnenergy.apps import measure
    from nnenergy.calibrate import bringup
    from nnenergy.measure.sweep import SweepInputError

    measure.run(_sweep_cfg(tmp_path, "sweep.architectures=[tiny_mlp]", "sweep.batch_sizes=[1]"))
    rows = tmp_path / "p" / "tiny" / "progress" / "models.jsonl"
    before = rows.read_text()
    with pytest.raises(SweepInputError, match=r"statistic=median.*continue it with sweep\.protocol\.statistic=q25"):
        measure.run(_sweep_cfg(tmp_path, "sweep.protocol.statistic=median"))
    assert rows.read_text() == before  # nothing measured
    spec = bringup.sweep_spec(10, [f"sweep.output_dir={tmp_path / 'p' / 'tiny'}", "sweep.protocol.statistic=median",
                                   "sweep.protocol.rounds=3"])
    assert (spec.protocol.statistic, spec.protocol.rounds) == ("q25", 2)  # tiny's, as the dataset was measured
    with rows.open("a") as fh:  # a last line cut by a kill does not hide the dataset's protocol
        fh.write('{"config_id": "cut')
    assert bringup.sweep_spec(10, [f"sweep.output_dir={tmp_path / 'p' / 'tiny'}"]).protocol.windows == 1
    fresh = bringup.sweep_spec(10, [f"sweep.output_dir={tmp_path / 'new'}", "sweep.protocol.rounds=3"])
    assert fresh.protocol.rounds == 3  # a new bring-up dataset takes the overrides


def test_the_measure_command_reports_bad_input_in_one_line(tmp_path, new_store):
    """The command line's side of the refusals above: exit status 2, one line, no traceback."""
    cmd = [sys.executable, "-m", "nnenergy.apps.measure", "sweep=tiny", f"sweep.output_dir={tmp_path / 'p' / 'tiny'}",
           f"sweep.cache_dir={tmp_path / 'c'}", f"mlflow.tracking_uri={new_store(tmp_path)}",
           "sweep.batch_sizes=[0,1]"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2, proc.stderr[-500:]
    expected = "nnenergy measure: sweep.batch_sizes must be positive integers, got [0]"
    assert proc.stderr.strip().splitlines() == [expected]
    assert _nothing_written(tmp_path)


def test_a_dataset_of_another_cpu_is_never_appended_to(tmp_path):
    from conftest import foreign_profile

    from nnenergy.apps import measure
    from nnenergy.measure.sweep import SweepInputError

    out = tmp_path / "p" / "tiny" / "progress"
    out.mkdir(parents=True)
    other = foreign_profile()  # never this machine's profile, on any CPU
    foreign = json.dumps({"config_id": "x|1|1", "profile": other, "hardware_id": f"{other}-1234"}) + "\n"
    (out / "models.jsonl").write_text(foreign)
    with pytest.raises(SweepInputError, match=re.escape(other) + ".*never share a dataset"):
        measure.run(_sweep_cfg(tmp_path))
    assert (out / "models.jsonl").read_text() == foreign  # nothing appended


def test_a_failed_measurement_is_retried_on_resume(tmp_path):
    from nnenergy.measure.sweep import Sweep, SweepSpec

    spec = SweepSpec.from_config({
        "name": "tiny", "architectures": ["tiny_mlp"], "batch_sizes": [1], "input_sizes": [16],
        "output_dir": str(tmp_path / "p" / "tiny"), "cache_dir": str(tmp_path / "c"), "isolate_share": 0.0,
        "protocol": {"rounds": 1, "windows": 1, "min_seconds": 0.01, "warmup": 1},
    })
    sweep = Sweep(spec)
    sweep.progress.skip_store.append({"config_id": "tiny_mlp|16|1", "architecture": "tiny_mlp", "input_size": 16,
                                      "batch_size": 1, "reason": "MeasurementError: zero", "retryable": True,
                                      "attempts": 1})
    result = sweep.run()
    assert list(result.models["config_id"]) == ["tiny_mlp|16|1"] and not result.skipped
    row = result.models.iloc[0]
    assert row["energy_j"] == pytest.approx(row["energy_raw_j"] / row["speed_index"])
    # what was in force is recorded (a sweep sets inter_op=1 when it is the first to start TensorFlow in
    # its process, as every measuring command is: tests/test_measure.py checks that in a fresh process)
    import tensorflow as tf

    assert row["profile"] and row["inter_op_threads"] == tf.config.threading.get_inter_op_parallelism_threads()
    assert (tmp_path / "p" / "reference.json").exists()  # the profile's canonical reference
    again = Sweep(spec).run()  # measured since it failed: not measured a third time
    assert list(again.models["measured_at"]) == list(result.models["measured_at"])


def test_a_second_measuring_process_fails_fast_naming_the_holder(tmp_path):
    from nnenergy.measure.lock import MeasurementLock, MeasurementLockError

    path = tmp_path / "lock"
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from nnenergy.measure.lock import MeasurementLock\n"
            "with MeasurementLock(path=%r):\n    print('held', flush=True); time.sleep(30)")
    code %= (str(REPO / "src"), str(path))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(MeasurementLockError, match=str(holder.pid)):
            with MeasurementLock(path=path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with MeasurementLock(path=path):  # released by the kernel when the holder died
        pass


@pytest.mark.parametrize("keep", [False, True])
def test_a_window_beside_a_busy_process_is_redone_unless_the_host_is_shared_on_purpose(monkeypatch, keep):
    """A child spinning a whole core makes every window busy (read from /proc/stat, for real): by default it
    is redone up to `max_retries` times, then kept and flagged; with NNENERGY_BUSY_WINDOWS=keep (the suite's
    two workers) it is kept and flagged at once."""
    if keep:
        monkeypatch.setenv("NNENERGY_BUSY_WINDOWS", "keep")
    else:
        monkeypatch.delenv("NNENERGY_BUSY_WINDOWS", raising=False)
    meter = FakeMeter()

    def step():  # each call costs 1 ms of the meter's clock (its energy); real time runs the window
        meter.clock += 0.001

    settings = ProtocolSettings(rounds=1, windows=1, warmup=0, min_seconds=0.05, max_retries=2)
    m = InterleavedMeasurer(meter, settings, reference=step)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # the child is running
        results, reference = m.run({"a": step})
    finally:
        spin.kill()
        spin.wait()
    a = results["a"]
    assert a.contended_windows == a.windows >= 1 and a.other_cores_max > 0.3  # kept, and flagged
    windows = a.windows + len(reference.windows)
    assert m.contended_total == windows * (1 if keep else 1 + settings.max_retries)
