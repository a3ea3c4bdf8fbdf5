"""Inputs of any structure (dict and multi-input models, `--input NAME=SHAPE[:DTYPE]`, `--seq-len`) and
honesty when unsure (status 3 for layers nothing was learned for, warnings on stderr only)."""

from __future__ import annotations

import json

import keras
import pytest
import tensorflow as tf
from keras import layers as L

import nnenergy
from nnenergy.cli import predict as cli
from nnenergy.predict import feeds
from nnenergy.predict.errors import PredictError


def _text_model():
    """A dict-input text model of unknown length: int32 token ids and a (float) padding mask."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), name="padding_mask")
    x = L.Embedding(100, 16, name="embed")(ids)
    m = L.Reshape((-1, 1), name="mask_axis")(mask)
    x = L.Multiply(name="masked")([x, m])
    x = L.MultiHeadAttention(2, 8, name="attn")(x, x)
    out = L.Dense(4, name="head")(L.GlobalAveragePooling1D(name="pool")(x))
    return keras.Model({"token_ids": ids, "padding_mask": mask}, out, name="text")


@keras.saving.register_keras_serializable(package="nnenergy_tests")
class Sorter(keras.layers.Layer):
    def call(self, x):
        return tf.sort(x, axis=-1)


def test_input_specs_parse_without_tensorflow():
    assert feeds.parse_input("token_ids=128:int32") == ("token_ids", (128,), "int32")
    assert feeds.parse_input("images=224x224x3") == ("images", (224, 224, 3), None)
    assert feeds.normalize({"a": (8,), "b": ((8, 2), "int32"), "c": "4:float32", "d": 5}) == {
        "a": ((8,), None), "b": ((8, 2), "int32"), "c": ((4,), "float32"), "d": ((5,), None)}
    for bad in ("token_ids", "=128", "x=0", "x=12:complex", "x=a,b"):
        with pytest.raises(PredictError):
            feeds.parse_input(bad)


def test_a_dict_input_model_predicts_from_the_api(store):
    model = _text_model()
    with pytest.raises(nnenergy.PredictError, match="padding_mask.*--seq-len|token_ids.*--seq-len"):
        nnenergy.predict(model, tracking_uri=store)
    p = nnenergy.predict(model, batch_size=2, seq_len=32, tracking_uri=store)
    assert p.inputs == {"token_ids": {"shape": [32], "dtype": "int32"},
                        "padding_mask": {"shape": [32], "dtype": "float32"}}
    assert p.energy_j > 0 and "attn" in [lay.name for lay in p.layers]
    longer = nnenergy.predict(model, batch_size=2, inputs={"token_ids": (64,), "padding_mask": ((64,), "float16")},
                              tracking_uri=store)
    assert longer.inputs["token_ids"]["shape"] == [64] and longer.inputs["padding_mask"]["dtype"] == "float16"
    with pytest.raises(nnenergy.PredictError, match="no input 'tokens'"):
        nnenergy.predict(model, inputs={"tokens": (8,)}, seq_len=8, tracking_uri=store)


def test_a_dict_input_model_predicts_from_the_cli(store, tmp_path, capsys):
    path = tmp_path / "text.keras"
    _text_model().save(path)
    assert cli.main([str(path), "--tracking-uri", store]) == 2
    assert "--seq-len" in capsys.readouterr().err
    # The tiny test predictor learned no embedding or attention: those rows are allowed explicitly here.
    assert cli.main([str(path), "--input", "token_ids=16:int32", "--input", "padding_mask=16", "--json",
                     "--allow-unknown", "--tracking-uri", store]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["inputs"]["token_ids"] == {"shape": [16], "dtype": "int32"} and d["energy_j"] > 0
    assert cli.main([str(path), "--seq-len", "16", "--input-shape", "16", "--tracking-uri", store]) == 2


def test_layers_nothing_was_learned_for_exit_3_unless_allowed(store, tmp_path, capsys):
    inp = keras.Input((12,), name="x")
    model = keras.Model(inp, L.Dense(4, name="head")(Sorter(name="sorter")(inp)), name="sorting")
    path = tmp_path / "sorting.keras"
    model.save(path)
    assert cli.main([str(path), "--json", "--tracking-uri", store]) == 3
    out, err = capsys.readouterr()
    assert out == "" and "sorter/" in err and "--allow-unknown" in err
    assert cli.main([str(path), "--json", "--allow-unknown", "--tracking-uri", store]) == 0
    out, err = capsys.readouterr()
    d = json.loads(out)  # stdout is the JSON alone; the warning is on stderr
    assert d["unknown_layers"] and all(n.startswith("sorter/") for n in d["unknown_layers"])
    assert "generic fallback" in err
    lo, hi = d["energy_interval_j"]
    assert lo <= d["energy_j"] <= hi and hi >= 1.5 * d["energy_j"]  # widened for the fallback's error
    table = tmp_path / "sorting.parquet"
    assert cli.describe_main([str(path), "-o", str(table)]) == 3
    assert "sorter/" in capsys.readouterr().err and not table.exists()
    assert cli.describe_main([str(path), "-o", str(table), "--allow-unknown"]) == 0
