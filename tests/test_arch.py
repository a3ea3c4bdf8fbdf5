"""The architecture space: determinism, coverage, analytic cost = built model, variants, names, versions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nnenergy.arch import (
    GENERATOR_VERSION,
    MACRO_KINDS,
    VARIANT_FAMILIES,
    ArchSpec,
    build_named,
    build_spec,
    estimate_macs,
    generated_name,
    is_generated_name,
    macro_kind,
    sample_configs,
    sample_spec,
    sample_variant_spec,
)
from nnenergy.arch.cost import cost_graph
from nnenergy.arch.space import RANGES, Space, fit_prior, load_prior
from nnenergy.arch.spec import MAX_LAYERS, MAX_MACS, MIN_LAYERS, MIN_MACS

REPO = Path(__file__).resolve().parents[1]
SEEDS = range(60)


@pytest.fixture(scope="module")
def specs() -> list[ArchSpec]:
    return [sample_spec(s) for s in SEEDS]


def keras_macs(model) -> int:
    """MACs counted from a built Keras model's layers, independently of the generator's CostGraph."""
    total = 0
    for layer in model.layers:
        cls, cfg = type(layer).__name__, layer.get_config()
        out = [int(d) for d in layer.output.shape[1:]]
        inp = [int(d) for d in layer.input.shape[1:]] if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D",
                                                                  "Conv2DTranspose", "Dense") else None
        k = math.prod(cfg.get("kernel_size", (1,)))
        if cls == "Conv2D":
            total += math.prod(out) * k * inp[-1] // cfg["groups"]
        elif cls == "DepthwiseConv2D":
            total += math.prod(out) * k
        elif cls == "SeparableConv2D":
            total += math.prod(out[:-1]) * inp[-1] * (k + out[-1])
        elif cls == "Conv2DTranspose":
            total += math.prod(inp) * k * out[-1]
        elif cls == "Dense":
            total += math.prod(out) * inp[-1]
        elif cls == "MultiHeadAttention":
            t, c = out
            p = cfg["num_heads"] * cfg["key_dim"]
            total += 3 * t * c * p + 2 * t * t * p + t * p * c
    return total


def layer_table(model) -> list[tuple]:
    return [(layer.name, type(layer).__name__, tuple(layer.output.shape)) for layer in model.layers]


def test_same_seed_same_spec_and_model():
    a, b = sample_spec(9), sample_spec(9)
    assert a.to_json() == b.to_json()
    assert ArchSpec.from_json(a.to_json()) == a
    ma, mb = build_spec(a), build_spec(b)
    assert ma.name == a.name == "gen1_s000009"
    assert layer_table(ma) == layer_table(mb)


def test_different_seeds_differ(specs):
    assert len({s.to_json() for s in specs}) == len(specs)
    # two seeds of the same kind still differ in their blocks
    same_kind = [s for s in specs if s.kind == "resnet"]
    assert len(same_kind) >= 2 and len({json.dumps(s.blocks) for s in same_kind}) == len(same_kind)


def test_seeds_cover_every_kind_block_and_layer_type_within_bounds(specs):
    assert {s.kind for s in specs} == set(MACRO_KINDS)
    blocks = {b["type"] for s in specs for b in s.blocks}
    assert {"conv", "res_basic", "res_preact", "bottleneck", "inception", "dwsep", "sepconv", "inverted_residual",
            "se", "spatial_gate", "unet", "mlp", "tokens", "attention", "pool", "dropout", "gap", "head"} <= blocks
    merges = {b["merge"] for s in specs for b in s.blocks if b["type"] == "inception"}
    assert merges == {"concat", "add"}
    assert any(b.get("se_ratio") for s in specs for b in s.blocks if b["type"] == "inverted_residual")
    assert {b["up"] for s in specs for b in s.blocks if b["type"] == "unet"} == {"upsample", "transpose"}
    assert any(s.input_shape == [s.input_shape[0]] for s in specs)  # MLPs on flat vectors
    classes = set()
    for s in specs:
        g = cost_graph(s)
        classes |= set(g.classes)
        assert MIN_MACS <= g.macs <= MAX_MACS and MIN_LAYERS <= len(g.names) <= MAX_LAYERS, s.name
        assert len(set(g.names)) == len(g.names), s.name
        side = s.input_shape[0]
        assert len(s.input_shape) == 1 and 64 <= side <= 4096 or 32 <= side <= 224 and s.input_shape[2] == 3
    assert {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense", "MultiHeadAttention",
            "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "Dropout", "Add", "Multiply",
            "Concatenate", "MaxPooling2D", "AveragePooling2D", "ZeroPadding2D", "GlobalAveragePooling2D",
            "Flatten", "Reshape", "UpSampling2D"} <= classes
    acts = {b["act"] for s in specs for b in s.blocks if b.get("act")}
    assert {"relu", "relu6", "silu", "gelu", "sigmoid", "hard_silu"} <= acts
    # attention runs on at most 256 tokens
    tokens = [_tokens_after(s, i) for s in specs for i, b in enumerate(s.blocks) if b["type"] == "tokens"]
    assert tokens and max(tokens) <= 256


def _tokens_after(spec: ArchSpec, i: int) -> int:
    from nnenergy.arch.blocks import apply_blocks
    from nnenergy.arch.graphs import CostGraph

    _, x = apply_blocks(CostGraph(), spec.input_shape, spec.blocks[: i + 1])
    return x[0]


def test_one_model_per_kind_builds_runs_and_matches_its_analytic_cost(specs, tmp_path):
    import keras

    cheapest = {}
    for s in specs:
        if s.kind not in cheapest or estimate_macs(s) < estimate_macs(cheapest[s.kind]):
            cheapest[s.kind] = s
    for spec in cheapest.values():
        model = build_spec(spec)
        g = cost_graph(spec)
        assert sorted(zip(g.names, g.classes)) == sorted((la.name, type(la).__name__) for la in model.layers)
        assert keras_macs(model) == estimate_macs(spec), spec.name
        y = np.asarray(model(np.random.rand(1, *spec.input_shape).astype("float32"), training=False))
        assert y.shape[0] == 1 and np.isfinite(y).all()
        assert np.allclose(y.sum(axis=-1), 1.0, atol=1e-3)  # softmax heads
    # plain layers only: a model with attention, gates and merges reloads in safe mode
    path = tmp_path / "m.keras"
    build_spec(cheapest["vit"]).save(path)
    assert keras.saving.load_model(path, safe_mode=True).name == cheapest["vit"].name


def test_variants_carry_their_family_and_stay_in_bounds():
    for fam in VARIANT_FAMILIES:
        spec = sample_variant_spec(fam, 5)
        assert spec.family == fam and spec.kind == "variant" and spec.name == f"var1_{fam}_s000005"
        assert MIN_MACS <= estimate_macs(spec) <= MAX_MACS
        assert sample_variant_spec(fam, 5) == spec and sample_variant_spec(fam, 6) != spec
    with pytest.raises(ValueError, match="no variants"):
        sample_variant_spec("AlexNet", 0)


@pytest.mark.parametrize("family", ["MobileNetV3", "ConvNeXt", "Grouped"])
def test_variant_builds_with_the_estimated_cost(family):
    spec = sample_variant_spec(family, 1)
    model = build_spec(spec)
    assert model.name == spec.name
    assert keras_macs(model) == estimate_macs(spec)
    y = np.asarray(model(np.random.rand(1, *spec.input_shape).astype("float32"), training=False))
    assert np.isfinite(y).all()


def test_build_named_round_trips():
    for name in ("gen1_s000007", "var1_MobileNet_s000002"):
        model, spec = build_named(name)
        assert is_generated_name(name) and spec.name == model.name == name
        again = sample_spec(7) if name.startswith("gen") else sample_variant_spec("MobileNet", 2)
        assert spec == again
    model, spec = build_named("gen1_s000007")
    assert layer_table(model) == layer_table(build_spec(sample_spec(7)))
    # a non-default uniform share is part of the name
    spec = sample_spec(4, uniform_share=0.5)
    assert spec.name == "gen1_s000004_u50" and build_named(spec.name)[1] == spec


def test_other_generator_versions_and_foreign_names_are_refused():
    other = GENERATOR_VERSION + 1
    with pytest.raises(ValueError, match="generator version"):
        build_named(f"gen{other}_s000001")
    with pytest.raises(ValueError, match="generator version"):
        build_named(f"var{other}_ResNet_s000001")
    text = sample_spec(1).to_json().replace('"generator_version": 1', f'"generator_version": {other}')
    old = ArchSpec.from_json(text)
    assert old.generator_version == other
    with pytest.raises(ValueError, match="generator version"):
        build_spec(old)
    with pytest.raises(ValueError, match="not a generated"):
        build_named("ResNet50")
    assert is_generated_name(f"gen{other}_s000001")
    assert not any(map(is_generated_name, ["ResNet50", "tiny_cnn", "gen1_123", "var1_s000001", "gen1_s00001x"]))


def test_sample_configs_picks_distinct_batches_by_cost(specs):
    by_cost = sorted(specs, key=estimate_macs)
    light, heavy = by_cost[0], by_cost[-1]
    for spec in (light, heavy):
        got = sample_configs(spec, np.random.default_rng(0), 3)
        assert len(got) == len(set(got)) == 3 and set(got) <= {1, 2, 4, 8, 16, 32, 64}
        assert got == sample_configs(spec, np.random.default_rng(0), 3)
    rng = np.random.default_rng(0)
    assert max(sample_configs(heavy, rng, 3)) <= min(sample_configs(light, rng, 3))  # heavy models, small batches
    # a mid-size model (~1e8 MACs: 2.5 ms at batch 1 at MACS_PER_S) qualifies at every batch: n spread picks
    mid = min(specs, key=lambda s: abs(math.log(estimate_macs(s) / 1e8)))
    got = sample_configs(mid, np.random.default_rng(1), 3)
    assert got[0] <= 4 and got[-1] >= 16
    assert sample_configs(mid, np.random.default_rng(1), 10) == [1, 2, 4, 8, 16, 32, 64]


def test_uniform_share_leaves_the_prior():
    prior = load_prior()
    inside = Space(np.random.default_rng(0), uniform_share=0.0)
    assert {inside.draw("input_size") for _ in range(200)} <= set(prior["input_size"]["values"])
    assert {inside.draw("activation") for _ in range(200)} <= set(prior["activation"]["values"])
    outside = Space(np.random.default_rng(0), uniform_share=1.0)
    sizes = {outside.draw("input_size") for _ in range(200)}
    assert min(sizes) < 64 and max(sizes) > 200 and all(s % 8 == 0 for s in sizes)
    assert set(RANGES["activation"]) == {outside.draw("activation") for _ in range(300)}
    assert all(3 <= outside.draw("dw_kernel", hi=5) <= 5 for _ in range(50))


def test_prior_is_fitted_from_the_shipped_layers():
    tables = sorted(REPO.glob("data/*/cpu/layers.parquet")) or sorted(REPO.glob("data/cpu/layers.parquet"))
    if not tables:
        pytest.skip("no shipped layers table")
    fitted, shipped = fit_prior(tables[0]), load_prior()
    assert set(fitted) == set(shipped)
    for key, hist in fitted.items():
        if isinstance(hist, dict) and "weights" in hist:
            assert abs(sum(hist["weights"]) - 1) < 1e-3, key
    # what keras.applications are known to use
    assert {1, 3} <= set(fitted["conv_kernel"]["values"]) and {3, 5} <= set(fitted["dw_kernel"]["values"])
    assert {"relu", "relu6", "silu"} <= set(fitted["activation"]["values"])
    assert 6.0 in fitted["expand_ratio"]["values"] and 0.25 in fitted["se_ratio"]["values"]


def test_the_macro_kind_of_a_seed_or_name_is_its_specs_kind_without_building():
    for seed in (0, 7, 23, 1880):
        assert macro_kind(seed) == macro_kind(generated_name(seed)) == sample_spec(seed).kind
    assert macro_kind("var1_ResNet_s000004") is None and macro_kind("ResNet50") is None
