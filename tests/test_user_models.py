"""Users' own models: nested models, layers keras.applications never uses, Sequential models
saved without an input shape, and `nnenergy predict`'s errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import keras
import pytest
from keras import layers as L

import nnenergy
from nnenergy import describe as desc
from nnenergy import zoo
from nnenergy.cli import predict as cli
from nnenergy.features.layer_features import LAYER_KINDS, UNMEASURED_TYPES, kind_of
from nnenergy.predict import describing, loading, models

REPO = Path(__file__).resolve().parents[1]


# -- nested models ----------------------------------------------------------------------------
def _nested_model():
    """A Functional model wrapping a Sequential stem and a Functional block built on unknown
    spatial dimensions (as `MobileNetV2(weights=None, include_top=False)` is), plus a head."""
    stem = keras.Sequential([L.Conv2D(4, 3, padding="same", name="conv"), L.ReLU(name="relu")], name="stem")
    b_in = keras.Input((None, None, 4), name="block_in")
    b = L.Conv2D(6, 1, name="pw")(b_in)
    b = L.BatchNormalization(name="bn")(b)
    block = keras.Model(b_in, b, name="block")
    inp = keras.Input((16, 16, 3), name="image")
    x = block(stem(inp))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(5, name="head")(x)
    return keras.Model(inp, out, name="outer")


def test_nested_models_are_flattened_into_their_leaf_layers():
    model = _nested_model()
    infos = desc.describe(model)
    assert [i.name for i in infos] == ["image", "stem/conv", "stem/relu", "block/pw", "block/bn", "gap", "head"]
    assert [i.index for i in infos] == list(range(7))
    assert [i.type for i in infos] == ["InputLayer", "Conv2D", "ReLU", "Conv2D", "BatchNormalization",
                                       "GlobalAveragePooling2D", "Dense"]
    shapes = {i.name: (i.input_shapes, i.output_shape) for i in infos}
    assert shapes["stem/conv"] == ([(16, 16, 3)], (16, 16, 4))
    assert shapes["stem/relu"] == ([(16, 16, 4)], (16, 16, 4))
    # the block's own graph has unknown H and W: the shapes the outer model feeds it propagate
    assert shapes["block/pw"] == ([(16, 16, 4)], (16, 16, 6))
    assert shapes["block/bn"] == ([(16, 16, 6)], (16, 16, 6))
    assert shapes["gap"] == ([(16, 16, 6)], (6,))
    assert shapes["head"] == ([(6,)], (5,))
    assert sum(i.params for i in infos) == model.count_params()
    pw = {i.name: i for i in infos}["block/pw"]
    assert desc.analytic_cost(pw, 2)["flops"] == 2 * (2 * 16 * 16 * 6) * 1 * 4


def test_leaf_layers_are_keyed_like_describe():
    model = _nested_model()
    leaves = desc.leaf_layers(model)
    assert list(leaves) == [i.name for i in desc.describe(model)]
    assert leaves["stem/conv"] is model.get_layer("stem").get_layer("conv")
    assert leaves["block/bn"] is model.get_layer("block").get_layer("bn")
    assert leaves["head"] is model.get_layer("head")


def test_flatten_false_keeps_nested_models_opaque():
    infos = desc.describe(_nested_model(), flatten=False)
    assert [(i.name, i.type) for i in infos] == [("image", "InputLayer"), ("stem", "Sequential"),
                                                 ("block", "Functional"), ("gap", "GlobalAveragePooling2D"),
                                                 ("head", "Dense")]
    assert {i.name: i.input_shapes for i in infos}["block"] == [(16, 16, 4)]  # the outer call's shape


def test_deeper_nesting_and_flat_models_unchanged():
    inner = keras.Sequential([L.Dense(8, name="fc")], name="inner")
    mid = keras.Sequential([inner, L.Dense(4, name="proj")], name="mid")
    inp = keras.Input((6,), name="x")
    model = keras.Model(inp, L.Dense(2, name="out")(mid(inp)))
    infos = desc.describe(model)
    assert [i.name for i in infos] == ["x", "mid/inner/fc", "mid/proj", "out"]
    assert [i.input_shapes for i in infos][1:] == [[(6,)], [(8,)], [(4,)]]
    flat = zoo.build("tiny_cnn", 32).model  # a flat model: one row per model.layers entry
    assert [i.name for i in desc.describe(flat)] == [lay.name for lay in flat.layers]


# -- analytic cost of layers keras.applications never uses --------------------------------------
def _info(layer, *input_shapes, dtype="float32", as_list=False):
    """Describe `layer` called on inputs of `input_shapes` (no batch) inside a one-layer model:
    one tensor, several positional tensors (MultiHeadAttention), or a list (`as_list`, Attention)."""
    ins = [keras.Input(s, dtype=dtype) for s in input_shapes]
    out = layer(ins) if as_list else layer(*ins)
    model = keras.Model(ins, out)
    return {i.name: i for i in desc.describe(model, trace=False)}[layer.name]  # the layer as one row


def _flops(layer, *shapes, batch=1, **kw):
    return desc.analytic_cost(_info(layer, *shapes, **kw), batch)["flops"]


def test_recurrent_flops():
    # per step: gates x (input + hidden) x hidden multiply-adds, times 10 steps
    assert _flops(L.LSTM(16, name="lstm"), (10, 8), batch=2) == 2 * 4 * (8 + 16) * 16 * 10 * 2
    assert _flops(L.LSTM(16, return_sequences=True, name="lstm_seq"), (10, 8), batch=2) == 2 * 4 * 24 * 16 * 10 * 2
    assert _flops(L.GRU(16, name="gru"), (10, 8)) == 2 * 3 * (8 + 16) * 16 * 10
    assert _flops(L.SimpleRNN(16, name="rnn"), (10, 8)) == 2 * 1 * (8 + 16) * 16 * 10
    assert _flops(L.Bidirectional(L.LSTM(16), name="bi"), (10, 8)) == 2 * (2 * 4 * 24 * 16 * 10)
    assert _flops(L.TimeDistributed(L.Dense(4), name="td"), (10, 32)) == 10 * (2 * 32 * 4)


def test_attention_flops_and_bytes():
    mha = L.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")
    info = _info(mha, (10, 4), (6, 5))  # cross-attention: 10 queries of 4, 6 values of 5
    cost = desc.analytic_cost(info, 1)
    projections = 2 * (10 * 4 * 6 + 6 * 5 * 6 + 6 * 5 * 6 + 10 * 6 * 4)  # Q, K, V (2 heads x 3), output (4)
    scores = 2 * 10 * 6  # heads x queries x keys
    assert cost["flops"] == projections + 2 * scores * 3 + 2 * scores * 3  # + QK^T + AV
    assert cost["mem_bytes"] == 4 * (10 * 4 + 6 * 5 + 10 * 4 + info.params) + 4 * 2 * scores
    # dot-product attention: 5 queries x 7 keys, dim 4, values of dim 4
    att = _info(L.Attention(name="att"), (5, 4), (7, 4), as_list=True)
    assert att.input_shapes == [(5, 4), (7, 4)]
    assert desc.analytic_cost(att, 1)["flops"] == 5 * 7 * (2 * 4 + 2 * 4)
    assert _flops(L.AdditiveAttention(name="add_att"), (5, 4), (7, 4), as_list=True) == 5 * 7 * (4 * 4 + 2 * 4)


def test_convolution_flops():
    # Conv1D: 20 steps of 3 channels, 8 filters of width 5, valid -> 16 outputs per filter
    assert _flops(L.Conv1D(8, 5, name="c1"), (20, 3), batch=2) == 2 * (2 * 16 * 8) * 5 * 3
    # Conv3D: 4x4x4x2, 3 filters of 2x2x2 -> 3x3x3x3 outputs
    assert _flops(L.Conv3D(3, 2, name="c3"), (4, 4, 4, 2)) == 2 * (27 * 3) * 8 * 2
    # transposed: every input element scatters into kernel area x filters outputs
    assert _flops(L.Conv2DTranspose(6, 3, strides=2, name="ct2"), (5, 5, 4)) == 2 * (5 * 5 * 4) * 9 * 6
    assert _flops(L.Conv1DTranspose(6, 3, strides=2, name="ct1"), (5, 4)) == 2 * (5 * 4) * 3 * 6
    # groups divide the input channels each filter sees
    assert _flops(L.Conv1D(8, 3, groups=2, name="cg"), (10, 4)) == 2 * (8 * 8) * 3 * 4 // 2


def test_gather_upsampling_and_pooling_cost():
    emb = _info(L.Embedding(100, 16, name="emb"), (7,), dtype="int32")
    cost = desc.analytic_cost(emb, 3)
    assert cost["flops"] == 0
    assert cost["mem_bytes"] == 4 * (3 * 7 + 3 * 7 * 16)  # indices + gathered rows, not the whole table
    assert _flops(L.UpSampling2D(2, name="up"), (4, 4, 3)) == 0  # nearest: a copy
    assert _flops(L.UpSampling2D(2, interpolation="bilinear", name="up_bl"), (4, 4, 3)) == 8 * 8 * 3
    up = desc.analytic_cost(_info(L.UpSampling2D(2, name="up2"), (4, 4, 3)), 1)
    assert up["mem_bytes"] == 4 * (4 * 4 * 3 + 8 * 8 * 3)
    assert _flops(L.GlobalMaxPooling2D(name="gmp"), (6, 6, 5)) == 6 * 6 * 5
    assert _flops(L.Softmax(name="sm"), (10,)) == 10


def test_unmeasured_types_map_to_a_measured_kind():
    assert {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "MultiHeadAttention", "Embedding", "UpSampling2D",
            "Conv2DTranspose"} <= UNMEASURED_TYPES
    for t in UNMEASURED_TYPES:
        assert kind_of(t) in LAYER_KINDS and kind_of(t) != "other", t
    assert kind_of("LSTM") == "dense" and kind_of("MultiHeadAttention") == "attention"


# -- errors before anything heavy loads -------------------------------------------------------
def _run_cli_in_fresh_process(args: list[str]) -> dict:
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "from nnenergy.cli import main\n"
        f"rc = main(['predict', *{args!r}])\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'codecarbon') if m in sys.modules]\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy, 'seconds': time.perf_counter() - t}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {**out, "stderr": res.stderr.strip()}


def test_missing_file_fails_fast_without_loading_tensorflow(tmp_path):
    res = _run_cli_in_fresh_process([str(tmp_path / "nope.keras")])
    assert res["rc"] == 2
    assert res["heavy"] == []  # neither TensorFlow, Keras nor MLflow was imported
    assert res["stderr"] == f"nnenergy predict: error: model file not found: {tmp_path / 'nope.keras'}"
    assert res["seconds"] < 10  # milliseconds unloaded; TensorFlow alone takes longer than this


@pytest.mark.parametrize("case", ["not_zip", "zip_without_config", "not_hdf5", "empty"])
def test_corrupt_file_is_called_corrupt(case, tmp_path, capsys):
    path = tmp_path / ("bad.h5" if case == "not_hdf5" else "bad.keras")
    if case == "zip_without_config":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "not a model")
    else:
        path.write_bytes({"not_zip": b"not a zip file at all", "not_hdf5": b"junk" * 600, "empty": b""}[case])
    assert cli.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnenergy predict: error:") and "\n" not in err
    assert "is corrupt or not a Keras model" in err and "not found" not in err.lower()


def test_corrupt_file_fails_fast_without_loading_tensorflow(tmp_path):
    path = tmp_path / "bad.keras"
    path.write_bytes(b"garbage")
    res = _run_cli_in_fresh_process([str(path)])
    assert res["rc"] == 2 and res["heavy"] == []
    assert "is corrupt or not a Keras model" in res["stderr"]


def test_corrupt_config_inside_a_valid_archive(tmp_path):
    path = tmp_path / "bad_config.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{not json")
        z.writestr("metadata.json", "{}")
    with pytest.raises(nnenergy.PredictError, match="is corrupt or not a Keras model"):
        describing.resolve_model(str(path), None)


def test_bad_arguments_are_checked_before_heavy_imports(tmp_path):
    with pytest.raises(nnenergy.PredictError, match="batch size"):
        nnenergy.predict("MobileNetV2", batch_size=0)
    with pytest.raises(nnenergy.PredictError, match="input shape"):
        nnenergy.predict("MobileNetV2", input_shape=(0, 3))
    with pytest.raises(nnenergy.PredictError, match="not found"):
        nnenergy.predict(str(tmp_path / "nope.h5"))
    assert cli.parser().parse_args(["m.keras", "--verbose"]).verbose


def test_close_names_never_suggest_the_name_itself():
    assert models.canonical_name("mobilenetv2") == "MobileNetV2"  # differs only by case: resolves
    assert models.canonical_name("TINY_CNN") == "tiny_cnn"
    with pytest.raises(nnenergy.PredictError) as exc:
        models.canonical_name("ResNet5O")
    assert "ResNet50" in str(exc.value) and "ResNet5O," not in str(exc.value) and "ResNet5O?" not in str(exc.value)
    with pytest.raises(zoo.ArchitectureError) as exc:
        zoo.application("tiny_cnn", None, build=False)  # a built-in, not an application
    assert "did you mean tiny_cnn" not in str(exc.value)


# -- the registry: the training hint only when nothing is registered ---------------------------
@pytest.fixture(scope="module")
def registry_store(tmp_path_factory, new_store):
    """A store with one registered model (version 1, alias champion) whose artifacts are missing."""
    from mlflow import MlflowClient

    uri = new_store(tmp_path_factory.mktemp("registry"))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    empty = new_store(tmp_path_factory.mktemp("registry_empty"))
    client.create_registered_model(loading.DEFAULT_MODEL_NAME)
    client.create_model_version(loading.DEFAULT_MODEL_NAME, source=str(tmp_path_factory.mktemp("gone")))
    client.set_registered_model_alias(loading.DEFAULT_MODEL_NAME, "champion", "1")
    return uri, empty


@pytest.mark.parametrize("uri,expected", [
    ("models:/nnenergy-layerwise/7", "has no version 7"),
    ("models:/nnenergy-layerwise@nope", "has no alias @nope"),
    ("models:/someone-else@champion", "no registered model 'someone-else'"),
])
def test_missing_version_or_alias_names_what_exists(uri, expected, registry_store, capsys):
    store, _ = registry_store
    rc = cli.main(["MobileNetV2", "--model-uri", uri, "--tracking-uri", store])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err
    assert expected in err and "make run" not in err


def test_training_hint_when_the_store_has_no_registered_model(registry_store, capsys):
    _, empty = registry_store
    assert cli.main(["MobileNetV2", "--tracking-uri", empty]) == 1
    assert "make run" in capsys.readouterr().err


def test_predictor_line_never_says_version_none():
    from nnenergy.cli.predict_render import _predictor_details

    assert _predictor_details({"uri": "runs:/abc/model", "version": None, "name": "rf",
                               "source": "incontext"}) == "rf, incontext targets"
    assert _predictor_details({"version": "3", "name": "rf", "source": "incontext"}) == \
        "version 3, rf, incontext targets"


# -- through the public API and the CLI, on a tiny trained predictor -----------------------------
def test_sequential_saved_without_input_shape(store, tmp_path, capsys):
    model = keras.Sequential([L.Conv2D(4, 3, name="conv"), L.GlobalAveragePooling2D(name="gap"),
                              L.Dense(3, name="head")], name="no_shape")
    path = tmp_path / "no_shape.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras: "saving a model that has not yet been built"
        model.save(path)
    with pytest.raises(nnenergy.PredictError, match="--input-shape"):
        nnenergy.predict(str(path), tracking_uri=store)
    p = nnenergy.predict(str(path), batch_size=2, input_shape=(16, 16, 3), tracking_uri=store)
    assert p.input_shape == [16, 16, 3] and p.batch_size == 2
    assert [lay.name for lay in p.layers] == ["conv", "gap", "head"]
    assert p.energy_j > 0 and p.latency_s > 0
    assert cli.main([str(path), "--input-shape", "16,16,3", "--json", "--tracking-uri", store]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [16, 16, 3]


def test_nested_model_is_predicted_layer_by_layer(store):
    p = nnenergy.predict(_nested_model(), batch_size=2, tracking_uri=store)
    names = [lay.name for lay in p.layers]
    assert names == ["image", "stem/conv", "stem/relu", "block/pw", "block/bn", "gap", "head"]
    assert p.unknown_layer_types == []  # no opaque "Functional"/"Sequential" row
    assert sum(lay.energy_j for lay in p.layers) + p.correction_energy_j == pytest.approx(p.energy_j)


def test_unmeasured_layer_types_are_flagged(store, tmp_path, capsys):
    inp = keras.Input((6, 6, 4, 3), name="vol")
    x = L.Conv3D(4, 3, name="conv3d")(inp)
    model = keras.Model(inp, L.Dense(3, name="head")(L.Flatten(name="flat")(x)), name="volumetric")
    path = tmp_path / "volumetric.keras"
    model.save(path)
    p = nnenergy.predict(model, tracking_uri=store)
    assert p.unmeasured_layer_types == ["Conv3D"] and p.unknown_layer_types == []
    assert cli.main([str(path), "--tracking-uri", store]) == 0
    out, err = capsys.readouterr()
    assert "WARNING: no measured data for layer types Conv3D" in err and "WARNING" not in out  # stderr only
    assert "(unmeasured type: predicted as conv)" in out
    assert cli.main([str(path), "--tracking-uri", store, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["unmeasured_layer_types"] == ["Conv3D"] and d["unknown_layer_types"] == []


def test_recurrent_layers_are_predicted_op_by_op_and_scale_with_their_work(store):
    """Two LSTMs, the second with 8x the FLOPs of the first (4 gates x units x (units + inputs) x steps),
    described op by op (their step's products, gates and state updates, once per step): the larger
    one is never predicted cheaper (it was: 117.8 mJ for 78.6 MFLOPs, 28.0 mJ for 157 MFLOPs)."""
    inp = keras.Input((20, 16), name="seq")
    x = L.LSTM(32, return_sequences=True, name="small")(inp)
    x = L.LSTM(96, name="large")(x)
    model = keras.Model(inp, L.Dense(3, name="head")(x), name="two_lstms")
    p = nnenergy.predict(model, batch_size=4, tracking_uri=store)
    energy = {k: sum(lay.energy_j for lay in p.layers if lay.name.startswith(f"{k}/")) for k in ("small", "large")}
    assert energy["large"] > energy["small"] > 0
    assert p.unknown_layers == [] and "LSTM" not in {lay.type for lay in p.layers}


def test_explicit_version_uri_prints_its_version(store, tmp_path, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store, registry_uri=store)
    version = client.get_model_version_by_alias(loading.DEFAULT_MODEL_NAME, "champion").version
    path = tmp_path / "tiny.keras"
    zoo.build("tiny_cnn", 32).model.save(path)
    uri = f"models:/{loading.DEFAULT_MODEL_NAME}/{version}"
    assert cli.main([str(path), "--model-uri", uri, "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert f"predictor: {uri} (version {version}," in out and "version None" not in out
