"""Variants of `keras.applications` families (`var1_ResNet_s000017`): width, kernels and depths drawn
per family, built with Keras' own parameterised constructors where they exist and with small
re-implementations of the family's blocks otherwise (`nnenergy.arch.blocks`).
"""

from __future__ import annotations

import zlib

import numpy as np

from nnenergy.arch.cost import estimate_macs
from nnenergy.arch.names import variant_name
from nnenergy.arch.space import CLASSES, Space, alpha, r8
from nnenergy.arch.spec import ATTEMPTS, GENERATOR_VERSION, MAX_MACS, MIN_MACS, ArchSpec


def _app(sp: Space, **args) -> list[dict]:
    return [{"type": "keras_app", "classes": sp.choice(CLASSES), **args}]


def _v_resnet(sp: Space, v2: bool) -> tuple[int, list[dict]]:
    n = sp.choice([3, 4], p=[0.25, 0.75])
    w = sp.choice([0.25, 0.5, 0.75, 1.0, 1.25])
    depths = [sp.draw("depth", lo=2 if v2 else 1) for _ in range(n)]
    kernel = 3 if v2 else sp.draw("spatial_kernel")  # v2 pads explicitly for a 3x3 kernel
    return sp.draw("input_size"), _app(sp, depths=depths, filters=[r8(64 * w * 2 ** i) for i in range(n)],
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
    return sp.draw("input_size"), _app(sp, alpha=alpha(sp, [0.25, 0.5, 0.75, 1.0], 0.2, 1.4))


def _v_mobilenet2(sp: Space) -> tuple[int, list[dict]]:
    return sp.draw("input_size"), _app(sp, alpha=alpha(sp, [0.35, 0.5, 0.75, 1.0, 1.3, 1.4], 0.3, 1.4))


def _v_mobilenet3(sp: Space) -> tuple[int, list[dict]]:
    return sp.draw("input_size"), _app(sp, size=sp.choice(["Small", "Large"]),
                                       alpha=alpha(sp, [0.75, 1.0], 0.3, 1.3), minimalistic=sp.chance(0.3))


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
            blocks.append({"type": "conv", "filters": r8(min(512, 64 * 2 ** i) * w), "kernel": k, "stride": 1,
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
        return {"type": "xception_module", "filters": [r8(f * w) for f in fs], "stride": stride, "kernel": k,
                "act": "relu", "first_act": first_act}

    blocks = [_cv(r8(32 * w), 3, 2, "valid"), _cv(r8(64 * w), 3, 1, "valid"), mod([128, 128], 2, False),
              mod([256, 256], 2), mod([728, 728], 2)]
    blocks += [mod([728] * 3, 1) for _ in range(sp.integers(1, 8))]
    blocks += [mod([728, 1024], 2)]
    blocks += [{"type": "sepconv", "filters": r8(f * w), "kernel": k, "stride": 1, "act": "relu"}
               for f in (1536, 2048)]
    return sp.draw("input_size", lo=72), blocks + [{"type": "gap"}, {"type": "head", "classes": sp.choice(CLASSES)}]


def _inc(branches, stride=1, pool="avg"):
    ops = [{"op": op, "kernel": k, "filters": f, "reduce": r} for op, k, f, r in branches]
    return {"type": "inception", "branches": ops, "merge": "concat", "stride": stride, "act": "relu", "pool": pool}


def _inception_stem(w: float) -> list[dict]:
    return [_cv(r8(32 * w), 3, 2, "valid"), _cv(r8(32 * w), 3, 1, "valid"), _cv(r8(64 * w), 3),
            {"type": "pool", "kind": "max", "size": 3, "stride": 2, "padding": "valid"},
            _cv(r8(80 * w), 1), _cv(r8(192 * w), 3, 1, "valid"),
            {"type": "pool", "kind": "max", "size": 3, "stride": 2, "padding": "valid"}]


def _v_inception3(sp: Space) -> tuple[int, list[dict]]:
    w, ka, kb = sp.choice([0.25, 0.5, 0.75, 1.0]), sp.choice([3, 5]), sp.choice([3, 5, 7])

    def r(f):
        return r8(f * w)

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
        return r8(f * w)

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
    dims = [r8(96 * w * 2 ** i) for i in range(4)]
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


def sample_variant_spec(family: str, seed: int) -> ArchSpec:
    """A variant of a keras.applications family (width, kernels, depths), redrawn until <= 3e9 MACs."""
    if family not in _VARIANTS:
        raise ValueError(f"no variants of {family!r}; families: {', '.join(VARIANT_FAMILIES)}")
    sp = Space(np.random.default_rng([GENERATOR_VERSION, seed, zlib.crc32(family.encode())]))
    for _ in range(ATTEMPTS):
        size, blocks = _VARIANTS[family](sp)
        spec = ArchSpec(GENERATOR_VERSION, seed, "variant", family, [size, size, 3], blocks,
                        variant_name(family, seed))
        if MIN_MACS <= estimate_macs(spec) <= MAX_MACS:
            return spec
    raise RuntimeError(f"no {family} variant within the size bounds after {ATTEMPTS} draws (seed {seed})")
