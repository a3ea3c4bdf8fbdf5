"""Seeded architecture generator: `ArchSpec`s sampled from a seed, built into Keras functional models.

A spec holds everything sampled (macro kind, input shape, every block's parameters), so `build_spec`
uses no randomness and `build_named("gen1_s000123")` rebuilds the same model anywhere. Variants of
`keras.applications` families (`var1_ResNet_s000017`) use Keras' own parameterised constructors where
they exist and small re-implementations of the family's blocks otherwise.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from nnenergy.arch.blocks import BLOCKS, CostGraph, KerasGraph, apply_blocks
from nnenergy.arch.space import Space

GENERATOR_VERSION = 1
MACRO_KINDS = ("cnn_plain", "resnet", "preact_resnet", "bottleneck", "inception", "mobile", "efficient_se", "unet",
         "mlp", "vit", "mixed")
MIN_MACS, MAX_MACS = 1e5, 3e9  # ~0.3 ms (call overhead) to ~300 ms per pass at batch 1 on 2 cores
MIN_LAYERS, MAX_LAYERS = 8, 250
MACS_PER_S = 40e9  # effective MAC/s of 2 cores (ResNet50 128 px b2: 2.7 GMAC in 53 ms on the EPYC)
MAX_TOKENS = 256
CLASSES = [10, 100, 1000]
_ATTEMPTS = 200
_GEN_NAME = re.compile(r"^gen(\d+)_s(\d+)(?:_u(\d+))?$")
_VAR_NAME = re.compile(r"^var(\d+)_([A-Za-z0-9]+)_s(\d+)$")
_KER_NAME = re.compile(r"^ker(\d+)_s(\d+)$")  # single kernels (nnenergy.arch.kernels)


@dataclass
class ArchSpec:
    generator_version: int
    seed: int
    kind: str  # a macro kind of MACRO_KINDS, or "variant"
    family: str  # "generated", or the keras.applications family of a variant
    input_shape: list[int]
    blocks: list[dict]
    name: str
    uniform_share: float = 0.25

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls(**json.loads(text))


def _check_version(version: int, what: str) -> None:
    if version != GENERATOR_VERSION:
        raise ValueError(f"{what} comes from generator version {version}; this is version {GENERATOR_VERSION}, "
                         "which would build a different model (use the nnenergy release that made it)")


def _r8(v: float) -> int:
    """Round a width to a multiple of 8, at least 8."""
    return max(8, int(round(v / 8)) * 8)


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


# --- generated models ---------------------------------------------------------------------------------

def _image(sp: Space) -> _Draft:
    """An image input and a MobileNet-style width multiplier, so that small models exist too."""
    s = sp.draw("input_size")
    d = _Draft([s, s, 3])
    d.wm = _alpha(sp, [0.25, 0.5, 0.75, 1.0], 0.125, 1.0)
    return d


def _stem(sp: Space, d: _Draft, act: str) -> None:
    """Optional rescaling, a conv (stride 2 from 64 px), and from 128 px sometimes a ResNet-style pool."""
    if sp.chance(0.5):
        d.add("rescale", scale=1 / 255)
    k, stride, f = sp.draw("spatial_kernel"), 2 if d.side >= 64 else 1, _r8(d.wm * sp.draw("conv_filters", hi=64))
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
    widths = sorted(_r8(d.wm * sp.draw("conv_filters")) for _ in range(n))
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
        f = w if merge == "add" else _r8(w / nb)
        k = sp.choice([3, 5, 7]) if op == "factorized" else sp.draw("conv_kernel" if op == "conv" else "spatial_kernel")
        b = {"op": op, "kernel": k, "filters": f, "reduce": _r8(f * sp.choice([0.5, 0.75, 1.0]))}
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
        d.add(t, filters=_r8(w / exp), expansion=exp, kernel=k, stride=stride, act=act)
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
            d.add("conv", filters=_r8(d.wm * sp.draw("conv_filters", lo=256)), kernel=1, stride=1, act=act, bn=True)
        if kind == "mixed" and len(d.x) == 3 and d.x[0] * d.x[1] <= MAX_TOKENS and sp.chance(0.5):
            _transformer(sp, d, dim=sp.choice([0, _r8(d.wm * sp.draw("conv_filters", lo=32, hi=512))]))
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
    base = _r8(d.wm * sp.draw("conv_filters", hi=64))
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
    d.add("conv", filters=_r8(d.wm * sp.draw("conv_filters", lo=32, hi=512)), kernel=p, stride=p, padding="valid",
          bn=False,
          act=None)
    _transformer(sp, d, depth=sp.draw("depth"))
    d.add("gap")
    d.add("head", classes=sp.choice(CLASSES), dropout=sp.draw("dropout") if sp.chance(0.3) else 0.0)
    return d


_SAMPLERS = {"cnn_plain": _cnn_plain, "unet": _unet, "mlp": _mlp, "vit": _vit,
             **{k: _staged(k) for k in ("resnet", "preact_resnet", "bottleneck", "inception", "mobile",
                                        "efficient_se", "mixed")}}


def generated_name(seed: int, uniform_share: float = 0.25) -> str:
    tail = "" if uniform_share == 0.25 else f"_u{int(round(uniform_share * 100))}"
    return f"gen{GENERATOR_VERSION}_s{seed:06d}{tail}"


def cycled_kind(seed_or_name: int | str, pattern: re.Pattern, kinds: tuple[str, ...]) -> str | None:
    """The kind of a seed, or of a name `pattern` matches (its group 2 is the seed); None for other
    names. Kinds cycle with the seed, so a run of seeds covers them evenly and a kind's seeds are known
    without building anything (adaptive resampling picks seeds by kind)."""
    if isinstance(seed_or_name, str):
        m = pattern.match(seed_or_name)
        if not m:
            return None
        seed_or_name = int(m.group(2))
    return kinds[seed_or_name % len(kinds)]


def macro_kind(seed_or_name: int | str) -> str | None:
    """The macro kind of a generator seed, or of a generated name (`gen1_s000123`); None for other names."""
    return cycled_kind(seed_or_name, _GEN_NAME, MACRO_KINDS)


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
    for _ in range(_ATTEMPTS):
        d = _SAMPLERS[kind](sp)
        if not (MIN_MACS <= d.g.macs <= MAX_MACS and MIN_LAYERS <= len(d.g.names) <= MAX_LAYERS):
            continue
        miss = abs(math.log10(d.g.macs / target))
        if miss < best_miss:
            best, best_miss = d, miss
        if miss <= 0.5:
            break
    if best is None:
        raise RuntimeError(f"no {kind} architecture within the size bounds after {_ATTEMPTS} draws (seed {seed})")
    return ArchSpec(GENERATOR_VERSION, seed, kind, "generated", best.input_shape, best.blocks,
                    generated_name(seed, uniform_share), uniform_share)


# --- variants of keras.applications families ----------------------------------------------------------

def _alpha(sp: Space, choices: list[float], lo: float, hi: float) -> float:
    """A width multiplier: a published one, or (uniform share) any in [lo, hi]."""
    return sp.uniform(lo, hi, 2) if sp.chance(sp.uniform_share) else sp.choice(choices)


def _app(sp: Space, **args) -> list[dict]:
    return [{"type": "keras_app", "classes": sp.choice(CLASSES), **args}]


def _v_resnet(sp: Space, v2: bool) -> tuple[int, list[dict]]:
    n = sp.choice([3, 4], p=[0.25, 0.75])
    w = sp.choice([0.25, 0.5, 0.75, 1.0, 1.25])
    depths = [sp.draw("depth", lo=2 if v2 else 1) for _ in range(n)]
    kernel = 3 if v2 else sp.draw("spatial_kernel")  # v2 pads explicitly for a 3x3 kernel
    return sp.draw("input_size"), _app(sp, depths=depths, filters=[_r8(64 * w * 2 ** i) for i in range(n)],
                                       kernel=kernel)


# Stage tables of the Keras constructors: (kernel, repeats, filters_in, filters_out, expand, stride).
_EFFNET = [(3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
           (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1)]
# EfficientNetV2-B0, plus (se_ratio, conv_type: 1 = fused).
_EFFNET2 = [(3, 1, 32, 16, 1, 1, 0.0, 1), (3, 2, 16, 32, 4, 2, 0.0, 1), (3, 2, 32, 48, 4, 2, 0.0, 1),
            (3, 3, 48, 96, 4, 2, 0.25, 0), (3, 5, 96, 112, 6, 1, 0.25, 0), (3, 8, 112, 192, 6, 2, 0.25, 0)]


def _v_efficientnet(sp: Space) -> tuple[int, list[dict]]:
    args = []
    for i, (_, r, fi, fo, e, s) in enumerate(_EFFNET):
        # integer expansions: Keras multiplies channels by it and needs an int
        e = e if i == 0 else int(sp.draw("expand_ratio", lo=2, hi=6))
        args.append(dict(kernel_size=sp.draw("dw_kernel"), repeats=r, filters_in=fi, filters_out=fo, expand_ratio=e,
                         id_skip=True, strides=s, se_ratio=0.25))
    return sp.draw("input_size"), _app(sp, width=sp.uniform(0.5, 1.6, 2),
                                       depth=sp.uniform(0.5, 1.4, 2), blocks_args=args)


def _v_efficientnet2(sp: Space) -> tuple[int, list[dict]]:
    args = [dict(kernel_size=sp.draw("dw_kernel", hi=5), num_repeat=r, input_filters=fi, output_filters=fo,
                 expand_ratio=e, se_ratio=se, strides=s, conv_type=ct) for _, r, fi, fo, e, s, se, ct in _EFFNET2]
    return sp.draw("input_size"), _app(sp, width=sp.uniform(0.5, 1.5, 2),
                                       depth=sp.uniform(0.5, 1.4, 2), blocks_args=args)


def _v_densenet(sp: Space) -> tuple[int, list[dict]]:
    return sp.draw("input_size"), _app(sp, blocks=[sp.draw("depth", hi=12) for _ in range(4)])


def _v_mobilenet(sp: Space) -> tuple[int, list[dict]]:
    return sp.draw("input_size"), _app(sp, alpha=_alpha(sp, [0.25, 0.5, 0.75, 1.0], 0.2, 1.4))


def _v_mobilenet2(sp: Space) -> tuple[int, list[dict]]:
    return sp.draw("input_size"), _app(sp, alpha=_alpha(sp, [0.35, 0.5, 0.75, 1.0, 1.3, 1.4], 0.3, 1.4))


def _v_mobilenet3(sp: Space) -> tuple[int, list[dict]]:
    return sp.draw("input_size"), _app(sp, size=sp.choice(["Small", "Large"]),
                                       alpha=_alpha(sp, [0.75, 1.0], 0.3, 1.3), minimalistic=sp.chance(0.3))


def _v_nasnet(sp: Space) -> tuple[int, list[dict]]:
    # penultimate_filters must be a multiple of 24 * filter_multiplier**2 = 96 (NASNetMobile: 1056)
    return sp.draw("input_size"), _app(sp, num_blocks=sp.integers(1, 4),
                                       penultimate_filters=96 * sp.integers(4, 16),
                                       stem_block_filters=sp.choice([16, 24, 32, 48]))


def _v_vgg(sp: Space) -> tuple[int, list[dict]]:
    s, w, k = sp.draw("input_size"), sp.choice([0.25, 0.5, 1.0]), sp.draw("spatial_kernel")
    blocks = [{"type": "rescale", "scale": 1 / 255}]
    for i in range(5 if s >= 64 else 4):
        for _ in range(sp.integers(1, 4)):
            blocks.append({"type": "conv", "filters": _r8(min(512, 64 * 2 ** i) * w), "kernel": k, "stride": 1,
                           "act": "relu", "bn": False})
        blocks.append({"type": "pool", "kind": "max", "size": 2, "stride": 2, "padding": "valid"})
    blocks.append({"type": "flatten"})
    fc = sp.draw("dense_units", lo=64)
    blocks += [{"type": "mlp", "units": fc, "norm": "none", "act": "relu", "dropout": 0.0} for _ in range(2)]
    return s, blocks + [{"type": "head", "classes": sp.choice(CLASSES), "dropout": 0.0}]


def _cv(f, k, s=1, padding="same"):
    return {"type": "conv", "filters": f, "kernel": k, "stride": s, "act": "relu", "bn": True, "padding": padding}


def _v_xception(sp: Space) -> tuple[int, list[dict]]:
    w, k = sp.choice([0.25, 0.5, 0.75, 1.0]), sp.draw("dw_kernel")

    def mod(fs, stride, first_act=True):
        return {"type": "xception_module", "filters": [_r8(f * w) for f in fs], "stride": stride, "kernel": k,
                "act": "relu", "first_act": first_act}

    blocks = [_cv(_r8(32 * w), 3, 2, "valid"), _cv(_r8(64 * w), 3, 1, "valid"), mod([128, 128], 2, False),
              mod([256, 256], 2), mod([728, 728], 2)]
    blocks += [mod([728] * 3, 1) for _ in range(sp.integers(1, 8))]
    blocks += [mod([728, 1024], 2)]
    blocks += [{"type": "sepconv", "filters": _r8(f * w), "kernel": k, "stride": 1, "act": "relu"}
               for f in (1536, 2048)]
    return sp.draw("input_size", lo=72), blocks + [{"type": "gap"}, {"type": "head", "classes": sp.choice(CLASSES)}]


def _inc(branches, stride=1, pool="avg"):
    ops = [{"op": op, "kernel": k, "filters": f, "reduce": r} for op, k, f, r in branches]
    return {"type": "inception", "branches": ops, "merge": "concat", "stride": stride, "act": "relu", "pool": pool}


def _inception_stem(w: float) -> list[dict]:
    return [_cv(_r8(32 * w), 3, 2, "valid"), _cv(_r8(32 * w), 3, 1, "valid"), _cv(_r8(64 * w), 3),
            {"type": "pool", "kind": "max", "size": 3, "stride": 2, "padding": "valid"},
            _cv(_r8(80 * w), 1), _cv(_r8(192 * w), 3, 1, "valid"),
            {"type": "pool", "kind": "max", "size": 3, "stride": 2, "padding": "valid"}]


def _v_inception3(sp: Space) -> tuple[int, list[dict]]:
    w, ka, kb = sp.choice([0.25, 0.5, 0.75, 1.0]), sp.choice([3, 5]), sp.choice([3, 5, 7])

    def r(f):
        return _r8(f * w)

    blocks = _inception_stem(w)
    blocks += [_inc([("conv", 1, r(64), r(64)), ("reduce", ka, r(64), r(48)), ("double", 3, r(96), r(64)),
                     ("pool", 1, r(64), r(64))]) for _ in range(sp.integers(1, 3))]
    blocks += [_inc([("conv", 3, r(384), r(384)), ("double", 3, r(96), r(64)), ("pool", 1, 0, 0)], 2, "max")]
    blocks += [_inc([("conv", 1, r(192), r(192)), ("factorized", kb, r(192), r(128)),
                     ("factorized", kb, r(192), r(160)), ("pool", 1, r(192), r(192))])
               for _ in range(sp.integers(1, 4))]
    blocks += [_inc([("reduce", 3, r(320), r(192)), ("factorized", kb, r(192), r(192)), ("pool", 1, 0, 0)], 2, "max")]
    blocks += [_inc([("conv", 1, r(320), r(320)), ("factorized", 3, r(384), r(384)), ("double", 3, r(384), r(448)),
                     ("pool", 1, r(192), r(192))]) for _ in range(sp.integers(1, 2))]
    return sp.draw("input_size", lo=80), blocks + [{"type": "gap"}, {"type": "head", "classes": sp.choice(CLASSES)}]


def _v_inception_resnet2(sp: Space) -> tuple[int, list[dict]]:
    w, kb = sp.choice([0.25, 0.5, 0.75, 1.0]), sp.choice([5, 7])

    def r(f):
        return _r8(f * w)

    def res(branches, scale):
        ops = [{"op": op, "kernel": k, "filters": f, "reduce": red} for op, k, f, red in branches]
        return {"type": "inception_res", "branches": ops, "scale": scale, "act": "relu"}

    blocks = _inception_stem(w)
    blocks += [_inc([("conv", 1, r(96), r(96)), ("reduce", 5, r(64), r(48)), ("double", 3, r(96), r(64)),
                     ("pool", 1, r(64), r(64))])]
    blocks += [res([("conv", 1, r(32), r(32)), ("reduce", 3, r(32), r(32)), ("double", 3, r(48), r(32))], 0.17)
               for _ in range(sp.integers(1, 5))]
    blocks += [_inc([("conv", 3, r(384), r(384)), ("double", 3, r(384), r(256)), ("pool", 1, 0, 0)], 2, "max")]
    blocks += [res([("conv", 1, r(192), r(192)), ("factorized", kb, r(192), r(128))], 0.1)
               for _ in range(sp.integers(1, 5))]
    blocks += [_inc([("reduce", 3, r(384), r(256)), ("reduce", 3, r(288), r(256)), ("double", 3, r(320), r(256)),
                     ("pool", 1, 0, 0)], 2, "max")]
    blocks += [res([("conv", 1, r(192), r(192)), ("factorized", 3, r(256), r(192))], 0.2)
               for _ in range(sp.integers(1, 3))]
    blocks += [_cv(r(1536), 1), {"type": "gap"}, {"type": "head", "classes": sp.choice(CLASSES)}]
    return sp.draw("input_size", lo=80), blocks


def _v_convnext(sp: Space) -> tuple[int, list[dict]]:
    w = sp.choice([0.25, 0.5, 0.75, 1.0])
    k = 7 if sp.chance(0.5) else sp.draw("dw_kernel")
    dims = [_r8(96 * w * 2 ** i) for i in range(4)]
    blocks = [{"type": "rescale", "scale": 1 / 255},
              {"type": "conv", "filters": dims[0], "kernel": 4, "stride": 4, "padding": "valid", "bn": False,
               "act": None},
              {"type": "norm", "kind": "ln"}]
    for i, dim in enumerate(dims):
        if i:
            blocks.append({"type": "convnext_down", "filters": dim, "kernel": 2})
        blocks += [{"type": "convnext", "kernel": k, "mlp_ratio": 4} for _ in range(sp.draw("depth", hi=9))]
    blocks += [{"type": "gap"}, {"type": "norm", "kind": "ln"}, {"type": "head", "classes": sp.choice(CLASSES)}]
    return sp.draw("input_size"), blocks


def _v_grouped(sp: Space) -> tuple[int, list[dict]]:
    """Grouped convolutions, which no keras.applications family but ConvNeXt has, yet ResNeXt,
    RegNet, ShuffleNet and AlexNet do (and TensorFlow runs them far slower than their FLOPs say):
    ResNeXt-style bottlenecks with a grouped kxk, plain grouped conv stacks, or channel-wise kxk
    as `Conv2D(groups=C)` after a pointwise conv. Tagged `Grouped`: no real family holds it, so
    level 1 never holds it out. Channels are multiples of 32, so every group count divides them."""
    style = sp.choice(["resnext", "plain", "channelwise"])
    w = sp.choice([1, 2, 3, 4])
    stages = int(sp.choice([2, 3, 4]))
    blocks = [_cv(32 * w, 3, 2)]
    for i in range(stages):
        f = 32 * w * 2 ** i
        for j in range(int(sp.integers(1, 4))):
            s = 2 if (i and not j) else 1
            if style == "resnext":
                blocks.append({"type": "bottleneck", "filters": f, "kernel": 3, "stride": s, "act": "relu",
                               "expansion": int(sp.choice([1, 2])), "groups": int(sp.choice([2, 4, 8, 16, 32]))})
            elif style == "plain":
                blocks.append({**_cv(f, int(sp.choice([3, 5])), s), "groups": int(sp.choice([2, 4, 8, 16, 32]))})
            else:
                blocks += [_cv(f, 1), {**_cv(f, int(sp.choice([3, 5, 7])), s), "groups": f}]
    return sp.draw("input_size"), blocks + [{"type": "gap"}, {"type": "head", "classes": sp.choice(CLASSES)}]


_VARIANTS = {
    "ResNet": lambda sp: _v_resnet(sp, False), "ResNetV2": lambda sp: _v_resnet(sp, True),
    "MobileNet": _v_mobilenet, "MobileNetV2": _v_mobilenet2, "MobileNetV3": _v_mobilenet3,
    "EfficientNet": _v_efficientnet, "EfficientNetV2": _v_efficientnet2, "DenseNet": _v_densenet,
    "NASNet": _v_nasnet, "VGG": _v_vgg, "ConvNeXt": _v_convnext, "Xception": _v_xception,
    "InceptionV3": _v_inception3, "InceptionResNetV2": _v_inception_resnet2,
    "Grouped": _v_grouped,  # a building block, not a keras.applications family
}
VARIANT_FAMILIES = tuple(_VARIANTS)


def variant_name(family: str, seed: int) -> str:
    return f"var{GENERATOR_VERSION}_{family}_s{seed:06d}"


def sample_variant_spec(family: str, seed: int) -> ArchSpec:
    """A variant of a keras.applications family (width, kernels, depths), redrawn until <= 3e9 MACs."""
    if family not in _VARIANTS:
        raise ValueError(f"no variants of {family!r}; families: {', '.join(VARIANT_FAMILIES)}")
    sp = Space(np.random.default_rng([GENERATOR_VERSION, seed, zlib.crc32(family.encode())]))
    for _ in range(_ATTEMPTS):
        size, blocks = _VARIANTS[family](sp)
        spec = ArchSpec(GENERATOR_VERSION, seed, "variant", family, [size, size, 3], blocks,
                        variant_name(family, seed))
        if MIN_MACS <= estimate_macs(spec) <= MAX_MACS:
            return spec
    raise RuntimeError(f"no {family} variant within the size bounds after {_ATTEMPTS} draws (seed {seed})")


# --- building -----------------------------------------------------------------------------------------

def build_spec(spec: ArchSpec):
    """The Keras model of `spec`, named `spec.name`; nothing is sampled here."""
    import keras

    _check_version(spec.generator_version, f"spec {spec.name!r}")
    if spec.blocks and spec.blocks[0]["type"] == "keras_app":
        return _build_app(spec)
    inp, out = apply_blocks(KerasGraph(), spec.input_shape, spec.blocks)
    return keras.Model(inp, out, name=spec.name)


def _build_app(spec: ArchSpec):
    """Keras' own parameterised constructors, always with `weights=None` (no download)."""
    import copy

    import keras
    from keras.src.applications import densenet, efficientnet, efficientnet_v2, nasnet, resnet

    a, fam = spec.blocks[0], spec.family
    common = dict(include_top=True, weights=None, input_shape=tuple(spec.input_shape), classes=a["classes"],
                  name=spec.name)
    if fam in ("ResNet", "ResNetV2"):
        v2 = fam == "ResNetV2"

        def stack_fn(x):
            last = len(a["depths"]) - 1
            for i, (depth, f) in enumerate(zip(a["depths"], a["filters"])):
                if v2:
                    x = resnet.stack_residual_blocks_v2(x, f, depth, stride1=1 if i == last else 2, name=f"conv{i + 2}")
                    continue
                for j in range(depth):
                    x = resnet.residual_block_v1(x, f, kernel_size=a["kernel"], stride=2 if i and not j else 1,
                                                 conv_shortcut=not j, name=f"conv{i + 2}_block{j + 1}")
            return x

        return resnet.ResNet(stack_fn, v2, True, **common)
    if fam == "EfficientNet":
        return efficientnet.EfficientNet(a["width"], a["depth"], spec.input_shape[0],
                                         blocks_args=copy.deepcopy(a["blocks_args"]), **common)
    if fam == "EfficientNetV2":
        return efficientnet_v2.EfficientNetV2(a["width"], a["depth"], spec.input_shape[0],
                                              blocks_args=copy.deepcopy(a["blocks_args"]), **common)
    if fam == "DenseNet":
        return densenet.DenseNet(a["blocks"], **common)
    if fam == "NASNet":
        return nasnet.NASNet(penultimate_filters=a["penultimate_filters"], num_blocks=a["num_blocks"],
                             stem_block_filters=a["stem_block_filters"], skip_reduction=False,
                             default_size=spec.input_shape[0], **common)
    if fam == "MobileNet":
        return keras.applications.MobileNet(alpha=a["alpha"], **common)
    if fam == "MobileNetV2":
        return keras.applications.MobileNetV2(alpha=a["alpha"], **common)
    if fam == "MobileNetV3":
        ctor = getattr(keras.applications, f"MobileNetV3{a['size']}")
        return ctor(alpha=a["alpha"], minimalistic=a["minimalistic"], **common)
    raise ValueError(f"no Keras constructor for family {fam!r}")


