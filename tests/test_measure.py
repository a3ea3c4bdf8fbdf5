"""Measurement: signatures, layer isolation, the meter, resumable sweeps, MLflow logging."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from nnenergy import describe as desc
from nnenergy import zoo
from nnenergy.measure import layers
from nnenergy.measure.hardware import current_profile_name
from nnenergy.measure.meter import EnergyMeter, MeasurementError, MeterSettings, WindowReading, check_reading

FAST = MeterSettings(warmup=1, min_seconds=0.005, min_passes=2, min_windows=2, max_windows=2, tolerance=1.0)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def meter():
    return EnergyMeter()


def test_signature_ignores_name_but_not_shape_batch_or_hardware():
    a = zoo.build("tiny_cnn", 32).model
    b = zoo.build("tiny_cnn", 32).model
    c = zoo.build("tiny_cnn", 48).model
    ia, ib, ic = (desc.describe(m) for m in (a, b, c))
    conv_a, conv_b, conv_c = (next(i for i in infos if i.name == "conv1") for infos in (ia, ib, ic))
    renamed = desc.LayerInfo(**{**conv_a.__dict__, "name": "other", "config": {**conv_a.config, "name": "other"}})
    assert conv_a.signature(2, "hw") == conv_b.signature(2, "hw") == renamed.signature(2, "hw")
    assert conv_a.signature(2, "hw") != conv_c.signature(2, "hw")  # input shape
    assert conv_a.signature(2, "hw") != conv_a.signature(4, "hw")  # batch
    assert conv_a.signature(2, "hw") != conv_a.signature(2, "other-hw")
    # within one model, distinct layers of one kind with different configs differ
    assert len({i.signature(1, "hw") for i in ia}) == len(ia)


def test_meter_measures_a_tiny_model(meter):
    import tensorflow as tf

    model = zoo.build("tiny_cnn", 32).model
    x = tf.random.uniform((2, 32, 32, 3))
    fn = tf.function(lambda t: model(t, training=False))
    m = meter.measure(lambda: fn(x),
                      MeterSettings(warmup=2, min_seconds=0.02, min_passes=3, min_windows=2, max_windows=3))
    assert m.energy_j > 0 and m.latency_s > 0 and m.power_w > 0
    assert math.isclose(m.energy_j, m.cpu_j + m.ram_j + m.gpu_j, rel_tol=1e-6)
    assert m.passes >= 6 and 2 <= m.windows <= 3 and m.windows == len(m.window_energies_j)
    assert math.isfinite(m.spread) and m.spread == pytest.approx(
        (max(m.window_energies_j) - min(m.window_energies_j)) / statistics.median(m.window_energies_j))


@pytest.mark.parametrize("energy", [0.0, -1.0, float("nan"), float("inf")])
def test_failed_readings_are_rejected(energy):
    with pytest.raises(MeasurementError):
        check_reading(WindowReading(energy_j=energy, cpu_j=0, ram_j=0, gpu_j=0, duration_s=0.1))


def test_provenance_is_complete(meter):
    from nnenergy.measure import backends
    from nnenergy.measure.provenance import hardware_provenance

    prov = hardware_provenance(meter.tracker, backends.current())
    for key in ("hardware_id", "cpu_model", "cpu_cores", "cpu_measurement", "ram_measurement", "gpu_measurement",
                "codecarbon_version", "tensorflow_version", "keras_version", "backend", "backend_version", "device",
                "profile"):
        assert prov[key] not in (None, "")
    assert prov["cpu_measurement"] in {"rapl", "cpu_load_estimate", "constant_tdp_estimate", "intel_power_gadget",
                                       "windows_emi", "powermetrics"}
    assert prov["gpu_measurement"] in {"nvml", "none"}
    # TensorFlow on a CPU: the CPU's own profile (the shipped datasets' names), and the id starts with it
    assert (prov["backend"], prov["device"], prov["profile"]) == ("tensorflow", "cpu", current_profile_name())
    assert prov["hardware_id"].startswith(prov["profile"] + "-")


def test_a_gpu_window_without_nvml_energy_is_an_error():
    reading = WindowReading(energy_j=0.5, cpu_j=0.4, ram_j=0.1, gpu_j=0.0, duration_s=0.6)
    check_reading(reading)  # fine on a CPU
    with pytest.raises(MeasurementError, match="GPU energy reading"):
        check_reading(reading, require_gpu=True)


# The fewest applications that together contain every layer type of the shipped dataset's
# keras.applications rows (a greedy set cover; the test below fails if a type goes missing), small sizes.
# InceptionResNetV2 adds one type of its own, its `CustomScaleLayer`: that layer is taken from a small model
# built the way the application builds it (the whole application, ~800 layers, costs seconds to build).
_COVERAGE = {"EfficientNetB0": 32, "NASNetMobile": 32, "MobileNetV3Small": 32, "ConvNeXtTiny": 32}


def _custom_scale_model():
    """`x + scale * residual`, as InceptionResNetV2's blocks compute it with its `CustomScaleLayer`."""
    import keras
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    x = keras.Input((9, 9, 16))
    up = keras.layers.Conv2D(16, 1)(x)
    return keras.Model(x, CustomScaleLayer(0.17)([x, up]))


