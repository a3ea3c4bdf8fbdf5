"""Calibration: per-group factors recovered from a panel, applied to a predictor's output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nnenergy.calibrate import Calibration, _fit_factors, group_of


def test_factors_of_a_known_per_group_slowdown_are_recovered():
    """A machine 2x slower on compute and 1.2x on memory-bound work: one global ratio cannot
    describe it, the per-group fit does (to within the shrinkage towards the median)."""
    rng = np.random.default_rng(0)
    groups = ["compute", "depthwise", "memory"]
    shares = rng.dirichlet([1, 1, 1], size=18)
    truth = np.array([2.0, 1.5, 1.2])
    predicted = rng.uniform(0.01, 1.0, size=18)
    measured = predicted * (shares @ truth)
    fitted = _fit_factors(measured, predicted, shares, groups)
    assert [fitted[g] for g in groups] == pytest.approx(truth, rel=0.2)  # shrunk a little towards the median
    after = predicted * (shares @ np.array([fitted[g] for g in groups]))
    global_ratio = predicted * np.median(measured / predicted)
    err = lambda p: np.sqrt(np.mean(((p - measured) / measured) ** 2))
    assert err(after) < err(global_ratio) / 2


def test_apply_rescales_layers_correction_and_total():
    out = pd.DataFrame({
        "config_id": ["m"] * 4, "row": ["layer", "layer", "correction", "total"],
        "kind": ["conv", "add", "", ""], "energy_j": [2.0, 1.0, 0.5, 3.5], "latency_s": [0.2, 0.1, 0.05, 0.35],
        "energy_lo_j": [np.nan, np.nan, np.nan, 3.0], "energy_hi_j": [np.nan, np.nan, np.nan, 4.0],
    })
    cal = Calibration("a", "b", 1.5, 0.5, {"compute": 2.0, "depthwise": 1.0, "memory": 1.0},
                      {"compute": 2.0, "depthwise": 1.0, "memory": 1.0}, 0, 0, 1.0, "now")
    got = cal.apply(out).set_index("row")
    assert got.loc["layer", "energy_j"].tolist() == [4.0, 1.0]
    ratio = 5.0 / 3.0  # layers went from 3 J to 5 J
    assert got.loc["correction", "energy_j"] == pytest.approx(0.5 * ratio)
    assert got.loc["total", "energy_j"] == pytest.approx(3.5 * ratio)
    assert got.loc["total", "energy_hi_j"] == pytest.approx(4.0 * ratio)
    assert group_of("depthwise_conv") == "depthwise" and group_of("pooling") == "memory"


def test_saved_calibration_round_trips(tmp_path):
    cal = Calibration("a", "b", 1.5, 0.5, {"compute": 2.0}, {"compute": 2.0}, 30.0, 5.0, 40.0, "now",
                      [{"name": "k", "measured_energy_j": 1.0, "predicted_energy_j": 0.5}])
    path = cal.save(tmp_path / "c.json")
    assert Calibration.load(path) == cal
    assert json.loads(path.read_text())["speed_ratio"] == 1.5


@pytest.mark.slow
def test_calibrate_command_end_to_end(trained_rf, tracking_uri, tmp_path, capsys):
    """Measures the real panel here (about 20 s) against the tiny predictor, then predicts with it."""
    from nnenergy import cli

    out = tmp_path / "cal.json"
    assert cli.main(["calibrate", "--tracking-uri", tracking_uri, "--out", str(out), "--rounds", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert d["speed_ratio"] > 0 and d["spread"] >= 0 and d["profile"] and d["seconds"] < 120
    assert set(d["energy_factors"]) == {"compute", "depthwise", "memory"}
    assert cli.main(["predict", "tiny_cnn", "--input-shape", "32,32,3", "--tracking-uri", tracking_uri,
                     "--calibration", str(out), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["calibration"]["to"] == d["profile"] and pred["energy_j"] > 0
