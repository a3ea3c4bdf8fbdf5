"""The loop term: recurrent loops found in real described LSTM/GRU models (their steps, the weights a step
reads), and a layer-wise predictor that fits their per-step cost on sequence kernels and adds it to its
totals, unchanged without them."""

from __future__ import annotations

from functools import partial

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import compose_cfg

from nnenergy.features.layer_features import layer_features
from nnenergy.features.loops import loop_rows
from nnenergy.learn.loops import design
from nnenergy.schema import TARGETS

# What each op of a loop's body costs a step in the "sequence kernels" below, beyond the rows' own price.
STEP_J, STEP_S = 1e-4, 5e-6


def _seq(*blocks, steps: int = 12, width: int = 8):
    import keras

    inp = keras.Input((steps, width))
    x = inp
    for b in blocks:
        x = b(x)
    return keras.Model(inp, x)


def _table(model, batch: int, config_id: str) -> pd.DataFrame:
    from nnenergy.describe import describe_layers

    return describe_layers(model, batch_size=batch, config_id=config_id)


def test_loops_are_found_with_their_steps_and_weights():
    from keras import layers as L

    tables = pd.concat([
        _table(_seq(L.LSTM(16, return_sequences=True), L.LSTM(8), L.Dense(2)), 1, "stacked"),
        _table(_seq(L.LSTM(16), steps=30), 4, "long_b4"),
        # renamed: found by its structure, not its name
        _table(_seq(L.Bidirectional(L.GRU(8), name="encoder"), L.Dense(2)), 2, "encoder"),
        _table(_seq(L.Dense(16), L.Dense(2)), 1, "dense"),
    ], ignore_index=True)
    rows = loop_rows(layer_features(tables))
    loops = {cid: r for cid, r in rows.groupby("config_id")}
    stacked, long_b4, encoder = loops["stacked"], loops["long_b4"], loops["encoder"]
    assert list(stacked["steps"]) == [12, 12]
    assert (stacked["steps"] * stacked["ops"]).sum() > 10 * 24  # a dozen element-wise ops and products a step
    # per step, the gate products read 4 x units x (inputs + units) weights
    assert (stacked["steps"] * stacked["weights"]).sum() == pytest.approx(12 * (4 * 16 * (8 + 16) + 4 * 8 * (16 + 8)))
    assert list(long_b4["steps"]) == [30]  # steps, not batch x steps
    assert list(encoder["steps"]) == [12, 12]
    # its second direction is flagged (it may run beside the first); a stacked layer's is not
    assert list(encoder.loc[encoder["paired"].astype(bool), "steps"]) == [12]
    assert not stacked["paired"].any() and not long_b4["paired"].any()
    assert "dense" not in loops


PAIRED_SAVES = 0.5  # of a step's price, in a Bidirectional's second direction


def _priced_steps(feats: pd.DataFrame) -> pd.Series:
    """Op-steps per configuration, a second direction's at `PAIRED_SAVES` off (its design column is negative)."""
    d = design(feats)
    return d["op_steps"] + PAIRED_SAVES * d["paired_op_steps"]


@pytest.fixture(scope="module")
def fitted():
    """A layer-wise predictor trained on tiny described networks (targets from their FLOPs and bytes), and
    sequence kernels measured at its own totals plus `STEP_J`/`STEP_S` an op a step, half that in the
    second direction of a Bidirectional layer (`PAIRED_SAVES`)."""
    from keras import layers as L

    from nnenergy import zoo
    from nnenergy.learn.layerwise import LayerwisePredictor
    from nnenergy.learn.regressors import catboost

    nets = pd.concat([_table(zoo.build(name, 32).model, b, f"{name}|{b}") for name in ("tiny_cnn", "tiny_mlp")
                      for b in (1, 2, 4, 8)], ignore_index=True)
    feats = layer_features(nets)
    y = np.column_stack([1e-9 * nets["flops"] + 1e-9 * nets["mem_bytes"] + 1e-5,
                         4e-11 * nets["flops"] + 4e-11 * nets["mem_bytes"] + 4e-7])

    def make():
        return LayerwisePredictor(make_regressor=partial(catboost, iterations=20, thread_count=1),
                                  min_rows_per_kind=2, correction="none")

    plain = make().fit(feats, y)
    kernels = pd.concat([_table(_seq(cell(u), steps=s), b, f"{cell.__name__}{u}|{s}|{b}")
                         for cell, u, s in ((L.LSTM, 16, 8), (L.LSTM, 32, 20), (L.GRU, 16, 40))
                         for b in (1, 2, 4, 16)]
                        + [_table(_seq(L.Bidirectional(cell(u)), steps=s), b, f"bi{cell.__name__}{u}|{s}|{b}")
                           for cell, u, s in ((L.LSTM, 16, 10), (L.GRU, 24, 30)) for b in (1, 4, 16)],
                        ignore_index=True)
    kfeats = layer_features(kernels)
    whole = plain.predict_whole(kfeats).set_index("config_id")
    steps = _priced_steps(kfeats).reindex(whole.index).to_numpy()
    models = pd.DataFrame({"config_id": whole.index, "energy_j": whole["energy_j"].to_numpy() + STEP_J * steps,
                           "latency_s": whole["latency_s"].to_numpy() + STEP_S * steps})
    return plain, make().fit(feats, y, loops=(kfeats, models))


