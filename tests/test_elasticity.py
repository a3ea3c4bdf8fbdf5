"""The speed elasticity (`nnenergy.scale`, `nnenergy.speed`, `measure.elasticity`): exponents per
canonical reference (one, or one changing with a network's latency), fitted on measure-twice pairs,
applied on both sides (labels when a dataset is loaded, predictions when they are scaled)."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest

from nnenergy import dataset as ds
from nnenergy import scale, speed
from nnenergy.measure import elasticity, remeasure

CANON = {"energy_j": 0.05, "latency_s": 0.002, "measured_at": "2026-12-06T18:02:37+00:00", "profile": "p",
         "statistic": "q25"}
ELASTIC = CANON | {"elasticity": {"energy": 0.5, "latency": 0.75}}


def _tables():
    """Two configurations measured at speed indices 1.21 and 0.81, labels normalised one for one."""
    raw, idx = [1.21, 0.81], [1.21, 0.81]
    models = pd.DataFrame({"config_id": ["a", "b"], "energy_raw_j": raw, "speed_index": idx,
                           "energy_j": [r / s for r, s in zip(raw, idx)], "latency_raw_s": [0.121, 0.081],
                           "latency_speed_index": idx, "latency_s": [0.1, 0.1]})
    layers = pd.DataFrame({"config_id": ["a", "a", "b"], "ctx_energy_j": [0.25, 0.75, 1.0],
                           "ctx_latency_s": [0.025, 0.075, 0.1]})
    return models, layers


def test_labels_are_normalised_by_the_speed_index_to_the_canonical_elasticity():
    models, layers = _tables()
    m, lay = scale.relabel(models, layers, ELASTIC)
    assert m["energy_j"].tolist() == pytest.approx([1.21 / 1.1, 0.81 / 0.9])  # raw / index ** 0.5
    assert m["latency_s"].tolist() == pytest.approx([0.121 / 1.21 ** 0.75, 0.081 / 0.81 ** 0.75])
    # the in-context layer targets keep their shares of the new label
    assert lay["ctx_energy_j"].tolist() == pytest.approx([0.25 * 1.1, 0.75 * 1.1, 0.9])
    assert lay["ctx_energy_j"].groupby(lay["config_id"]).sum().tolist() == pytest.approx(m["energy_j"].tolist())
    again, lay2 = scale.relabel(m, lay, ELASTIC)  # applying it twice changes nothing
    pd.testing.assert_frame_equal(again, m)
    pd.testing.assert_frame_equal(lay2, lay)
    plain, _ = scale.relabel(models, layers, CANON)  # no elasticity: the stored labels
    pd.testing.assert_frame_equal(plain, models)


def test_a_dataset_loads_with_its_canonicals_elasticity_and_stored_rows_are_untouched(tmp_path):
    models, layers = _tables()
    ds.save(models, layers, tmp_path)
    (tmp_path / "canonical.json").write_text(json.dumps(ELASTIC))
    assert ds.load(tmp_path).models["energy_j"].tolist() == pytest.approx([1.1, 0.9])
    assert ds.load(tmp_path, stored=True).models["energy_j"].tolist() == pytest.approx([1.0, 1.0])


def test_predictions_move_by_the_speed_index_to_the_same_power():
    frame = pd.DataFrame({"energy_j": [1.0], "energy_lo_j": [0.8], "energy_hi_j": [1.25], "latency_s": [0.1]})
    s = speed.Speed("p", 1.44, 1.44, "2026-12-07T03:00:00+00:00", "probe", CANON["measured_at"], 0.0)
    assert speed.apply(frame, s)["energy_j"].item() == pytest.approx(1.44)  # the plain definition
    s = s.with_elasticity(ELASTIC)
    out = speed.apply(frame, s)
    assert out["energy_j"].item() == pytest.approx(1.2)
    assert out["energy_hi_j"].item() == pytest.approx(1.5)
    assert out["latency_s"].item() == pytest.approx(0.1 * 1.44 ** 0.75)
    stated = s.as_dict()
    assert (stated["speed_index"], stated["energy_factor"]) == pytest.approx((1.44, 1.2))
    # a reading handed in by a caller is applied with the predictor's own elasticity
    given, _ = speed.for_predictor({"hardware": {"profile": "p"}, "canonical_reference": ELASTIC},
                                   speed.Speed("p", 1.44, 1.44, None, "probe", None, 0.0))
    assert given.energy_factor == pytest.approx(1.2)


def _pairs(beta: float, n: int = 120, noise: float = 0.01, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s1, s2, cost = rng.uniform(0.9, 1.3), rng.uniform(0.9, 1.3), rng.uniform(0.1, 10)
        e1 = cost * s1 ** beta * math.exp(rng.gauss(0, noise))
        e2 = cost * s2 ** beta * math.exp(rng.gauss(0, noise))
        out.append({"config_id": f"c{i}", "first_energy_raw_j": e1, "first_speed_index": s1, "second_energy_raw_j": e2,
                    "second_speed_index": s2, "first_latency_raw_s": e1 / 20, "first_latency_speed_index": s1,
                    "second_latency_raw_s": e2 / 20, "second_latency_speed_index": s2,
                    "first_energy_j": e1 / s1, "second_energy_j": e2 / s2, "minutes_apart": 30.0})
    return out


def _first_rows(pairs: list[dict]) -> pd.DataFrame:
    """A dataset's rows: each pair's first label with its raw figures."""
    return pd.DataFrame({"config_id": [p["config_id"] for p in pairs],
                         "energy_raw_j": [p["first_energy_raw_j"] for p in pairs],
                         "speed_index": [p["first_speed_index"] for p in pairs],
                         "energy_j": [p["first_energy_j"] for p in pairs],
                         "latency_raw_s": [p["first_latency_raw_s"] for p in pairs],
                         "latency_speed_index": [p["first_speed_index"] for p in pairs],
                         "latency_s": [p["first_latency_raw_s"] / p["first_speed_index"] for p in pairs]})


def test_the_fit_recovers_a_known_exponent_and_judges_it_on_the_other_half():
    fitted = elasticity.fit_elasticity(_pairs(0.7))
    assert fitted["pairs"] == 120
    assert fitted["energy"] == pytest.approx(0.7, abs=3 * fitted["energy_se"] + 0.01)
    assert fitted["energy_heldout_rms_pct"] < fitted["energy_plain_rms_pct"]
    assert elasticity.fit_elasticity(_pairs(0.7, n=5))["pairs"] == 5  # too few: no exponent
    assert "energy" not in elasticity.fit_elasticity(_pairs(0.7, n=5))


def test_the_noise_figure_uses_the_raw_figures_under_the_elasticity():
    pairs = _pairs(0.6, noise=0.0)
    plain, elastic = remeasure.agreement(pairs), remeasure.agreement(pairs, 0.6)
    assert plain["rms_pct"] > 5  # the speed index applied one for one leaves the speed in the labels
    assert elastic["rms_pct"] == pytest.approx(0.0, abs=1e-9)
    old = [{k: v for k, v in p.items() if "raw" not in k and "index" not in k} for p in pairs]
    assert remeasure.agreement(old, 0.6)["rms_pct"] == pytest.approx(plain["rms_pct"])  # old pairs: stored labels


def test_the_command_writes_the_fit_into_every_file_of_the_same_canonical(tmp_path, capsys):
    profile = tmp_path / "p"
    space, other, ext = profile / "space", profile / "space_1visit", profile / "external"
    pairs = _pairs(0.7)
    rows = _first_rows(pairs)
    for folder, canon in ((space, CANON), (ext, CANON), (other, CANON | {"measured_at": "2026-12-02T00:00:00+00:00"})):
        ds.save(rows, pd.DataFrame({"config_id": ["c0"], "ctx_energy_j": [1.0]}), folder)
        (folder / "canonical.json").write_text(json.dumps(canon))
    (profile / "reference-q25.json").write_text(json.dumps(CANON))
    # the stored pairs lack the second's raw figures: they come from the sweep's visits
    failed = {"config_id": "gone", "error": "ValueError: rebuilt differently"}  # never retried: kept
    (space / "remeasure.json").write_text(json.dumps([failed] + [{k: v for k, v in p.items() if not k.startswith(
        "second_") or k == "second_energy_j"} for p in pairs]))
    (space / "progress").mkdir()
    (space / "progress" / "visits.jsonl").write_text("".join(json.dumps(
        {"purpose": "again", "config_id": p["config_id"], "result": {
            "energy_j": p["second_energy_j"], **{k: p[f"second_{k}"] for k in remeasure.RAW_KEYS}}}) + "\n"
        for p in pairs))
    assert elasticity.main([str(space), "--write"]) == 0
    written = json.loads((ext / "canonical.json").read_text())["elasticity"]
    assert written["energy"] == pytest.approx(0.7, abs=0.05) and written["pairs"] == 120
    assert "elasticity" in json.loads((profile / "reference-q25.json").read_text())
    assert "elasticity" not in json.loads((other / "canonical.json").read_text())  # another canonical
    stored = json.loads((space / "remeasure.json").read_text())
    assert stored[0] == failed and all("second_speed_index" in p for p in stored[1:])
    assert elasticity.main([str(tmp_path / "nowhere")]) == 2
    assert "no dataset" in capsys.readouterr().err
    # a chosen exponent replaces the fit, which stays beside it with the pairs judged under both
    assert elasticity.main([str(space), "--write", "--exponent", "0.5"]) == 0
    canon = json.loads((profile / "reference-q25.json").read_text())
    chosen = canon["elasticity"]
    assert (chosen["energy"], chosen["latency"], chosen["chosen"]) == (0.5, 0.5, True)
    assert chosen["one_exponent"]["energy"] == pytest.approx(0.7, abs=0.05)
    assert chosen["one_exponent"]["energy_chosen_rms_pct"] > chosen["one_exponent"]["energy_heldout_rms_pct"]
    el = scale.elasticity(canon)  # the chosen exponent at the pivot; a size slope the fit found is kept
    assert el.energy_at(el.pivot_ms / 1e3) == 0.5 and el.latency_at(el.pivot_ms / 1e3) == 0.5
    assert el.energy_per_decade == (chosen.get("size") or {}).get("energy_per_decade", 0.0)
    for bad in (["--exponent", "0"], ["--exponent", "0.5", "--slow-window", "60"]):
        assert elasticity.main([str(space), *bad]) == 2
    assert "--exponent must be" in capsys.readouterr().err


SIZED = CANON | {"elasticity": {"energy": 0.7, "latency": 0.7, "size": {
    "energy_per_decade": -0.3, "latency_per_decade": -0.2, "pivot_ms": 30.0, "range_ms": [2.0, 3000.0]}}}


def test_a_size_dependent_exponent_is_read_at_each_configurations_latency_and_held_beyond_its_range():
    el = scale.elasticity(SIZED)
    assert el.energy_at(0.030) == pytest.approx(0.7)
    assert el.energy_at(0.300) == pytest.approx(0.4) and el.latency_at(0.300) == pytest.approx(0.5)
    assert el.energy_at(0.003) == pytest.approx(1.0)
    assert el.energy_at(0.0001) == pytest.approx(0.7 + 0.3 * math.log10(15))  # held at the 2 ms it was fitted down to
    # a configuration with no latency gets the exponent at the pivot, never NaN
    assert el.energy_at(float("nan")) == pytest.approx(0.7) and el.energy_at(0.0) == pytest.approx(0.7)
    assert list(el.energy_at([float("nan"), 0.3])) == pytest.approx([0.7, 0.4])
    assert list(el.energy_at([0.003, 3.0, 30.0])) == pytest.approx([1.0, 0.1, 0.1])  # held at 3000 ms
    models = pd.DataFrame({"config_id": ["small", "large"], "energy_raw_j": [1.21, 1.21], "speed_index": [1.21, 1.21],
                           "energy_j": [1.0, 1.0], "latency_raw_s": [0.00363, 0.363],
                           "latency_speed_index": [1.21, 1.21], "latency_s": [0.003, 0.3]})
    m, _ = scale.relabel(models, None, SIZED)
    assert m["energy_j"].tolist() == pytest.approx([1.21 / 1.21 ** 1.0, 1.21 / 1.21 ** 0.4])
    assert m["latency_s"].tolist() == pytest.approx([0.00363 / 1.21 ** 0.9, 0.363 / 1.21 ** 0.5])
    again, _ = scale.relabel(m, None, SIZED)  # the exponent is read at the stored latency: twice is once
    pd.testing.assert_frame_equal(again, m)


def test_predictions_of_small_and_large_networks_move_by_their_own_exponents():
    frame = pd.DataFrame({"config_id": ["s", "s", "l", "l"], "row": ["layer", "total", "layer", "total"],
                          "energy_j": [0.5, 1.0, 5.0, 10.0], "latency_s": [0.0015, 0.003, 0.15, 0.3]})
    s = speed.Speed("p", 1.44, 1.44, "2026-12-07T03:00:00+00:00", "probe", CANON["measured_at"], 0.0)
    out = speed.apply(frame, s.with_elasticity(SIZED))
    # every row of a configuration gets its total's factor: the layers still add up to the total
    assert out["energy_j"].tolist() == pytest.approx([0.5 * 1.44, 1.44, 5.0 * 1.44 ** 0.4, 10.0 * 1.44 ** 0.4])
    assert out["latency_s"].tolist()[3] == pytest.approx(0.3 * 1.44 ** 0.5)
    stated = s.with_elasticity(SIZED).as_dict(0.3)
    assert (stated["elasticity"], stated["energy_factor"]) == pytest.approx((0.4, 1.44 ** 0.4))
    assert stated["elasticity_per_decade"] == [-0.3, -0.2]
    assert "elasticity_per_decade" not in s.with_elasticity(ELASTIC).as_dict(0.3)  # no size term: one exponent


def _sized_pairs(per_decade: float, n: int = 300, seed: int = 1) -> list[dict]:
    """Pairs whose exponent is 0.7 at 30 ms and changes by `per_decade` per tenfold latency (3-3000 ms)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s1, s2, ms = rng.uniform(0.9, 1.3), rng.uniform(0.9, 1.3), 10 ** rng.uniform(0.5, 3.5)
        beta = 0.7 + per_decade * math.log10(ms / 30)
        e1, e2 = (ms / 20 * s ** beta * math.exp(rng.gauss(0, 0.01)) for s in (s1, s2))
        out.append({"config_id": f"c{i}", "first_energy_raw_j": e1, "first_speed_index": s1, "second_energy_raw_j": e2,
                    "second_speed_index": s2, "first_latency_raw_s": ms / 1e3 * s1 ** beta,
                    "first_latency_speed_index": s1, "second_latency_raw_s": ms / 1e3 * s2 ** beta,
                    "second_latency_speed_index": s2, "first_energy_j": e1 / s1, "second_energy_j": e2 / s2})
    return out


