"""Learning: features, architecture-held-out evaluation, MLflow logging, registry and champion."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import compose_cfg, foreign_profile, train_overrides
from mlflow import MlflowClient

from nnenergy import dataset as ds
from nnenergy import registry, tracking
from nnenergy.evaluate import metrics
from nnenergy.evaluate.splits import grouped_folds
from nnenergy.features.layer_features import KIND_FEATURES, kind_of, layer_features
from nnenergy.learn.layerwise import LayerwisePredictor
from nnenergy.schema import INPUT_COLUMNS, INTERVAL_KEY

REPORT_KINDS = {"dense", "conv", "pooling", "input", "padding", "normalization", "activation", "rescaling",
                "reshape", "dropout", "add", "multiply", "concatenate"}


def test_metrics_match_their_definitions():
    y, p = np.array([1.0, 2.0, 4.0]), np.array([1.1, 1.8, 4.0])
    assert metrics.rmspe(y, p) == pytest.approx(np.sqrt(np.mean([0.01, 0.01, 0.0])) * 100)
    assert metrics.mape(y, p) == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)
    assert metrics.within(y, p, 0.10) == pytest.approx(100.0)
    assert metrics.within(y, np.array([1.2, 2, 4]), 0.10) == pytest.approx(200 / 3)
    assert metrics.window_noise_rmspe([[1.0, 1.0, 1.0]]) == 0.0


def test_logged_metrics_read_at_four_significant_digits():
    assert tracking.rounded(12.3456789) == 12.35 and tracking.rounded(0.000123456) == 0.0001235
    assert tracking.rounded(123456) == 123456  # a count stays a count
    assert np.isnan(tracking.rounded(float("nan")))
    long = {"external_whole_energy_rmspe": 3.0, "family_whole_energy_within10": 50.0}
    assert tracking.headline_of({tracking.HEADLINE_NAMES[k]: v for k, v in long.items()}) == long


def test_interval_is_split_conformal_on_absolute_log_error():
    import pandas as pd

    from nnenergy.evaluate.levels import interval_from

    rng = np.random.default_rng(0)
    measured = np.exp(rng.normal(0, 1, 200))
    # Errors all on one side (a held-out family under-predicted): the interval still opens both ways.
    predicted = measured * np.exp(-np.abs(rng.normal(0, 0.3, 200)))
    lo, hi = interval_from(pd.DataFrame({"measured_energy_j": measured, "energy_j": predicted}))
    assert lo == -hi and hi > 0
    log_ratio = np.log(measured / predicted)
    assert 0.90 <= np.mean(np.abs(log_ratio) <= hi) <= 0.92  # finite-sample 90% quantile, not more
    small = pd.DataFrame({"measured_energy_j": [1.0, 2.0, 4.0], "energy_j": [1.1, 1.0, 4.0]})
    assert interval_from(small)[1] == pytest.approx(np.log(2.0))  # n=3: the largest error


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
    custom = out["layer_type"] == "MyCustomLayer"
    assert not out.loc[custom, "known"].iloc[0] and out.loc[custom, "out_of_range"].iloc[0]
    assert out.loc[~custom, "known"].all() and np.isfinite(out["energy_j"]).all()
    # A structural feature never seen (an 11x11 kernel), not only a larger size, is out of range.
    conv = feats[feats["kind"] == "conv"].head(1)
    assert not pred.predict_layers(conv)["out_of_range"].iloc[0]
    wide = conv.assign(kernel_area=121.0)
    assert pred.predict_layers(wide)["out_of_range"].iloc[0]


def test_folds_hold_out_whole_families(tiny_sweep):
    _, result = tiny_sweep
    folds = grouped_folds(result.models, 3)
    tested = [f for _, test in folds for f in test]
    assert sorted(tested) == sorted(result.models["family"].unique())  # each family tested once
    for train, test in folds:
        assert not train & test


def test_training_run_logs_metrics_plots_model_and_champion(trained_rf, tracking_uri):
    cfg, summary = trained_rf
    assert set(summary) == {"incontext"}
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    run = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list",
                             filter_string="tags.predictor = 'rf'")[0]
    m = run.data.metrics
    for key in ("family_whole_energy_rmspe", "family_whole_energy_within10", "family_whole_latency_rmspe"):
        assert np.isfinite(m[f"incontext.{key}"]), key
    # a quadratic mean of the errors is never below their mean, and the share is a percentage
    assert m["incontext.family_whole_energy_rmspe"] >= m["incontext.family_whole_energy_mape"]
    assert m["incontext.family_whole_energy_within10"] <= 100
    # the headline under one short name for every predictor (MLflow's columns show it whole), and as tags
    assert m["L1_rmspe"] == m["incontext.family_whole_energy_rmspe"]
    assert run.data.tags["headline.L1_rmspe"] == f"{m['L1_rmspe']:g}"
    assert m[tracking.SCORE_METRIC] == pytest.approx(registry.champion_score(tracking.headline_of(m)), rel=1e-3)
    # what is logged reads at 4 significant digits (counts as they are)
    assert all(v == tracking.rounded(v) for v in m.values() if np.isfinite(v))
    assert all(len(k) <= 13 for k in ["train_seconds", *tracking.HEADLINE_NAMES.values(), tracking.SCORE_METRIC])
    assert np.isfinite(m["noise_floor_whole_rmspe"])
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "plots/incontext")}
    assert {"plots/incontext/family_pred_vs_measured.png", "plots/incontext/error_by_kind.png"} <= arts
    assert run.inputs.dataset_inputs
    assert "config/resolved.yaml" in {a.path for a in client.list_artifacts(run.info.run_id, "config")}
    champ = client.get_model_version_by_alias(cfg.predictor.registered_name, registry.CHAMPION)
    assert champ.tags[registry.SPLIT_TAG]


def test_registered_champion_loads_and_predicts_per_layer_and_total(trained_rf, tiny_sweep, tracking_uri):
    cfg, _ = trained_rf
    _, result = tiny_sweep
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{cfg.predictor.registered_name}@champion")
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
    name = cfg.predictor.registered_name
    champ = client.get_model_version_by_alias(name, registry.CHAMPION)
    sid, score = champ.tags[registry.SPLIT_TAG], float(champ.tags[registry.SCORE_TAG])
    src = client.get_model_version(name, champ.version).source

    profile = champ.tags[registry.PROFILE_TAG]

    def add(score_value, split, on=profile):
        mv = client.create_model_version(name, src)
        client.set_model_version_tag(name, mv.version, registry.SPLIT_TAG, split)
        client.set_model_version_tag(name, mv.version, registry.SCORE_TAG, str(score_value))
        client.set_model_version_tag(name, mv.version, registry.PROFILE_TAG, on)
        return mv.version

    add(score + 50, sid)  # worse on the same split: no change
    assert str(registry.promote_best(client, name, sid)) == str(champ.version)
    better = add(score / 2, sid)
    assert str(registry.promote_best(client, name, sid)) == str(better)
    assert str(client.get_model_version_by_alias(name, registry.CHAMPION).version) == str(better)
    # Another profile's data (another split): its own champion, never the global one.
    other = foreign_profile()
    theirs = add(score / 4, "another-split", other)
    assert str(registry.promote_champions(client, name, "another-split", other)) == str(better)
    assert str(client.get_model_version_by_alias(name, registry.profile_alias(other)).version) == str(theirs)


def test_labels_of_another_speed_exponent_are_another_split():
    """Versions scored on labels normalised with another elasticity are never compared (`scale.relabel`)."""
    models = pd.DataFrame({"config_id": ["a", "b"], "hardware_id": ["h", "h"]})
    opts = {"n_folds": 5, "seed": 0}
    plain = registry.split_id(ds.Dataset(models, pd.DataFrame(), None, {"energy_j": 1.0}), opts)
    assert plain == registry.split_id(ds.Dataset(models, pd.DataFrame(), None, None), opts)  # ids kept without one
    el = {"energy_j": 1.0, "elasticity": {"energy": 0.45, "latency": 0.45}}
    a = registry.split_id(ds.Dataset(models, pd.DataFrame(), None, el), opts)
    b = registry.split_id(ds.Dataset(models, pd.DataFrame(), None, el | {"elasticity": {"energy": 0.29}}), opts)
    assert len({plain, a, b}) == 3
    assert a == registry.split_id(ds.Dataset(models.iloc[::-1], pd.DataFrame(), None, json.loads(json.dumps(el))), opts)


def test_a_version_that_ties_the_champion_says_so(tmp_path, new_store):
    """A second `make run` on the same data ties the champion, which keeps its alias: the new run's row
    names the alias and its holder instead of "–"."""
    client = MlflowClient(new_store(tmp_path))
    exp = client.create_experiment("t")
    runs = [client.create_run(exp).info.run_id for _ in range(3)]
    client.create_registered_model("nnenergy-layerwise")
    for rid, score in zip(runs, ("12.5", "12.5", "13.0")):
        mv = client.create_model_version("nnenergy-layerwise", f"runs:/{rid}/model", run_id=rid)
        for k, v in {registry.SPLIT_TAG: "s", registry.SCORE_TAG: score, "predictor": "catboost"}.items():
            client.set_model_version_tag("nnenergy-layerwise", mv.version, k, v)
    client.set_registered_model_alias("nnenergy-layerwise", registry.CHAMPION, "1")
    held = tracking._registry_aliases(client, runs)
    assert held == {runs[0]: ["`@champion`"], runs[1]: ["= `@champion` (version 1, same score)"]}


@pytest.mark.parametrize("predictor", ["poly", "xgb", "catboost"])
def test_each_layerwise_predictor_trains_and_logs(predictor, tiny_sweep, tracking_uri):
    from nnenergy.apps import train

    _, result = tiny_sweep
    overrides = train_overrides(predictor, result.output_dir, tracking_uri) + ["register.enabled=false"]
    summary = train.run(compose_cfg("train", overrides + ["evaluation.sources=[incontext,isolated]"]))
    for src in ("incontext", "isolated"):
        assert np.isfinite(summary[src]["family_whole_energy_rmspe"])


def test_shipped_dataset_loads_with_provenance():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "intel-xeon-avx512-2c" / "cpu"
    if not (path / ds.MODELS_FILE).exists():
        pytest.skip("no shipped dataset in this checkout")
    d = ds.load(path)
    assert d.models["architecture"].nunique() >= 25
    assert set(d.models["batch_size"]) >= {1, 2, 4} and d.models["input_size"].nunique() >= 3
    assert d.models["cpu_measurement"].notna().all() and d.layers["cpu_measurement"].notna().all()
    power = d.models["energy_j"] / d.models["latency_s"]  # watts: a unit error (kWh, mJ) lands far outside
    assert power.between(1, 5000).all(), power.describe()
    assert (path / ds.DATASHEET_FILE).exists()
    assert set(d.layers["config_id"]) == set(d.models["config_id"])


def test_level1_predictions_never_see_their_family(tiny_sweep):
    """Perturb every measurement of one family: its level-1 (held-out) predictions must not move,
    while the final predictor, which trains on everything, does."""
    from functools import partial

    from sklearn.ensemble import RandomForestRegressor

    from nnenergy.evaluate.levels import evaluate

    _, result = tiny_sweep
    opts = {"n_folds": 3, "seed": 0}
    make = lambda: LayerwisePredictor(partial(RandomForestRegressor, n_estimators=5, random_state=0),  # noqa: E731
                                      min_rows_per_kind=2)
    data = ds.load(result.output_dir)
    base = evaluate(make, data, "incontext", opts)
    data.models.loc[data.models["family"] == "tiny_mlp", ["energy_j", "latency_s"]] *= 10
    tl = data.layers["family"] == "tiny_mlp"
    data.layers.loc[tl, ["ctx_energy_j", "ctx_latency_s"]] *= 10
    moved = evaluate(make, data, "incontext", opts)
    a, b = (e.predictions["family"].set_index("config_id") for e in (base, moved))
    held = a["family"] == "tiny_mlp"
    assert np.allclose(a.loc[held, "energy_j"], b.loc[held, "energy_j"])  # predicted without its own data
    assert not np.allclose(a.loc[held, "measured_energy_j"], b.loc[held, "measured_energy_j"])
    feats = layer_features(result.layers)
    assert not np.allclose(base.predictor.predict_layers(feats)["energy_j"],
                           moved.predictor.predict_layers(feats)["energy_j"])
    assert base.predictor.metadata[INTERVAL_KEY][0] < base.predictor.metadata[INTERVAL_KEY][1]


def test_roofline_baseline_recovers_a_known_cost_model():
    """Per-call overhead + per-FLOP + per-byte costs, fitted non-negative on joules, by column name."""
    from nnenergy.learn.layerwise import _fit_roofline, _roofline

    rng = np.random.default_rng(0)
    cols = ["batch_size", "log_flops", "log_mem_bytes"]
    flops, mem = rng.uniform(1e5, 1e9, 200), rng.uniform(1e4, 1e8, 200)
    x = np.column_stack([np.ones(200), np.log1p(flops), np.log1p(mem)])
    y = np.column_stack([2e-4 + 3e-11 * flops + 5e-10 * mem, 1e-5 + 1e-12 * flops])
    coefs = _fit_roofline(x, y, cols)
    assert coefs[1:, 0] == pytest.approx([3e-11, 5e-10], rel=0.05)  # per FLOP, per byte
    assert coefs[0, 0] >= 2e-4  # the overhead is floored at 1% of the median
    assert np.median(np.abs(_roofline(coefs, x, cols)[:, 0] / y[:, 0] - 1)) < 0.05


@pytest.mark.parametrize("dataset, message", [("/nonexistent/data", "no dataset at"), ("TINY_ONE_FAMILY", "level 1")])
def test_train_refuses_what_it_cannot_evaluate(dataset, message, tiny_sweep, tmp_path):
    from nnenergy.apps import train

    if dataset == "TINY_ONE_FAMILY":  # a sweep of one architecture: nothing to hold out
        _, result = tiny_sweep
        one = ds.load(result.output_dir)
        keep = one.models["family"] == one.models["family"].iloc[0]
        ds.save(one.models[keep], one.layers[one.layers["config_id"].isin(one.models.loc[keep, "config_id"])],
                tmp_path / "one")
        dataset = str(tmp_path / "one")
    cfg = compose_cfg("train", [f"dataset={dataset}", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'never.db'}"])
    with pytest.raises(train.TrainInputError, match=message):
        train.run(cfg)


def test_a_predictor_of_the_rows_measured_before_a_date_learns_them_only_and_is_never_registered(
        tiny_sweep, tmp_path, new_store):
    """`measured_before`: a predictor to judge on later days' measurements trains on the older rows (kernels
    measured only later join nothing), says so in its tags and metadata, and never becomes a champion."""
    from nnenergy.apps import train

    _, result = tiny_sweep
    stored = ds.load(result.output_dir, stored=True)
    models = stored.models.copy()
    older = np.arange(len(models)) % 2 == 0  # every other configuration: every family keeps some
    models.loc[older, "measured_at"] = "2026-01-02T10:00:00+00:00"
    ds.save(models, stored.layers, tmp_path / "data")
    cut = ds.measured_before(ds.load(tmp_path / "data"), "2026-01-03")
    assert set(cut.models["config_id"]) == set(models.loc[older, "config_id"])
    assert set(cut.layers["config_id"]) == set(cut.models["config_id"])
    ds.save(stored.models.assign(source="kernel", measured_at="2026-01-04T00:00:00+00:00"), stored.layers,
            tmp_path / "kernels")  # measured after the cut

    uri = new_store(tmp_path / "store")
    train.run(compose_cfg("train", train_overrides("poly", tmp_path / "data", uri) + [
        "measured_before=2026-01-03", f"kernel_dataset={tmp_path / 'kernels'}"]))
    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list")
    assert run.data.tags["measured_before"] == "2026-01-03T00:00:00+00:00"
    inputs = {i.dataset.name: json.loads(i.dataset.profile) for i in run.inputs.dataset_inputs}
    assert "kernels" not in inputs and inputs["data"]["num_rows"] == older.sum()
    assert MlflowClient(uri).search_model_versions(f"run_id='{run.info.run_id}'") == []
    meta = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").metadata.metadata
    assert meta["measured_before"] == "2026-01-03T00:00:00+00:00"
    for bad, message in (("2026-01-01", "no row of"), ("someday", "not an ISO date")):
        with pytest.raises(train.TrainInputError, match=message):
            train.run(compose_cfg("train", train_overrides("poly", tmp_path / "data", uri)
                                  + [f"measured_before={bad}"]))


def test_the_train_command_reports_bad_input_in_one_line(tmp_path):
    """The command line's side of the refusals above: exit status 2, one line, no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-m", "nnenergy.apps.train", "dataset=/nonexistent/data",
                           f"mlflow.tracking_uri=sqlite:///{tmp_path / 'never.db'}"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-400:]
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("nnenergy train: no dataset at /nonexistent/data"), line