def is_generated_name(name: str) -> bool:
    """True for names this module makes (`gen1_s000123`, `var1_ResNet_s000017`, kernels `ker1_s000005`),
    of any version."""
    return bool(_GEN_NAME.match(name) or _VAR_NAME.match(name) or _KER_NAME.match(name))


def spec_from_name(name: str) -> ArchSpec:
    if m := _GEN_NAME.match(name):
        _check_version(int(m[1]), f"model {name!r}")
        return sample_spec(int(m[2]), int(m[3]) / 100 if m[3] else 0.25)
    if m := _VAR_NAME.match(name):
        _check_version(int(m[1]), f"model {name!r}")
        return sample_variant_spec(m[2], int(m[3]))
    if _KER_NAME.match(name):
        from nnenergy.arch.kernels import kernel_spec_from_name

        return kernel_spec_from_name(name)  # checks the version like the two above
    raise ValueError(f"{name!r} is not a generated architecture name (gen<v>_s<seed>, var<v>_<Family>_s<seed> "
                     "or ker<v>_s<seed>)")


def build_named(name: str):
    """(model, spec) of a generated or variant name; refuses names of another generator version."""
    spec = spec_from_name(name)
    return build_spec(spec), spec


# --- analytic cost ------------------------------------------------------------------------------------