@pytest.fixture(scope="module")
def application_layers():
    found = {}
    for model in [*(zoo.build(name, size).model for name, size in _COVERAGE.items()), _custom_scale_model()]:
        leaves = desc.leaf_layers(model)  # ConvNeXt nests Sequential blocks: described flattened
        for info in desc.describe(model):
            found.setdefault(info.type, (leaves[info.name], info))
    assert "CustomScaleLayer" in found
    return found


def test_every_application_layer_type_is_isolated_and_measured(meter, application_layers):
    shipped = REPO / "data" / "amd-epyc-f25m17-avx512-2c" / "space" / "layers.parquet"
    if shipped.exists():
        rows = pd.read_parquet(shipped, columns=["layer_type", "source"])
        types = set(rows.loc[rows["source"] == "keras.applications", "layer_type"])
        assert types <= set(application_layers), f"not covered: {types - set(application_layers)}"
    multi = [t for t, (_, info) in application_layers.items() if len(info.input_shapes) > 1]
    assert {"Add", "Multiply", "Concatenate"} <= set(multi)
    for t, (layer, info) in application_layers.items():
        m = meter.measure(layers.isolated_callable(layer, info, batch_size=1), FAST)
        assert m.energy_j > 0 and m.latency_s > 0, t


def test_analytic_flops_of_known_layers():
    model = zoo.build("tiny_cnn", 32).model
    info = {i.name: i for i in desc.describe(model)}
    conv = desc.analytic_cost(info["conv1"], 2)  # 3x3x3 -> 8 filters, 16x16 out
    assert conv["flops"] == 2 * (2 * 16 * 16 * 8) * 3 * 3 * 3
    dense = desc.analytic_cost(info["head"], 1)
    assert dense["flops"] == 2 * info["head"].input_shapes[0][0] * 10
    assert conv["params"] == 3 * 3 * 3 * 8 + 8


