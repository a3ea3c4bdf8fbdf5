"""Kernel units (a layer + the layers fused into its kernel) and the prediction step's fast paths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nnenergy.describe import describe, describe_layers
from nnenergy.features.layer_features import layer_features
from nnenergy.features.units import kernel_units
from nnenergy.learn.layerwise import LayerwisePredictor, _regressor_predict
from nnenergy.schema import TARGETS


def _residual_model():
    """pad -> conv -> BN -> add(shortcut conv) -> ReLU -> pooling: one fusable chain, one lone conv."""
    import keras

    L = keras.layers
    x = keras.Input((8, 8, 3), name="x")
    a = L.ZeroPadding2D(1, name="pad")(x)
    a = L.Conv2D(4, 3, name="c1")(a)
    a = L.BatchNormalization(name="bn1")(a)
    b = L.Conv2D(4, 1, name="c0")(x)
    y = L.Add(name="add")([a, b])
    y = L.ReLU(name="relu")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(x, L.Dense(2, activation="relu", name="head")(y))


def test_describe_records_the_graph_edges():
    infos = {i.name: i for i in describe(_residual_model())}
    assert infos["x"].inbound == ()
    assert infos["c1"].inbound == ("pad",)
    assert set(infos["add"].inbound) == {"bn1", "c0"}
    table = describe_layers(_residual_model(), 2, "m")
    assert json.loads(table.set_index("layer_name").loc["relu", "inbound_layers"]) == ["add"]


def test_nested_models_edges_cross_the_nesting():
    import keras

    inner_in = keras.Input((8, 8, 4))
    inner = keras.Model(inner_in, keras.layers.ReLU(name="r")(keras.layers.Conv2D(4, 1, name="c")(inner_in)),
                        name="block")
    x = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Conv2D(4, 1, name="stem")(x)
    model = keras.Model(x, keras.layers.Flatten(name="f")(inner(y)))
    infos = {i.name: i for i in describe(model)}
    assert infos["block/c"].inbound == ("stem",)
    assert infos["f"].inbound == ("block/r",)


def test_a_conv_and_its_followers_form_one_kernel_unit():
    table = describe_layers(_residual_model(), 2, "m")
    units = kernel_units(table).set_index(table["layer_name"])
    # pad, BN, Add and ReLU run inside c1's kernel; c0 (the shortcut) and the pooling stay alone
    for name in ("pad", "c1", "bn1", "add", "relu"):
        assert units.loc[name, "unit_index"] == units.loc["c1", "unit_index"], name
    assert units.loc["c0", "unit_index"] != units.loc["c1", "unit_index"]
    assert units.loc["gap", "unit_index"] == table.set_index("layer_name").loc["gap", "layer_index"]
    assert units.loc["c1", ["fused_pad", "fused_norm", "fused_add", "fused_act"]].tolist() == [1, 1, 1, 1]
    # without edges (rows measured before they were recorded): neighbours whose shapes connect
    fallback = kernel_units(table.drop(columns="inbound_layers")).set_index(table["layer_name"])
    assert fallback.loc["bn1", "unit_index"] == fallback.loc["c1", "unit_index"]


def test_a_kernel_is_learned_and_reported_on_its_head():
    """Fused layers carry the kernel's measured cost in any split (here: all on the ReLU, as the
    profiler names a fused kernel after its last op); per kernel, the split does not matter."""
    from sklearn.ensemble import RandomForestRegressor

    tables = [describe_layers(_residual_model(), b, f"m|8|{b}") for b in (1, 2, 4, 8, 16, 32)]
    layers = pd.concat(tables, ignore_index=True)
    feats = layer_features(layers)
    y = np.full((len(layers), 2), 1e-4)
    relu = (layers["layer_name"] == "relu").to_numpy()
    y[relu] = np.outer(layers.loc[relu, "batch_size"], [1e-2, 1e-3])  # the whole kernel's cost
    y[(layers["layer_name"] == "c1").to_numpy()] = 0.0
    def fit(units):
        return LayerwisePredictor(lambda: RandomForestRegressor(20, random_state=0), min_rows_per_kind=2,
                                  correction="none", units=units).fit(feats, y)

    out = fit("kernels").predict_layers(feats).set_index(["config_id", "layer_name"])
    per_layer = fit("layers").predict_layers(feats).set_index(["config_id", "layer_name"])
    for b in (2, 8, 32):
        kernel = 1e-2 * b
        c1 = out.loc[(f"m|8|{b}", "c1")]
        assert c1["kind"] == "conv" and c1["energy_j"] > 0.4 * kernel
        assert out.loc[(f"m|8|{b}", "relu"), "kind"] == "fused"
        assert out.loc[(f"m|8|{b}", "relu"), "energy_j"] == 0
        # learned per layer, the convolution "costs nothing": what broke held-out families
        assert per_layer.loc[(f"m|8|{b}", "c1"), "energy_j"] < 0.05 * kernel
    whole = fit("kernels").predict_whole(feats).set_index("config_id")
    measured = pd.DataFrame(y, columns=TARGETS).groupby(layers["config_id"]).sum()
    ratio = whole["energy_j"] / measured.loc[whole.index, "energy_j"]
    assert ratio.between(0.4, 1.6).all(), ratio


@pytest.mark.parametrize("make", ["poly", "xgb", "rf"])
def test_fast_regressor_paths_equal_predict(make):
    from sklearn.ensemble import RandomForestRegressor
    from xgboost import XGBRegressor

    from nnenergy.learn.regressors import polynomial

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12))
    y = np.column_stack([x[:, 0] ** 2 + x[:, 1], x[:, 2] - x[:, 3] * x[:, 4]])
    reg = {"poly": lambda: polynomial(), "xgb": lambda: XGBRegressor(n_estimators=20, max_depth=3),
           "rf": lambda: RandomForestRegressor(10, random_state=0)}[make]().fit(x, y)
    np.testing.assert_allclose(_regressor_predict(reg, x[:7]), reg.predict(x[:7]), rtol=1e-5, atol=1e-6)
    if make == "poly":  # the numpy path is the one taken, not sklearn's predict
        from nnenergy.learn.layerwise import _pipeline_predict

        assert _pipeline_predict(reg, x[:7]) is not None


def test_conv_features_tell_a_channel_wise_grouped_conv_from_a_resnext_one():
    """A channel-wise `Conv2D(groups=C)` and a ResNeXt-style grouped conv can share their group count, yet on
    the Xeon the first costs ~15x the second per FLOP: `group_width` (input channels per group) tells them
    apart, for the conv regressors and for the range check."""
    import keras

    from nnenergy.features.layer_features import KIND_FEATURES
    from nnenergy.learn.layerwise import range_features

    L = keras.layers
    x = keras.Input((8, 8, 32), name="x")
    cw = L.Conv2D(32, 3, padding="same", groups=32, name="channelwise")(x)
    rx = L.Conv2D(128, 3, padding="same", groups=32, name="resnext")(L.Conv2D(128, 1, name="pw")(x))
    model = keras.Model(x, L.Concatenate(name="cat")([cw, rx]))
    feats = layer_features(describe_layers(model, 2, "g|8|2")).set_index("layer_name")
    assert feats.loc["channelwise", "groups"] == feats.loc["resnext", "groups"] == 32
    assert feats.loc[["channelwise", "resnext", "pw"], "group_width"].tolist() == [1.0, 4.0, 32.0]
    assert "group_width" in KIND_FEATURES["conv"] and "group_width" in range_features("conv")


def _activations_model(first):
    """Pre-activation BN -> `first`; conv -> BN -> swish; depthwise -> LeakyReLU; a conv with its own ReLU;
    dense -> ReLU: five kernel heads, four with an activation fused into them."""
    import keras

    L = keras.layers
    x = keras.Input((8, 8, 4), name="x")
    a = first(L.BatchNormalization(name="pre_bn")(x))
    a = L.Activation("swish", name="s1")(L.BatchNormalization(name="bn")(L.Conv2D(4, 1, name="c1")(a)))
    a = L.LeakyReLU(name="lr")(L.DepthwiseConv2D(3, padding="same", name="dw")(a))
    a = L.Conv2D(4, 1, activation="relu", name="c2")(a)  # its own activation, nothing fused after it
    return keras.Model(x, L.ReLU(name="r2")(L.Dense(3, name="fc")(L.GlobalAveragePooling2D(name="gap")(a))))


def test_a_unit_head_knows_the_activation_fused_into_its_kernel():
    """Pre-activation BN -> ReLU (DenseNet, ResNetV2) and conv -> BN -> swish run as one kernel each: the
    head's `fused_activation` names the follower's activation (BN+ReLU and BN+gelu cost apart), 0 where none
    is fused; a layer's own `activation` stays its config's. Two models with the same layer indices in one
    shuffled table: each head reads its own model's follower."""
    import keras

    from nnenergy.features.layer_features import KIND_FEATURES

    L = keras.layers
    tables = [describe_layers(_activations_model(L.ReLU(name="act0")), 2, "a|8|2"),
              describe_layers(_activations_model(L.Activation("gelu", name="act0")), 2, "b|8|2"),
              describe_layers(_residual_model(), 2, "r|8|2")]
    table = pd.concat(tables, ignore_index=True).sample(frac=1.0, random_state=0)
    feats = layer_features(table).set_index(["config_id", "layer_name"])
    fused, code = feats["fused_activation"], feats["activation"]
    relu, gelu = code[("a|8|2", "act0")], code[("b|8|2", "act0")]
    assert relu > 0 and gelu > 0 and relu != gelu
    assert fused[("a|8|2", "pre_bn")] == relu and fused[("b|8|2", "pre_bn")] == gelu
    for m in ("a|8|2", "b|8|2"):
        assert fused[(m, "c1")] == code[(m, "s1")] not in (0, relu, gelu)
        assert fused[(m, "dw")] == code[(m, "lr")] not in (0, relu)  # a LeakyReLU is not a ReLU
        assert fused[(m, "fc")] == relu
        assert code[(m, "c2")] == relu and code[(m, "c1")] == 0
        assert fused[[(m, n) for n in ("c2", "act0", "s1", "lr", "r2", "gap")]].tolist() == [0] * 6
    assert fused[("r|8|2", "c1")] == relu  # conv -> BN -> Add -> ReLU: one kernel, its ReLU at the end
    for kind in ("conv", "depthwise_conv", "dense", "normalization"):
        assert "fused_activation" in KIND_FEATURES[kind], kind