def cost_graph(spec: ArchSpec) -> CostGraph:
    """The spec walked without Keras: shapes, layer names (exact for block specs), MACs."""
    if spec.blocks and spec.blocks[0]["type"] == "keras_app":
        return _APP_COST[spec.family](spec)
    g = CostGraph()
    apply_blocks(g, spec.input_shape, spec.blocks)
    return g


def estimate_macs(spec: ArchSpec) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions, Dense, attention), no Keras."""
    return int(cost_graph(spec).macs)


def sample_configs(spec: ArchSpec, rng: np.random.Generator, n: int,
                   batch_sizes=(1, 2, 4, 8, 16, 32, 64)) -> list[int]:
    """`n` distinct batch sizes whose estimated pass stays within ~1 ms-1 s, spread over the allowed range;
    when fewer qualify, the nearest others (in log time) fill up."""
    macs = max(estimate_macs(spec), 1)
    secs = {int(b): macs * b / MACS_PER_S for b in batch_sizes}
    lo, hi = 1e-3, 1.0
    inside = sorted(b for b, t in secs.items() if lo <= t <= hi)
    if len(inside) >= n:
        groups = np.array_split(np.asarray(inside), n) if n else []
        return sorted(int(rng.choice(grp)) for grp in groups)

    def miss(b):
        t = secs[b]
        return math.log(lo / t) if t < lo else math.log(t / hi)

    rest = sorted((b for b in secs if b not in inside), key=miss)
    return sorted(inside + rest[: n - len(inside)])


# Analytic MACs of the Keras-constructor variants: their layer structure replayed on a CostGraph.

def _div(v: float, d: int = 8, bump: bool = True) -> int:
    """Keras' `_make_divisible` / `round_filters`: nearest multiple of d, at least d, (bump: not below 90%)."""
    new = max(d, int(v + d / 2) // d * d)
    return new + d if bump and new < 0.9 * v else new


def _se_cost(g, x, c_se):
    s = g.gap(x, keepdims=True)
    g.conv(g.conv(s, c_se, 1), x[-1], 1)
    return x


def _cost_resnet(spec):
    a, g = spec.blocks[0], CostGraph()
    x = g.conv(g.pad(g.input(tuple(spec.input_shape), "in"), 3), 64, 7, 2, "valid")
    x = g.pool(g.pad(x, 1), "max", 3, 2, "valid")
    v2, last = spec.family == "ResNetV2", len(a["depths"]) - 1
    for i, (depth, f) in enumerate(zip(a["depths"], a["filters"])):
        for j in range(depth):
            if v2:
                s = (1 if i == last else 2) if j == depth - 1 else 1
                if j == 0:
                    g.conv(x, 4 * f, 1)
                y = g.conv(g.pad(g.conv(x, f, 1), 1), f, 3, s, "valid")
            else:
                s = 2 if i and not j else 1
                if j == 0:
                    g.conv(x, 4 * f, 1, s)
                y = g.conv(g.conv(x, f, 1, s), f, a["kernel"])
            x = g.conv(y, 4 * f, 1)
    g.dense(g.gap(x), a["classes"])
    return g


def _cost_densenet(spec):
    a, g = spec.blocks[0], CostGraph()
    x = g.conv(g.pad(g.input(tuple(spec.input_shape), "in"), 3), 64, 7, 2, "valid")
    x = g.pool(g.pad(x, 1), "max", 3, 2, "valid")
    for i, n in enumerate(a["blocks"]):
        for _ in range(n):
            x = g.concat([x, g.conv(g.conv(x, 128, 1), 32, 3)])
        if i < len(a["blocks"]) - 1:
            x = g.pool(g.conv(x, int(x[-1] * 0.5), 1), "avg", 2, 2, "valid")
    g.dense(g.gap(x), a["classes"])
    return g


def _cost_efficientnet(spec):
    a, g, v2 = spec.blocks[0], CostGraph(), spec.family == "EfficientNetV2"

    def rf(f):
        return _div(f * a["width"], bump=not v2)

    args = a["blocks_args"]
    x = g.conv(g.input(tuple(spec.input_shape), "in"), rf(args[0]["input_filters" if v2 else "filters_in"]), 3, 2)
    for b in args:
        fi, fo = rf(b["input_filters" if v2 else "filters_in"]), rf(b["output_filters" if v2 else "filters_out"])
        k, e, se, stride = b["kernel_size"], b["expand_ratio"], b["se_ratio"], b["strides"]
        fused = v2 and b["conv_type"] == 1
        for j in range(int(math.ceil(a["depth"] * b["num_repeat" if v2 else "repeats"]))):
            fin, s = (fi, stride) if j == 0 else (fo, 1)
            y = x
            if e != 1:
                y = g.conv(y, fin * e, k, s) if fused else g.conv(y, fin * e, 1)
            if not fused:
                y = g.dwconv(y, k, s)
            if 0 < se <= 1:
                _se_cost(g, y, max(1, int(fin * se)))
            x = g.conv(y, fo, k if fused and e == 1 else 1, s if fused and e == 1 else 1)
    x = g.conv(x, rf(1280), 1)
    g.dense(g.gap(x), a["classes"])
    return g


def _cost_mobilenet(spec):
    a, g = spec.blocks[0], CostGraph()
    al = a["alpha"]
    x = g.conv(g.input(tuple(spec.input_shape), "in"), int(32 * al), 3, 2)
    for f, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
        x = g.dwconv(g.pad(x, ((0, 1), (0, 1))), 3, s, "valid") if s > 1 else g.dwconv(x, 3)
        x = g.conv(x, int(f * al), 1)
    g.conv(g.gap(x, keepdims=True), a["classes"], 1)
    return g


def _cost_mobilenet2(spec):
    a, g = spec.blocks[0], CostGraph()
    al = a["alpha"]
    x = g.conv(g.input(tuple(spec.input_shape), "in"), _div(32 * al), 3, 2)
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1)]
    for i, (t, c, n, s) in enumerate(table):
        for j in range(n):
            y = x if i == 0 else g.conv(x, t * x[-1], 1)
            x = g.conv(g.dwconv(y, 3, s if j == 0 else 1), _div(int(c * al)), 1)
    x = g.conv(x, _div(1280 * al) if al > 1 else 1280, 1)
    g.dense(g.gap(x), a["classes"])
    return g


