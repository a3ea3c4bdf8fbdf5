"""Generated architectures: a seed -> an `ArchSpec` of one macro kind (plain CNN, ResNet, Inception,
MobileNet, U-Net, MLP, ViT, ...), its blocks drawn from the fitted prior (`nnenergy.arch.space`) and
redrawn until the model's size lies within the generator's bounds.
"""

from __future__ import annotations

import math

import numpy as np

from nnenergy.arch.blocks import BLOCKS
from nnenergy.arch.graphs import CostGraph
from nnenergy.arch.names import GEN_NAME, cycled_kind, generated_name
from nnenergy.arch.space import CLASSES, Space, alpha, r8
from nnenergy.arch.spec import ATTEMPTS, GENERATOR_VERSION, MAX_LAYERS, MAX_MACS, MIN_LAYERS, MIN_MACS, ArchSpec

MACRO_KINDS = ("cnn_plain", "resnet", "preact_resnet", "bottleneck", "inception", "mobile", "efficient_se", "unet",
               "mlp", "vit", "mixed")
MAX_TOKENS = 256


class _Draft:
    """A block list being sampled, walked on a CostGraph as it grows so samplers see the current shape."""

    def __init__(self, input_shape):
        self.input_shape = [int(v) for v in input_shape]
        self.g = CostGraph()
        self.x = self.g.input(tuple(self.input_shape), "input")
        self.blocks: list[dict] = []
        self.wm = 1.0  # width multiplier on the prior's widths

    def add(self, type_: str, **p) -> None:
        p = {"type": type_, **p}
        self.x = BLOCKS[type_](self.g, self.x, p, f"b{len(self.blocks)}")
        self.blocks.append(p)

    @property
    def side(self) -> int:
        return self.x[0] if len(self.x) == 3 else 0


def _image(sp: Space) -> _Draft:
    """An image input and a MobileNet-style width multiplier, so that small models exist too."""
    s = sp.draw("input_size")
    d = _Draft([s, s, 3])
    d.wm = alpha(sp, [0.25, 0.5, 0.75, 1.0], 0.125, 1.0)
    return d