def test_tiny_sweep_end_to_end_logs_to_mlflow(tiny_sweep, tracking_uri):
    cfg, result = tiny_sweep
    assert len(result.models) == 4 * 2 and not result.skipped
    m, lay = result.models, result.layers
    power = m["energy_j"] / m["latency_s"]  # watts: a unit error (kWh, mJ, per sample) lands far outside
    assert power.between(1, 5000).all() and (m["additivity"] > 0).all(), power.tolist()
    assert (lay["iso_energy_j"] > 0).all() and lay["iso_error"].isna().all()
    for col in ("hardware_id", "cpu_measurement", "gpu_measurement", "codecarbon_version", "measured_at"):
        assert m[col].notna().all() and lay[col].notna().all()
    # in-context shares add up to the attributed part of the whole model
    shares = lay.groupby("config_id")["ctx_share"].sum()
    assert ((shares > 0.5) & (shares <= 1.0 + 1e-9)).all()
    # the dataset files
    assert (result.output_dir / "models.parquet").exists() and (result.output_dir / "layers.parquet").exists()
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=["nnenergy-measure"], output_format="list")
    # this sweep's run: another test logs a `tiny` sweep of its own into the same session store
    run = next((r for r in runs if r.info.run_name == "measure-tiny"
                and r.data.params.get("sweep.output_dir") == str(cfg.sweep.output_dir)), None)
    assert run is not None, [(r.info.run_name, r.data.params.get("sweep.output_dir")) for r in runs]
    assert run.data.tags["hw.cpu_measurement"] == m["cpu_measurement"].iloc[0]
    assert run.data.metrics["configs_measured"] == 8
    assert "additivity_median" in run.data.metrics
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "dataset")}
    assert {"dataset/models.parquet", "dataset/layers.parquet"} <= arts
    assert run.inputs.dataset_inputs, "mlflow.log_input was not called"


def test_a_users_model_file_is_measured_beside_application_names(tmp_path):
    from nnenergy.measure.sweep import Sweep
    from nnenergy.measure.sweep_spec import SweepInputError, SweepSpec

    path = tmp_path / "mine.keras"
    zoo.build("tiny_mlp", 24).model.save(path)
    cfg = {"name": "files", "architectures": [], "model_files": [str(path)], "batch_sizes": [1], "input_sizes": [],
           "output_dir": str(tmp_path / "p" / "out"), "cache_dir": str(tmp_path / "c"),
           "layer": FAST.__dict__, "protocol": {"rounds": 1, "windows": 1, "min_seconds": 0.01, "warmup": 1}}
    with pytest.raises(SweepInputError, match="not found"):  # refused before anything is measured
        SweepSpec.from_config(cfg | {"model_files": [str(path), str(tmp_path / "missing.keras")]})
    result = Sweep(SweepSpec.from_config(cfg)).run()
    assert list(result.models["architecture"]) == ["mine"] and result.models["input_size"].iloc[0] == 24
    assert result.models["source"].iloc[0] == "file" and not result.skipped


def test_ops_map_to_their_layer_flat_and_nested():
    from nnenergy.measure.incontext import layer_of

    names = {"conv1", "bn1", "backbone/block_1_conv", "backbone/stem"}
    assert layer_of("model_1/conv1_1/Conv2D:Conv2D", names) == "conv1"
    assert layer_of("conv1/BiasAdd", names) == "conv1"
    assert layer_of("model_1/bn1_2/batchnorm/mul:Mul", names) == "bn1"
    # a nested model's layer: its scope path joined, Keras' `_<n>` suffixes stripped
    assert layer_of("outer_1/backbone_1/block_1_conv_1/Conv2D:Conv2D", names) == "backbone/block_1_conv"
    assert layer_of("outer_1/backbone_1/stem/Relu:Relu", names) == "backbone/stem"
    assert layer_of("outer_1/ReadVariableOp:ReadVariableOp", names) is None