def test_the_fit_keeps_a_size_term_only_where_it_wins_on_held_out_pairs():
    fitted = elasticity.fit_elasticity(_sized_pairs(-0.3))
    size = fitted["size"]
    assert size["energy_per_decade"] == pytest.approx(-0.3, abs=3 * size["energy_per_decade_se"] + 0.01)
    assert size["energy_at_pivot"] == pytest.approx(0.7, abs=0.05)
    assert size["energy_heldout_rms_pct"] < fitted["energy_heldout_rms_pct"]
    assert 2.5 <= size["range_ms"][0] < 4 and 2500 < size["range_ms"][1] <= 3600  # the pairs' latencies
    flat = elasticity.fit_elasticity(_sized_pairs(0.0)).get("size")
    # where it is kept by chance it is near zero; a latency term never comes without the energy one
    assert flat is None or abs(flat["energy_per_decade"]) < 3 * flat["energy_per_decade_se"] + 0.01
    # what `--write` stores, `scale.elasticity` reads back
    entry = {"energy": size["energy_at_pivot"], "latency": size["latency_at_pivot"], "size": size}
    el = scale.elasticity(CANON | {"elasticity": entry})
    assert el.energy_at(0.3) == pytest.approx(size["energy_at_pivot"] + size["energy_per_decade"], abs=1e-9)
    # the noise figure judges the pairs under the size-dependent exponent
    pairs = _sized_pairs(-0.3)
    assert remeasure.agreement(pairs, el)["rms_pct"] < remeasure.agreement(pairs, 0.7)["rms_pct"]