def test_the_loop_term_prices_each_step_and_nothing_else(fitted, tmp_path):
    from keras import layers as L

    plain, looped = fitted
    assert plain.loop_term_ is None and "loop_term" not in plain.metadata
    assert looped.metadata["loop_term"]["n_configs"] == 18
    new = pd.concat([_table(_seq(L.LSTM(24), L.Dense(2), steps=100), 2, "lstm100"),
                     _table(_seq(L.Bidirectional(L.LSTM(20)), L.Dense(2), steps=50), 8, "bilstm50"),
                     _table(_seq(L.Dense(16), L.Dense(2)), 2, "dense")], ignore_index=True)
    feats = layer_features(new)
    path = tmp_path / "p.joblib"
    joblib.dump(looped, path)  # the term travels inside the logged predictor
    with_term = joblib.load(path).predict_whole(feats).set_index("config_id")
    without = plain.predict_whole(feats).set_index("config_id")
    extra = (with_term - without)[list(TARGETS)]
    priced = _priced_steps(feats)
    for name in ("lstm100", "bilstm50"):  # the second direction's saving is learned too
        np.testing.assert_allclose(extra.loc[name], [priced[name] * STEP_J, priced[name] * STEP_S], rtol=0.02)
    op_steps = priced["lstm100"]
    np.testing.assert_allclose(extra.loc["dense"], [0.0, 0.0], atol=1e-12)  # no loop, no term
    # the model-level row carries it: the per-layer rows are what they were
    np.testing.assert_allclose(with_term.loc["lstm100", "correction_energy_j"], op_steps * STEP_J, rtol=0.02)
    np.testing.assert_allclose(with_term["layer_sum_energy_j"], without["layer_sum_energy_j"])


def test_training_finds_the_sequence_kernels_beside_the_dataset(tmp_path):
    for name in ("space", "kernels_seq"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "models.parquet").write_bytes(b"")
    cfg = compose_cfg("train", [f"dataset={tmp_path / 'space'}"])
    assert cfg.loop_kernel_dataset == str(tmp_path / "kernels_seq")
    (tmp_path / "kernels_seq" / "models.parquet").unlink()
    assert compose_cfg("train", [f"dataset={tmp_path / 'space'}"]).loop_kernel_dataset is None


def test_a_batch_1_loop_streaming_its_weights_is_priced_at_its_own_rate(fitted):
    """At batch 1 a loop whose weights outgrow the cache streams them from memory every step: kernels that
    cost `STREAM_J` a weight-MB a step more there (and nowhere else) make training choose the split design,
    and a new model is priced by it."""
    from keras import layers as L

    from nnenergy.learn.loops import fit_loop_term

    plain, _ = fitted
    stream_j = 2e-3
    kernels = pd.concat([_table(_seq(cell(u), steps=8), b, f"{cell.__name__}{u}|{b}")
                         for cell, u in ((L.LSTM, 16), (L.LSTM, 256), (L.GRU, 16), (L.GRU, 320))
                         for b in (1, 2, 4, 16)], ignore_index=True)

    def cost(feats: pd.DataFrame) -> pd.Series:
        d = design(feats, cache_mb=1.0)  # the kernels' truth: a cache of 1 MB (LSTM(256): 1.09 MB a step)
        return STEP_J * d["op_steps"] + stream_j * d["weight_mb_steps_b1_streamed"]

    kfeats = layer_features(kernels)
    whole = plain.predict_whole(kfeats).set_index("config_id")
    models = pd.DataFrame({"config_id": whole.index, "energy_j": whole["energy_j"] + cost(kfeats)[whole.index],
                           "latency_s": whole["latency_s"] + cost(kfeats)[whole.index] * STEP_S / STEP_J})
    term = fit_loop_term(plain, kfeats, models)
    assert term.cache_mb in (0.5, 1.0) and "weight_mb_steps_b1_streamed" in term.columns  # both split these loops
    new = layer_features(pd.concat([_table(_seq(L.LSTM(288), steps=10), b, f"lstm288|{b}") for b in (1, 8)],
                                   ignore_index=True))
    expected = cost(new)
    assert expected["lstm288|1"] > 2 * STEP_J * design(new)["op_steps"]["lstm288|1"]  # streaming dominates
    np.testing.assert_allclose(term.costs(new, np.array(["lstm288|1", "lstm288|8"]))[:, 0],
                               expected[["lstm288|1", "lstm288|8"]], rtol=0.02)


