"""Each evaluation level reported on its transformer and recurrent configurations, and `external_hub` as a
second level-2 set: the workload read from real described models, and a real training run on the tiny
dataset scored on a measured `external_hub` of tiny attention and LSTM models."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import compose_cfg, train_overrides

from nnenergy import tracking


def _models():
    import keras
    import tensorflow as tf
    from keras import layers as L

    class Attend(keras.layers.Layer):
        """A custom attention from `tf.matmul` of two activations: no Keras sublayer says so."""

        def call(self, x):
            scores = tf.nn.softmax(tf.matmul(x, x, transpose_b=True))
            return tf.matmul(scores, x)

    def seq(*blocks, shape=(12, 8)):
        inp = keras.Input(shape)
        x = inp
        for b in blocks:
            x = b(x)
        return keras.Model(inp, x)

    def mha():
        inp = keras.Input((16, 32))
        return keras.Model(inp, L.Dense(4)(L.MultiHeadAttention(2, 16)(inp, inp)))

    def attention_then_lstm():
        inp = keras.Input((12, 8))
        return keras.Model(inp, L.LSTM(4)(Attend()(inp)))

    from nnenergy import zoo

    return {
        "mha": (mha(), "transformer"),
        "custom_attention": (seq(Attend(), L.Dense(4)), "transformer"),
        "lstm": (seq(L.LSTM(16, return_sequences=True), L.LSTM(8), L.Dense(2)), "recurrent"),
        "bigru": (seq(L.Bidirectional(L.GRU(8)), L.Dense(2)), "recurrent"),
        "both": (attention_then_lstm(), "transformer"),
        "tiny_cnn": (zoo.build("tiny_cnn", 32).model, "other"),
    }


def test_workload_is_read_from_the_described_layer_table():
    from nnenergy.describe import describe_layers
    from nnenergy.describe_traced import RECURRENT_TYPES
    from nnenergy.features import workload
    from nnenergy.features.workload import workload_of

    assert RECURRENT_TYPES <= workload.RECURRENT_TYPES  # every loop describe traces is a recurrent row

    models = _models()
    table = pd.concat([describe_layers(m, 1, config_id=name) for name, (m, _) in models.items()], ignore_index=True)
    assert "LSTM" not in set(table["layer_type"])  # traced op by op: the name says where the rows came from
    assert workload_of(table).to_dict() == {name: want for name, (_, want) in models.items()}


def _measure_external_hub(root, tracking_uri):
    """A tiny `external_hub`: a MultiHeadAttention model and an LSTM model saved as files, measured."""
    from nnenergy.apps import measure

    files = []
    for name, (model, _) in _models().items():
        if name in ("mha", "lstm"):
            files.append(str(root / f"{name}.keras"))
            model.save(files[-1])
    cfg = compose_cfg("measure", [
        "sweep=tiny", f"sweep.architectures=[{','.join(files)}]", "sweep.isolate_share=0.0",
        f"sweep.output_dir={root / 'external_hub'}", f"sweep.cache_dir={root / 'cache'}",
        f"mlflow.tracking_uri={tracking_uri}",
    ])
    return measure.run(cfg).output_dir


@pytest.mark.slow
def test_training_scores_external_hub_apart_with_its_transformer_and_recurrent_rows(tiny_sweep, tracking_uri,
                                                                                    tmp_path):
    from nnenergy.apps import train

    hub = _measure_external_hub(tmp_path, tracking_uri)
    _, result = tiny_sweep
    cfg = compose_cfg("train", train_overrides("rf", result.output_dir, tracking_uri)
                      + ["register.enabled=false", "external_dataset=null", f"external_hub_dataset={hub}",
                         "mlflow.experiment=workload-levels"])
    summary = train.run(cfg)["incontext"]
    run = mlflow.search_runs(experiment_names=["workload-levels"], output_format="list")[0]
    m = run.data.metrics
    # the hub set on its own level; `external` (L2) absent, not filled with the hub's figures
    assert m["L2h_rmspe"] == tracking.rounded(summary["external_hub_whole_energy_rmspe"]) and "L2_rmspe" not in m
    assert m["incontext.external_hub_whole_energy_n"] == 4  # 2 models x batches 1, 2
    assert m["L2h_trf_n"] == 2 and m["L2h_rnn_n"] == 2 and np.isfinite(m["L2h_trf_rmspe"])
    assert np.isfinite(m["L2h_rnn_w10"]) and "L1_trf_n" not in m  # the tiny dataset holds no transformer
    assert all(len(k) <= 13 for k in m if k.startswith("L"))  # MLflow's run-table columns show them whole
    arts = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="predictions/incontext")
    hub_rows = pd.read_csv(f"{arts}/external_hub_predictions.csv")
    assert sorted(hub_rows["workload"]) == ["recurrent", "recurrent", "transformer", "transformer"]
    text = tracking.comparison_text(pd.DataFrame([{"predictor": "rf", "champion_score": 1.0, **summary}]))
    assert "L2h keras-hub" in text and "transformer rows" in text and "L2h" in text.splitlines()[1]


def test_a_profile_without_external_hub_skips_it_in_one_info_line(tiny_sweep, tracking_uri, caplog):
    from nnenergy.apps import train

    _, result = tiny_sweep
    cfg = compose_cfg("train", train_overrides("rf", result.output_dir, tracking_uri))
    assert cfg.external_hub_dataset is None  # no sibling `external_hub` beside the tiny dataset
    train._SAID.discard(str(cfg.dataset))  # said once per process: an earlier training in this session said it
    with caplog.at_level(logging.INFO, logger="nnenergy.apps.train"):
        assert train._external_hub(cfg) is None and train._external_hub(cfg) is None
    assert [r.getMessage() for r in caplog.records if "external_hub" in r.getMessage()] == [
        f"no external_hub dataset beside {result.output_dir}: level 2 on keras-hub models (L2h) skipped"]