def test_untraced_time_of_grouped_convolutions_goes_back_to_them():
    """TF runs Conv2D(groups > 1) outside its profiler's op events: the wall time the trace misses
    goes to the grouped convolutions (by FLOPs); models without one keep their traced shares."""
    from nnenergy.measure.incontext import grouped_conv_mask, restore_untraced

    grouped, plain = json.dumps({"groups": 32, "filters": 64}), json.dumps({"groups": 1, "filters": 64})
    layers = pd.DataFrame({
        "config_id": ["g"] * 3 + ["p"] * 2,
        "layer_type": ["Conv2D", "Conv2D", "ReLU", "Conv2D", "ReLU"],
        "layer_config": [grouped, plain, "{}", plain, "{}"],
        "flops": [1e6, 4e6, 0.0, 4e6, 0.0],
        "ctx_op_time_s": [0.001, 0.006, 0.001, 0.006, 0.002],
    })
    models = pd.DataFrame({"config_id": ["g", "p"], "ctx_op_time_s": [0.008, 0.008],
                           "latency_raw_s": [0.020, 0.010], "latency_s": [0.022, 0.011], "energy_j": [2.2, 1.1]})
    assert grouped_conv_mask(layers).tolist() == [True, False, False, False, False]
    out, per_model = restore_untraced(layers, models)
    g = out[out["config_id"] == "g"]
    assert g["ctx_untraced_s"].tolist() == pytest.approx([0.012, 0.0, 0.0])  # 20 ms wall - 8 ms traced
    assert g["ctx_share"].tolist() == pytest.approx([0.65, 0.30, 0.05])  # (1+12)/20, 6/20, 1/20
    assert g["ctx_energy_j"].sum() == pytest.approx(2.2) and g["ctx_latency_s"].sum() == pytest.approx(0.022)
    p = out[out["config_id"] == "p"]
    assert p["ctx_share"].tolist() == pytest.approx([0.75, 0.25])  # traced shares, the 2 ms gap spread
    assert per_model["ctx_untraced_s"].tolist() == pytest.approx([0.012, 0.0])
    assert restore_untraced(out, models)[0]["ctx_share"].tolist() == pytest.approx(out["ctx_share"].tolist())
    # Under PyTorch the untraced time is Python between layers, not the grouped conv's: left as traced.
    torch_rows, _ = restore_untraced(layers, models.assign(backend=["torch", "tensorflow"], device="cpu"))
    assert torch_rows.loc[torch_rows["config_id"] == "g", "ctx_untraced_s"].sum() == 0.0


