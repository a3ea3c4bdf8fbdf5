"""`nnenergy speed`: the speed index as `nnenergy predict` applies it, this host's readings, their plot, and bad
input in one line. No test depends on the machine's real speed: the readings are written by the tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from nnenergy import speed
from nnenergy.cli.speed import main, summary
from nnenergy.measure.hardware import current_profile_name


def _reading(index: float, minutes_ago: float, canonical: str, spread: float | None = 0.1) -> dict:
    at = (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")
    return {"speed_index": index, "latency_speed_index": index + 0.05, "read_at": at, "source": "probe",
            "canonical": canonical, **({"spread": spread} if spread is not None else {})}


@pytest.fixture
def readings(store, tmp_path, monkeypatch):
    """Four readings of this machine on the tiny champion's canonical reference (one 30 h old, one without a probe
    spread, one appended out of time order as a bring-up does), in a fresh cache."""
    from nnenergy.predict.loading import load_predictor

    monkeypatch.setenv("NNENERGY_CACHE", str(tmp_path / "cache"))
    pyfunc, _ = load_predictor(tracking_uri=store, this_machine=True)
    key = speed.canonical_key((pyfunc.metadata.metadata or {})["canonical_reference"])
    for index, ago, spread in ((0.7, 30 * 60, 0.1), (1.1, 30, None), (0.9, 90, 0.1), (1.2, 2, 0.2)):
        speed.record(current_profile_name(), _reading(index, ago, key, spread))
    return speed.history_file(current_profile_name())


def test_it_states_the_reading_predict_uses_and_the_last_day(readings, store, tmp_path, capsys):
    from nnenergy.cli.predict import describe_main
    from nnenergy.predict.api import predict_many

    assert main(["--tracking-uri", store, "--speed", "last", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"] == current_profile_name() and out["readings"] is None
    # the same reading, factors and interval widening as a prediction with the same --speed states
    table = tmp_path / "tiny.parquet"
    assert describe_main(["tiny_cnn", "--input-shape", "32,32,3", "-o", str(table)]) == 0
    stated = predict_many([str(table)], tracking_uri=store, speed="last")[0].speed
    for key in ("speed_index", "latency_speed_index", "read_at", "canonical_at", "variability", "energy_factor"):
        assert out["speed"][key] == stated[key], key
    assert out["speed"]["speed_index"] == 1.2 and out["speed"]["latency_speed_index"] == pytest.approx(1.25)
    h = out["history"]  # the last 24 h: the 30-hour-old reading is left out
    assert (h["readings"], h["median"], h["low"], h["high"], h["range"]) == (3, 1.1, 0.9, 1.2, "min-max")
    assert h["sd_log"] == pytest.approx(math.sqrt(sum((math.log(v) - sum(map(math.log, (0.9, 1.1, 1.2))) / 3) ** 2
                                                      for v in (0.9, 1.1, 1.2)) / 2))
    past = speed.history(current_profile_name())
    assert (h["first_at"], h["last_at"]) == (past[2]["read_at"], past[3]["read_at"])  # by time, not by line
    capsys.readouterr()
    assert main(["--tracking-uri", store, "--speed", "canonical"]) == 0
    text = capsys.readouterr().out
    assert "speed index        1.000" in text and "costs what it cost" in text
    assert "3 readings of" in text and "median 1.100, min-max 0.900-1.200" in text


def test_history_lists_the_readings_in_time_order_and_plots_them_without_probing(readings, store, tmp_path,
                                                                                 capsys):
    before = readings.read_text()
    png = tmp_path / "speed.png"
    assert main(["--tracking-uri", store, "--history", "3", "--plot", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["speed_index"] for r in out["readings"]] == [0.9, 1.1, 1.2] and out["speed"] is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--tracking-uri", store, "--history", "2"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[3].split()[1:4] == ["1.100", "1.150", "-"] and rows[4].split()[1:4] == ["1.200", "1.250", "20%"]
    assert readings.read_text() == before  # nothing probed, nothing recorded


@pytest.mark.parametrize("bad", ['{"speed_index": 0, "latency_speed_index": 1, "read_at": "2026-12-08T00:00"}',
                                 '{"speed_index": 1, "latency_speed_index": 1, "read_at": null}', "garbage"])
def test_a_corrupt_history_is_one_line_and_exit_2_and_kept(readings, store, tmp_path, bad):
    cmd = [sys.executable, "-m", "nnenergy.cli", "speed", "--tracking-uri", store]
    env = {**os.environ, "NNENERGY_CACHE": str(tmp_path / "cache")}
    readings.write_text(readings.read_text() + bad + "\n")
    for more in (["--history"], ["--speed", "last", "--plot", str(tmp_path / "p.png")]):
        res = subprocess.run([*cmd, *more], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert res.returncode == 2 and res.stdout == "", res.stderr
        assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "line 5 is not a speed reading" in res.stderr
    assert readings.read_text().endswith(bad + "\n") and not (tmp_path / "p.png").exists()


def test_summary_of_no_reading_in_the_window_says_none():
    assert summary([]) == {"readings": 0, "hours": 24}
    old = {"speed_index": 1.0, "read_at": "2026-01-01T00:00:00+00:00"}
    assert summary([old])["readings"] == 0
