"""The kernel sweep: single-kernel models, their shapes, measuring them, and learning from them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import compose_cfg, train_overrides

from nnenergy import dataset as ds
from nnenergy import registry
from nnenergy.arch import kernels, spec_from_name
from nnenergy.arch.blocks import apply_blocks
from nnenergy.arch.graphs import CostGraph
from nnenergy.features.layer_features import layer_features
from nnenergy.learn.layerwise import LayerwisePredictor, _baseline, _fit_efficiency

SEEDS = range(400)


@pytest.fixture(scope="module")
def specs():
    return [kernels.sample_kernel_spec(s) for s in SEEDS]


def test_kernel_names_rebuild_the_same_kernel_and_cover_every_kind(specs):
    assert {s.kind for s in specs} == set(kernels.KERNEL_KINDS)
    for s in specs[:len(kernels.KERNEL_KINDS)]:
        assert spec_from_name(s.name) == s == kernels.kernel_spec_from_name(kernels.kernel_name(s.seed))
        assert kernels.kernel_kind(s.name) == s.kind
    with pytest.raises(ValueError, match="generator version"):
        spec_from_name("ker9_s000001")


def test_kernel_models_build_with_the_layers_the_cost_graph_counts():
    from nnenergy import zoo

    for seed in range(len(kernels.KERNEL_KINDS)):
        spec = kernels.sample_kernel_spec(seed)
        if kernels.estimated_seconds(spec, 1) > 0.05:  # building is cheap, but keep the test's memory small
            continue
        built = zoo.build(spec.name, None)
        assert built.source == "kernel" and built.family == "kernel"
        g = CostGraph()
        apply_blocks(g, spec.input_shape, spec.blocks)
        assert sorted(layer.name for layer in built.model.layers) == sorted(g.names)  # Keras orders branches its way


def test_kernel_shapes_reach_past_the_largest_layers_of_real_networks(specs):
    """VGG16's 224 px 64->64 conv (1.85e9 MACs), its 25088->4096 Dense, 2048+ channels, 577 tokens."""
    by_kind = {k: [s for s in specs if s.kind == k] for k in kernels.KERNEL_KINDS}
    assert max(kernels.cost(s)[0] for s in by_kind["conv"] + by_kind["conv_add"]) > 1.85e9
    assert max(s.input_shape[-1] for s in by_kind["depthwise"] + by_kind["pool"] + by_kind["norm"]) >= 2048
    assert max(s.input_shape[0] for s in by_kind["dense"]) >= 25088
    assert max(s.input_shape[0] for s in by_kind["attention"]) >= 577
    assert max(s.input_shape[0] for s in by_kind["conv"]) >= 200
    for s in specs[:50]:
        batches = kernels.sample_batches(s, np.random.default_rng(0), 2)
        assert 1 <= len(batches) <= 2 and all(b in (1, 2, 4, 8, 16, 32, 64) for b in batches)
        assert all(kernels.estimated_seconds(s, b) <= 0.8 for b in batches) or batches == [1]


def _cheap_seed_range() -> list[int]:
    """Two consecutive kernel seeds cheap enough to measure in a test."""
    for s in range(200):
        if all(kernels.estimated_seconds(kernels.sample_kernel_spec(t), 1) < 5e-4 for t in (s, s + 1)):
            return [s, s + 2]
    raise AssertionError("no two cheap consecutive kernels")


@pytest.fixture(scope="module")
def kernel_sweep(tmp_path_factory, tracking_uri):
    from nnenergy.apps import measure

    root = tmp_path_factory.mktemp("kernels")
    cfg = compose_cfg("measure", [
        "sweep=kernels", f"sweep.generated.kernel_seeds={_cheap_seed_range()}", "sweep.generated.batch_sizes=[1,2]",
        "sweep.generated.configs_per_architecture=1",
        "sweep.protocol.rounds=2", "sweep.protocol.windows=1", "sweep.protocol.min_seconds=0.02",
        "sweep.protocol.warmup=1", "sweep.protocol.visits=1",
        f"sweep.output_dir={root / 'kernels'}", f"sweep.cache_dir={root / 'cache'}",
        f"mlflow.tracking_uri={tracking_uri}",
    ])
    return measure.run(cfg)


def test_kernel_sweep_measures_single_kernels_with_provenance(kernel_sweep):
    m, layers = kernel_sweep.models, kernel_sweep.layers
    assert len(m) == 2 and set(m["source"]) == {"kernel"} and m["architecture"].str.match(r"^ker1_s\d{6}$").all()
    assert (m["energy_j"] > 0).all() and m["cpu_measurement"].notna().all() and m["profile"].nunique() == 1
    assert set(layers["config_id"]) == set(m["config_id"])
    assert layers.groupby("config_id")["ctx_share"].sum().round(6).le(1.0).all()