def test_a_predictor_trained_before_a_feature_predicts_with_its_own_columns(monkeypatch):
    """A predictor pickled before `fused_activation` existed keeps predicting with the columns it was trained
    on (its `kind_features_`), not today's."""
    from sklearn.ensemble import RandomForestRegressor

    from nnenergy.features.layer_features import KIND_FEATURES
    from nnenergy.learn import layerwise

    layers = pd.concat([describe_layers(_residual_model(), b, f"m|8|{b}") for b in (1, 2, 4, 8)], ignore_index=True)
    feats = layer_features(layers)
    y = np.outer(layers["batch_size"], [1e-3, 1e-4])
    older = {k: [f for f in v if f != "fused_activation"] for k, v in KIND_FEATURES.items()}
    monkeypatch.setattr(layerwise, "KIND_FEATURES", older)
    pred = LayerwisePredictor(lambda: RandomForestRegressor(5, random_state=0), min_rows_per_kind=2,
                              correction="none").fit(feats, y)
    monkeypatch.undo()
    assert "fused_activation" not in pred.kind_features_["conv"]
    assert "fused_activation" in layerwise.KIND_FEATURES["conv"]
    whole = pred.predict_whole(feats)
    assert len(whole) == 4 and (whole["energy_j"] > 0).all() and np.isfinite(whole["energy_j"]).all()


def test_inception_resnet_scaling_is_priced_as_an_elementwise_add():
    """`CustomScaleLayer` (x + scale * residual) is of kind `add` with a multiply and an add per element, also
    in tables described before its FLOPs were counted (stored as 0)."""
    import keras
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    x = keras.Input((9, 9, 16), name="x")
    model = keras.Model(x, CustomScaleLayer(0.17, name="scale")([x, keras.layers.Conv2D(16, 1, name="c")(x)]))
    table = describe_layers(model, 2, "s|9|2")
    row = table["layer_type"] == "CustomScaleLayer"
    assert table.loc[row, "flops"].item() == 2 * 2 * 9 * 9 * 16
    old = table.assign(flops=np.where(row, 0.0, table["flops"]))
    for t in (table, old):
        f = layer_features(t).set_index("layer_name").loc["scale"]
        assert f["kind"] == "add" and np.expm1(f["log_flops"]) == pytest.approx(2 * 2 * 9 * 9 * 16)
