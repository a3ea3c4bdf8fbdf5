"""Sequence kernels (`seq1_` names, `nnenergy.arch.seqkernels`): names, sizes, tiny models that build,
run and describe with known kinds, the sweep's plan; and `ker1_` kernels left exactly as measured."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest
from conftest import compose_cfg

from nnenergy import arch, zoo
from nnenergy.arch import kernels, seqkernels, spec_from_name
from nnenergy.arch.seqkernels import SEQ_KERNEL_KINDS, sample_seq_kernel_spec, seq_kernel_kind
from nnenergy.describe import describe, layer_row
from nnenergy.features.layer_features import kind_of, layer_features
from nnenergy.features.loops import loop_rows

# ker1 kernels as main sampled them before sequence kernels existed (kind, sha256 of the spec's JSON,
# batch sizes with rng(seed)): measured datasets name these kernels, so they must never be reshuffled.
KER1_ON_MAIN = {
    0: ("conv", "289ea0df3f6c8171", [8, 32]),
    1: ("conv_add", "927ea198777579ab", [2, 32]),
    2: ("grouped", "30e09233f8970f2d", [4, 8]),
    3: ("depthwise", "68db54f9501b5706", [8, 16]),
    4: ("pool", "336b661302d6ddb0", [4, 64]),
    5: ("concat", "20e2bcc857414351", [4, 64]),
    6: ("attention", "ba3d9b36d25f0f33", [2, 32]),
    7: ("norm", "82ff5633b89409f6", [8, 32]),
    8: ("dense", "d3730ef3720d4eb8", [64]),
    9: ("convnext", "21aaf69c10968b22", [2, 16]),
    123: ("depthwise", "a1785bc2346a63ad", [1, 64]),
    601: ("conv_add", "001908b0564f6a60", [16, 64]),
    3999: ("convnext", "3f67d0d1f444c68a", [1, 32]),
}


def _digest(spec) -> str:
    return hashlib.sha256(spec.to_json().encode()).hexdigest()[:16]


def test_ker1_seeds_still_name_the_kernels_measured_before():
    assert kernels.KERNEL_KINDS == ("conv", "conv_add", "grouped", "depthwise", "pool", "concat", "attention", "norm",
                                    "dense", "convnext")
    for seed, (kind, digest, batches) in KER1_ON_MAIN.items():
        spec = spec_from_name(kernels.kernel_name(seed))
        assert (spec.kind, _digest(spec)) == (kind, digest), seed
        assert kernels.sample_batches(spec, np.random.default_rng(seed), 2) == batches


def test_seq_names_round_trip_and_cycle_through_every_kind():
    specs = [sample_seq_kernel_spec(s) for s in range(2 * len(SEQ_KERNEL_KINDS))]
    assert [s.kind for s in specs] == list(SEQ_KERNEL_KINDS) * 2
    for s in specs:
        assert s.name == f"seq1_s{s.seed:06d}" == arch.seq_kernel_name(s.seed) and s.family == "kernel"
        assert spec_from_name(s.name) == s == seqkernels.seq_kernel_spec_from_name(s.name)
        assert seq_kernel_kind(s.name) == s.kind and kernels.kernel_kind(s.name) is None
        assert arch.is_generated_name(s.name) and zoo.is_generated(s.name)
    assert seq_kernel_kind("ker1_s000004") is None


def test_bad_seeds_and_names_are_refused_in_one_line():
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed is an integer >= 0"):
            sample_seq_kernel_spec(bad)
    with pytest.raises(ValueError, match="generator version 9"):
        spec_from_name("seq9_s000001")
    with pytest.raises(ValueError, match="not a sequence kernel name"):
        seqkernels.seq_kernel_spec_from_name("ker1_s000001")
    with pytest.raises(ValueError, match=r"seq<v>_s<seed>"):
        spec_from_name("seq1_s12x")
    with pytest.raises(zoo.ArchitectureError, match="generator version"):
        zoo.build("seq9_s000001", None)


def test_sizes_reach_realistic_lengths_within_the_batch_1_bound():
    specs = [sample_seq_kernel_spec(s) for s in range(300)]
    by = {k: [s for s in specs if s.kind == k] for k in SEQ_KERNEL_KINDS}
    for s in specs:
        assert kernels.cost(s)[0] <= kernels.MAX_MACS and seqkernels.estimated_seconds(s, 1) <= 1.0
        batches = seqkernels.sample_batches(s, np.random.default_rng(0), 2)
        assert 1 <= len(batches) <= 2 and (all(seqkernels.estimated_seconds(s, b) <= 0.8 for b in batches)
                                           or batches == [1])
    tokens = [s.input_shape[0] for k in ("self_attention", "layernorm", "gelu_mlp", "embedding") for s in by[k]]
    assert min(tokens) <= 20 and max(tokens) >= 1000 and max(s.input_shape[1] for s in by["gelu_mlp"]) >= 768
    vocabs = [s.blocks[0]["vocab"] for s in by["embedding"]]
    assert min(vocabs) < 2000 and max(vocabs) > 30000
    assert all(s.blocks[0]["vocab"] * s.blocks[0]["dim"] <= seqkernels.MAX_EMBEDDING_PARAMS for s in by["embedding"])
    rnn = by["lstm"] + by["gru"]
    assert max(s.input_shape[0] for s in rnn) >= 256 and max(s.blocks[0]["units"] for s in rnn) >= 512
    assert {s.blocks[0]["return_sequences"] for s in rnn} == {True, False}
    assert {s.blocks[0]["causal"] for s in by["self_attention"]} == {True, False}
    # A long loop of wide cells is bounded by its steps (each re-reads the weights), not only its MACs.
    assert all(s.input_shape[0] * seqkernels.recurrent_weights(s) * 4 <= 8e9 for s in rnn)


def test_recurrent_kernels_from_seed_600_also_stack_and_run_both_ways():
    rnn = ("lstm", "gru")
    before = [sample_seq_kernel_spec(s) for s in range(0, 240) if seq_kernel_kind(s) in rnn]
    assert all("layers" not in s.blocks[0] and "bidirectional" not in s.blocks[0] for s in before)  # as measured
    after = [sample_seq_kernel_spec(s) for s in range(seqkernels.RNN_VARIANTS_FROM, 840) if seq_kernel_kind(s) in rnn]
    assert {s.blocks[0]["layers"] for s in after} == {1, 2}
    assert {s.blocks[0]["bidirectional"] for s in after} == {True, False}
    for s in after:  # the same bounds, with every loop's steps and weights counted
        assert kernels.cost(s)[0] <= kernels.MAX_MACS and seqkernels.estimated_seconds(s, 1) <= 1.0
        loops = s.blocks[0]["layers"] * (2 if s.blocks[0]["bidirectional"] else 1)
        single = dataclasses.replace(s, blocks=[{**s.blocks[0], "layers": 1, "bidirectional": False}])
        if loops > 1:  # a second layer or direction re-reads weights of its own every step
            assert seqkernels.recurrent_weights(s) > seqkernels.recurrent_weights(single)


# Each kind at a tiny size, with its options both ways: (input shape, block parameters).
TINY = {
    "self_attention": ([8, 32], [dict(heads=2, key_dim=16, causal=True, residual=True),
                                 dict(heads=2, key_dim=16, causal=False, residual=False)]),
    "layernorm": ([8, 32], [{}]),
    "gelu_mlp": ([8, 32], [dict(units=64, fused=True, down=True), dict(units=64, fused=False, down=False)]),
    "embedding": ([8], [dict(vocab=100, dim=16)]),
    "lstm": ([6, 12], [dict(units=16, return_sequences=True), dict(units=16, return_sequences=False),
                       dict(units=16, return_sequences=False, layers=2, bidirectional=True)]),
    "gru": ([6, 12], [dict(units=16, return_sequences=True), dict(units=16, return_sequences=False),
                      dict(units=16, return_sequences=True, layers=2, bidirectional=False),
                      dict(units=16, return_sequences=False, layers=1, bidirectional=True)]),
}


def _tiny_specs():
    for i, kind in enumerate(SEQ_KERNEL_KINDS):
        spec = sample_seq_kernel_spec(i)
        shape, options = TINY[kind]
        for p in options:
            yield dataclasses.replace(spec, input_shape=shape, blocks=[{**spec.blocks[0], **p}])


@pytest.mark.parametrize("spec", list(_tiny_specs()), ids=lambda s: f"{s.kind}-{s.blocks[0]}")
def test_each_kind_builds_runs_in_the_sweep_and_describes_with_known_kinds(spec):
    from nnenergy.arch.build import build_spec
    from nnenergy.measure.sweep import inference_call

    model = build_spec(spec)
    y = inference_call(model, tuple(spec.input_shape), 2)()  # the sweep's compiled pass on its random batch
    assert y.shape[0] == 2 and np.isfinite(np.asarray(y)).all()
    rows = [layer_row(info, 1, "c") for info in describe(model)]
    assert [r["layer_type"] for r in rows if kind_of(r["layer_type"]) == "other"] == []
    work = [r for r in rows if r["layer_type"] not in ("InputLayer", "Rescaling")]
    macs = kernels.cost(spec)[0]
    if spec.kind == "embedding":  # a gather: bytes, no arithmetic
        assert [r["layer_type"] for r in work] == ["Embedding"] and work[0]["mem_bytes"] > 0
        return
    flops = sum(r["flops"] for r in work)
    assert flops > 0 and all(r["flops"] >= 0 for r in rows)
    if spec.kind in ("lstm", "gru"):  # every layer and direction is a loop the loop term prices
        p = spec.blocks[0]
        loops = loop_rows(layer_features(pd.DataFrame(rows)))
        assert len(loops) == p.get("layers", 1) * (2 if p.get("bidirectional") else 1)
    # The analytic MACs of the sampler and describe's FLOPs count the same products (describe adds
    # biases, norms and gate nonlinearities, traced op by op for a recurrent loop).
    assert 2 * macs <= flops <= 2 * macs * 1.6 + 20 * np.prod(spec.input_shape) * 8


def test_the_sweep_plans_sequence_kernels_beside_ker1_and_focuses_by_kind():
    from omegaconf import OmegaConf

    from nnenergy.measure.plan import plan_jobs
    from nnenergy.measure.sweep_spec import SweepInputError, SweepSpec

    def spec(*overrides):
        cfg = compose_cfg("measure", ["sweep=kernels_seq", "sweep.output_dir=unused", *overrides])
        return SweepSpec.from_config(OmegaConf.to_container(cfg.sweep, resolve=True))

    s = spec("sweep.generated.seq_kernel_seeds=[0,12]")
    assert s.name == "kernels_seq" and s.output_dir == "unused"  # their own dataset, never joined by default
    jobs = plan_jobs(s)
    assert [j.arch for j in jobs] == [arch.seq_kernel_name(i) for i in range(12)]
    assert all(1 <= len(j.batches) <= 2 and j.size is None for j in jobs)
    assert plan_jobs(s) == jobs  # the same plan on every resume
    both = plan_jobs(spec("sweep.generated.seq_kernel_seeds=[0,12]", "sweep.generated.kernel_seeds=[0,3]"))
    assert [j.arch for j in both][:3] == ["ker1_s000000", "ker1_s000001", "ker1_s000002"] and len(both) == 15
    focus = plan_jobs(spec("sweep.generated.seq_kernel_seeds=[0,12]", "sweep.generated.kernel_seeds=[0,20]",
                           "sweep.generated.kernel_focus=[lstm,norm]"))
    assert [seq_kernel_kind(j.arch) or kernels.kernel_kind(j.arch) for j in focus] == ["norm"] * 2 + ["lstm"] * 2
    with pytest.raises(SweepInputError, match="unknown kernel kinds"):
        spec("sweep.generated.kernel_focus=[lstmm]")


def _cheap_embedding_and_lstm() -> list[int]:
    """Seeds [s, s + 2) of a cheap embedding and a cheap LSTM (consecutive kinds), to measure in a test."""
    for s in range(SEQ_KERNEL_KINDS.index("embedding"), 600, len(SEQ_KERNEL_KINDS)):
        if all(seqkernels.estimated_seconds(sample_seq_kernel_spec(t), 1) < 1e-3 for t in (s, s + 1)):
            return [s, s + 2]
    raise AssertionError("no cheap embedding and LSTM next to each other")


@pytest.mark.slow
def test_the_sweep_measures_sequence_kernels_into_kernel_rows(tmp_path, tracking_uri):
    """Float batches become token ids inside the model; an LSTM's loop is attributed to its layer."""
    from nnenergy.apps import measure

    cfg = compose_cfg("measure", [
        "sweep=kernels_seq", f"sweep.generated.seq_kernel_seeds={_cheap_embedding_and_lstm()}",
        "sweep.generated.batch_sizes=[1,2]", "sweep.generated.configs_per_architecture=1",
        "sweep.protocol.rounds=2", "sweep.protocol.windows=1", "sweep.protocol.min_seconds=0.02",
        "sweep.protocol.warmup=1", "sweep.protocol.visits=1",
        f"sweep.output_dir={tmp_path / 'kernels'}", f"sweep.cache_dir={tmp_path / 'cache'}",
        f"mlflow.tracking_uri={tracking_uri}",
    ])
    result = measure.run(cfg)
    m, layers = result.models, result.layers
    assert len(m) == 2 and set(m["source"]) == {"kernel"} and m["architecture"].str.match(r"^seq1_s\d{6}$").all()
    assert (m["energy_j"] > 0).all() and set(layers["config_id"]) == set(m["config_id"])
    assert layers.groupby("config_id")["ctx_share"].sum().round(6).le(1.0).all()
    assert {"Embedding"} <= set(layers["layer_type"]) and layers["layer_type"].map(kind_of).ne("other").all()