def test_training_adds_kernel_rows_of_the_same_profile_only(kernel_sweep, tiny_sweep, tracking_uri, tmp_path):
    from nnenergy.apps import train

    _, tiny = tiny_sweep
    base = train_overrides("rf", tiny.output_dir, tracking_uri) + ["register.enabled=false", "external_dataset=null"]
    summary = train.run(compose_cfg("train", base + [f"kernel_dataset={kernel_sweep.output_dir}"]))
    assert math.isfinite(summary["incontext"]["family_whole_energy_rmspe"])
    import mlflow

    run = mlflow.search_runs(experiment_names=["nnenergy-train"], output_format="list",
                             order_by=["start_time DESC"], max_results=1)[0]
    assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {"kernels"}  # logged as training data
    # A dataset that is not a kernel sweep (its rows could be held out and scored) is refused.
    with pytest.raises(train.TrainInputError, match="not a kernel sweep"):
        train.run(compose_cfg("train", base + [f"kernel_dataset={tiny.output_dir}"]))
    # Another CPU's kernels never join: one line, nothing trained.
    other = ds.load(kernel_sweep.output_dir)
    other.models["profile"] = "another-cpu-2c"
    ds.save(other.models, other.layers, tmp_path / "k")
    with pytest.raises(train.TrainInputError, match="two CPUs"):
        train.run(compose_cfg("train", base + [f"kernel_dataset={tmp_path / 'k'}"]))


def test_rescaled_kernel_rows_are_put_on_the_in_context_scale(tiny_sweep):
    """Kernel rows measured 3x dearer than in context (call overhead, cold caches): "rescaled" learns the
    3x per kind and predicts networks as if they were absent; "raw" is pulled up by them."""
    from functools import partial

    from sklearn.ensemble import RandomForestRegressor

    _, result = tiny_sweep
    data = ds.load(result.output_dir)
    feats = layer_features(data.layers)
    y = data.layers[["ctx_energy_j", "ctx_latency_s"]].to_numpy(float)
    twin = feats.assign(config_id="k|" + feats["config_id"])
    k_models = data.models.assign(config_id="k|" + data.models["config_id"], source="kernel")
    all_feats = pd.concat([feats, twin], ignore_index=True)
    all_y = np.vstack([y, 3 * y])
    all_models = pd.concat([data.models, k_models], ignore_index=True)

    def fit(rows):
        make = partial(RandomForestRegressor, n_estimators=10, random_state=0)
        return LayerwisePredictor(make, min_rows_per_kind=2, kernel_rows=rows, min_kernels_per_kind=2).fit(
            all_feats, all_y, all_models)

    alone = LayerwisePredictor(partial(RandomForestRegressor, n_estimators=10, random_state=0),
                               min_rows_per_kind=2).fit(feats, y, data.models)
    rescaled, raw = fit("rescaled"), fit("raw")
    ratios = rescaled.kernel_context_
    for kind in ("conv", "dense", "pooling"):  # kinds with a cost (fused ops read 0 alone and in context)
        assert ratios[kind][0] == pytest.approx(3.0, rel=0.25) and ratios[kind][1] == pytest.approx(3.0, rel=0.25)
    totals = {name: p.predict_whole(feats)["energy_j"].sum() for name, p in
              (("alone", alone), ("rescaled", rescaled), ("raw", raw))}
    assert totals["rescaled"] == pytest.approx(totals["alone"], rel=0.2)
    assert totals["raw"] > 1.4 * totals["alone"]


def test_kernel_rows_that_read_zero_in_context_neither_train_nor_set_the_rescaling(tiny_sweep):
    """A traced RNN's loop charges its kernel's rows nothing in context: those zero rows, here twice as many
    as the real kernel rows, must not become the kind's median ratio (which multiplied every real dense
    kernel row by hundreds) nor be learned as "this costs nothing"."""
    from functools import partial

    from sklearn.ensemble import RandomForestRegressor

    _, result = tiny_sweep
    data = ds.load(result.output_dir)
    feats = layer_features(data.layers)
    y = data.layers[["ctx_energy_j", "ctx_latency_s"]].to_numpy(float)
    prefixes = ("k|", "z1|", "z2|")  # real kernels 3x dearer alone; two copies that read 0 everywhere
    all_feats = pd.concat([feats] + [feats.assign(config_id=p + feats["config_id"]) for p in prefixes],
                          ignore_index=True)
    all_y = np.vstack([y, 3 * y, 0 * y, 0 * y])
    all_models = pd.concat([data.models] + [data.models.assign(config_id=p + data.models["config_id"],
                                                               source="kernel") for p in prefixes],
                           ignore_index=True)
    make = partial(RandomForestRegressor, n_estimators=10, random_state=0)
    alone = LayerwisePredictor(make, min_rows_per_kind=2).fit(feats, y, data.models)
    joined = LayerwisePredictor(make, min_rows_per_kind=2, min_kernels_per_kind=2).fit(all_feats, all_y, all_models)
    for kind in ("conv", "dense", "pooling"):
        assert joined.kernel_context_[kind][0] == pytest.approx(3.0, rel=0.25)
    total = {name: p.predict_whole(feats)["energy_j"].sum() for name, p in (("alone", alone), ("joined", joined))}
    assert total["joined"] == pytest.approx(total["alone"], rel=0.2)