def test_a_loop_whose_weights_spill_past_the_cache_is_priced_by_the_part_that_spills(fitted):
    """A step reads the part of its weights that fits the cache at the cache's rate and streams only the rest:
    kernels built so (a 1 MB cache, at batch 1) make training choose the spilled split at that size over
    splitting loops whole, and a new model whose weights straddle the cache is priced by both parts."""
    from keras import layers as L

    from nnenergy.learn.loops import fit_loop_term

    plain, _ = fitted
    in_cache_j, spilled_j = 2e-4, 3e-3  # a weight-MB a step, at batch 1
    kernels = pd.concat([_table(_seq(cell(u), steps=8), b, f"{cell.__name__}{u}|{b}")
                         for cell, u in ((L.LSTM, 16), (L.LSTM, 256), (L.GRU, 320), (L.LSTM, 512))
                         for b in (1, 2, 4, 16)], ignore_index=True)

    def cost(feats: pd.DataFrame) -> pd.Series:
        d = design(feats, cache_mb=1.0, spill=True)  # the kernels' truth
        return (STEP_J * d["op_steps"] + in_cache_j * d["weight_mb_steps_b1_in_cache"]
                + spilled_j * d["weight_mb_steps_b1_spilled"])

    kfeats = layer_features(kernels)
    whole = plain.predict_whole(kfeats).set_index("config_id")
    truth = cost(kfeats)[whole.index]
    models = pd.DataFrame({"config_id": whole.index, "energy_j": whole["energy_j"] + truth,
                           "latency_s": whole["latency_s"] + truth * STEP_S / STEP_J})
    term = fit_loop_term(plain, kfeats, models)
    assert (term.cache_mb, term.spill) == (1.0, True) and term.summary()["spill"] is True
    assert "weight_mb_steps_b1_spilled" in term.columns and term.cv_rmspe < 1.0
    new = layer_features(pd.concat([_table(_seq(L.LSTM(384), steps=10), b, f"lstm384|{b}") for b in (1, 8)],
                                   ignore_index=True))  # 2.4 MB a step: 1 MB in the cache, 1.4 MB spilled
    d, parts = design(new), design(new, cache_mb=1.0, spill=True)
    w = d.loc["lstm384|1", "weight_mb_steps"]  # 10 steps of ~2.4 MB
    assert parts.loc["lstm384|1", "weight_mb_steps_b1_in_cache"] == pytest.approx(10 * 1.0)
    assert parts.loc["lstm384|1", "weight_mb_steps_b1_spilled"] == pytest.approx(w - 10.0) and w > 20
    assert parts.loc["lstm384|8", "weight_mb_steps_batched_spilled"] == pytest.approx(w - 10.0)
    expected = cost(new)
    np.testing.assert_allclose(term.costs(new, np.array(["lstm384|1", "lstm384|8"]))[:, 0],
                               expected[["lstm384|1", "lstm384|8"]], rtol=0.02)


def test_loops_a_predictor_cannot_price_are_named_and_widen_the_interval(store, fitted, tmp_path, capsys):
    """The tiny store's predictor was trained without sequence kernels, so it has no loop term: a recurrent
    model's loop is named (API, JSON, one line on stderr) and the interval widens above; a predictor with a
    term names nothing."""
    import json

    from keras import layers as L

    import nnenergy
    from nnenergy import cli
    from nnenergy.predict.loading import CachedPredictor
    from nnenergy.predict.unknown import LOOP_FACTOR, unpriced_loops, widen_for_loops

    model = _seq(L.LSTM(16, name="encoder"), L.Dense(2), steps=20)
    p = nnenergy.predict(model, batch_size=2, tracking_uri=store)
    assert p.unpriced_loops == ["encoder"] and p.energy_interval_j[1] > p.energy_j
    dense = nnenergy.predict(_seq(L.Dense(16), L.Dense(2)), batch_size=2, tracking_uri=store)
    assert dense.unpriced_loops == []
    layers = _table(model, 2, "rnn")
    assert unpriced_loops(layers, {}) == ["encoder"] and unpriced_loops(layers, {"loop_term": {"n_configs": 9}}) == []
    lo, hi = widen_for_loops([1.0, 2.0], 1.5, layers, ["encoder"])  # the loop is most of the model's rows
    assert lo == 1.0 and 2.0 * LOOP_FACTOR ** 0.5 < hi <= 2.0 * LOOP_FACTOR
    assert widen_for_loops([1.0, 2.0], 1.5, layers, []) == [1.0, 2.0]
    _, looped = fitted
    term = (CachedPredictor(looped, looped.metadata, "layerwise"), {"uri": "test", "version": None})
    assert nnenergy.predict(model, batch_size=2, predictor=term).unpriced_loops == []

    path = tmp_path / "rnn.keras"
    model.save(path)
    assert cli.main(["predict", str(path), "--json", "--allow-unknown", "--tracking-uri", store]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["unpriced_loops"] == ["encoder"]
    assert "1 recurrent loop(s) (encoder) priced without their per-step cost" in err
