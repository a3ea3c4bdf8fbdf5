"""`nnenergy predict` and `nnenergy.predict(...)` on a tiny trained predictor, and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nnenergy
from nnenergy import zoo
from nnenergy.cli import predict as cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    zoo.build("tiny_cnn", 32).model.save(path)
    return path


def test_python_api_on_a_model_file(store, tiny_file):
    p = nnenergy.predict(str(tiny_file), batch_size=2, tracking_uri=store)
    assert p.energy_j > 0 and p.latency_s > 0 and p.power_w > 0
    assert p.input_shape == [32, 32, 3] and p.batch_size == 2
    df = p.layers_frame()
    assert list(df["name"])[:2] == ["image", "rescale"]
    assert df["energy_j"].sum() + p.correction_energy_j == pytest.approx(p.energy_j)
    assert p.predictor["version"] is not None and p.hardware["cpu_measurement"]
    assert 0 < p.energy_interval_j[0] < p.energy_interval_j[1]
    d = p.to_dict()
    assert d["layers"][0]["name"] == "image"


def test_an_input_layer_is_never_out_of_range(store):
    """Far beyond the tiny data (224 px, batch 64: every real layer is flagged), the InputLayer runs no op."""
    p = nnenergy.predict("tiny_cnn", batch_size=64, input_shape=(224, 224, 3), tracking_uri=store)
    df = p.layers_frame()
    assert not df.loc[df["type"] == "InputLayer", "out_of_range"].any()
    assert df.loc[df["type"] == "Conv2D", "out_of_range"].all()


def test_cli_json_for_an_application_name(store, capsys):
    rc = cli.main(["MobileNetV3Small", "--input-shape", "64,64,3", "--batch-size", "3", "--json",
                   "--tracking-uri", store, "--country", "FRA", "--inferences", "1000"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)  # one JSON object and nothing else
    for key in ("energy_j", "latency_s", "power_w", "batch_size", "input_shape", "layers", "unknown_layer_types",
                "predictor", "hardware", "energy_interval_j", "energy_kwh", "co2_g"):
        assert key in d, key
    assert d["batch_size"] == 3 and d["input_shape"] == [64, 64, 3]
    assert {"name", "type", "energy_j", "latency_s", "known"} <= set(d["layers"][0])
    assert sum(x["energy_j"] for x in d["layers"]) + d["correction_energy_j"] == pytest.approx(d["energy_j"])
    assert d["energy_kwh"] == pytest.approx(d["energy_j"] * 1000 / 3.6e6)
    assert d["co2_g"] == pytest.approx(d["energy_kwh"] * d["carbon_intensity_g_per_kwh"])
    assert d["flops"] == sum(x["flops"] for x in d["layers"]) > 0
    # docs/predict.md documents every key it emits, the layers' included
    doc = (REPO / "docs" / "predict.md").read_text()
    missing = [k for k in [*d, *d["layers"][0]] if f"`{k}`" not in doc]
    assert not missing, missing


def test_cli_human_table(store, tiny_file, capsys):
    assert cli.main([str(tiny_file), "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "per forward pass" in out and "g CO2eq" in out and "never saw" in out
    # the BN and ReLU after conv1 run in its kernel: predicted there, and said so
    assert "(fused into conv1)" in next(line for line in out.splitlines() if line.startswith("bn1"))
    # the correction's figures stand in the layers' columns, and never read "-0.000"
    lines = out.splitlines()
    conv1, correction = (next(ln for ln in lines if ln.startswith(p)) for p in ("conv1", "(model-level"))
    assert correction.index(" ms") == conv1.index(" ms"), (conv1, correction)
    assert "-0.000" not in out


def test_a_correction_near_zero_never_prints_minus_zero():
    from nnenergy.cli.predict_render import _fmt_j, _fmt_ms

    assert [_fmt_j(j).strip() for j in (-0.0, -4e-7, -2e-6, 1.5)] == ["0.000 mJ", "0.000 mJ", "-0.002 mJ", "1.500 J"]
    assert [_fmt_ms(s).strip() for s in (-0.0, -4e-7, -2e-6)] == ["0.000 ms", "0.000 ms", "-0.002 ms"]


def test_json_stdout_is_clean_in_a_real_process(store, tiny_file, tmp_path):
    # A fresh cache: the process describes the model itself, so TensorFlow loads and could print.
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "NNENERGY_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "nnenergy.cli", "predict", str(tiny_file), "--json"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["energy_j"] > 0
    assert list((tmp_path / "cache" / "tables").iterdir())  # it did describe (TensorFlow loaded)


def _lambda_file(tmp_path) -> Path:
    import keras

    inp = keras.Input((8,))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    return path


@pytest.mark.parametrize("case", ["missing", "corrupt", "lambda", "unknown_name", "bad_shape", "not_fitting"])
def test_bad_inputs_give_one_line_errors(case, store, tmp_path, tiny_file, capsys):
    args = {
        "missing": [str(tmp_path / "nope.keras")],
        "corrupt": [str(tmp_path / "bad.keras")],
        "lambda": None,
        "unknown_name": ["ResNet5O"],
        "bad_shape": ["MobileNetV2", "--input-shape", "8,8,3"],
        "not_fitting": [str(tiny_file), "--input-shape", "40,40,3"],
    }[case]
    if case == "corrupt":
        (tmp_path / "bad.keras").write_bytes(b"not a zip file at all")
    if case == "lambda":
        args = [str(_lambda_file(tmp_path))]
    rc = cli.main([*args, "--tracking-uri", store])
    err = capsys.readouterr().err.strip()
    assert rc == 2  # bad input, the same status as a bad option
    assert err.startswith("nnenergy predict: error:") and "\n" not in err and "Traceback" not in err
    if case == "unknown_name":
        assert "ResNet50" in err  # a close-name suggestion
    if case == "lambda":
        assert "lambda" in err.lower() or "safe" in err.lower()


@pytest.mark.parametrize("batch", ["0", "-3", "x"])
def test_non_positive_batch_size_is_rejected(batch, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["MobileNetV2", "--batch-size", batch])
    assert exc.value.code == 2
    assert "batch-size" in capsys.readouterr().err


def test_no_registered_predictor_names_the_training_command(tmp_path, capsys):
    rc = cli.main(["MobileNetV2", "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"])
    err = capsys.readouterr().err
    assert rc == 1 and "make run" in err


def test_unreachable_tracking_uri(capsys):
    rc = cli.main(["MobileNetV2", "--tracking-uri", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err and "127.0.0.1:9" in err


def test_many_models_in_one_call_match_one_at_a_time(store, tiny_file, capsys):
    import keras

    inline = zoo.build("tiny_mlp", 32).model
    assert isinstance(inline, keras.Model)
    many = nnenergy.predict_many([str(tiny_file), "tiny_cnn", inline], batch_size=2, input_shape=(32, 32, 3),
                                 tracking_uri=store)
    one = [nnenergy.predict(m, batch_size=2, input_shape=(32, 32, 3), tracking_uri=store)
           for m in (str(tiny_file), "tiny_cnn", inline)]
    assert [p.model_name for p in many] == ["tiny", "tiny_cnn", "tiny_mlp"]
    for a, b in zip(many, one):
        assert a.energy_j == pytest.approx(b.energy_j) and len(a.layers) == len(b.layers)
    assert cli.main([str(tiny_file), "tiny_cnn", "--input-shape", "32,32,3", "--json", "--tracking-uri", store]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["model_name"] for line in lines] == ["tiny", "tiny_cnn"]


def test_predictor_is_cached_locally_until_the_store_changes(store, tiny_file):
    from mlflow import MlflowClient

    from nnenergy.predict.loading import CachedPredictor, load_predictor

    first, info = load_predictor(tracking_uri=store)
    cached, cached_info = load_predictor(tracking_uri=store)
    assert isinstance(cached, CachedPredictor) and cached_info == info
    a = nnenergy.predict(str(tiny_file), batch_size=2, tracking_uri=store, predictor=(first, info))
    b = nnenergy.predict(str(tiny_file), batch_size=2, tracking_uri=store, predictor=(cached, cached_info))
    assert a.energy_j == pytest.approx(b.energy_j) and a.heldout_error == b.heldout_error
    import mlflow

    mlflow.set_tracking_uri(store)
    MlflowClient().set_registered_model_tag("nnenergy-layerwise", "touched", "yes")  # the store changed
    again, _ = load_predictor(tracking_uri=store)
    assert not isinstance(again, CachedPredictor)


def test_hardware_profiles_are_listed_and_selected(store, tiny_file, capsys):
    from nnenergy.measure.hardware import current_profile_name

    mine = current_profile_name()
    assert cli.main(["--hardware", "list", "--json", "--tracking-uri", store]) == 0
    rows = {r["profile"]: r for r in map(json.loads, capsys.readouterr().out.strip().splitlines())}
    assert rows[mine]["predictor_version"] is not None and rows[mine]["this_machine"]
    assert any(r["datasets"] for r in rows.values())  # the shipped profiles' data
    shipped = [r for r in rows.values() if r["datasets"]]
    assert all(r["device"].startswith("CPU ") and r["backend"] == "tensorflow" for r in shipped), shipped
    assert cli.main(["--hardware", "list", "--tracking-uri", store]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    last = lines[-1]  # what `predict` uses here, and why
    assert f"@champion-{mine}:" in last and "this machine's own predictor" in last
    table = lines[:len(rows) + 1]  # aligned columns, nothing cut
    starts = {ln.index(" tensorflow ") + 1 for ln in table[1:] if " tensorflow " in ln}
    assert starts == {table[0].index("backend")}
    assert all(r["device"] in "\n".join(table) for r in shipped)
    assert cli.main([str(tiny_file), "--hardware", mine, "--json", "--tracking-uri", store]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["predictor"]["uri"].endswith(f"@champion-{mine}") and d["hardware"]["profile"] == mine
    assert cli.main([str(tiny_file), "--hardware", "no-such-cpu", "--tracking-uri", store]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "champion-no-such-cpu" in err


def test_the_hardware_list_from_any_folder_reads_the_checkouts_data(store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/ here
    assert cli.main(["--hardware", "list", "--json", "--tracking-uri", store]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert any(r["datasets"] and str(r["device"]).startswith("CPU ") for r in rows), rows


def test_a_described_layer_table_predicts_without_tensorflow(store, tiny_file, tmp_path, capsys):
    """`nnenergy describe` once; `nnenergy predict table.parquet` later answers without importing TensorFlow."""
    from nnenergy.cli.predict import describe_main

    table = tmp_path / "tiny.parquet"
    assert describe_main([str(tiny_file), "tiny_cnn", "--batch-size", "2", "--input-shape", "32,32,3",
                          "-o", str(table)]) == 0
    capsys.readouterr()
    code = ("import sys, json; from nnenergy.cli.predict import main; rc = main(sys.argv[1:]); "
            "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'rc': rc}), file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code, str(table), "--json", "--tracking-uri", store],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    status = json.loads(res.stderr.strip().splitlines()[-1])
    assert status == {"tf": False, "rc": 0}, res.stderr[-1000:]
    preds = [json.loads(line) for line in res.stdout.strip().splitlines()]
    direct = nnenergy.predict(str(tiny_file), batch_size=2, tracking_uri=store)
    assert [p["batch_size"] for p in preds] == [2, 2] and preds[0]["input_shape"] == [32, 32, 3]
    assert preds[0]["energy_j"] == pytest.approx(direct.energy_j)
    assert [p["model_name"] for p in preds] == [direct.model_name, "tiny_cnn"]  # named by model, not "x|32|2"
    assert preds[0]["flops"] == pytest.approx(direct.flops) and direct.flops > 0


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_layer_table(store, tiny_file):
    """`mlflow models serve` of the registered champion answers a layer-table request over REST on
    loopback, with the same totals as `nnenergy.predict` (one predictor process for a team)."""
    import socket
    import time
    import urllib.request

    from nnenergy.describe import describe_layers

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": store,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m",
                             "models:/nnenergy-layerwise@champion", "--env-manager", "local", "-h", "127.0.0.1",
                             "-p", str(port)], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(240):  # start-up: imports, model load
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stderr.read().decode()[-1500:])
                time.sleep(0.5)
        table = describe_layers(zoo.load_model_file(tiny_file), 2, "tiny")
        body = json.dumps({"dataframe_split": table.to_dict(orient="split", index=False)}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        rows = json.loads(urllib.request.urlopen(req, timeout=60).read())["predictions"]
        total = next(r for r in rows if r["row"] == "total")
        direct = nnenergy.predict(str(tiny_file), batch_size=2, tracking_uri=store)
        assert total["energy_j"] == pytest.approx(direct.energy_j)
        assert sum(r["row"] == "layer" for r in rows) == len(table)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_several_models_one_failing_prints_the_others_and_names_it(store, tiny_file, tmp_path, capsys):
    missing = tmp_path / "missing.keras"
    assert cli.main([str(tiny_file), str(missing), "--json", "--tracking-uri", store]) == 2
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["energy_j"] > 0  # the good model's result
    assert err.strip().startswith(f"nnenergy predict: error: {missing}:") and "\n" not in err.strip()


def test_calibration_flag_never_swallows_the_model(store, tiny_file, tmp_path, monkeypatch, capsys):
    from nnenergy.predict.calibration import Calibration

    monkeypatch.setenv("NNENERGY_CACHE", str(tmp_path))
    Calibration("a", "b", 2.0, 0.0, {"compute": 2.0}, {"compute": 2.0}, 0, 0, 1.0, "now").save(
        tmp_path / "calibration.json")
    assert cli.main(["--calibration", str(tiny_file), "--json", "--tracking-uri", store, "--speed", "now"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["calibration"]["kind"] == "panel" and d["calibration"]["speed_ratio"] == 2.0
    # The panel states the machine's speed when it was measured: no speed on top of it, and it says so.
    assert d["speed"]["speed_index"] is None and "calibration file" in d["speed"]["note"]


def test_a_layer_table_refuses_a_batch_size_and_describe_checks_its_output(store, tiny_file, tmp_path, capsys):
    from nnenergy.cli.predict import describe_main

    assert describe_main([str(tiny_file), "-o", str(tmp_path / "no" / "dir" / "t.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnenergy describe: error: cannot write") and "\n" not in err
    table = tmp_path / "t.parquet"
    assert describe_main([str(tiny_file), "-o", str(table)]) == 0
    capsys.readouterr()
    assert cli.main([str(table), "--batch-size", "8", "--tracking-uri", store]) == 2
    err = capsys.readouterr().err.strip()
    assert "keeps the batch size it was described with" in err and "\n" not in err


@pytest.mark.slow
def test_a_repeated_prediction_needs_no_tensorflow(store, tiny_file, tmp_path, monkeypatch, capsys):
    """The second prediction of the same file (same shape, batch) reads its described layer table from
    the cache: no TensorFlow, the same figures; another file is described again. (The first and the last
    run in this process: they only fill the cache and read what it holds.)"""
    code = ("import sys, json; from nnenergy.cli.predict import main; rc = main(sys.argv[1:]); "
            "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'rc': rc}), file=sys.stderr)")
    env = {**os.environ, "NNENERGY_CACHE": str(tmp_path / "cache")}
    args = ["--batch-size", "2", "--json", "--tracking-uri", store]

    def run(path):
        res = subprocess.run([sys.executable, "-c", code, str(path), *args], capture_output=True, text=True,
                             cwd=REPO, env=env, timeout=300)
        return json.loads(res.stderr.strip().splitlines()[-1]), json.loads(res.stdout)

    monkeypatch.setenv("NNENERGY_CACHE", env["NNENERGY_CACHE"])
    assert cli.main([str(tiny_file), *args]) == 0
    a = json.loads(capsys.readouterr().out)
    second, b = run(tiny_file)
    assert second == {"tf": False, "rc": 0}
    assert b["energy_j"] == pytest.approx(a["energy_j"]) and len(b["layers"]) == len(a["layers"])
    cached = sorted((tmp_path / "cache" / "tables").glob("*.parquet"))
    other = tmp_path / "other.keras"
    zoo.build("tiny_cnn", 40).model.save(other)
    assert cli.main([str(other), *args]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [40, 40, 3]  # not the first file's table
    assert len(sorted((tmp_path / "cache" / "tables").glob("*.parquet"))) == len(cached) + 1  # described, and cached


def test_every_flag_gives_its_reason_and_the_footer_counts_the_marks(store, capsys):
    """A batch far beyond training: every layer with a size is flagged, each mark names the feature and
    the trained range, the footer counts the `!` it printed, and the memory of a pass is stated."""
    assert cli.main(["tiny_cnn", "--batch-size", "100000", "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    marks = [ln for ln in out.splitlines() if "  ! " in ln]
    assert marks and all("trained on" in ln for ln in marks)
    assert any("batch_size 1e+05 above" in ln for ln in marks)
    footer = next(ln for ln in out.splitlines() if "marked `!`" in ln)
    assert footer.startswith(f"{len(marks)} layer(s) marked `!`") and "batch_size" in footer
    assert "memory: one pass holds at least" in out and "GB of RAM" in out

    assert cli.main(["tiny_cnn", "--batch-size", "100000", "--json", "--tracking-uri", store]) == 0
    d = json.loads(capsys.readouterr().out)
    flagged = [lay for lay in d["layers"] if lay["out_of_range"]]
    assert flagged and all(lay["out_of_range_reason"] for lay in flagged)
    assert not any(lay["out_of_range_reason"] for lay in d["layers"] if not lay["out_of_range"])
    assert d["memory_bytes"] > 4 * 100000 * 32 * 32 * 3 and d["ram_bytes"] > 0
    # a batch whose input alone outgrows any RAM here (~120 GB) is still predicted, and said not to fit
    assert cli.main(["tiny_cnn", "--batch-size", "10000000", "--tracking-uri", store]) == 0
    assert "GB of RAM: it does not fit" in capsys.readouterr().out


def test_the_python_api_prints_no_tensorflow_start_up_lines(store, tiny_file, tmp_path):
    """`nnenergy.predict` in a fresh process that set no log level: stderr stays as quiet as the CLI's.
    A fresh cache makes the process describe the model, so TensorFlow really loads there."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["NNENERGY_CACHE"] = str(tmp_path / "cache")
    code = ("import sys, nnenergy; p = nnenergy.predict(sys.argv[1], tracking_uri=sys.argv[2]); "
            "print(p.energy_j > 0)")
    res = subprocess.run([sys.executable, "-c", code, str(tiny_file), store], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "True", res.stderr[-2000:]
    assert not any(w in res.stderr for w in ("oneDNN", "cuda", "cuInit", "TensorFlow binary", "absl")), res.stderr
    assert list((tmp_path / "cache" / "tables").iterdir())  # it did describe (TensorFlow loaded)