def test_the_command_writes_a_size_term_that_labels_are_then_normalised_with(tmp_path):
    profile = tmp_path / "p"
    space = profile / "space"
    pairs = _sized_pairs(-0.3)
    rows = _first_rows(pairs)
    ds.save(rows, pd.DataFrame({"config_id": ["c0"], "ctx_energy_j": [1.0]}), space)
    (space / "canonical.json").write_text(json.dumps(CANON))
    (space / "remeasure.json").write_text(json.dumps(pairs))
    assert elasticity.main([str(space), "--write"]) == 0
    entry = json.loads((space / "canonical.json").read_text())["elasticity"]
    assert entry["energy"] == pytest.approx(0.7, abs=0.05)  # at the pivot
    assert entry["size"]["energy_per_decade"] == pytest.approx(-0.3, abs=0.05)
    assert "energy_se" in entry["one_exponent"]  # the single exponent's figures, kept apart
    loaded = ds.load(space).models.set_index("config_id")
    first = pairs[0]
    beta = scale.elasticity(json.loads((space / "canonical.json").read_text())).energy_at(
        first["first_latency_raw_s"] / first["first_speed_index"])
    label = first["first_energy_raw_j"] / first["first_speed_index"] ** beta
    assert loaded.at["c0", "energy_j"] == pytest.approx(label)
