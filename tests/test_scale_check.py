"""Labels on one scale: a tiny profile written the way a sweep writes it, by the real protocol on a
deterministic clock (the machine's speed is set per session; nothing is measured)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import FakeMeter

from nnenergy.measure import scale_check as sc
from nnenergy.measure.protocol import InterleavedMeasurer, ProtocolSettings

CANONICAL = {"energy_j": 20.0 * 0.02, "latency_s": 0.02, "reference": ["reference_cnn", 64, 4],
             "measured_at": "2026-12-01T10:00:00+00:00", "profile": "p", "statistic": "round_min_median"}
COSTS = {"x|64|1": 0.01, "y|64|2": 0.05, "z|96|1": 0.03}


def _dataset(root, name, clock, speed, when, canonical, jitter=None):
    """One block measured at `speed`, normalised against `canonical`, saved as a sweep saves it."""
    clock.speed = speed

    def call(cost):
        def fn():
            clock.clock += cost * clock.speed
        return fn

    settings = ProtocolSettings(rounds=3, windows=2, min_seconds=0.0, min_passes=1, warmup=0)
    costs = {k: c * (jitter or {}).get(k, 1.0) for k, c in COSTS.items()}
    results, ref = InterleavedMeasurer(clock, settings, call(0.02), canonical, seed=1).run(
        {k: call(c) for k, c in costs.items()})
    block = f"{when}.000+00:00"
    rows = [{"config_id": k, **{c: v for c, v in r.as_row().items() if c != "window_energies_j"},
             "window_energies_j": json.dumps(r.window_energies_j), "protocol": json.dumps(settings.__dict__),
             "block": block, "measured_at": f"{when}+00:00"} for k, r in results.items()]
    folder = root / name
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "models.parquet")
    per_round = ref.per_round("energy_j", "min")
    (folder / "blocks.json").write_text(json.dumps([{
        "block": block, "configs": len(rows), "reference_energy_j": per_round,
        "reference_latency_s": ref.per_round("latency_s", "min"),
        "speed_index": [v / canonical["energy_j"] for v in per_round]}]))
    (folder / "sessions.json").write_text(json.dumps([{"session": f"{when}+00:00", "wall_time_s": 1.0}]))


@pytest.fixture
def profile(tmp_path, monkeypatch):
    clock = FakeMeter()
    monkeypatch.setattr("nnenergy.measure.protocol.time.perf_counter", lambda: clock.clock)
    monkeypatch.setattr("nnenergy.measure.protocol.contention.snapshot", lambda: None)
    root = tmp_path / "p"
    root.mkdir()
    (root / "reference.json").write_text(json.dumps(CANONICAL))
    _dataset(root, "a", clock, 1.0, "2026-12-01T10:00:00", CANONICAL)
    # A day later the VM runs 1.3x slower, and one configuration moved by 10% on its own.
    _dataset(root, "b", clock, 1.3, "2026-12-02T10:00:00", CANONICAL, jitter={"z|96|1": 1.1})
    # Normalised against another canonical reference (a stale one, 1.25x the profile's).
    stale = {**CANONICAL, "energy_j": 1.25 * CANONICAL["energy_j"], "latency_s": 1.25 * CANONICAL["latency_s"]}
    _dataset(root, "c", clock, 1.3, "2026-12-03T10:00:00", stale)
    # The first protocol: no reference alongside, so no speed index and label = raw.
    old = root / "old"
    old.mkdir()
    pd.DataFrame([{"config_id": k, "energy_j": 20 * c * 1.2, "energy_raw_j": 20 * c * 1.2, "latency_s": c * 1.2,
                   "latency_raw_s": c * 1.2, "speed_index": np.nan, "latency_speed_index": np.nan,
                   "measured_at": "2026-11-20T10:00:00+00:00"} for k, c in COSTS.items()]
                 ).to_parquet(old / "models.parquet")
    return root


def test_each_dataset_is_checked_against_the_profile_reference(profile):
    checks = sc.dataset_checks(profile).set_index("dataset")
    for ok in ("a", "b"):
        assert checks.loc[ok, "canonical_ratio"] == pytest.approx(1.0)
        assert checks.loc[ok, "labels_off"] == 0 and checks.loc[ok, "rows_recomputed"] == 3
        assert checks.loc[ok, "latency_index_outside_block"] == 0
    assert checks.loc["c", "canonical_ratio"] == pytest.approx(1.25)
    assert checks.loc["c", "labels_off"] == 3 and checks.loc["c", "label_max_error"] == pytest.approx(0.2)  # 1/1.25
    assert checks.loc["c", "latency_index_outside_block"] == 3
    assert checks.loc["old", "rows_without_speed_index"] == 3
    assert checks.loc["old", "statistic"] == "none (first protocol)"
    assert checks.loc["a", "statistic"] == "round_min_median" and checks.loc["a", "same_statistic_as_reference"]


def test_repeats_across_sessions_before_and_after_one_factor(profile):
    pairs = sc.repeat_pairs(sc.profile_rows(sc.load_profile(profile))).set_index(["earlier", "later"])
    ab = pairs.loc[("a", "b")]
    assert ab["configs"] == 3 and ab["normalised_both"]
    # Raw labels carry the 1.3x slowdown; normalised ones only the one configuration's own 10%.
    assert ab["energy_raw_factor"] == pytest.approx(1.3 * 1.1 ** (1 / 3))
    assert ab["energy_raw_rms"] > 0.3 > ab["energy_raw_rms_after"]
    assert ab["energy_norm_factor"] == pytest.approx(1.1 ** (1 / 3))
    assert ab["energy_norm_rms"] < 0.07 and ab["energy_norm_rms_after"] == pytest.approx(ab["energy_raw_rms_after"])
    ac = pairs.loc[("a", "c")]
    assert ac["energy_norm_factor"] == pytest.approx(1.25) and ac["energy_norm_rms_after"] == pytest.approx(0, abs=1e-9)
    assert ac["latency_norm_factor"] == pytest.approx(1.25)
    old = pairs.loc[("old", "a")]
    assert not old["normalised_both"] and old["energy_norm_factor"] == pytest.approx(1 / 1.2)


def test_scale_report_names_what_disagrees(profile):
    (rep,) = sc.scale_report(profile).to_dict("records")
    assert rep["profile"] == "p" and rep["datasets"] == 4 and rep["rows"] == 12
    assert rep["datasets_off_reference"] == "c" and rep["labels_off"] == 3
    assert rep["datasets_without_speed_index"] == "old" and rep["rows_without_speed_index"] == 3
    assert rep["pairs"] == 6 and rep["repeated_configs"] == 18
    assert rep["energy_raw_factor_max"] == pytest.approx(1.3 * 1.1 ** (1 / 3))  # a -> b, the slowdown
    assert rep["energy_norm_rms_after"] < rep["energy_norm_rms"]
    assert rep["round_noise"] == pytest.approx(0.0, abs=1e-9)  # a deterministic clock: rounds agree exactly
