"""The protocol study's report (`benchmarks/protocol_report.py`): one report per CPU kind, built from
recorded passes (the repository's own logs of two CPUs), never pairing passes of two machines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "benchmarks" / "protocol_study"
sys.path.insert(0, str(REPO / "benchmarks"))

import protocol_report  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


def _passes(profile_file: str, mode: str, n: int, step: int = 1) -> list[str]:
    """`n` recorded passes of one mode, every `step`-th (passes are compared only >= 20 min apart)."""
    lines = (LOGS / profile_file).read_text().splitlines()
    return [line for line in lines if json.loads(line).get("mode", "graph") == mode][::step][:n]


def test_each_cpu_gets_its_own_report_and_a_pinned_pass_joins_its_machine(tmp_path, capsys):
    zen1, xeon = "amd-epyc-f23m1-avx2-2c.jsonl", "intel-xeon-avx512-2c.jsonl"
    (tmp_path / zen1).write_text("\n".join(_passes(zen1, "graph", 3, step=4)) + "\n")
    pinned = _passes(xeon, "pinned1", 3, step=3)  # recorded under the pinned process's profile, ...-1c
    (tmp_path / xeon).write_text("\n".join(_passes(xeon, "graph", 3, step=4) + pinned) + "\n")
    protocol_report.report(tmp_path)
    capsys.readouterr()
    reports = sorted(p.name for p in tmp_path.glob("*.md"))
    assert reports == ["amd-epyc-f23m1-avx2-2c.md", "intel-xeon-avx512-2c.md"]  # no report of a "-1c" profile
    for name in reports:
        head = (tmp_path / name).read_text().splitlines()[0]
        assert head.startswith("# Protocol study: 3 passes") and head.endswith(name[:-3])
    assert "| pinned1 | 3 |" in (tmp_path / "intel-xeon-avx512-2c.md").read_text()


def test_a_folder_without_two_passes_of_one_cpu_is_one_line(tmp_path, capsys):
    xeon = "intel-xeon-avx512-2c.jsonl"
    (tmp_path / xeon).write_text(_passes(xeon, "graph", 1)[0] + "\n")
    with pytest.raises(SystemExit, match="no CPU in .* has 2 graph passes"):
        protocol_report.report(tmp_path)
    assert not list(tmp_path.glob("*.md"))


def test_agreement_is_split_by_how_far_apart_the_passes_were():
    # three passes: 0 min, 30 min, 5 h; in the last one configuration "b" is 10% dearer than the others say
    labels = [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.1, "b": 2.42, "c": 3.3}]
    times = [0.0, 1800.0, 5 * 3600.0]
    near = protocol_report.agreement(labels, times, hi_s=3600)
    assert near["pairs"] == 1 and near["rms_pct"] == pytest.approx(0.0)
    far = protocol_report.agreement(labels, times, lo_s=3 * 3600, hi_s=12 * 3600)
    assert far["pairs"] == 2 and far["rms_pct"] == pytest.approx(100 * (1.1 - 1) * (1 / 3) ** 0.5, rel=1e-6)
    assert protocol_report.agreement(labels, times, lo_s=12 * 3600) == {}
    table = "\n".join(protocol_report.lag_table([{name: lab for name in protocol_report.LAG_PROTOCOLS}
                                                 for lab in labels], times))
    assert "| A-R ratio q25 of 4 | 0.00 / 100% (1) | - | 5.77 / 67% (2) | - |" in table
