"""Transfer of a layer-wise predictor to another device (nnenergy.learn.transfer), on shipped rows.

The "other device" is the shipped profile's own generated architectures with a known change of
cost structure: convolution kernels cost 2x, the rest as before. One speed ratio cannot describe
it; a kernel map can, and the cross-validation must pick one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnenergy import dataset as ds
from nnenergy.features.layer_features import layer_features
from nnenergy.learn.layerwise import OUT_OF_RANGE_WIDENING, LayerwisePredictor
from nnenergy.learn.regressors import polynomial
from nnenergy.learn.transfer import TransferError, fit_transfer, transferred
from nnenergy.profiles import DATA_ROOT, SHIPPED
from nnenergy.schema import INTERVAL_KEY, SOURCES

CONV_FACTOR = 2.0


@pytest.fixture(scope="module")
def shipped():
    data = ds.load(DATA_ROOT / SHIPPED / "space")
    gen = data.models[data.models["source"] == "generated"]
    names = sorted(gen["architecture"].unique())[:90]
    ids = set(gen.loc[gen["architecture"].isin(names), "config_id"])
    models = data.models[data.models["config_id"].isin(ids)].reset_index(drop=True)
    layers = data.layers[data.layers["config_id"].isin(ids)].reset_index(drop=True)
    return ds.Dataset(models, layers, data.path)


def _split(data, names):
    m = data.models[data.models["architecture"].isin(names)]
    keep = data.layers["config_id"].isin(set(m["config_id"]))
    return ds.Dataset(m.reset_index(drop=True), data.layers[keep].reset_index(drop=True), data.path)


def _other_device(data):
    """Convolution kernels (a conv head and the layers fused into it) 2x dearer; whole models follow."""
    feats = layer_features(data.layers)
    head_kind = feats.set_index(["config_id", "layer_index"])["kind"]
    unit_kind = head_kind.reindex(pd.MultiIndex.from_arrays([feats["config_id"], feats["unit_index"]])).to_numpy()
    factor = np.where(unit_kind == "conv", CONV_FACTOR, 1.0)
    layers = data.layers.copy()
    before = layers.groupby("config_id")["ctx_energy_j"].sum()
    for col in SOURCES["incontext"]:
        layers[col] = layers[col].to_numpy(float) * factor
    ratio = layers.groupby("config_id")["ctx_energy_j"].sum() / before
    models = data.models.copy()
    r = ratio.reindex(models["config_id"]).to_numpy()
    models["energy_j"] *= r
    models["latency_s"] *= r
    return ds.Dataset(models, layers, data.path), ratio


def test_a_kernel_level_change_is_learned_and_beats_one_speed_ratio(shipped):
    names = sorted(shipped.models["architecture"].unique())
    train_src, target_names = names[:40], names[40:]
    src = _split(shipped, train_src)
    source = LayerwisePredictor(lambda: polynomial(alpha=1.0)).fit(
        layer_features(src.layers), src.layers[list(SOURCES["incontext"])].to_numpy(float), src.models)
    target, ratio = _other_device(_split(shipped, target_names))
    assert ratio.min() < 1.3 and ratio.max() > 1.7  # the change is not one number
    bring, test = _split(target, target_names[:30]), _split(target, target_names[30:])
    y = bring.layers[list(SOURCES["incontext"])].to_numpy(float)
    tr, heldout = fit_transfer(source, layer_features(bring.layers), y, bring.models)
    assert set(tr.cv) == {"speed", "ridge", "trees"}
    assert tr.method != "speed" and not tr.fallback
    assert tr.cv[tr.method] < 0.8 * tr.cv["speed"]
    assert len(heldout) == len(bring.models)  # every bring-up architecture held out once
    speed, _ = fit_transfer(source, layer_features(bring.layers), y, bring.models, methods=("speed",))

    def err(t):
        pred = transferred(source, t, {}).predict_whole(layer_features(test.layers)).set_index("config_id")["energy_j"]
        m = test.models.set_index("config_id")["energy_j"].loc[pred.index]
        return float(np.sqrt(np.mean((pred / m - 1) ** 2)))

    before = err(speed)
    assert err(tr) < 0.8 * before  # on architectures neither the source nor the transfer saw


def test_the_transferred_predictor_keeps_the_layer_table_consistent(shipped):
    names = sorted(shipped.models["architecture"].unique())
    src = _split(shipped, names[:30])
    source = LayerwisePredictor(lambda: polynomial(alpha=1.0)).fit(
        layer_features(src.layers), src.layers[list(SOURCES["incontext"])].to_numpy(float), src.models)
    target, _ = _other_device(_split(shipped, names[30:60]))
    y = target.layers[list(SOURCES["incontext"])].to_numpy(float)
    tr, _ = fit_transfer(source, layer_features(target.layers), y, target.models, methods=("ridge",))
    pred = transferred(source, tr, {INTERVAL_KEY: (-0.2, 0.2), "hardware": {"profile": "t"}})
    feats = layer_features(_split(shipped, names[60:62]).layers)
    per_layer = pred.predict_layers(feats)
    whole = pred.predict_models(per_layer, feats).set_index("config_id")
    sums = per_layer.groupby("config_id")["energy_j"].sum()
    assert whole["layer_sum_energy_j"].to_numpy() == pytest.approx(sums.loc[whole.index].to_numpy())
    assert (whole["energy_j"] - whole["correction_energy_j"]).to_numpy() == pytest.approx(sums.loc[whole.index])
    # the transfer's interval (+-0.2 in log), widened for out-of-range layers as for any predictor
    expected = np.exp(-0.2 - OUT_OF_RANGE_WIDENING * whole["out_of_range_share"].to_numpy())
    assert (whole["energy_lo_j"] / whole["energy_j"]).to_numpy() == pytest.approx(expected)
    assert source.metadata.get(INTERVAL_KEY) != (-0.2, 0.2)  # the source's own metadata untouched
    conv = per_layer["kind"] == "conv"
    src_layers = source.predict_layers(feats)
    assert (per_layer.loc[conv, "energy_j"] / src_layers.loc[conv, "energy_j"]).median() > 1.5


def test_unknown_methods_and_empty_bring_up_are_refused(shipped):
    names = sorted(shipped.models["architecture"].unique())
    src = _split(shipped, names[:20])
    source = LayerwisePredictor(lambda: polynomial()).fit(
        layer_features(src.layers), src.layers[list(SOURCES["incontext"])].to_numpy(float), src.models)
    feats = layer_features(src.layers)
    y = src.layers[list(SOURCES["incontext"])].to_numpy(float)
    with pytest.raises(TransferError, match="unknown transfer method"):
        fit_transfer(source, feats, y, src.models, methods=("magic",))
    with pytest.raises(TransferError, match="no measured whole model"):
        fit_transfer(source, feats, y, src.models.iloc[:0])
