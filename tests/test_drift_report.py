"""The drift benchmark's report (`benchmarks/drift.py --report`): one section per profile, canonical reference
and registered version, so the runs of two predictors, or of two scales, are never pooled."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import drift  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

OLD = {"energy_j": 0.05, "latency_s": 0.002, "measured_at": "2026-12-02T16:38:22+00:00",
       "statistic": "round_min_median"}
Q25 = {**OLD, "measured_at": "2026-12-06T18:02:37+00:00", "statistic": "q25"}


def _run(at: str, version, canon: dict, agreement: float) -> dict:
    """A run's log line as `drift.run_once` writes it (two configurations)."""
    return {"at": at, "profile": "p", "origin": "trained here", "canonical": canon, "version": version,
            "trained_on": "rf on data/p/space", "probe": {"speed_index": 1.1, "read_at": at, "warmup_s": 0.3},
            "many_model_ratio": 1.1 / (1 + agreement), "probe_agreement": agreement, "history_median_24h": 1.0,
            "configs": ["a|96|1", "b|96|1"], "measured": [1.0, 2.0], "predicted": {"canonical": [0.9, 1.9]},
            "metrics": {"canonical": {"rmspe": 10.0, "within10": 50.0, "n": 2},
                        "now": {"rmspe": 5.0, "within10": 100.0, "n": 2}}}


def test_the_report_keeps_each_predictor_and_each_scale_apart(tmp_path, monkeypatch):
    runs = [_run("2026-12-06T15:00:00+00:00", None, OLD, 0.03), _run("2026-12-07T00:25:00+00:00", 6, Q25, -0.07),
            _run("2026-12-07T01:10:00+00:00", 10, Q25, -0.04), _run("2026-12-07T01:16:00+00:00", 10, Q25, 0.02)]
    log = tmp_path / "drift_log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in runs))
    (tmp_path / "benchmarks").mkdir()
    monkeypatch.setattr(drift, "LOG", log)
    monkeypatch.setattr(drift, "REPO", tmp_path)
    text = drift.report()
    assert (tmp_path / "benchmarks" / "drift.md").read_text() == text
    sections = text.split("\n### ")[1:]
    assert len(sections) == 3  # the 2026-12-02 scale, then versions 6 and 10 on the q25 scale
    assert sections[0].startswith("p (canonical reference of 2026-12-02, read by round_min_median")
    assert "version 6" in sections[1] and "over the 1 runs" in sections[1]
    assert "version 10" in sections[2] and "over the 2 runs" in sections[2]
    assert "RMS 3.2%" in sections[2]  # the two runs' agreements (-4%, +2%) only: sqrt((16 + 4) / 2)


def test_a_predictor_of_older_rows_is_rescored_on_the_later_runs_of_its_scale_only():
    from nnenergy import speed

    runs = [_run("2026-12-06T15:00:00+00:00", 6, Q25, 0.0), _run("2026-12-06T23:59:00+00:00", 6, Q25, 0.0),
            _run("2026-12-07T00:25:00+00:00", 10, Q25, 0.0), _run("2026-12-07T09:00:00+00:00", 10, OLD, 0.0),
            _run("2026-12-07T10:00:00+00:00", 10, Q25, 0.0) | {"profile": "other"}]
    key = speed.canonical_key(Q25)
    assert [r["at"][:13] for r in drift.runs_to_rescore(runs, "p", key)] == ["2026-12-06T15", "2026-12-06T23",
                                                                             "2026-12-07T00"]
    assert [r["at"][:13] for r in drift.runs_to_rescore(runs, "p", key, "2026-12-07")] == ["2026-12-07T00"]
    assert drift.runs_to_rescore(runs, "p", key, "2026-12-07T01:00+01:00") == runs[2:3]  # a cut of 00:00 UTC
