"""Learning: features, architecture-held-out evaluation, MLflow logging, registry and champion."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from conftest import compose_cfg, train_overrides
from mlflow import MlflowClient

from nnenergy import dataset as ds
from nnenergy import registry
from nnenergy.evaluate import metrics
from nnenergy.evaluate.splits import fixed_split, grouped_folds
from nnenergy.features.layer_features import KIND_FEATURES, kind_of, layer_features
from nnenergy.learn.layerwise import LayerwisePredictor
from nnenergy.learn.pyfunc import INPUT_COLUMNS

REPORT_KINDS = {"dense", "conv", "pooling", "input", "padding", "normalization", "activation", "rescaling",
                "reshape", "dropout", "add", "multiply", "concatenate"}


def test_metrics_match_their_definitions():
    y, p = np.array([1.0, 2.0, 4.0]), np.array([1.1, 1.8, 4.0])
    assert metrics.rmspe(y, p) == pytest.approx(np.sqrt(np.mean([0.01, 0.01, 0.0])) * 100)
    assert metrics.mape(y, p) == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)
    assert metrics.within(y, p, 0.10) == pytest.approx(100.0)
    assert metrics.within(y, np.array([1.2, 2, 4]), 0.10) == pytest.approx(200 / 3)
    assert metrics.window_noise_rmspe([[1.0, 1.0, 1.0]]) == 0.0


def test_every_report_kind_has_an_extractor_and_unknown_types_fall_back(tiny_sweep):
    assert REPORT_KINDS <= set(KIND_FEATURES)
    assert kind_of("SomethingCustom") == "other"
    _, result = tiny_sweep
    feats = layer_features(result.layers)
    assert len(feats) == len(result.layers)
    assert list(feats["layer_name"]) == list(result.layers["layer_name"])  # row order kept
    assert feats[sorted({c for cols in KIND_FEATURES.values() for c in cols})].notna().all().all()
    odd = result.layers.head(3).copy()
    odd.loc[odd.index[1], "layer_type"] = "MyCustomLayer"
    model_rows = result.models
    pred = LayerwisePredictor(lambda: __import__("sklearn.linear_model").linear_model.Ridge(), min_rows_per_kind=2)
    pred.fit(feats, result.layers[["ctx_energy_j", "ctx_latency_s"]].to_numpy(), model_rows)
    out = pred.predict_layers(layer_features(odd))
    assert not out.loc[out["layer_type"] == "MyCustomLayer", "known"].iloc[0]
    assert (out["energy_j"] >= 0).all()


def test_folds_hold_out_whole_families(tiny_sweep):
    _, result = tiny_sweep
    folds = grouped_folds(result.models, 3)
    tested = [f for _, test in folds for f in test]
    assert sorted(tested) == sorted(result.models["family"].unique())  # each family tested once
    for train, test in folds:
        assert not train & test
    train, test = fixed_split(result.models, ["tiny_mlp", "NotThere"])
    assert test == {"tiny_mlp"} and "tiny_mlp" not in train
    with pytest.raises(ValueError):
        fixed_split(result.models, list(result.models["family"].unique()))


def test_training_run_logs_metrics_plots_model_and_champion(trained_rf, tracking_uri):
    cfg, summary = trained_rf
    assert set(summary) == {"incontext", "isolated"}
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    run = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list",
                             filter_string="tags.predictor = 'rf'")[0]
    m = run.data.metrics
    for src in ("incontext", "isolated"):
        for key in ("cv_whole_energy_j_rmspe", "cv_whole_energy_j_within10", "cv_whole_latency_s_rmspe",
                    "fixed_whole_energy_j_rmspe"):
            assert np.isfinite(m[f"{src}.{key}"]), key
    assert np.isfinite(m["noise_floor_whole_rmspe"])
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "plots/incontext")}
    assert {"plots/incontext/whole_pred_vs_measured.png", "plots/incontext/error_by_kind.png"} <= arts
    assert run.inputs.dataset_inputs
    assert "config/resolved.yaml" in {a.path for a in client.list_artifacts(run.info.run_id, "config")}
    champ = client.get_model_version_by_alias(cfg.register.name, registry.CHAMPION)
    assert champ.tags[registry.SPLIT_TAG]


def test_registered_champion_loads_and_predicts_per_layer_and_total(trained_rf, tiny_sweep, tracking_uri):
    cfg, _ = trained_rf
    _, result = tiny_sweep
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{cfg.register.name}@champion")
    one = result.layers[result.layers["config_id"] == "tiny_cnn|32|2"][INPUT_COLUMNS]
    out = model.predict(one)
    layers, corr, total = (out[out["row"] == r] for r in ("layer", "correction", "total"))
    assert len(layers) == len(one) and len(total) == 1
    assert total["energy_j"].iloc[0] == pytest.approx(layers["energy_j"].sum() + corr["energy_j"].iloc[0])
    assert total["energy_lo_j"].iloc[0] < total["energy_hi_j"].iloc[0]
    assert model.metadata.metadata["hardware"]["cpu_measurement"]


def test_champion_moves_only_to_a_better_model_on_the_same_split(trained_rf, tracking_uri):
    cfg, _ = trained_rf
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    name = cfg.register.name
    champ = client.get_model_version_by_alias(name, registry.CHAMPION)
    sid, score = champ.tags[registry.SPLIT_TAG], float(champ.tags[registry.METRIC_TAG])
    src = client.get_model_version(name, champ.version).source

    def add(score_value, split):
        mv = client.create_model_version(name, src)
        client.set_model_version_tag(name, mv.version, registry.SPLIT_TAG, split)
        client.set_model_version_tag(name, mv.version, registry.METRIC_TAG, str(score_value))
        return mv.version

    add(score + 50, sid)  # worse on the same split: no change
    assert str(registry.promote_best(client, name, sid)) == str(champ.version)
    better = add(score / 2, sid)
    assert str(registry.promote_best(client, name, sid)) == str(better)
    assert str(client.get_model_version_by_alias(name, registry.CHAMPION).version) == str(better)


@pytest.mark.parametrize("predictor", ["poly", "xgb", "catboost"])
def test_each_layerwise_predictor_trains_and_logs(predictor, tiny_sweep, tracking_uri):
    from nnenergy.apps import train

    _, result = tiny_sweep
    overrides = train_overrides(predictor, result.output_dir, tracking_uri) + ["register.enabled=false"]
    summary = train.run(compose_cfg("train", overrides))
    for src in ("incontext", "isolated"):
        assert np.isfinite(summary[src]["cv_whole_energy_j_rmspe"])


def test_shipped_dataset_loads_with_provenance():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "cpu"
    if not (path / ds.MODELS_FILE).exists():
        pytest.skip("no shipped dataset in this checkout")
    d = ds.load(path)
    assert d.models["architecture"].nunique() >= 25
    assert set(d.models["batch_size"]) >= {1, 2, 4} and d.models["input_size"].nunique() >= 3
    assert d.models["cpu_measurement"].notna().all() and d.layers["cpu_measurement"].notna().all()
    assert (d.models["energy_j"] > 0).all()
    assert (path / ds.DATASHEET_FILE).exists()
    assert set(d.layers["config_id"]) == set(d.models["config_id"])


def test_registered_model_never_sees_its_test_families(tiny_sweep):
    """Perturb every measurement of the fixed split's test family: the registered (fixed-split)
    predictor, its correction and its interval must not change at all."""
    from functools import partial

    from sklearn.ensemble import RandomForestRegressor

    from nnenergy.evaluate.crossval import INTERVAL_KEY, evaluate_source

    _, result = tiny_sweep
    opts = {"n_folds": 3, "seed": 0, "test_families": ["tiny_mlp"], "min_rows_per_kind": 2, "correction": "loglinear"}
    make = partial(RandomForestRegressor, n_estimators=5, random_state=0)
    data = ds.load(result.output_dir)
    base = evaluate_source(make, data, "incontext", opts)
    test = data.models["family"] == "tiny_mlp"
    data.models.loc[test, ["energy_j", "latency_s"]] *= 10
    tl = data.layers["family"] == "tiny_mlp"
    data.layers.loc[tl, ["ctx_energy_j", "ctx_latency_s"]] *= 10
    moved = evaluate_source(make, data, "incontext", opts)
    assert moved.fixed_predictor.metadata[INTERVAL_KEY] == base.fixed_predictor.metadata[INTERVAL_KEY]
    feats = layer_features(result.layers)
    a = base.fixed_predictor.predict_layers(feats)["energy_j"]
    b = moved.fixed_predictor.predict_layers(feats)["energy_j"]
    assert np.allclose(a, b)
    # ...while the test family's own measured values did move, so the check can fail
    assert not np.allclose(base.fixed_models["measured_energy_j"], moved.fixed_models["measured_energy_j"])
