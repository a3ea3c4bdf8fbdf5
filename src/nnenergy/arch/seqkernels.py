"""Single-kernel models of sequence work for the kernel sweep, named `seq1_s000123` and rebuilt from the
name like `ker1_` kernels (`nnenergy.arch.kernels`), whose kinds and draws they leave untouched.

Kinds (cycling with the seed): multi-head self-attention (causal or not, with or without its residual
add), LayerNormalization, the transformer MLP's Dense with GELU (hidden -> 2-4x hidden, optionally back
down), Embedding (vocabulary 1k-50k), LSTM and GRU (last state or every step's). Sequences run 16-1024
tokens (recurrent layers 8-512 steps), widths 64-1024 (recurrent units 32-1024); 30% of draws take the
settings real models use (BERT/GPT-2/ViT lengths and widths, their vocabularies). Recurrent kernels from
seed 600 on (`RNN_VARIANTS_FROM`) also draw 1 or 2 stacked layers, each Bidirectional or not: the loops
real models chain or run side by side (the seeds before keep their single-layer draws). An embedding reads
float inputs in [0, 1) like every other model of the sweep, made into token ids by a Rescaling.

A kernel is redrawn until it has <= 4e9 MACs and its estimated pass at batch 1 takes <= 1 s on 2 cores.
A recurrent layer's estimate adds, per step, a loop overhead and the re-read of its weights (at batch 1
each step is a matrix-vector product, bound by memory): a long LSTM of 1024 units is slow for its MACs.
"""

from __future__ import annotations

import numpy as np

from nnenergy.arch.graphs import RNN_GATES
from nnenergy.arch.kernels import BYTES_PER_S, MAX_MACS, _Draw, cost, spread_batches
from nnenergy.arch.names import SEQ_NAME, cycled_kind, seeded_spec_from_name, seq_kernel_name
from nnenergy.arch.spec import GENERATOR_VERSION, MACS_PER_S, ArchSpec

SEQ_KERNEL_KINDS = ("self_attention", "layernorm", "gelu_mlp", "embedding", "lstm", "gru")
STEP_S = 30e-6  # per step of a recurrent layer's loop (a few small ops each), batch-independent
MAX_EMBEDDING_PARAMS = 40e6  # GPT-2's table is 38.6M; bounds a model's memory and its build time
COMMON_TOKENS = [16, 32, 64, 128, 197, 256, 512, 577, 1024]
COMMON_WIDTHS = [64, 128, 192, 256, 384, 512, 768, 1024]
COMMON_VOCABS = [1000, 8192, 30522, 32000, 50257]
_ATTEMPTS = 200
RNN_VARIANTS_FROM = 600  # seeds measured before (2026-12-05) drew single layers only


def seq_kernel_kind(seed_or_name: int | str) -> str | None:
    """The kind of a seed or a `seq1_s…` name; None for other names."""
    return cycled_kind(seed_or_name, SEQ_NAME, SEQ_KERNEL_KINDS)


def _tokens(d: _Draw, lo: int = 16, hi: int = 1024) -> int:
    if d.common:
        return d.pick([t for t in COMMON_TOKENS if lo <= t <= hi])
    return d.log_int(lo, hi, 1)


def _width(d: _Draw, lo: int = 64, hi: int = 1024, step: int = 64) -> int:
    if d.common:
        return d.pick([w for w in COMMON_WIDTHS if lo <= w <= hi])
    return min(hi, d.log_int(lo, hi, step))