def test_efficiency_baselines_extrapolate_as_constant_efficiency():
    """Trained on layers up to 1e8 FLOPs of one efficiency, a 1e10-FLOP layer costs 100x the largest seen
    under the efficiency baselines; with no baseline a tree predicts the largest seen cost."""
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    flops = 10 ** rng.uniform(5, 8, 300)
    cols = ["batch_size", "log_flops", "log_mem_bytes"]
    x = pd.DataFrame({"batch_size": 1.0, "log_flops": np.log1p(flops), "log_mem_bytes": np.log1p(flops / 20)})
    y = np.column_stack([flops * 2e-11, flops * 1e-12]) * rng.uniform(0.95, 1.05, (300, 1))
    coefs = _fit_efficiency(x.to_numpy(), y, cols, "efficiency")
    assert 1 / coefs[0, 0] == pytest.approx(1 / 2e-11, rel=0.1)  # the attainable FLOP rate per joule
    big = pd.DataFrame({"batch_size": [1.0], "log_flops": [np.log1p(1e10)], "log_mem_bytes": [np.log1p(1e10 / 20)]})
    for baseline, expect in (("efficiency", 0.2), ("per_flop", 0.2), ("none", 1e8 * 2e-11)):
        p = LayerwisePredictor(lambda: RandomForestRegressor(n_estimators=10, random_state=0), baseline=baseline)
        p.eps_ = np.zeros(2)
        model = p._fit_one(x[cols], np.log(y))
        got = float(np.exp(p._predict_one(model, big.to_numpy())[0, 0]))
        assert got == pytest.approx(expect, rel=0.25), baseline
        if model[0] is not None:
            assert _baseline(model[0], big.to_numpy()).shape == (1, 2)


def test_champion_rule_is_the_mean_of_levels_one_and_three_and_level_two_never_selects():
    from nnenergy.tracking import comparison_markdown

    assert registry.champion_score({"family_whole_energy_rmspe": 20.0, "generated_whole_energy_rmspe": 10.0,
                                    "external_whole_energy_rmspe": 1.0}) == 15.0
    assert registry.champion_score({"family_whole_energy_rmspe": 20.0}) == 20.0
    assert math.isnan(registry.champion_score({"external_whole_energy_rmspe": 1.0}))
    rows = [{"predictor": "poly", "family_whole_energy_rmspe": 22.8, "generated_whole_energy_rmspe": 22.3,
             "external_whole_energy_rmspe": 5.0},
            {"predictor": "rf", "family_whole_energy_rmspe": 25.0, "generated_whole_energy_rmspe": 12.3,
             "external_whole_energy_rmspe": 23.2}]
    table = pd.DataFrame(rows).assign(champion_score=lambda d: [registry.champion_score(r) for r in rows],
                                      run_id=["r-poly", "r-rf"])
    md = comparison_markdown(table)  # registration off: the best is not called the champion
    assert "| **rf** (lowest score) |" in md and "| poly |" in md and "level 2" in md
    assert md.startswith("| predictor | L1 families | L2 published | L3 generated | score | registry |")
    assert "@champion" not in md and "No version of these runs holds a registry alias" in md
    assert "`@champion` is version 4" in comparison_markdown(table, {}, "version 4 of nnenergy-layerwise (run abc)")
    # the registry kept poly's version as champion (another split): the table says so, not "rf"
    md = comparison_markdown(table, {"r-poly": ["`@champion`"], "r-rf": ["`@champion-x`"]})
    assert md.splitlines()[2].startswith("| poly |") and md.splitlines()[2].endswith("| `@champion` |")
    assert "| **rf** (lowest score) |" in md and "`@champion-x`" in md and "No version" not in md
    # what `nnenergy main` prints once: the same rows, aligned, best first as given
    from nnenergy.tracking import comparison_text

    text = comparison_text(table, {"r-poly": ["`@champion`"]}).splitlines()
    assert text[0].split() == ["predictor", "L1", "families", "L2", "published", "L3", "generated", "score", "registry"]
    assert text[1].startswith("poly ") and text[1].endswith("@champion") and text[2].endswith(" -")
    assert text[1].index("22.8%") == text[2].index("25.0%") == text[0].index("L1")  # columns aligned