def test_a_killed_sweep_resumes_keeping_its_measurements_and_measure_twice_pairs(tmp_path, new_store):
    """A real `nnenergy measure` process killed mid-sweep (right after its first block's first measure-twice
    pair was stored), then rerun: nothing measured before the kill is lost or measured again (configurations,
    isolated-layer signatures, pairs), and the pairs reach the datasheet."""
    out, cache = tmp_path / "data", tmp_path / "cache"
    cmd = [sys.executable, "-m", "nnenergy.apps.measure", "sweep=tiny", f"sweep.output_dir={out}",
           f"sweep.cache_dir={cache}", f"mlflow.tracking_uri={new_store(tmp_path)}", "sweep.block_architectures=1",
           "sweep.remeasure_share=1.0", "sweep.remeasure_after_min=0"]
    progress, pairs_file = out / "progress" / "models.jsonl", out / "progress" / "remeasure.jsonl"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (pairs_file.exists() and pairs_file.read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # right after the first re-measured pair was stored
    proc.wait()
    first = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
    assert 1 <= len(first) < 4, "the sweep was not interrupted half-way"
    before = [line for line in pairs_file.read_text().splitlines() if line.strip()]
    assert 1 <= len(before) < 4, "the sweep was not interrupted during its re-measures"
    sigs_before = (next(cache.iterdir()) / "signatures.jsonl").read_text().splitlines()
    # resumed with no log level set: TensorFlow's CUDA, oneDNN and profiler lines stay off stderr by themselves
    res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert not any(w in res.stderr for w in ("cuda", "cuInit", "UnifiedProfileProcessor", "oneDNN", "absl")), \
        res.stderr[-2000:]
    models = pd.read_parquet(out / "models.parquet")
    assert len(models) == 4
    # a measuring command fixes TensorFlow's thread pools before anything runs: parallel branches in turn
    assert (models["inter_op_threads"] == 1).all()
    kept = models.set_index("config_id").loc[[r["config_id"] for r in first]]
    assert list(kept["measured_at"]) == [r["measured_at"] for r in first]  # not re-measured
    sig_lines = (next(cache.iterdir()) / "signatures.jsonl").read_text().splitlines()
    assert sig_lines[:len(sigs_before)] == sigs_before  # measured before the kill: kept, not redone
    assert len(sig_lines) == len({json.loads(s)["signature"] for s in sig_lines})  # each measured once
    after = pairs_file.read_text().splitlines()
    assert after[:len(before)] == before  # kept as they were
    pairs = json.loads((out / "remeasure.json").read_text())
    assert {p["config_id"] for p in pairs} <= set(models["config_id"]) and len(pairs) >= 2
    assert all(p["second_energy_j"] > 0 and p["minutes_apart"] >= 0 for p in pairs)
    # each side carries what its label was normalised from, so the pair can be judged under an elasticity
    assert all(p["first_speed_index"] > 0 and p["second_energy_raw_j"] > 0 and p["second_latency_speed_index"] > 0
               for p in pairs)
    sheet = (out / "DATASHEET.md").read_text()
    assert "## Measure-twice check (label noise)" in sheet and f"{len(pairs)} configurations" in sheet


def test_a_sweep_killed_between_visits_keeps_them_and_makes_the_rest(tmp_path, new_store):
    """Labels spread over visits (`protocol.visits`): a real sweep killed right after its first visit was
    stored, then rerun: the visits made before the kill are kept as they were and not made again, each
    configuration gets exactly its visits, and its label is their geometric mean."""
    out, cache = tmp_path / "data", tmp_path / "cache"
    cmd = [sys.executable, "-m", "nnenergy.apps.measure", "sweep=tiny", f"sweep.output_dir={out}",
           f"sweep.cache_dir={cache}", f"mlflow.tracking_uri={new_store(tmp_path)}", "sweep.block_architectures=1",
           "sweep.remeasure_share=0", "sweep.protocol.visits=2", "sweep.protocol.visit_gap_min=0.05"]
    visits_file = out / "progress" / "visits.jsonl"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (visits_file.exists() and visits_file.read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [line for line in visits_file.read_text().splitlines() if line.strip()]
    assert 1 <= len(before) < 8, "the sweep was not interrupted between visits"
    res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    after = visits_file.read_text().splitlines()
    assert after[:len(before)] == before  # kept as they were
    visits = [json.loads(line) for line in after]
    models = pd.read_parquet(out / "models.parquet")
    assert len(models) == 4
    per_config = {cid: sorted(v["visit"] for v in visits if v["config_id"] == cid) for cid in models["config_id"]}
    assert all(v == [1, 2] for v in per_config.values()), per_config  # none made twice, none missing
    row = models.iloc[0]
    made = [v["result"]["energy_j"] for v in visits if v["config_id"] == row["config_id"]]
    assert row["energy_j"] == pytest.approx(math.sqrt(made[0] * made[1]))
    gap = [datetime.fromisoformat(v["at"]) for v in visits if v["config_id"] == row["config_id"]]
    assert (gap[1] - gap[0]).total_seconds() >= 3.0
    assert json.loads(row["protocol"])["visits"] == 2
    assert "visited 2 times" in (out / "DATASHEET.md").read_text()
    assert not (out / "visits.json").exists()  # nothing left half-visited to ship with the dataset


def test_begin_minutes_ends_a_run_with_every_label_complete_and_re_measures_visit_too(tmp_path, tracking_uri):
    """`begin_minutes`: past it no configuration is begun, but those begun get all their visits. Measure-twice
    re-measures follow the same visits; a pair's second label is the geometric mean of its own visits."""
    from conftest import compose_cfg

    from nnenergy.apps import measure

    base = ["sweep=tiny", f"sweep.output_dir={tmp_path / 'data'}", f"sweep.cache_dir={tmp_path / 'cache'}",
            f"mlflow.tracking_uri={tracking_uri}", "sweep.block_architectures=1", "sweep.protocol.visits=2",
            "sweep.protocol.visit_gap_min=0"]
    first = measure.run(compose_cfg("measure", [*base, "sweep.begin_minutes=0"]))
    assert len(first.models) == 2 and not first.complete  # one architecture begun, both its batches finished
    assert not (tmp_path / "data" / "visits.json").exists()
    second = measure.run(compose_cfg("measure", [*base, "sweep.remeasure_share=1.0", "sweep.remeasure_after_min=0"]))
    assert len(second.models) == 4 and second.complete
    pairs = json.loads((tmp_path / "data" / "remeasure.json").read_text())
    visits = [json.loads(line) for line in (tmp_path / "data" / "progress" / "visits.jsonl").read_text().splitlines()]
    assert pairs and {p["config_id"] for p in pairs} <= set(second.models["config_id"])
    for p in pairs:
        again = [v["result"]["energy_j"] for v in visits
                 if v["purpose"] == "again" and v["config_id"] == p["config_id"]]
        assert len(again) == 2 and p["second_energy_j"] == pytest.approx(math.sqrt(again[0] * again[1]))
        assert p["second_energy_raw_j"] / p["second_speed_index"] == pytest.approx(p["second_energy_j"])
        assert p["first_energy_j"] == pytest.approx(
            float(second.models.set_index("config_id").loc[p["config_id"], "energy_j"]))


def test_a_label_whose_visits_were_all_stored_before_a_kill_gets_its_row_without_another_visit(tmp_path,
                                                                                                tracking_uri):
    """The kill that lands after a configuration's last visit was stored and before its row was written
    (its layers are traced in between): the rerun makes the row from the stored visits, measuring no more."""
    from conftest import compose_cfg

    from nnenergy.apps import measure

    out = tmp_path / "data"
    cfg = compose_cfg("measure", ["sweep=tiny", f"sweep.output_dir={out}", f"sweep.cache_dir={tmp_path / 'cache'}",
                                  f"mlflow.tracking_uri={tracking_uri}", "sweep.protocol.visits=2",
                                  "sweep.protocol.visit_gap_min=0"])
    first = measure.run(cfg)
    rows_file, visits_file = out / "progress" / "models.jsonl", out / "progress" / "visits.jsonl"
    rows = rows_file.read_text().splitlines()
    lost = json.loads(rows[-1])["config_id"]
    rows_file.write_text("\n".join(rows[:-1]) + "\n")  # as if killed between its last visit and its row
    (out / "models.parquet").unlink()
    visits_before = visits_file.read_text()
    again = measure.run(cfg)
    assert visits_file.read_text() == visits_before  # no visit made again
    assert set(again.models["config_id"]) == set(first.models["config_id"]) and again.complete
    made = [json.loads(line)["result"]["energy_j"] for line in visits_before.splitlines()
            if json.loads(line)["config_id"] == lost]
    row = again.models.set_index("config_id").loc[lost]
    assert len(made) == 2 and row["energy_j"] == pytest.approx(math.sqrt(made[0] * made[1]))


def test_a_negative_remeasure_share_or_zero_windows_is_refused_before_measuring(tmp_path):
    """In process: the command's side of a refusal (status 2, one line) is tests/test_protocol.py's."""
    from conftest import compose_cfg

    from nnenergy.apps import measure
    from nnenergy.measure.sweep import SweepInputError

    for bad, says in (("sweep.remeasure_share=-0.1", "remeasure_share"), ("sweep.protocol.windows=0", "windows"),
                      ("sweep.begin_minutes=-1", "begin_minutes")):
        cfg = compose_cfg("measure", ["sweep=tiny", bad, f"sweep.output_dir={tmp_path / 'data'}",
                                      f"sweep.cache_dir={tmp_path / 'cache'}"])
        with pytest.raises(SweepInputError, match=says) as exc:
            measure.run(cfg)
        assert "\n" not in str(exc.value)
        assert not (tmp_path / "data").exists()


def test_visits_reuse_the_model_built_at_the_first_one_and_a_re_measure_builds_its_own(tmp_path):
    """`keep_models_mb`: a configuration's later visits in a run measure the model built and compiled at its
    first (no rebuild, no retrace); its measure-twice re-measure builds one afresh; with 0 each visit builds."""
    from nnenergy.measure.sweep import Sweep
    from nnenergy.measure.sweep_spec import SweepSpec

    def spec(out: str, keep_mb: float) -> SweepSpec:
        return SweepSpec.from_config({
            "name": "tiny", "architectures": ["tiny_mlp", "tiny_cnn"], "batch_sizes": [1, 2], "input_sizes": [16],
            "output_dir": str(tmp_path / "p" / out), "cache_dir": str(tmp_path / "c"), "isolate_share": 0.0,
            "block_architectures": 1, "keep_models_mb": keep_mb, "remeasure_share": 1.0, "remeasure_after_min": 0,
            "protocol": {"rounds": 1, "windows": 1, "min_seconds": 0.01, "warmup": 1, "visits": 2,
                         "visit_gap_min": 0}})

    kept = Sweep(spec("kept", 64))
    result = kept.run()
    assert len(result.models) == 4 and result.complete
    pairs = json.loads((tmp_path / "p" / "kept" / "remeasure.json").read_text())
    assert pairs  # re-measures were made, each with its own model
    again_models = {p["config_id"].split("|")[0] for p in pairs}
    assert kept.models.misses == 2 + len(again_models)  # one build per architecture and purpose
    assert kept.models.hits >= 2  # each architecture's second label visit, at least
    assert len(kept.models) == 0  # nothing kept once every visit is made
    assert json.loads(result.models["protocol"].iloc[0])["keep_models_mb"] == 64
    rebuilt = Sweep(spec("rebuilt", 0))
    rebuilt.run()
    assert rebuilt.models.hits == 0 and rebuilt.models.misses >= 4


def test_the_model_cache_keeps_at_most_its_budget_and_keeps_what_it_kept_first():
    from nnenergy.measure.model_cache import ModelCache

    built = {n: zoo.build("tiny_mlp", n) for n in (8, 16, 32)}
    nbytes = {n: 4 * b.model.count_params() for n, b in built.items()}
    cache = ModelCache(max_mb=(nbytes[8] + nbytes[16] + nbytes[32] - 1) / 2**20)  # one byte short of all three
    made = []

    def visit(n):
        return cache.get(("label", "tiny_mlp", n), lambda n=n: (made.append(n), (built[n], None))[1])

    # Visits come back in the order they began (every configuration after the same gap): with room for
    # two of three models, the two kept first are hit on every later cycle and only the third is rebuilt;
    # least-recently-used eviction would have rebuilt every one of them every time.
    for _ in range(3):
        for n in (8, 16, 32):
            assert visit(n).built is built[n]
    assert made == [8, 16, 32, 32, 32] and cache.hits == 4 and cache.misses == 5
    assert ("label", "tiny_mlp", 32) not in cache and cache.nbytes == nbytes[8] + nbytes[16]
    cache.keep_only([("label", "tiny_mlp", 16)])  # 8's configurations are done: room for 32 again
    visit(32)
    assert len(cache) == 2 and ("label", "tiny_mlp", 32) in cache and ("label", "tiny_mlp", 8) not in cache
    nothing = ModelCache(max_mb=0)
    assert nothing.get(("label", "tiny_mlp", 8), lambda: (built[8], None)).built is built[8] and len(nothing) == 0


def test_attention_layers_are_isolated_with_query_and_value_apart():
    """MultiHeadAttention takes query and value as separate arguments (generated ViT blocks call it as
    mha(x, x)): isolating it once failed with "missing a required argument: 'value'"."""
    import keras

    x = keras.Input((6, 8), name="x")
    v = keras.Input((3, 8), name="v")
    k = keras.Input((3, 5), name="k")  # a key of its own width: value and key swapped would not build
    self_att = keras.layers.MultiHeadAttention(2, 4, name="self")(x, x)
    cross = keras.layers.MultiHeadAttention(2, 4, name="cross")(self_att, v, k)
    model = keras.Model([x, v, k], cross)
    leaves = desc.leaf_layers(model)
    for info in desc.describe(model):
        if info.type == "MultiHeadAttention":
            out = layers.isolated_callable(leaves[info.name], info, batch_size=2)()
            assert tuple(out.shape) == (2, 6, 8), info.name
