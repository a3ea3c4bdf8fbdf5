"""`benchmarks/repeatability.py --datasets`: every dataset's own measure-twice figure, from the pairs its
sweep stored (`remeasure.json`), beside its protocol and its throughput."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import repeatability  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

ZEN1 = REPO / "data" / "amd-epyc-f23m1-avx2-2c" / "space"


def test_the_table_states_each_datasets_pairs_noise_and_configurations_per_hour(tmp_path):
    root = tmp_path / "data"
    copy = root / "amd-epyc-f23m1-avx2-2c" / "space"
    copy.mkdir(parents=True)
    for name in ("remeasure.json", "models.parquet", "sessions.json"):
        shutil.copy(ZEN1 / name, copy / name)
    text = repeatability.datasets_report(root, tmp_path / "out")
    row = next(line for line in text.splitlines() if "amd-epyc-f23m1-avx2-2c/space" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    pairs = json.loads((ZEN1 / "remeasure.json").read_text())
    from nnenergy.measure import remeasure

    a = remeasure.agreement(pairs)
    assert cells[3] == str(a["n"]) and float(cells[5]) == pytest.approx(a["rms_pct"], abs=0.05)
    assert "adjacent q25" in cells[1] and "1 visit" in cells[1]  # the Zen 1's protocol: one visit of 3x2 pairs
    wall = sum(r["wall_time_s"] for r in json.loads((ZEN1 / "sessions.json").read_text()))
    assert float(cells[8]) == pytest.approx(int(cells[2]) / wall * 3600, abs=1)
    written = (tmp_path / "out" / "datasets.md").read_text()
    assert written.count("| dataset |") == 1 and row in written
