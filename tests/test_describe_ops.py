"""Layers described by the work they do: traced ops -> kernel kinds (`describe_ops`), custom and
composite layers by their sublayers (`describe_traced`), recurrent layers op by op."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import pytest
import tensorflow as tf

from nnenergy.describe import describe, describe_layers
from nnenergy.describe_ops import rows_from_ops, traced_flops
from nnenergy.features.layer_features import kind_of, layer_features

L = keras.layers


class MatMulReLU(keras.layers.Layer):
    """A custom layer from raw TensorFlow ops: no Keras sublayer describes it."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], 32), name="w")

    def call(self, x):
        return tf.nn.relu(tf.matmul(x, self.w))


class Block(keras.layers.Layer):
    """A composite layer: Keras sublayers plus its own residual add."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = L.LayerNormalization(name="norm")
        self.up = L.Dense(64, activation="gelu", name="up")
        self.down = L.Dense(16, name="down")

    def call(self, x):
        return x + self.down(self.up(self.norm(x)))


def test_a_custom_matmul_layer_is_priced_by_its_ops():
    inp = keras.Input((10, 16), name="x")
    model = keras.Model(inp, MatMulReLU(name="mm")(inp))
    table = describe_layers(model, batch_size=4)
    rows = table.set_index("layer_name")
    assert list(rows.index) == ["x", "mm/MatMul", "mm/Relu"]
    assert rows.loc["mm/MatMul", "layer_type"] == "Dense" and kind_of("Dense") == "dense"
    assert rows.loc["mm/MatMul", "flops"] == 2 * 4 * 10 * 16 * 32  # batch x rows x in x out, 2 per MAC
    assert rows.loc["mm/MatMul", "params"] == 16 * 32
    assert rows.loc["mm/Relu", "layer_type"] == "Activation"
    assert json.loads(rows.loc["mm/Relu", "layer_config"])["activation"] == "relu"
    assert layer_features(table)["known"].all()  # every row has a regressor of its own kind


def test_a_composite_layer_is_described_by_its_sublayers_and_own_ops():
    inp = keras.Input((8, 16), name="x")
    model = keras.Model(inp, L.Dense(3, name="head")(Block(name="block")(inp)))
    infos = describe(model)
    assert [(i.name, i.type) for i in infos] == [
        ("x", "InputLayer"), ("block/norm", "LayerNormalization"), ("block/up", "Dense"), ("block/down", "Dense"),
        ("block/add", "Add"), ("head", "Dense")]
    by = {i.name: i for i in infos}
    assert by["block/up"].input_shapes == [(8, 16)] and by["block/up"].output_shape == (8, 64)
    assert by["head"].inbound == ("block/add",)  # the layer reading the block reads its last row


def test_recurrent_layers_are_described_op_by_op():
    inp = keras.Input((20, 8), name="seq")
    model = keras.Model(inp, L.Dense(3, name="head")(L.LSTM(16, name="lstm")(inp)))
    table = describe_layers(model, batch_size=2)
    lstm = table[table["layer_name"].str.startswith("lstm/")]
    assert "LSTM" not in set(table["layer_type"]) and len(lstm) > 5
    # every step multiplies the input (8) and the state (16) by the 4 gates' matrices (x 64)
    products = lstm[lstm["layer_type"] == "Dense"]["flops"].sum()
    assert products >= 2 * 2 * 20 * (8 + 16) * 64
    assert products <= 1.2 * 2 * 2 * 20 * (8 + 16) * 64  # (+ the one step Keras traces to infer shapes)


def test_ops_map_to_kinds_and_count_einsum_and_convolution_flops():
    def fn(q, k, img):
        scores = tf.nn.softmax(tf.einsum("bqd,bkd->bqk", q, k))
        conv = tf.nn.conv2d(img, tf.ones((3, 3, 4, 8)), strides=1, padding="SAME")
        return scores, tf.reduce_mean(conv, axis=[1, 2])

    specs = (tf.TensorSpec((1, 6, 5)), tf.TensorSpec((1, 7, 5)), tf.TensorSpec((1, 10, 10, 4)))
    cf = tf.function(fn, autograph=False).get_concrete_function(*specs)
    rows = {r.config["op"]: r for r in rows_from_ops(cf.graph.get_operations(), cf.graph, "f")}
    assert rows["Einsum"].type == "Dense" and rows["Einsum"].per_sample["flops"] == 2 * 6 * 7 * 5
    assert rows["Conv2D"].type == "Conv2D" and rows["Conv2D"].per_sample["flops"] == 2 * 10 * 10 * 8 * 9 * 4
    assert rows["Softmax"].type == "Softmax" and rows["Mean"].type.startswith("GlobalAveragePooling")
    assert traced_flops(fn, *specs) == pytest.approx(sum(r.per_sample["flops"] for r in rows.values()))


def test_an_op_no_kind_covers_is_named_as_unknown():
    class Sorter(keras.layers.Layer):
        def call(self, x):
            return tf.sort(x, axis=-1)

    inp = keras.Input((12,), name="x")
    table = describe_layers(keras.Model(inp, Sorter(name="sorter")(inp)), batch_size=1)
    odd = table[table["layer_type"].map(kind_of) == "other"]
    assert len(odd) and all(n.startswith("sorter/") for n in odd["layer_name"])
    assert all(t.startswith("tf.") for t in odd["layer_type"])


def test_serialized_function_activations_never_crash_the_features():
    inp = keras.Input((4, 8), name="x")
    gelu = keras.saving.register_keras_serializable(package="test_pkg", name="gelu_approximate")(
        lambda x: keras.activations.gelu(x, approximate=True))
    model = keras.Model(inp, L.Dense(8, activation=gelu, name="ff")(inp))
    table = describe_layers(model, batch_size=1)
    cfg = json.loads(table.set_index("layer_name").loc["ff", "layer_config"])
    assert isinstance(cfg["activation"], (dict, str))
    feats = layer_features(table).set_index("layer_name")
    assert feats.loc["ff", "activation"] == feats.loc["ff", "activation"]  # a number, not NaN, no crash


@pytest.mark.slow
def test_a_keras_hub_encoder_is_described_to_its_work():
    keras_hub = pytest.importorskip("keras_hub")
    vit = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2,
                                       hidden_dim=32, mlp_dim=64)
    table = describe_layers(vit, batch_size=1)
    assert (table["layer_type"].map(kind_of) != "other").all()  # no opaque ViTEncoder row
    assert table["layer_name"].str.startswith("vit_encoder/transformer_block_1/").any()
    spec = tf.TensorSpec((1, 32, 32, 3))
    assert table["flops"].sum() == pytest.approx(traced_flops(lambda x: vit(x, training=False), spec), rel=0.1)


@pytest.mark.slow
def test_the_external_hub_text_backbones_build_offline_and_describe_fully():
    pytest.importorskip("keras_hub")
    from nnenergy import zoo

    built = zoo.build("hub_GPT2Mini", 16)  # random weights from the constructor: nothing downloaded
    assert built.input_shape == (16,) and built.source == "keras-hub"
    table = describe_layers(built.model, batch_size=2)
    assert (table["layer_type"].map(kind_of) != "other").all()
    assert table["layer_name"].str.contains("transformer_layer_3/self_attention").any()
    with pytest.raises(zoo.ArchitectureError, match="one of"):
        zoo.check_name("hub_NoSuchNet")
