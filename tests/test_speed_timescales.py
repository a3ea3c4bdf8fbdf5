"""The speed's time-scale benchmark (`benchmarks/speed_timescales.py`) reads what a record holds: on a synthetic
record whose networks follow the reference's slow swings to the power 0.5 and whose fast swings are each
window's own, the in-pass reference tracks the pass, a probe before it does not, and labels of more windows agree
better. No measuring: the record is made here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import speed_timescales as st  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


def _record(cycles: int = 700, seed: int = 0) -> dict:
    """R A B C windows every 0.65 s; a slow speed level (a random walk of ~20 s steps) that the reference follows
    one for one and the networks to 0.5, plus each window's own noise."""
    rng = np.random.default_rng(seed)
    level = np.repeat(rng.normal(0, 0.08, cycles // 30 + 1), 30)[:cycles]
    windows = []
    for i in range(cycles):
        t = 0.65 * i
        windows.append(["R", t, 0.002 * np.exp(level[i] + rng.normal(0, 0.05)), 50])
        for j, kind in enumerate("ABC"):
            windows.append([kind, t + 0.1 + 0.15 * j, 0.03 * np.exp(0.5 * level[i] + rng.normal(0, 0.05)), 5])
    return {"profile": "p", "started_at": "2026-12-08T00:00:00+00:00", "seconds": 0.65 * cycles, "windows": windows}


def test_the_reference_inside_a_pass_tracks_it_and_more_windows_make_a_steadier_label(monkeypatch, tmp_path):
    record = _record()
    blocks = st.block_table(record)
    assert [b["block_s"] for b in blocks] == sorted(b["block_s"] for b in blocks)
    assert blocks[-1]["corr_with_reference"] > blocks[0]["corr_with_reference"]  # the common swing shows in blocks
    passes = {p["pass_s"]: p["estimators"] for p in st.probe_table(record)}
    inside = passes[60]["the reference read inside the pass"]
    assert inside["slope"] == pytest.approx(0.5, abs=0.1) and inside["corr"] > 0.8
    assert passes[60]["probe: the reference"]["corr"] < inside["corr"]
    monkeypatch.setattr(st, "LABEL_DRAWS", 200)
    labels = {(r["windows"], r["exponent"]): r["rms_pct"] for r in st.label_table(record)}
    assert labels[(36, 0.45)] < labels[(4, 0.45)]  # averaging more windows
    assert labels[(36, 0.45)] < labels[(36, 1.0)]  # the networks follow the reference by half, not one for one
    monkeypatch.setattr(st, "RECORDS", tmp_path)
    (tmp_path / "p.json").write_text(json.dumps(record))
    text = st.report()
    assert "## p, 2026-12-08T00:00:00+00:00" in text and "| 60 s |" in text and "| 36 | 0.45 |" in text


def test_a_record_too_short_for_its_passes_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["speed_timescales.py", "--seconds", "60"])
    assert st.main() == 2
    assert "--seconds must be" in capsys.readouterr().err
