"""The speed index split in two (`scale.Elasticity.slow_window_min`): its slow part (a median of the readings
over a window) one for one, the fast rest to the fitted exponent; on labels, measure-twice pairs, the fit and
predictions alike. Synthetic readings: a machine whose speed drifts slowly while single reference readings
are noisy (the EPYC Zen 4 of 2026-12-07)."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from nnenergy import dataset as ds
from nnenergy import scale, speed
from nnenergy.measure import datasheet, elasticity, remeasure

START = datetime(2026, 12, 7, 16, 0, tzinfo=timezone.utc)
CANON = {"energy_j": 0.05, "latency_s": 0.002, "measured_at": "2026-12-07T16:00:00+00:00", "profile": "p",
         "statistic": "q25"}
SPLIT = CANON | {"elasticity": {"energy": 0.0, "latency": 0.0, "slow_window_min": 30}}


def _speed(minutes: float) -> float:
    return 0.8 + 0.4 * minutes / 240  # the machine slows by half over four hours


def _rows(n: int = 240, noise: float = 0.10, seed: int = 0):
    """A row a minute for four hours: raw cost = true cost x the speed then; its index read with `noise`."""
    rng = random.Random(seed)
    t = [START + timedelta(minutes=i) for i in range(n)]
    cost = [rng.uniform(0.1, 10) for _ in range(n)]
    idx = [_speed(i) * math.exp(rng.gauss(0, noise)) for i in range(n)]
    raw = [c * _speed(i) * math.exp(rng.gauss(0, 0.01)) for i, c in enumerate(cost)]
    models = pd.DataFrame({"config_id": [f"c{i}" for i in range(n)], "measured_at": [w.isoformat() for w in t],
                           "energy_raw_j": raw, "speed_index": idx, "energy_j": [r / s for r, s in zip(raw, idx)],
                           "latency_raw_s": [r / 20 for r in raw], "latency_speed_index": idx,
                           "latency_s": [r / 20 / s for r, s in zip(raw, idx)]})
    return models, cost


def _rms(ratios) -> float:
    logs = [math.log(r) for r in ratios]
    mid = sorted(logs)[len(logs) // 2]
    return math.sqrt(sum((v - mid) ** 2 for v in logs) / len(logs))


def test_slow_parts_are_medians_over_the_window_that_grows_where_readings_are_few():
    t = [0, 60, 120, 180, 240, 3600]
    v = [1.0, 2.0, 4.0, 1.0, 1.0, 8.0]
    assert scale.slow_index(t, v, [120], 2.0)[0] == pytest.approx(1.0)  # median of the five within 2 min
    # one reading near 3600 s: the window doubled until it held all six, whose median is that of 1, 1, 1, 2, 4, 8
    assert scale.slow_index(t, v, [3600], 10.0)[0] == pytest.approx(math.sqrt(2))
    assert math.isnan(scale.slow_index(t, v, [3600], 1.0)[0])  # ... but never beyond 8 times its size
    assert math.isnan(scale.slow_index([], [], [0], 1.0)[0])


def test_labels_take_the_slow_part_one_for_one_and_ignore_a_noisy_reading():
    models, cost = _rows()
    split, _ = scale.relabel(models, None, SPLIT)
    plain, _ = scale.relabel(models, None, CANON)
    assert _rms(split["energy_j"] / cost) < 0.04  # the drift removed, the readings' noise not let in
    assert _rms(plain["energy_j"] / cost) > 0.07
    assert _rms(models["energy_raw_j"] / cost) > 0.07  # and the drift is real: raw labels would keep it
    again, _ = scale.relabel(split, None, SPLIT)  # applying it twice changes nothing
    pd.testing.assert_frame_equal(again, split)


def _pairs(models: pd.DataFrame, gap_min: float = 40, seed: int = 1) -> list[dict]:
    """Every fourth row measured again `gap_min` later (its index read with the rows' noise)."""
    rng = random.Random(seed)
    out = []
    for i in range(0, len(models) - int(gap_min), 4):
        r = models.iloc[i]
        j = i + gap_min
        cost = r["energy_raw_j"] / _speed(i)
        idx2 = _speed(j) * math.exp(rng.gauss(0, 0.10))
        raw2 = cost * _speed(j) * math.exp(rng.gauss(0, 0.01))
        out.append({"config_id": r["config_id"], "first_energy_raw_j": r["energy_raw_j"],
                    "first_speed_index": r["speed_index"], "first_energy_j": r["energy_j"],
                    "first_latency_raw_s": r["latency_raw_s"], "first_latency_speed_index": r["speed_index"],
                    "second_energy_raw_j": raw2, "second_speed_index": idx2, "second_energy_j": raw2 / idx2,
                    "second_latency_raw_s": raw2 / 20, "second_latency_speed_index": idx2,
                    "second_at": (START + timedelta(minutes=j)).isoformat(), "minutes_apart": gap_min})
    return out


def test_pairs_fit_and_judge_the_fast_part_with_the_slow_part_one_for_one():
    models, _ = _rows()
    pairs = _pairs(models)
    slowed = remeasure.with_slow_indices(pairs, models, 30)
    assert all("first_slow_index" in p and "second_latency_slow_index" in p for p in slowed)
    assert "first_slow_index" not in pairs[0]  # the pairs given are not changed
    split = remeasure.agreement(slowed, scale.elasticity(SPLIT))
    plain = remeasure.agreement(pairs, scale.elasticity(CANON))
    assert split["rms_pct"] < 4 < 8 < plain["rms_pct"]
    fitted = elasticity.fit_elasticity(slowed, slow=True)
    assert fitted["energy"] == pytest.approx(0.0, abs=0.1)  # the readings' fast part is noise here
    assert fitted["energy_heldout_rms_pct"] < fitted["energy_plain_rms_pct"]


def test_the_command_writes_the_window_that_labels_and_the_datasheet_then_use(tmp_path):
    models, cost = _rows()
    space = tmp_path / "p" / "space"
    ds.save(models, pd.DataFrame({"config_id": ["c0"], "ctx_energy_j": [1.0]}), space)
    (space / "canonical.json").write_text(json.dumps(CANON))
    (space / "remeasure.json").write_text(json.dumps(_pairs(models)))
    assert elasticity.main([str(space), "--slow-window", "0"]) == 2  # bad input: one line, nothing written
    assert "elasticity" not in json.loads((space / "canonical.json").read_text())
    assert elasticity.main([str(space), "--slow-window", "30", "--write"]) == 0
    entry = json.loads((space / "canonical.json").read_text())["elasticity"]
    assert entry["slow_window_min"] == 30 and entry["energy"] == pytest.approx(0.0, abs=0.1)
    assert not any("slow_index" in k for p in json.loads((space / "remeasure.json").read_text()) for k in p)
    assert _rms(ds.load(space).models["energy_j"] / cost) < 0.04
    assert datasheet.label_noise(space)["rms_pct"] < 4


def test_predictions_take_the_median_of_the_recent_readings_one_for_one(tmp_path, monkeypatch):
    monkeypatch.setenv("NNENERGY_CACHE", str(tmp_path / "cache"))
    now = datetime.now(timezone.utc)
    key = speed.canonical_key(SPLIT)
    for minutes, index in ((90, 2.0), (20, 1.0), (10, 1.1), (5, 1.2)):  # the one of 90 min ago is out of the window
        speed.record("p", {"speed_index": index, "latency_speed_index": index, "source": "probe", "canonical": key,
                           "read_at": (now - timedelta(minutes=minutes)).isoformat(timespec="seconds")})
    s = speed.resolve("p", "last", canon=SPLIT).with_elasticity(SPLIT)
    assert s.speed_index == 1.2 and s.energy_factor == pytest.approx(1.1)  # median of 1.0, 1.1, 1.2; fast part ^0
    assert s.as_dict()["slow_index"] == pytest.approx(1.1)
    alone = speed.Speed("p", 1.3, 1.3, now.isoformat(), "probe", None, 0.0).with_slow([], 30).with_elasticity(SPLIT)
    assert alone.energy_factor == pytest.approx(1.3)  # no other reading: the reading itself, one for one
    plain = speed.Speed("p", 1.3, 1.3, now.isoformat(), "probe", None, 0.0, slow=(1.1, 1.1))
    assert plain.energy_factor == pytest.approx(1.3)  # no window in the elasticity: slow parts play no part


def test_a_bad_window_is_an_error_not_a_hang():
    for bad in (-30, "nan"):
        with pytest.raises(ValueError, match="slow_window_min"):
            scale.elasticity(CANON | {"elasticity": {"energy": 0.1, "slow_window_min": bad}})
    with pytest.raises(ValueError, match="minutes > 0"):
        scale.slow_index([0], [1.0], [0], float("nan"))
