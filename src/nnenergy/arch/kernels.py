"""Single-kernel models for the kernel sweep: one fused kernel (a conv + BN + act, a residual add, a
depthwise or grouped conv, a pool, a concatenation, an attention block, a norm, a Dense) on an input of
sampled shape, named `ker1_s000123` and rebuilt from the name like generated architectures.

Shapes reach past the largest layers of real models (nn-Meter's random mode: CIN 3-2160, COUT 16-2048;
VGG's 224 px 64->64 conv, its 25088->4096 Dense, 577-token attention). Sides and channels are drawn from
independent marginals, so large-channel x large-side corners occur; 30% of draws take common settings
(powers of two, the sides real networks use). The kind cycles with the seed, so a run of seeds covers
every kind evenly and a kind's seeds are known without building anything (adaptive rounds).
"""

from __future__ import annotations

import math

import numpy as np

from nnenergy.arch.blocks import apply_blocks
from nnenergy.arch.graphs import CostGraph
from nnenergy.arch.names import KER_NAME, cycled_kind, kernel_name, seeded_spec_from_name
from nnenergy.arch.spec import GENERATOR_VERSION, MACS_PER_S, ArchSpec

KERNEL_KINDS = ("conv", "conv_add", "grouped", "depthwise", "pool", "concat", "attention", "norm", "dense",
                "convnext")
MAX_MACS = 4e9  # batch 1; VGG16's largest conv at 224 px is 1.85e9
BYTES_PER_S = 8e9  # effective memory bandwidth of 2 cores, for the batch sizes' time estimate
COMMON_SHARE = 0.3
COMMON_SIDES = [7, 14, 28, 56, 112]
ACTS = ["relu", "relu", "relu6", "silu", "gelu", "sigmoid", "hard_silu"]
_ATTEMPTS = 200


def kernel_kind(seed_or_name: int | str) -> str | None:
    """The kernel kind of a seed or a `ker1_s…` name; None for other names."""
    return cycled_kind(seed_or_name, KER_NAME, KERNEL_KINDS)


class _Draw:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.common = rng.random() < COMMON_SHARE  # one decision per kernel: a "real-looking" one

    def log_int(self, lo: float, hi: float, step: int = 8) -> int:
        v = math.exp(self.rng.uniform(math.log(lo), math.log(hi)))
        return max(step, int(round(v / step)) * step) if step > 1 else max(int(lo), int(round(v)))

    def side(self, hi: int = 256) -> int:
        if self.common:
            return int(self.rng.choice([s for s in COMMON_SIDES if s <= hi]))
        return self.log_int(3, hi, 1)

    def channels(self, lo: int = 8, hi: int = 2160) -> int:
        if self.common:
            return int(self.rng.choice([c for c in (16, 32, 64, 128, 256, 512, 1024, 2048) if lo <= c <= hi]))
        return self.log_int(lo, hi, 8)

    def pick(self, options, p=None):
        v = options[int(self.rng.choice(len(options), p=p))]
        return v.item() if isinstance(v, np.generic) else v


def _image(side: int, channels: int) -> list[int]:
    return [side, side, channels]