def test_main_job_trains_this_machines_profile_when_it_has_data(tmp_path, monkeypatch):
    from nnenergy import profiles
    from nnenergy.measure.hardware import current_profile_name

    mine, shipped = current_profile_name(), foreign_profile()  # the shipped data is never this CPU's here
    (tmp_path / shipped / "cpu").mkdir(parents=True)
    (tmp_path / shipped / "cpu" / ds.MODELS_FILE).write_text("x")
    monkeypatch.setattr(profiles, "SHIPPED", shipped)
    assert profiles.default_dataset(tmp_path) == str(tmp_path / shipped / "cpu")  # no data of this CPU yet
    (tmp_path / mine / "space").mkdir(parents=True)
    (tmp_path / mine / "space" / ds.MODELS_FILE).write_text("x")
    assert profiles.default_dataset(tmp_path) == str(tmp_path / mine / "space")
    assert set(profiles.profiles(tmp_path)) == {mine, shipped}


@pytest.mark.slow
def test_main_job_through_mlflow_run(tiny_sweep, tmp_path, new_store):
    """The README's main job on tiny data, through its MLflow-project path (`mlflow run . -e main`,
    without conda): the Hydra multirun becomes one parent run in `nnenergy-train` (not in MLflow's
    Default experiment) carrying its children's headline metrics and comparison, and the registry
    gets a champion, the better child. In a fresh process with no log level set, the job writes nothing
    to stderr (no MLflow warning, no TensorFlow line, no progress bar: only `mlflow run`'s own lines) and
    one summary table to stdout."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    _, result = tiny_sweep
    uri = new_store(tmp_path)
    mlflow_cli = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    overrides = (f"dataset={result.output_dir} evaluation.n_folds=3 predictor.model.min_rows_per_kind=2 "
                 f"predictor.regressor.n_estimators=10 hydra.sweep.dir={tmp_path / 'multirun'}")
    proc = subprocess.run([mlflow_cli, "run", ".", "-e", "main", "-P", "predictor=rf,xgb", "-P",
                           f"overrides={overrides}", "--env-manager", "local"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith("MLFLOW_") and k != "TF_CPP_MIN_LOG_LEVEL"},
                               "MLFLOW_TRACKING_URI": uri,  # a fresh shell: no experiment of this process
                               # with the venv activated, as the README says (MLproject calls `python`)
                               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr[-1500:]
    mlflow_own = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO mlflow\.projects[\w.]*: ")
    assert [line for line in proc.stderr.splitlines() if not mlflow_own.match(line)] == [], proc.stderr[-3000:]
    header = [line for line in proc.stdout.splitlines() if line.startswith("predictor ")]
    assert len(header) == 1 and "score" in header[0] and "registry" in header[0], proc.stdout
    assert not [line for line in proc.stdout.splitlines() if line.startswith(("[rf]", "[xgb]"))]  # no per-job lines
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list")
    [parent] = [r for r in runs if r.data.tags.get("nnenergy.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and sorted(r.data.tags["predictor"] for r in children) == ["rf", "xgb"]
    for r in children:
        assert parent.data.metrics[f"{r.data.tags['predictor']}.L1_rmspe"] == r.data.metrics["L1_rmspe"]
    arts = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"comparison.json", "comparison.png"} <= arts
    champ = MlflowClient().get_model_version_by_alias("nnenergy-layerwise", registry.CHAMPION)
    best = min(children, key=lambda r: r.data.metrics[tracking.SCORE_METRIC])
    assert champ.run_id == best.info.run_id
    # the parent's description: the table first, "champion" only where the registry put the alias
    note = MlflowClient().get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    row = next(line for line in note.splitlines() if line.startswith(f"| **{best.data.tags['predictor']}**"))
    assert note.startswith("| predictor | L1 families") and "`@champion`" in row and note.count("`@champion`") == 1
    # the runs page's shared view: this sweep's children, best first, the levels as columns
    exp = MlflowClient().get_experiment_by_name("nnenergy-train")
    view = json.loads(exp.tags[f"mlflow.sharedViewState.{tracking.COMPARE_VIEW}"])
    shown = mlflow.search_runs([exp.experiment_id], filter_string=view["searchFilter"], output_format="list")
    assert sorted(r.info.run_id for r in shown) == sorted(r.info.run_id for r in children)
    assert "metrics.`score`" in view["selectedColumns"] and view["orderByKey"] == "metrics.`score`"
    # the sweep's own view (a later sweep re-points COMPARE_VIEW, not it) and the champion's
    own = tracking.sweep_view(parent.info.run_id)
    assert exp.tags[tracking.NEWEST_SWEEP_TAG] == own
    assert json.loads(exp.tags[f"mlflow.sharedViewState.{own}"])["searchFilter"] == view["searchFilter"]
    champ_view = json.loads(exp.tags[f"mlflow.sharedViewState.{tracking.CHAMPION_VIEW}"])
    shown = mlflow.search_runs([exp.experiment_id], filter_string=champ_view["searchFilter"], output_format="list")
    assert champ.run_id in {r.info.run_id for r in shown}
    default = MlflowClient().get_experiment_by_name("Default")
    leftovers = mlflow.search_runs([default.experiment_id], output_format="list") if default else []
    # `mlflow run` opens a run in Default before our code starts: it is left only as a pointer
    assert all(not r.data.metrics for r in leftovers)


def test_compute_units_charged_nothing_are_left_out_of_training():
    """A 15-GFLOP convolution the profile charged ~0 J (its time went to another unit) is an attribution
    artifact: learned as a cost, it taught "VGG's second convolutions cost nothing" (-80% at level 1)."""
    from nnenergy.learn.layerwise import unattributed

    rng = np.random.default_rng(0)
    flops = 10 ** rng.uniform(6, 10, 50)
    feats = pd.DataFrame({"kind": ["conv"] * 50 + ["pooling"] * 2, "log_flops": np.log1p(np.r_[flops, 1e7, 1e7])})
    y = np.column_stack([np.r_[flops * 2e-10, 0.0, 0.0], np.r_[flops * 1e-11, 0.0, 0.0]])
    y[[3, 7], 0] = 1e-12 * flops[[3, 7]]  # charged elsewhere
    y[5, 0] = 0.5 * y[5, 0]  # merely cheap: kept
    flagged = unattributed(feats, y)
    assert list(np.flatnonzero(flagged)) == [3, 7]  # not the cheap one, never a non-compute kind