def _stem(sp: Space, d: _Draft, act: str) -> None:
    """Optional rescaling, a conv (stride 2 from 64 px), and from 128 px sometimes a ResNet-style pool."""
    if sp.chance(0.5):
        d.add("rescale", scale=1 / 255)
    k, stride, f = sp.draw("spatial_kernel"), 2 if d.side >= 64 else 1, r8(d.wm * sp.draw("conv_filters", hi=64))
    if sp.chance(0.3):  # explicit ZeroPadding2D + valid conv, as ResNet and EfficientNet write it
        d.add("conv", filters=f, kernel=k, stride=stride, act=act, bn=True, pad=k // 2, padding="valid")
    else:
        d.add("conv", filters=f, kernel=k, stride=stride, act=act, bn=True)
    if d.side >= 64 and sp.chance(0.5):
        kind, size, _ = sp.draw("pool")
        d.add("pool", kind=kind, size=size, stride=2)


def _stages(sp: Space, d: _Draft, lo: int = 2, hi: int = 5) -> list[tuple[int, int]]:
    """(width, depth) per stage; each stage after the first halves the side, which stays >= 2."""
    halvings = max(0, int(math.log2(max(d.side, 1) / 2)))
    n = max(1, min(sp.integers(lo, hi), halvings + 1))
    widths = sorted(r8(d.wm * sp.draw("conv_filters")) for _ in range(n))
    return [(w, sp.draw("depth")) for w in widths]


def _mlp_params(sp: Space, act: str | None = None, hi: int = 4096) -> dict:
    return dict(units=sp.draw("dense_units", hi=hi), norm=sp.choice(["none", "bn", "ln"]),
                act=act or sp.draw("activation"), dropout=sp.draw("dropout") if sp.chance(0.4) else 0.0)


def _head(sp: Space, d: _Draft, act: str, flatten_ok: bool = False) -> None:
    if len(d.x) == 3 and flatten_ok and math.prod(d.x) <= 16384 and sp.chance(0.4):
        d.add("flatten")
    elif len(d.x) > 1:
        d.add("gap")
    for _ in range(sp.choice([0, 0, 1, 2])):
        d.add("mlp", **_mlp_params(sp, act, hi=2048))
    d.add("head", classes=sp.choice(CLASSES), dropout=sp.draw("dropout") if sp.chance(0.5) else 0.0)


def _gate(sp: Space, d: _Draft, act: str, p: float) -> None:
    """Sometimes a multiplicative gate after a block (SE-ResNet, CBAM) or a Dropout."""
    r = sp.rng.random()
    if r < p:
        d.add("se", ratio=sp.draw("se_ratio"), act=act)
    elif r < 1.6 * p:
        d.add("spatial_gate", kernel=sp.choice([3, 5, 7]))
    elif r < 2 * p:
        d.add("dropout", rate=sp.draw("dropout"))


def _inception_params(sp: Space, w: int, act: str, stride: int = 1) -> dict:
    nb = sp.integers(2, 4)
    merge = "concat" if stride > 1 or sp.chance(0.75) else "add"
    branches = []
    for i in range(nb):
        op = "conv" if i == 0 else sp.choice(["conv", "reduce", "double", "factorized", "pool"],
                                             p=[0.2, 0.3, 0.2, 0.1, 0.2])
        f = w if merge == "add" else r8(w / nb)
        k = sp.choice([3, 5, 7]) if op == "factorized" else sp.draw("conv_kernel" if op == "conv" else "spatial_kernel")
        b = {"op": op, "kernel": k, "filters": f, "reduce": r8(f * sp.choice([0.5, 0.75, 1.0]))}
        if op == "pool" and stride > 1:
            b["filters"] = 0  # a bare strided pool, as in Inception's reduction blocks
        branches.append(b)
    return dict(branches=branches, merge=merge, stride=stride, act=act, pool=sp.choice(["avg", "max"]))


def _stage_block(sp: Space, d: _Draft, t: str, w: int, stride: int, act: str, k: int, e: float, se: float) -> None:
    """One block of type `t` with width `w`: the stage samplers' common vocabulary."""
    if t == "conv":
        d.add("conv", filters=w, kernel=k, stride=stride, act=act, bn=True)
    elif t in ("res_basic", "res_preact"):
        d.add(t, filters=w, kernel=k, stride=stride, act=act)
    elif t == "bottleneck":
        exp = sp.choice([4, 4, 2])
        d.add(t, filters=r8(w / exp), expansion=exp, kernel=k, stride=stride, act=act)
    elif t == "inception":
        d.add(t, **_inception_params(sp, w, act, stride))
    elif t in ("dwsep", "sepconv"):
        d.add(t, filters=w, kernel=k, stride=stride, act=act)
    elif t == "inverted_residual":
        d.add(t, filters=w, expand=e, kernel=k, stride=stride, se_ratio=se, act=act,
              drop=sp.draw("dropout") if sp.chance(0.2) else 0.0)
    else:
        raise ValueError(t)


_CONV_TYPES = ["conv", "res_basic", "res_preact", "bottleneck", "inception", "dwsep", "sepconv", "inverted_residual"]
_KIND_BLOCK = {"resnet": "res_basic", "preact_resnet": "res_preact", "bottleneck": "bottleneck",
               "inception": "inception", "efficient_se": "inverted_residual"}


def _staged(kind: str):
    """Sampler for the kinds made of stem, stages of one block type (or any, for `mixed`), head."""

    def sample(sp: Space) -> _Draft:
        d, act = _image(sp), sp.draw("activation")
        _stem(sp, d, act)
        mobile_type = sp.choice(["dwsep", "sepconv"])
        se = sp.draw("se_ratio") if kind == "efficient_se" and sp.chance(0.85) else 0.0
        for i, (w, depth) in enumerate(_stages(sp, d)):
            if kind == "mixed":
                t = sp.choice(_CONV_TYPES)
            else:
                t = mobile_type if kind == "mobile" else _KIND_BLOCK[kind]
            if kind == "mixed" and sp.chance(0.12) and d.side % 4 == 0 and d.side >= 8:
                d.add("unet", **_unet_params(sp, d, act, max_levels=2))
            spatial = "dw_kernel" if t in ("dwsep", "sepconv", "inverted_residual") else "spatial_kernel"
            k, e = sp.draw(spatial), sp.draw("expand_ratio") if i or sp.chance(0.5) else 1.0
            if kind == "mixed":
                se = sp.draw("se_ratio") if sp.chance(0.3) else 0.0
            for j in range(depth):
                _stage_block(sp, d, t, w, 2 if i and not j else 1, act, k, e, se)
                _gate(sp, d, act, 0.2 if kind == "efficient_se" else 0.06)
        if kind == "preact_resnet":
            d.add("norm", kind="bn", act=act)
        if kind == "efficient_se" and sp.chance(0.6):  # EfficientNet's wide 1x1 "top" conv
            d.add("conv", filters=r8(d.wm * sp.draw("conv_filters", lo=256)), kernel=1, stride=1, act=act, bn=True)
        if kind == "mixed" and len(d.x) == 3 and d.x[0] * d.x[1] <= MAX_TOKENS and sp.chance(0.5):
            _transformer(sp, d, dim=sp.choice([0, r8(d.wm * sp.draw("conv_filters", lo=32, hi=512))]))
        _head(sp, d, act)
        return d

    return sample


def _cnn_plain(sp: Space) -> _Draft:
    """VGG-like: conv stacks, downsampling by pool or strided conv, optional BN, flatten or pool head."""
    d, act, bn = _image(sp), sp.draw("activation"), sp.chance(0.6)
    _stem(sp, d, act)
    stages = _stages(sp, d)
    for i, (w, depth) in enumerate(stages):
        for _ in range(depth):
            k = sp.draw("spatial_kernel") if sp.chance(0.7) else sp.draw("conv_kernel")
            d.add("conv", filters=w, kernel=k, stride=1, act=act, bn=bn)
        if i < len(stages) - 1:
            if sp.draw("stride") == 2:
                d.add("conv", filters=w, kernel=sp.draw("spatial_kernel"), stride=2, act=act, bn=bn)
            else:
                kind, size, _ = sp.draw("pool")
                d.add("pool", kind=kind, size=size, stride=2)
        if sp.chance(0.15):
            d.add("dropout", rate=sp.draw("dropout"))
    _head(sp, d, act, flatten_ok=True)
    return d


def _unet_params(sp: Space, d: _Draft, act: str, max_levels: int = 4) -> dict:
    side, levels = d.side, 0
    while levels < max_levels and side % 2 == 0 and side // 2 >= 2:
        side, levels = side // 2, levels + 1
    levels = sp.integers(1, max(1, levels))
    base = r8(d.wm * sp.draw("conv_filters", hi=64))
    return dict(filters=[min(1024, base * 2 ** i) for i in range(levels + 1)], act=act,
                up=sp.choice(["upsample", "transpose"]), down=sp.choice(["pool", "conv"]))


def _unet(sp: Space) -> _Draft:
    d, act = _image(sp), sp.draw("activation")
    _stem(sp, d, act)
    d.add("unet", **_unet_params(sp, d, act))
    if sp.chance(0.5):
        d.add("seg_head", classes=sp.choice([2, 10, 21]))
    else:
        _head(sp, d, act)
    return d


def _mlp(sp: Space) -> _Draft:
    d, act = _Draft([sp.draw("vector_features")]), sp.draw("activation")
    for _ in range(sp.integers(2, 8)):
        d.add("mlp", **_mlp_params(sp, act))
    d.add("head", classes=sp.choice(CLASSES), dropout=0.0)
    return d


def _transformer(sp: Space, d: _Draft, dim: int = 0, depth: int | None = None) -> None:
    """Tokens, pre-norm attention blocks, final LayerNorm, token average."""
    d.add("tokens", dim=dim)
    heads, key_dim, ratio = sp.choice([1, 2, 4, 8]), sp.choice([16, 32, 64]), sp.choice([2, 4])
    drop = sp.draw("dropout") if sp.chance(0.3) else 0.0
    for _ in range(depth or sp.integers(1, 3)):
        d.add("attention", heads=heads, key_dim=key_dim, mlp_ratio=ratio, dropout=drop)
    d.add("norm", kind="ln")


def _vit(sp: Space) -> _Draft:
    """ViT: a patchify conv (kernel = stride = patch), <= 256 tokens, attention blocks, pooled head.

    No position embedding: it needs a custom layer or a second input, and costs little."""
    d = _image(sp)
    s = d.side
    patches = [p for p in (2, 4, 8, 16, 32) if (s // p) ** 2 <= MAX_TOKENS and s // p >= 2]
    p = sp.choice(patches[:2])
    if sp.chance(0.5):
        d.add("rescale", scale=1 / 255)
    d.add("conv", filters=r8(d.wm * sp.draw("conv_filters", lo=32, hi=512)), kernel=p, stride=p, padding="valid",
          bn=False,
          act=None)
    _transformer(sp, d, depth=sp.draw("depth"))
    d.add("gap")
    d.add("head", classes=sp.choice(CLASSES), dropout=sp.draw("dropout") if sp.chance(0.3) else 0.0)
    return d


_SAMPLERS = {"cnn_plain": _cnn_plain, "unet": _unet, "mlp": _mlp, "vit": _vit,
             **{k: _staged(k) for k in ("resnet", "preact_resnet", "bottleneck", "inception", "mobile",
                                        "efficient_se", "mixed")}}


def macro_kind(seed_or_name: int | str) -> str | None:
    """The macro kind of a generator seed, or of a generated name (`gen1_s000123`); None for other names."""
    return cycled_kind(seed_or_name, GEN_NAME, MACRO_KINDS)


def sample_spec(seed: int, uniform_share: float = 0.25) -> ArchSpec:
    """The architecture of `seed`. Kinds cycle with the seed, so any run of seeds covers them evenly; the
    rest is drawn from the prior and redrawn until the model has 8-250 layers and 1e5-3e9 MACs at batch 1
    and lies within half a decade of a log-uniform MAC target (2e6-3e9), which spreads models over the
    cost range instead of piling them up where the prior's widths put them. Failing that (MLPs cannot
    reach 1e9), the in-bounds draw nearest the target is kept."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0 <= uniform_share <= 1 or abs(uniform_share * 100 - round(uniform_share * 100)) > 1e-9:
        raise ValueError(f"uniform_share must be a whole percentage in [0, 1] (it is part of the name), "
                         f"got {uniform_share}")
    kind = macro_kind(seed)
    sp = Space(np.random.default_rng([GENERATOR_VERSION, seed]), uniform_share)
    target = 10 ** sp.rng.uniform(6.3, math.log10(MAX_MACS))
    best, best_miss = None, math.inf
    for _ in range(ATTEMPTS):
        d = _SAMPLERS[kind](sp)
        if not (MIN_MACS <= d.g.macs <= MAX_MACS and MIN_LAYERS <= len(d.g.names) <= MAX_LAYERS):
            continue
        miss = abs(math.log10(d.g.macs / target))
        if miss < best_miss:
            best, best_miss = d, miss
        if miss <= 0.5:
            break
    if best is None:
        raise RuntimeError(f"no {kind} architecture within the size bounds after {ATTEMPTS} draws (seed {seed})")
    return ArchSpec(GENERATOR_VERSION, seed, kind, "generated", best.input_shape, best.blocks,
                    generated_name(seed, uniform_share), uniform_share)