def _cost_mobilenet3(spec):
    a, g = spec.blocks[0], CostGraph()
    al, mini = a["alpha"], a["minimalistic"]
    k, se = (3, None) if mini else (5, 0.25)
    if a["size"] == "Small":
        table = [(1, 16, 3, 2, se), (72 / 16, 24, 3, 2, None), (88 / 24, 24, 3, 1, None), (4, 40, k, 2, se),
                 (6, 40, k, 1, se), (6, 40, k, 1, se), (3, 48, k, 1, se), (3, 48, k, 1, se), (6, 96, k, 2, se),
                 (6, 96, k, 1, se), (6, 96, k, 1, se)]
        last_point = 1024
    else:
        table = [(1, 16, 3, 1, None), (4, 24, 3, 2, None), (3, 24, 3, 1, None), (3, 40, k, 2, se),
                 (3, 40, k, 1, se), (3, 40, k, 1, se), (6, 80, 3, 2, None), (2.5, 80, 3, 1, None),
                 (2.3, 80, 3, 1, None), (2.3, 80, 3, 1, None), (6, 112, 3, 1, se), (6, 112, 3, 1, se),
                 (6, 160, k, 2, se), (6, 160, k, 1, se), (6, 160, k, 1, se)]
        last_point = 1280
    x = g.conv(g.input(tuple(spec.input_shape), "in"), 16, 3, 2)
    for i, (e, f, kk, s, r) in enumerate(table):
        y = g.conv(x, _div(x[-1] * e), 1) if i else x
        y = g.dwconv(y, kk, s)
        if r:
            _se_cost(g, y, _div(y[-1] * r))
        x = g.conv(y, _div(f * al), 1)
    x = g.conv(x, _div(x[-1] * 6), 1)
    lp = _div(last_point * al) if al > 1 else last_point
    g.conv(g.conv(g.gap(x, keepdims=True), lp, 1), a["classes"], 1)
    return g


def _cost_nasnet(spec):
    """Scaled from NASNetMobile (564M MACs at 224 px, penultimate 1056, 4 blocks): cells are dominated by
    pointwise convs (filters^2) and there are 3 * num_blocks + 2 of them; a rough guide, not a replay."""
    a, g = spec.blocks[0], CostGraph()
    scale = (a["penultimate_filters"] / 1056) ** 2 * (3 * a["num_blocks"] + 2) / 14 * (spec.input_shape[0] / 224) ** 2
    g.macs = int(564e6 * scale)
    return g


_APP_COST = {"ResNet": _cost_resnet, "ResNetV2": _cost_resnet, "DenseNet": _cost_densenet,
             "EfficientNet": _cost_efficientnet, "EfficientNetV2": _cost_efficientnet,
             "MobileNet": _cost_mobilenet, "MobileNetV2": _cost_mobilenet2, "MobileNetV3": _cost_mobilenet3,
             "NASNet": _cost_nasnet}
