"""`nnenergy speed`: the speed index as `nnenergy predict` applies it, this host's readings, their plot, and bad
input in one line. No test depends on the machine's real speed: the readings are written by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from nnenergy import speed
from nnenergy.cli.speed import main, summary
from nnenergy.measure.hardware import current_profile_name


def _reading(index: float, minutes_ago: float, canonical: str) -> dict:
    at = (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")
    return {"speed_index": index, "latency_speed_index": index + 0.05, "read_at": at, "source": "probe",
            "spread": 0.1, "canonical": canonical}


@pytest.fixture
def readings(store, tmp_path, monkeypatch):
    """Four readings of this machine on the tiny champion's canonical reference (one 30 h old), in a fresh cache."""
    from nnenergy.predict.loading import load_predictor

    monkeypatch.setenv("NNENERGY_CACHE", str(tmp_path / "cache"))
    pyfunc, _ = load_predictor(tracking_uri=store, this_machine=True)
    key = speed.canonical_key((pyfunc.metadata.metadata or {})["canonical_reference"])
    for index, ago in ((0.7, 30 * 60), (0.9, 90), (1.1, 30), (1.2, 2)):
        speed.record(current_profile_name(), _reading(index, ago, key))
    return speed.history_file(current_profile_name())


def test_it_states_the_reading_predict_would_use_and_the_history(readings, store, tmp_path, capsys):
    assert main(["--tracking-uri", store, "--speed", "last", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"] == current_profile_name()
    assert out["speed"]["speed_index"] == 1.2 and out["speed"]["latency_speed_index"] == pytest.approx(1.25)
    assert out["speed"]["canonical_at"] and out["readings"] is None
    h = out["history"]  # the last 24 h: the 30-hour-old reading is left out of the median, not of the variability
    assert (h["readings"], h["median"], h["p5"], h["p95"]) == (3, 1.1, 0.9, 1.2)
    assert h["variability"] == pytest.approx(speed.variability(speed.history(current_profile_name())))
    assert main(["--tracking-uri", store, "--speed", "canonical"]) == 0
    text = capsys.readouterr().out
    assert "speed index        1.000" in text and "as fast as" in text and "3 readings: median 1.100" in text


def test_history_lists_the_readings_and_plots_them_without_probing(readings, store, tmp_path, capsys):
    before = readings.read_text()
    png = tmp_path / "speed.png"
    assert main(["--tracking-uri", store, "--history", "2", "--plot", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["speed_index"] for r in out["readings"]] == [1.1, 1.2] and out["speed"] is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert readings.read_text() == before  # nothing probed, nothing recorded


def test_bad_input_is_one_line_and_exit_2_and_the_history_is_kept(readings, store, tmp_path):
    cmd = [sys.executable, "-m", "nnenergy.cli", "speed", "--tracking-uri", store]
    env = {**os.environ, "NNENERGY_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([*cmd, "--speed", "fast"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == "" and len(res.stderr.strip().splitlines()) == 1
    readings.write_text(readings.read_text() + "garbage\n")
    res = subprocess.run([*cmd, "--history"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "line 5 is not a speed reading" in res.stderr
    assert readings.read_text().endswith("garbage\n")


def test_summary_of_no_readings_says_none():
    assert summary([]) == {"readings": 0, "hours": 24}