def _sample(kind: str, d: _Draw, rnn_variants: bool = False) -> tuple[list[int], list[dict]]:
    """(input shape, blocks) of one kernel of `kind`; with `rnn_variants`, recurrent kernels also draw
    their number of layers and whether each is Bidirectional."""
    if kind == "self_attention":  # key_dim = hidden / heads, as transformers split their width
        hidden = _width(d)
        heads = d.pick([h for h in (1, 2, 4, 8, 12, 16) if hidden % h == 0 and hidden // h >= 16])
        return [_tokens(d), hidden], [dict(type="self_attention", heads=heads, key_dim=hidden // heads,
                                           causal=bool(d.rng.random() < 0.3), residual=bool(d.rng.random() < 0.5))]
    if kind == "layernorm":
        return [_tokens(d), _width(d)], [dict(type="norm", kind="ln", act=None)]
    if kind == "gelu_mlp":
        hidden = _width(d)
        return [_tokens(d), hidden], [dict(type="gelu_mlp", units=hidden * d.pick([4, 4, 4, 2]),
                                           fused=bool(d.rng.random() < 0.5), down=bool(d.rng.random() < 0.3))]
    if kind == "embedding":
        vocab = d.pick(COMMON_VOCABS) if d.common else d.log_int(1000, 50000, 1)
        return [_tokens(d)], [dict(type="embedding", vocab=vocab, dim=_width(d))]
    if kind in ("lstm", "gru"):
        steps = d.pick([8, 16, 32, 64, 128, 256, 512]) if d.common else d.log_int(8, 512, 1)
        units = d.pick([32, 64, 128, 256, 512, 1024]) if d.common else d.log_int(32, 1024, 8)
        block = dict(type="recurrent", cell=kind, units=units, return_sequences=bool(d.rng.random() < 0.5))
        if rnn_variants:
            block |= dict(layers=d.pick([1, 2]), bidirectional=bool(d.rng.random() < 0.5))
        return [steps, d.channels(8, 1024)], [block]
    raise ValueError(f"unknown sequence kernel kind {kind!r}")


def _loops(spec: ArchSpec) -> int:
    """Recurrent loops of a kernel: one per layer and direction (0 for other kinds)."""
    p = spec.blocks[0]
    if p["type"] != "recurrent":
        return 0
    return p.get("layers", 1) * (2 if p.get("bidirectional") else 1)


def recurrent_weights(spec: ArchSpec) -> int:
    """Weights a recurrent kernel reads at every step, over its loops (0 for other kinds)."""
    p = spec.blocks[0]
    if p["type"] != "recurrent":
        return 0
    dirs, units = 2 if p.get("bidirectional") else 1, p["units"]
    total, features = 0, spec.input_shape[-1]
    for _ in range(p.get("layers", 1)):
        total += dirs * RNN_GATES[p["cell"]] * (features + units + 2) * units
        features = dirs * units
    return total


def _fixed_seconds(spec: ArchSpec) -> float:
    """The part of a pass the batch does not scale: a recurrent loop's steps, each re-reading its weights."""
    return spec.input_shape[0] * (_loops(spec) * STEP_S + 4 * recurrent_weights(spec) / BYTES_PER_S)


def _seconds_per_sample(spec: ArchSpec) -> float:
    macs, elems = cost(spec)
    return macs / MACS_PER_S + 4 * elems / BYTES_PER_S


def estimated_seconds(spec: ArchSpec, batch: int) -> float:
    """Estimated seconds of one pass at `batch` on 2 cores (the sweep's batch sizes and size bound)."""
    return _fixed_seconds(spec) + batch * _seconds_per_sample(spec)


def _params(spec: ArchSpec) -> int:
    p = spec.blocks[0]
    return p["vocab"] * p["dim"] if p["type"] == "embedding" else 0


def sample_seq_kernel_spec(seed: int) -> ArchSpec:
    """The sequence kernel of `seed`: redrawn until it has <= 4e9 MACs, an embedding table of <= 40M
    weights and takes <= 1 s at batch 1."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"a sequence kernel's seed is an integer >= 0, got {seed!r}")
    kind = seq_kernel_kind(int(seed))
    rng = np.random.default_rng([GENERATOR_VERSION, int(seed), 0x736571])  # "seq": not ker1's stream
    # The draw-until-bounded loop of `kernels.sample_kernel_spec`, with this family's own bounds (an
    # embedding's size, a recurrence's time estimate): the loops share their shape, not their checks.
    for _ in range(_ATTEMPTS):
        shape, blocks = _sample(kind, _Draw(rng), rnn_variants=int(seed) >= RNN_VARIANTS_FROM)
        spec = ArchSpec(GENERATOR_VERSION, int(seed), kind, "kernel", shape, blocks, seq_kernel_name(int(seed)))
        macs, _ = cost(spec)
        if macs <= MAX_MACS and _params(spec) <= MAX_EMBEDDING_PARAMS and estimated_seconds(spec, 1) <= 1.0:
            return spec
    raise RuntimeError(f"no {kind} kernel within the size bounds after {_ATTEMPTS} draws (seed {seed})")


def seq_kernel_spec_from_name(name: str) -> ArchSpec:
    return seeded_spec_from_name(name, SEQ_NAME, "sequence kernel", sample_seq_kernel_spec)


def sample_batches(spec: ArchSpec, rng: np.random.Generator, n: int,
                   batch_sizes=(1, 2, 4, 8, 16, 32, 64), lo: float = 5e-5, hi: float = 0.8) -> list[int]:
    """`n` distinct batch sizes whose estimated pass lies within [lo, hi] seconds, spread over that range."""
    fixed, per_sample = _fixed_seconds(spec), _seconds_per_sample(spec)
    return spread_batches(lambda b: fixed + b * per_sample, rng, n, batch_sizes, lo, hi)

