"""`nnenergy calibrate` brings a machine up end to end: a short bring-up sweep, a transfer of the
registered predictor, a registered version that `nnenergy predict` then uses by default."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from nnenergy import cli
from nnenergy.measure.hardware import parse_cpuinfo, runtime_suffix


def test_bad_bring_up_arguments_are_refused_before_anything_runs(capsys):
    for argv, msg in ((["--minutes", "0"], "--minutes must be > 0"), (["--minutes", "-1"], "--minutes must be > 0"),
                      (["--method", "size", "--rounds", "0"], "--rounds must be >= 1"),
                      (["sweep.protocol.rounds"], "not a KEY=VALUE override")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["calibrate", *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1


def _run(args: list[str], cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "nnenergy.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not shutil.which("taskset"),
                    reason="one core here: the one-core pseudo-device would be this machine's own profile")
def test_bring_up_of_a_one_core_machine_registers_its_champion_and_predict_uses_it(trained_rf, tracking_uri, tmp_path):
    """The machine brought up is this CPU on one core (`taskset -c 0`), a profile of its own: a tiny
    bring-up sweep (4 generated architectures, one round), the tiny predictor transferred to it."""
    shutil.copyfile(tracking_uri[len("sqlite:///"):], tmp_path / "mlflow.db")  # the session store stays as it is
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "NNENERGY_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "NNENERGY_SPEED": "last"}
    one_core = replace(parse_cpuinfo(Path("/proc/cpuinfo").read_text(), 1), runtime=runtime_suffix()).name
    folder = tmp_path / "data" / one_core / "space_gen"
    sweep = [f"sweep.output_dir={folder}", f"sweep.cache_dir={tmp_path / 'cache'}", "sweep.generated.seeds=[0,4]",
             "sweep.generated.configs_per_architecture=1", "sweep.generated.batch_sizes=[1,2]",
             "sweep.protocol.rounds=1", "sweep.protocol.windows=1", "sweep.protocol.min_seconds=0.02"]
    res = _run(["calibrate", "--minutes", "1", "--tracking-uri", uri, "--json", *sweep], tmp_path, env)
    assert res.returncode == 0, res.stderr[-2000:]
    done = json.loads(res.stdout.strip().splitlines()[-1])
    assert done["profile"] == one_core and done["alias"] == f"champion-{one_core}"
    assert done["configs"] == done["new_configs"] >= 3 and done["architectures"] >= 3
    assert done["method"] in ("speed", "ridge", "trees") and "speed" in done["cv"]
    assert done["seconds"] < 120
    history = tmp_path / "cache" / "speed" / f"{one_core}.jsonl"
    assert (folder / "models.parquet").exists() and history.exists()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    mv = client.get_model_version_by_alias("nnenergy-layerwise", f"champion-{one_core}")
    assert str(mv.version) == done["version"] and mv.tags["calibrated_from"] != one_core
    assert client.get_model_version_by_alias("nnenergy-layerwise", "champion").version != mv.version  # untouched
    run = client.get_run(done["run_id"])
    assert run.data.metrics["bringup_configs"] == done["configs"] and run.data.tags["method"] == done["method"]

    # The predictions read a described table: a one-core process that loads TensorFlow spends ~15 s on it
    # (test_predict checks that a prediction that does load it prints nothing on stderr).
    table = tmp_path / "tiny_cnn.parquet"
    assert cli.main(["describe", "tiny_cnn", "--input-shape", "32,32,3", "-o", str(table)]) == 0
    res = _run(["predict", str(table), "--tracking-uri", uri, "--json"], tmp_path, env)
    assert res.returncode == 0, res.stderr[-2000:]
    pred = json.loads(res.stdout)
    assert pred["predictor"]["uri"] == f"models:/nnenergy-layerwise@champion-{one_core}"
    assert str(pred["predictor"]["version"]) == done["version"]
    cal = pred["calibration"]
    assert cal["kind"] == "bring-up" and cal["to"] == one_core and cal["method"] == done["method"]
    assert pred["speed"]["speed_index"] == pytest.approx(done["speed_index"])
    assert res.stderr == ""  # no note: the predictor is this machine's
    held = pred["heldout_error"]  # the transfer's own held-out error here, not the base's at home
    assert held["generated_whole_energy_rmspe"] == pytest.approx(done["cv"][done["method"]], rel=1e-6)

    # The speed now: a re-read appends a probe to the history, and the next prediction is stated at it.
    res = _run(["calibrate", "--minutes", "0.5", "--tracking-uri", uri, "--json", *sweep], tmp_path, env)
    assert res.returncode == 0, res.stderr[-2000:]
    speed = json.loads(history.read_text().splitlines()[-1])
    assert speed["source"] == "probe" and speed["speed_index"] == pytest.approx(
        json.loads(res.stdout.strip().splitlines()[-1])["speed_index"])
    res = _run(["predict", str(table), "--tracking-uri", uri, "--json"], tmp_path, env)
    again = json.loads(res.stdout)
    assert again["speed"]["speed_index"] == pytest.approx(speed["speed_index"])
    assert again["energy_j"] == pytest.approx(pred["energy_j"] * speed["speed_index"] / pred["speed"]["speed_index"],
                                              rel=1e-6)