def _sample(kind: str, d: _Draw) -> tuple[list[int], list[dict]]:
    """(input shape, blocks) of one kernel of `kind`."""
    act = d.pick(ACTS)
    k = d.pick([1, 3, 3, 5, 7]) if kind != "depthwise" else d.pick([3, 3, 5, 7])
    stride = d.pick([1, 1, 1, 2])
    if kind == "conv":
        cin = 3 if d.rng.random() < 0.1 else d.channels()
        return _image(d.side(), cin), [
            dict(type="conv", filters=d.channels(16, 2048), kernel=k, stride=stride, act=act,
                 bn=bool(d.rng.random() < 0.8))]
    if kind == "conv_add":  # ResNet's basic block: conv-BN-act, conv-BN, Add, act (identity shortcut)
        c = d.channels(16, 1024)
        return _image(d.side(), c), [
            dict(type="res_basic", filters=c, kernel=d.pick([1, 3, 3]), stride=1, act=act)]
    if kind == "grouped":  # ResNeXt / ConvNeXt-style grouped convolutions
        groups = d.pick([2, 4, 8, 16, 32, 64])
        c = max(groups, d.channels(16, 2048) // groups * groups)
        return _image(d.side(), c), [
            dict(type="conv", filters=c, kernel=d.pick([3, 3, 5, 7]), stride=stride, act=act, bn=True,
                 groups=groups)]
    if kind == "depthwise":
        c = d.channels(8, 2160)
        return _image(d.side(), c), [
            dict(type="dw", kernel=k, stride=stride, act=act, bn=bool(d.rng.random() < 0.85))]
    if kind == "pool":
        c = d.channels(8, 2160)
        size = d.pick([2, 3, 3])
        return _image(d.side(), c), [
            dict(type="pool", kind=d.pick(["max", "avg"]), size=size, stride=d.pick([1, 2, 2]))]
    if kind == "concat":  # inception: parallel 1x1 / kxk branches joined by Concatenate
        c = d.channels(16, 1024)
        branches = [dict(op="conv", kernel=d.pick([1, 1, 3]), filters=d.channels(16, 512))
                    for _ in range(d.pick([2, 3, 4]))]
        if d.rng.random() < 0.5:
            branches.append(dict(op="pool", kernel=3, filters=d.channels(16, 256)))
        return _image(d.side(128), c), [
            dict(type="inception", branches=branches, stride=1, act=act, pool="avg", merge="concat")]
    if kind == "attention":  # a pre-norm transformer block on (tokens, dim)
        heads = d.pick([1, 2, 4, 8, 12, 16])
        key_dim = d.pick([16, 32, 64, 64])
        dim = d.channels(64, 1024)
        tokens = d.pick([49, 64, 196, 197, 256, 577]) if d.common else d.log_int(4, 1024, 1)
        return [tokens, dim], [dict(type="attention", heads=heads, key_dim=key_dim, mlp_ratio=d.pick([2, 4]),
                                    dropout=0.0)]
    if kind == "norm":
        c = d.channels(8, 2160)
        return _image(d.side(), c), [
            dict(type="norm", kind=d.pick(["bn", "ln"]), act=act if d.rng.random() < 0.7 else None)]
    if kind == "dense":
        features = d.pick([512, 1024, 2048, 4096, 9216, 25088]) if d.common else d.log_int(16, 32768, 16)
        return [features], [dict(type="mlp", units=d.channels(16, 4096), norm=d.pick(["none", "none", "bn", "ln"]),
                                 act=act, dropout=0.0)]
    if kind == "convnext":
        c = d.channels(32, 1024)
        return _image(d.side(128), c), [
            dict(type="convnext", kernel=d.pick([3, 5, 7, 7]), mlp_ratio=d.pick([2, 4]))]
    raise ValueError(f"unknown kernel kind {kind!r}")


def cost(spec: ArchSpec) -> tuple[int, int]:
    """(MACs, input + output elements) at batch 1."""
    g = CostGraph()
    _, out = apply_blocks(g, spec.input_shape, spec.blocks)
    return int(g.macs), math.prod(spec.input_shape) + math.prod(out)


def _seconds_per_sample(macs: int, elems: int) -> float:
    return macs / MACS_PER_S + 4 * elems / BYTES_PER_S


def estimated_seconds(spec: ArchSpec, batch: int) -> float:
    return batch * _seconds_per_sample(*cost(spec))


def sample_kernel_spec(seed: int) -> ArchSpec:
    """The kernel of `seed`: redrawn until it builds, has <= 4e9 MACs and takes <= 1 s at batch 1."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    kind = kernel_kind(seed)
    rng = np.random.default_rng([GENERATOR_VERSION, seed, 0x6B6572])
    for _ in range(_ATTEMPTS):
        shape, blocks = _sample(kind, _Draw(rng))
        spec = ArchSpec(GENERATOR_VERSION, seed, kind, "kernel", shape, blocks, kernel_name(seed))
        try:
            macs, elems = cost(spec)
        except ValueError:  # an empty output (a stride on a 1-pixel side): draw again
            continue
        if macs <= MAX_MACS and _seconds_per_sample(macs, elems) <= 1.0:
            return spec
    raise RuntimeError(f"no {kind} kernel within the size bounds after {_ATTEMPTS} draws (seed {seed})")


def kernel_spec_from_name(name: str) -> ArchSpec:
    return seeded_spec_from_name(name, KER_NAME, "kernel", sample_kernel_spec)


def sample_batches(spec: ArchSpec, rng: np.random.Generator, n: int,
                   batch_sizes=(1, 2, 4, 8, 16, 32, 64), lo: float = 5e-5, hi: float = 0.8) -> list[int]:
    """`n` distinct batch sizes whose estimated pass lies within [lo, hi] seconds, spread over that range
    (the smallest allowed ones when none qualify: a huge kernel still gets batch 1)."""
    per_sample = _seconds_per_sample(*cost(spec))  # the graph walked once, not once per batch size
    return spread_batches(lambda b: b * per_sample, rng, n, batch_sizes, lo, hi)


def spread_batches(seconds_at, rng: np.random.Generator, n: int, batch_sizes, lo: float, hi: float) -> list[int]:
    """`n` distinct batch sizes whose pass (`seconds_at(batch)`, increasing) lies within [lo, hi], spread
    over that range; the nearest end of `batch_sizes` when none does."""
    inside = [b for b in batch_sizes if lo <= seconds_at(b) <= hi]
    if not inside:  # too small even at the largest batch, or too large at batch 1: the nearest end
        small = seconds_at(max(batch_sizes)) < lo
        return [max(batch_sizes) if small else min(batch_sizes)]
    if len(inside) <= n:
        return sorted(inside)
    groups = np.array_split(np.asarray(inside), n)
    return sorted(int(rng.choice(g)) for g in groups)
