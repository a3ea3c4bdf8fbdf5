"""The speed index in every prediction (`nnenergy.speed`): readings recorded, stale ones re-probed, a
held lock answered by the last reading, intervals widened by the machine's own variability.

No test depends on the machine's real speed: recorded readings are written by the tests, and where
a real probe runs only its bookkeeping is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from nnenergy import speed
from nnenergy.measure.hardware import current_profile_name
from nnenergy.measure.lock import MeasurementLock

CANON = {"energy_j": 0.05, "latency_s": 0.002, "measured_at": "2026-11-26T06:53:43+00:00", "profile": "p"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNENERGY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _ago(minutes: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat(timespec="seconds")


def _reading(index: float, minutes_ago: float, lat: float | None = None) -> dict:
    """A reading as a probe against CANON records it."""
    return {"speed_index": index, "latency_speed_index": lat or index, "read_at": _ago(minutes_ago), "source": "probe",
            "canonical": speed.canonical_key(CANON)}


def _frame():
    return pd.DataFrame({"row": ["layer", "total"], "energy_j": [0.01, 0.02], "energy_lo_j": [0.008, 0.016],
                         "energy_hi_j": [0.012, 0.024], "latency_s": [0.001, 0.002]})


def test_a_fresh_reading_scales_every_row_and_canonical_does_not(cache):
    speed.record("p", _reading(0.8, 2, lat=0.9))
    s = speed.resolve("p", "auto", canon=CANON)
    assert (s.source, s.speed_index, s.latency_speed_index, s.canonical_at) == ("probe", 0.8, 0.9, CANON["measured_at"])
    out = speed.apply(_frame(), s)
    assert out["energy_j"].tolist() == pytest.approx([0.008, 0.016])
    assert out["latency_s"].tolist() == pytest.approx([0.0009, 0.0018])
    same = speed.apply(_frame(), speed.resolve("p", "canonical", canon=CANON))
    pd.testing.assert_frame_equal(same, _frame())
    assert speed.resolve("p", "last", canon=CANON).speed_index == 0.8
    assert speed.resolve("p", "auto", canon=None, data_root=cache / "nowhere") is None  # no reference: not applied


def test_a_stale_reading_triggers_a_probe_and_a_held_lock_falls_back_to_it(cache, monkeypatch):
    profile = current_profile_name()
    speed.record(profile, _reading(0.7, 60))
    monkeypatch.setenv(speed.MAX_AGE_ENV, "30")
    with MeasurementLock():  # another process measures: the last reading, said so, nothing probed
        s = speed.resolve(profile, "auto", canon=CANON)
    assert s.speed_index == 0.7 and "another process is measuring" in s.note
    assert len(speed.history(profile)) == 1
    s = speed.resolve(profile, "auto", canon=CANON)  # a real probe: only its bookkeeping is checked
    past = speed.history(profile)
    assert len(past) == 2 and past[-1]["source"] == "probe" and s.source == "probe"
    assert past[-1]["warmup_s"] == speed.PROBE_WARMUP_S  # each reading says how it was taken
    assert past[-1]["canonical"] == speed.canonical_key(CANON)  # and against which canonical reference
    assert past[-1]["windows_redone"] == 0 and past[-1]["busy_windows"] >= 0  # the suite keeps busy windows
    assert past[-1]["load_1min"] is None or past[-1]["load_1min"] >= 0  # how busy the host just was
    assert s.speed_index == pytest.approx(past[-1]["speed_index"]) and s.speed_index > 0
    assert speed.resolve(profile, "auto", canon=CANON).read_at == past[-1]["read_at"]  # fresh now: no new probe
    assert len(speed.history(profile)) == 2


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="who else used the CPU is read from /proc")
def test_the_probe_measures_a_busy_window_again_only_within_its_budget(monkeypatch):
    """Windows during which another process ran are redone while the rest still fit before the deadline
    (a real CPU-burning neighbour; the deadline bounds the probe whatever the machine does)."""
    import time

    from nnenergy.speed_windows import clean_windows

    monkeypatch.delenv("NNENERGY_BUSY_WINDOWS", raising=False)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        t0 = time.perf_counter()
        windows, redone, kept = clean_windows(lambda: time.sleep(0.002), None, 3, deadline=t0 + 0.8)
        took = time.perf_counter() - t0
        late, late_redone, late_kept = clean_windows(lambda: time.sleep(0.002), None, 2, deadline=0.0)
    finally:
        burner.kill()
        burner.wait()
    assert len(windows) == 3 and redone >= 1 and took < 0.8 + 0.3  # redone, then kept: not past the deadline
    assert len(late) == 2 and late_redone == 0 and late_kept == 2  # past it: kept and counted, not redone
    assert all(lat > 0 and e is None for lat, e in windows + late)


def test_a_probe_in_context_runs_the_load_before_every_reference_window(monkeypatch):
    """In context, each reference window follows a window of the load, as the sweeps read the reference."""
    import time

    from nnenergy.speed_windows import PROBE_WINDOW_S, clean_windows

    monkeypatch.setenv("NNENERGY_BUSY_WINDOWS", "keep")
    order = []
    load = lambda: (order.append("L"), time.sleep(0.002))  # noqa: E731
    ref = lambda: (order.append("R"), time.sleep(0.002))  # noqa: E731
    t0 = time.perf_counter()
    windows, _, _ = clean_windows(ref, None, 3, deadline=t0 + 1.0, load=load)
    took = time.perf_counter() - t0
    import itertools

    assert len(windows) == 3 and took >= 6 * PROBE_WINDOW_S  # each of the 3 windows and its load: >= 0.1 s each
    assert "".join(k for k, _ in itertools.groupby(order)) == "LRLRLR"


def test_a_reading_against_another_canonical_reference_is_never_used(cache, tmp_path):
    """A profile can hold two canonical references (its one-visit and its 3-visit labels'): a reading taken
    against one never states a predictor on the other's scale, nor counts in its variability. A reading from
    before readings named theirs was taken against the profile's reference file."""
    q25 = {**CANON, "measured_at": "2026-12-06T18:02:37+00:00", "statistic": "q25"}
    speed.record("p", {**_reading(0.7, 1), "canonical": speed.canonical_key(q25)})  # read against q25
    with MeasurementLock():  # nothing on its scale, no probe possible: unscaled, and said so
        s = speed.resolve("p", "auto", canon=CANON)
    assert (s.source, s.speed_index) == ("canonical", 1.0) and "no earlier reading" in s.note
    assert speed.resolve("p", "auto", canon=q25).speed_index == 0.7
    assert speed.history("p", CANON) == [] and len(speed.history("p")) == 1
    for i, v in enumerate((0.6, 1.0, 1.4)):  # another scale's swings do not widen this one's interval
        speed.record("p", _reading(v, 30 - i))
    assert speed.variability(speed.history("p", q25)) == 0.0 < speed.variability(speed.history("p", CANON))
    root = tmp_path / "data"
    (root / "old").mkdir(parents=True)
    (root / "old" / "reference.json").write_text(json.dumps(CANON))
    legacy = {k: v for k, v in _reading(0.8, 1).items() if k != "canonical"}
    speed.record("old", legacy)  # names no canonical: read against data/old/reference.json
    assert [r["speed_index"] for r in speed.history("old", CANON, root)] == [0.8]
    assert speed.history("old", q25, root) == []
    assert len(speed.history("old", q25, tmp_path / "nowhere")) == 1  # no reference file: taken as any


def test_the_interval_widens_with_a_history_of_varying_speeds(cache):
    for i, v in enumerate((1.0, 1.0, 1.0)):
        speed.record("steady", _reading(v, 30 - i))
    for i, v in enumerate((0.7, 1.0, 1.3)):
        speed.record("varying", _reading(v, 30 - i))
    steady = speed.apply(_frame(), speed.resolve("steady", "last", canon=CANON))
    varying = speed.apply(_frame(), speed.resolve("varying", "last", canon=CANON))
    assert speed.variability(speed.history("varying")) > 0.2 > speed.variability(speed.history("steady"))
    width = lambda f: (f["energy_hi_j"] / f["energy_lo_j"]).iloc[1]  # noqa: E731
    assert width(varying) > 1.5 * width(steady) > 1.5 * (0.024 / 0.016)
    assert (varying["energy_lo_j"] < varying["energy_j"]).all() and (varying["energy_hi_j"] > varying["energy_j"]).all()


def test_bad_input_is_one_error_and_nothing_recorded_is_lost(cache):
    with pytest.raises(speed.SpeedError, match="--speed must be one of"):
        speed.resolve("p", "fast", canon=CANON)
    speed.record("p", _reading(0.9, 1))
    path = speed.history_file("p")
    before = path.read_text() + "{not json\n"
    path.write_text(before)
    with pytest.raises(speed.SpeedError, match="line 2 is not a speed reading"):
        speed.resolve("p", "auto", canon=CANON)
    assert path.read_text() == before  # never rewritten
    path.write_text(json.dumps({**_reading(0.9, 1), "profile": "q"}) + "\n")
    with pytest.raises(speed.SpeedError, match="a reading of q, not p"):
        speed.history("p")
    with pytest.raises(speed.SpeedError, match="cannot be recorded"):
        speed.record("p", {**_reading(0.9, 1), "profile": "q"})


def test_the_cli_refuses_a_bad_speed_and_a_corrupt_history_in_one_line(store, tmp_path, monkeypatch, capsys):
    from nnenergy.cli.predict import describe_main
    from nnenergy.predict.loading import load_predictor

    # A described layer table: the speed applies to it as to a model, and its processes import no TensorFlow.
    table = tmp_path / "tiny.parquet"
    assert describe_main(["tiny_cnn", "--input-shape", "32,32,3", "-o", str(table)]) == 0
    env = {**os.environ, "NNENERGY_CACHE": str(tmp_path / "cache"), "NNENERGY_SPEED": "auto"}
    monkeypatch.setenv("NNENERGY_CACHE", env["NNENERGY_CACHE"])
    loaded = load_predictor(tracking_uri=store, this_machine=True)  # cached: the processes below skip MLflow
    on_its_scale = speed.canonical_key((loaded[0].metadata.metadata or {}).get("canonical_reference"))
    cmd = [sys.executable, "-m", "nnenergy.cli", "predict", str(table), "--tracking-uri", store]
    res = subprocess.run([*cmd, "--speed", "fast"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == "" and len(res.stderr.strip().splitlines()) == 1
    hist = tmp_path / "cache" / "speed" / f"{current_profile_name()}.jsonl"
    hist.parent.mkdir(parents=True)
    hist.write_text("garbage\n")
    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "line 1 is not a speed reading" in res.stderr
    assert hist.read_text() == "garbage\n"
    # the predictor's profile is this machine's, and the reading on its canonical reference
    hist.write_text(json.dumps({**_reading(1.25, 1, lat=1.5), "canonical": on_its_scale}) + "\n")
    from nnenergy.cli.predict import main  # the errors' processes above; the scaling needs none

    for key in ("NNENERGY_CACHE", "NNENERGY_SPEED"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()

    def predicted(*more):
        assert main([str(table), "--tracking-uri", store, "--json", *more]) == 0
        return json.loads(capsys.readouterr().out)

    scaled, plain = predicted(), predicted("--speed", "canonical")
    assert scaled["speed"]["speed_index"] == 1.25 and scaled["speed"]["canonical_at"]
    assert plain["speed"]["source"] == "canonical" and plain["speed"]["speed_index"] == 1.0
    assert scaled["energy_j"] == pytest.approx(1.25 * plain["energy_j"])
    assert scaled["latency_s"] == pytest.approx(1.5 * plain["latency_s"])
