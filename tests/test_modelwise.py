"""Model-wise PyTorch predictors: each trains a few epochs on the tiny dataset and logs a loadable model."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from conftest import compose_cfg, train_overrides

from nnenergy.features.layer_features import layer_features
from nnenergy.learn.modelwise import ModelwisePredictor, model_features
from nnenergy.schema import INPUT_COLUMNS


def test_model_features_are_one_finite_row_per_configuration(tiny_sweep):
    _, result = tiny_sweep
    mf = model_features(layer_features(result.layers))
    assert len(mf) == len(result.models)
    assert np.isfinite(mf.to_numpy()).all()


def test_training_is_seeded(tiny_sweep):
    _, result = tiny_sweep
    feats = layer_features(result.layers)
    a = ModelwisePredictor(arch="rnn", epochs=3, seed=1).fit(feats, None, result.models).predict(feats)
    b = ModelwisePredictor(arch="rnn", epochs=3, seed=1).fit(feats, None, result.models).predict(feats)
    assert np.allclose(a["energy_j"], b["energy_j"])


@pytest.fixture(scope="module")
def train_modelwise(tiny_sweep, tracking_uri):
    """`train_modelwise(predictor)` -> its training summary; each predictor trained (and registered) once."""
    from nnenergy.apps import train

    _, result = tiny_sweep
    summaries = {}

    def run(predictor: str) -> dict:
        if predictor not in summaries:
            overrides = train_overrides(predictor, result.output_dir, tracking_uri) + [
                "predictor.model.epochs=4", "predictor.model.patience=2"]
            summaries[predictor] = train.run(compose_cfg("train", overrides))
        return summaries[predictor]
    return run


@pytest.mark.parametrize("predictor", ["mlp", "rnn", "embedded_rnn"])
def test_modelwise_variant_trains_logs_and_loads(predictor, train_modelwise, tiny_sweep, tracking_uri):
    _, result = tiny_sweep
    summary = train_modelwise(predictor)
    assert np.isfinite(summary["modelwise"]["family_whole_energy_rmspe"])
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/nnenergy-{predictor}@champion")
    out = model.predict(result.layers[result.layers["config_id"] == "tiny_cnn|32|1"][INPUT_COLUMNS])
    assert list(out["row"]) == ["total"] and out["energy_j"].iloc[0] > 0
    run = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list",
                             filter_string=f"tags.predictor = '{predictor}'")[0]
    assert "val_loss" in run.data.metrics


def test_predict_cli_with_a_modelwise_predictor(train_modelwise, tracking_uri, capsys):
    import json

    from nnenergy.cli import predict as cli

    train_modelwise("mlp")  # registered as nnenergy-mlp@champion (trained once for the module)
    rc = cli.main(["MobileNetV3Small", "--input-shape", "32,32,3", "--json", "--tracking-uri", tracking_uri,
                   "--model-uri", "models:/nnenergy-mlp@champion"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["energy_j"] > 0 and d["layers"] == [] and d["correction_energy_j"] == 0
    assert cli.main(["MobileNetV3Small", "--input-shape", "32,32,3", "--tracking-uri", tracking_uri,
                     "--model-uri", "models:/nnenergy-mlp@champion"]) == 0
    assert "no per-layer breakdown" in capsys.readouterr().out
