"""A project-owned external test set: published architectures that are not in `keras.applications`.

Each builder writes one architecture from its paper as a Keras 3 functional model made only of
built-in Keras layers (no Lambda, no custom classes, so the saved `.keras` files load with
`safe_mode=True`), with every layer explicitly and uniquely named. These models are never used
for training: they are the held-out family (`FAMILY = "external"`) on which the predictors are
evaluated.

Deviations from the papers, kept small and listed here once:
  * AlexNet: BatchNormalization stands in for local response normalisation (Keras has no LRN);
    the two-GPU towers are kept as `groups=2` on conv2/4/5.
  * GoogLeNet: no LRN and no auxiliary heads.
  * ResNeXt26: ResNeXt-50's (32x4d) design with two blocks per stage instead of 3/4/6/3.
  * UNet: 16 base filters instead of 64, `padding="same"` convolutions (the output has the input's
    size) and the paper's 2-class per-pixel softmax head; `classes` is ignored.
  * ViTTi16: the ViT-Ti/16 encoder with the "simple ViT" choices (fixed 2D sin-cos position
    embedding added through a `Rescaling` offset, global average pooling instead of a class
    token), since a learnable embedding or class token needs a custom layer.
Widths are otherwise the papers'; all cost < ~2 GMACs at 128 px.

Input sizes: the CNNs take any square size from 96 to 224; UNet, MixerS16 and ViTTi16 need a
size divisible by 16 (96, 112, 128, ..., 224): UNet's four poolings must invert exactly for the
skip concatenations, and the transformers use 16x16 patches.

    python benchmarks/external_models.py --list [--sizes 128]
    python benchmarks/external_models.py --write DIR --sizes 96,160 [--names SqueezeNet11,UNet]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

L = keras.layers
FAMILY = "external"
MIN_SIZE, MAX_SIZE = 96, 224


# --------------------------------------------------------------------------- shared blocks

def _act(x, act, name):
    if act == "leaky":
        return L.LeakyReLU(negative_slope=0.1, name=name)(x)
    return L.Activation(act, name=name)(x)


def _conv_bn(x, filters, k, name, strides=1, act="relu", groups=1, bn=True):
    """Conv2D (same padding) -> BatchNormalization -> activation; `act=None` skips the activation."""
    x = L.Conv2D(filters, k, strides=strides, padding="same", groups=groups, use_bias=not bn,
                 name=f"{name}_conv")(x)
    if bn:
        x = L.BatchNormalization(name=f"{name}_bn")(x)
    if act:
        x = _act(x, act, f"{name}_{act}")
    return x


def _dw_bn(x, k, name, strides=1, act="relu"):
    x = L.DepthwiseConv2D(k, strides=strides, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = L.BatchNormalization(name=f"{name}_dwbn")(x)
    if act:
        x = _act(x, act, f"{name}_dw{act}")
    return x


def _se(x, reduced, name, gate="sigmoid", act="relu"):
    """Squeeze-and-excitation: global pool -> 1x1 reduce -> 1x1 expand -> gate -> rescale."""
    channels = x.shape[-1]
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = L.Conv2D(reduced, 1, activation=act, name=f"{name}_se_reduce")(s)
    s = L.Conv2D(channels, 1, activation=gate, name=f"{name}_se_expand")(s)
    return L.Multiply(name=f"{name}_se_excite")([x, s])


def _classifier(x, classes, dropout=None):
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = L.Dropout(dropout, name="head_dropout")(x)
    return L.Dense(classes, activation="softmax", name="predictions")(x)


def _make_divisible(v, divisor=4):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


# --------------------------------------------------------------------------- architectures

def _lenet5(x, classes):
    """LeNet-5: LeCun et al., "Gradient-Based Learning Applied to Document Recognition", 1998."""
    x = L.Conv2D(6, 5, activation="tanh", name="c1_conv")(x)
    x = L.AveragePooling2D(2, name="s2_pool")(x)
    x = L.Conv2D(16, 5, activation="tanh", name="c3_conv")(x)
    x = L.AveragePooling2D(2, name="s4_pool")(x)
    x = L.Conv2D(120, 5, activation="tanh", name="c5_conv")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(84, activation="tanh", name="f6_dense")(x)
    return L.Dense(classes, activation="softmax", name="predictions")(x)


def _alexnet(x, classes):
    """AlexNet: Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural Networks", 2012."""
    x = L.Conv2D(96, 11, strides=4, padding="same", activation="relu", name="conv1")(x)
    x = L.BatchNormalization(name="norm1")(x)
    x = L.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = L.Conv2D(256, 5, padding="same", groups=2, activation="relu", name="conv2")(x)
    x = L.BatchNormalization(name="norm2")(x)
    x = L.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = L.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.Conv2D(384, 3, padding="same", groups=2, activation="relu", name="conv4")(x)
    x = L.Conv2D(256, 3, padding="same", groups=2, activation="relu", name="conv5")(x)
    x = L.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = L.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = L.Dropout(0.5, name=f"drop{i}")(x)
        x = L.Dense(4096, activation="relu", name=f"fc{i}")(x)
    return L.Dense(classes, activation="softmax", name="predictions")(x)


def _inception(x, name, c1, c3r, c3, c5r, c5, pp):
    def conv(t, f, k, n):
        return L.Conv2D(f, k, padding="same", activation="relu", name=f"{name}_{n}")(t)
    b1 = conv(x, c1, 1, "1x1")
    b2 = conv(conv(x, c3r, 1, "3x3_reduce"), c3, 3, "3x3")
    b3 = conv(conv(x, c5r, 1, "5x5_reduce"), c5, 5, "5x5")
    b4 = L.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = conv(b4, pp, 1, "pool_proj")
    return L.Concatenate(name=f"{name}_output")([b1, b2, b3, b4])


def _googlenet(x, classes):
    """GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", 2015."""
    x = L.Conv2D(64, 7, strides=2, padding="same", activation="relu", name="conv1_7x7")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = L.Conv2D(64, 1, activation="relu", name="conv2_3x3_reduce")(x)
    x = L.Conv2D(192, 3, padding="same", activation="relu", name="conv2_3x3")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    x = _inception(x, "inception_3a", 64, 96, 128, 16, 32, 32)
    x = _inception(x, "inception_3b", 128, 128, 192, 32, 96, 64)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    x = _inception(x, "inception_4a", 192, 96, 208, 16, 48, 64)
    x = _inception(x, "inception_4b", 160, 112, 224, 24, 64, 64)
    x = _inception(x, "inception_4c", 128, 128, 256, 24, 64, 64)
    x = _inception(x, "inception_4d", 112, 144, 288, 32, 64, 64)
    x = _inception(x, "inception_4e", 256, 160, 320, 32, 128, 128)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool4")(x)
    x = _inception(x, "inception_5a", 256, 160, 320, 32, 128, 128)
    x = _inception(x, "inception_5b", 384, 192, 384, 48, 128, 128)
    return _classifier(x, classes, dropout=0.4)


def _fire(x, name, squeeze, expand):
    s = L.Conv2D(squeeze, 1, activation="relu", name=f"{name}_squeeze1x1")(x)
    e1 = L.Conv2D(expand, 1, activation="relu", name=f"{name}_expand1x1")(s)
    e3 = L.Conv2D(expand, 3, padding="same", activation="relu", name=f"{name}_expand3x3")(s)
    return L.Concatenate(name=f"{name}_concat")([e1, e3])


def _squeezenet11(x, classes):
    """SqueezeNet 1.1: Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters
    and <0.5MB model size", 2016 (v1.1 from the authors' release)."""
    x = L.Conv2D(64, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _fire(x, "fire2", 16, 64)
    x = _fire(x, "fire3", 16, 64)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    x = _fire(x, "fire4", 32, 128)
    x = _fire(x, "fire5", 32, 128)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="pool5")(x)
    x = _fire(x, "fire6", 48, 192)
    x = _fire(x, "fire7", 48, 192)
    x = _fire(x, "fire8", 64, 256)
    x = _fire(x, "fire9", 64, 256)
    x = L.Dropout(0.5, name="drop9")(x)
    x = L.Conv2D(classes, 1, activation="relu", name="conv10")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    return L.Softmax(name="predictions")(x)


def _shuffle_rows(x, name):
    """Channel shuffle (2 groups) of (h, w, c), returned as (h*w, 2, c/2): row 0 is the first half
    of the shuffled channels, row 1 the second, so the split is a `Cropping2D` per half."""
    h, w, c = x.shape[1:]
    x = L.Reshape((h * w, 2, c // 2), name=f"{name}_shuffle_reshape1")(x)
    x = L.Permute((1, 3, 2), name=f"{name}_shuffle_transpose")(x)
    return L.Reshape((h * w, 2, c // 2), name=f"{name}_shuffle_reshape2")(x)


def _shufflenetv2(x, classes):
    """ShuffleNet V2 1.0x: Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN
    Architecture Design", 2018."""
    x = _conv_bn(x, 24, 3, "conv1", strides=2)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="maxpool")(x)
    rows = None  # the previous unit's shuffled output as (h*w, 2, c/2); None before the first unit
    x_hw = None  # its spatial size
    x_hw = None  # spatial size of `rows`
    for stage, (repeats, out) in enumerate(zip((4, 8, 4), (116, 232, 464)), start=2):
        half = out // 2
        for unit in range(repeats):
            name = f"stage{stage}_unit{unit + 1}"
            if unit == 0:  # spatial down-sampling unit: both branches see the whole input
                if rows is not None:
                    h, w = x_hw
                    x = L.Reshape((h, w, rows.shape[-1] * 2), name=f"{name}_unshuffle")(rows)
                left = _dw_bn(x, 3, f"{name}_branch1", strides=2, act=None)
                left = _conv_bn(left, half, 1, f"{name}_branch1_pw")
                right = _conv_bn(x, half, 1, f"{name}_branch2_pw1")
            else:  # basic unit: channel split, identity on the first half
                h, w = x_hw
                left = L.Cropping2D(((0, 0), (0, 1)), name=f"{name}_split_left")(rows)
                left = L.Reshape((h, w, half), name=f"{name}_split_left_reshape")(left)
                right = L.Cropping2D(((0, 0), (1, 0)), name=f"{name}_split_right")(rows)
                right = L.Reshape((h, w, half), name=f"{name}_split_right_reshape")(right)
                right = _conv_bn(right, half, 1, f"{name}_branch2_pw1")
            right = _dw_bn(right, 3, f"{name}_branch2", strides=2 if unit == 0 else 1, act=None)
            right = _conv_bn(right, half, 1, f"{name}_branch2_pw2")
            cat = L.Concatenate(name=f"{name}_concat")([left, right])
            x_hw = tuple(cat.shape[1:3])
            rows = _shuffle_rows(cat, name)
    h, w = x_hw
    x = L.Reshape((h, w, rows.shape[-1] * 2), name="stage4_output")(rows)
    x = _conv_bn(x, 1024, 1, "conv5")
    return _classifier(x, classes)


def _mbconv(x, name, k, strides, expand, out, se_ratio):
    inp = x
    in_ch = x.shape[-1]
    if expand != 1:
        x = _conv_bn(x, in_ch * expand, 1, f"{name}_expand")
    x = _dw_bn(x, k, name, strides=strides)
    if se_ratio:
        x = _se(x, max(1, int(in_ch * se_ratio)), name)
    x = _conv_bn(x, out, 1, f"{name}_project", act=None)
    if strides == 1 and in_ch == out:
        x = L.Add(name=f"{name}_add")([inp, x])
    return x


def _mnasnet_a1(x, classes):
    """MnasNet-A1: Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile", 2019."""
    x = _conv_bn(x, 32, 3, "stem", strides=2)
    x = _dw_bn(x, 3, "sepconv")  # SepConv 3x3, 16 channels, no skip
    x = _conv_bn(x, 16, 1, "sepconv_project", act=None)
    # repeats, kernel, stride, expansion, output channels, SE ratio
    stages = [(2, 3, 2, 6, 24, 0), (3, 5, 2, 3, 40, 0.25), (4, 3, 2, 6, 80, 0),
              (2, 3, 1, 6, 112, 0.25), (3, 5, 2, 6, 160, 0.25), (1, 3, 1, 6, 320, 0)]
    for s, (repeats, k, stride, expand, out, se) in enumerate(stages, start=1):
        for r in range(repeats):
            x = _mbconv(x, f"block{s}_{r + 1}", k, stride if r == 0 else 1, expand, out, se)
    x = _conv_bn(x, 1280, 1, "head")
    return _classifier(x, classes, dropout=0.2)


def _ghost_module(x, out, name, relu):
    init = math.ceil(out / 2)
    primary = _conv_bn(x, init, 1, f"{name}_primary", act="relu" if relu else None)
    cheap = _dw_bn(primary, 3, f"{name}_cheap", act="relu" if relu else None)
    return L.Concatenate(name=f"{name}_concat")([primary, cheap])  # `out` is even: no slicing


def _ghost_bottleneck(x, name, k, mid, out, se_ratio, strides):
    inp = x
    x = _ghost_module(x, mid, f"{name}_ghost1", relu=True)
    if strides > 1:
        x = _dw_bn(x, k, name, strides=strides, act=None)
    if se_ratio:
        x = _se(x, _make_divisible(mid * se_ratio, 4), name, gate="hard_sigmoid")
    x = _ghost_module(x, out, f"{name}_ghost2", relu=False)
    if strides == 1 and inp.shape[-1] == out:
        shortcut = inp
    else:
        shortcut = _dw_bn(inp, k, f"{name}_shortcut", strides=strides, act=None)
        shortcut = _conv_bn(shortcut, out, 1, f"{name}_shortcut_pw", act=None)
    return L.Add(name=f"{name}_add")([x, shortcut])


def _ghostnet(x, classes):
    """GhostNet 1.0x: Han et al., "GhostNet: More Features from Cheap Operations", 2020."""
    x = _conv_bn(x, 16, 3, "stem", strides=2)
    # kernel, expansion (mid) channels, output channels, SE ratio, stride
    cfg = [(3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 0.25, 2),
           (5, 120, 40, 0.25, 1), (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1),
           (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1), (5, 672, 160, 0.25, 2),
           (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)]
    for i, (k, mid, out, se, s) in enumerate(cfg, start=1):
        x = _ghost_bottleneck(x, f"bneck{i}", k, mid, out, se, s)
    x = _conv_bn(x, 960, 1, "conv_last")
    x = L.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    x = L.Conv2D(1280, 1, activation="relu", name="conv_head")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(0.2, name="head_dropout")(x)
    return L.Dense(classes, activation="softmax", name="predictions")(x)


def _bottleneck(x, name, width, out, strides, groups, se_reduced=0):
    """ResNet-style bottleneck with a grouped 3x3 (ResNeXt, RegNet X block)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != out:
        shortcut = _conv_bn(x, out, 1, f"{name}_shortcut", strides=strides, act=None)
    x = _conv_bn(x, width, 1, f"{name}_a")
    x = _conv_bn(x, width, 3, f"{name}_b", strides=strides, groups=groups)
    x = _conv_bn(x, out, 1, f"{name}_c", act=None)
    if se_reduced:
        x = _se(x, se_reduced, name)
    x = L.Add(name=f"{name}_add")([shortcut, x])
    return L.Activation("relu", name=f"{name}_out")(x)


def _regnetx_400mf(x, classes):
    """RegNetX-400MF: Radosavovic et al., "Designing Network Design Spaces", 2020."""
    x = _conv_bn(x, 32, 3, "stem", strides=2)
    group_width = 16
    for s, (depth, width) in enumerate(zip((1, 2, 7, 12), (32, 64, 160, 384)), start=1):
        for b in range(depth):
            x = _bottleneck(x, f"s{s}_b{b + 1}", width, width, 2 if b == 0 else 1, width // group_width)
    return _classifier(x, classes)


def _resnext26(x, classes):
    """ResNeXt-26 (32x4d): Xie et al., "Aggregated Residual Transformations for Deep Neural
    Networks", 2017 (ResNeXt-50's blocks, two per stage)."""
    x = _conv_bn(x, 64, 7, "stem", strides=2)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for s in range(4):
        for b in range(2):
            x = _bottleneck(x, f"stage{s + 1}_b{b + 1}", 128 * 2 ** s, 256 * 2 ** s,
                            2 if (b == 0 and s > 0) else 1, groups=32)
    return _classifier(x, classes)


def _se_resnet18(x, classes):
    """SE-ResNet-18: Hu et al., "Squeeze-and-Excitation Networks", 2018 (ResNet-18 basic blocks, r=16)."""
    x = _conv_bn(x, 64, 7, "stem", strides=2)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for s, width in enumerate((64, 128, 256, 512)):
        for b in range(2):
            name = f"stage{s + 1}_b{b + 1}"
            strides = 2 if (b == 0 and s > 0) else 1
            shortcut = x
            if strides != 1 or x.shape[-1] != width:
                shortcut = _conv_bn(x, width, 1, f"{name}_shortcut", strides=strides, act=None)
            y = _conv_bn(x, width, 3, f"{name}_a", strides=strides)
            y = _conv_bn(y, width, 3, f"{name}_b", act=None)
            y = _se(y, width // 16, name)
            x = L.Add(name=f"{name}_add")([shortcut, y])
            x = L.Activation("relu", name=f"{name}_out")(x)
    return _classifier(x, classes)


def _darknet19(x, classes):
    """Darknet-19: Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger", 2017."""
    plan = [[32], "M", [64], "M", [128, 64, 128], "M", [256, 128, 256], "M",
            [512, 256, 512, 256, 512], "M", [1024, 512, 1024, 512, 1024]]
    n_pool = n_conv = 0
    for item in plan:
        if item == "M":
            n_pool += 1
            x = L.MaxPooling2D(2, padding="same", name=f"maxpool{n_pool}")(x)
            continue
        for i, filters in enumerate(item):  # 3x3 convs alternate with 1x1 bottlenecks
            n_conv += 1
            x = _conv_bn(x, filters, 3 if i % 2 == 0 else 1, f"conv{n_conv}", act="leaky")
    x = L.Conv2D(classes, 1, name="conv19")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    return L.Softmax(name="predictions")(x)


def _patch_tokens(x, patch, dim):
    x = L.Conv2D(dim, patch, strides=patch, name="patch_embed")(x)
    h, w = x.shape[1:3]
    return L.Reshape((h * w, dim), name="patch_tokens")(x), h, w


def _mixer_s16(x, classes):
    """Mixer-S/16: Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", 2021."""
    dim, tokens_mlp, channels_mlp = 512, 256, 2048
    x, h, w = _patch_tokens(x, 16, dim)
    n = h * w
    for i in range(8):
        name = f"mixer{i + 1}"
        y = L.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
        y = L.Permute((2, 1), name=f"{name}_token_transpose1")(y)
        y = L.Dense(tokens_mlp, activation="gelu", name=f"{name}_token_mlp1")(y)
        y = L.Dense(n, name=f"{name}_token_mlp2")(y)
        y = L.Permute((2, 1), name=f"{name}_token_transpose2")(y)
        x = L.Add(name=f"{name}_token_add")([x, y])
        y = L.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
        y = L.Dense(channels_mlp, activation="gelu", name=f"{name}_channel_mlp1")(y)
        y = L.Dense(dim, name=f"{name}_channel_mlp2")(y)
        x = L.Add(name=f"{name}_channel_add")([x, y])
    x = L.LayerNormalization(epsilon=1e-6, name="pre_head_norm")(x)
    x = L.GlobalAveragePooling1D(name="avg_pool")(x)
    return L.Dense(classes, activation="softmax", name="predictions")(x)


def _sincos_2d(h, w, dim, temperature=10000.0):
    """Fixed 2D sin-cos position embedding (h*w, dim), as in Beyer et al.'s "simple ViT"."""
    y, x = np.meshgrid(np.arange(h, dtype="float32"), np.arange(w, dtype="float32"), indexing="ij")
    omega = 1.0 / temperature ** (np.arange(dim // 4, dtype="float32") / (dim // 4 - 1))
    y = y.reshape(-1)[:, None] * omega[None, :]
    x = x.reshape(-1)[:, None] * omega[None, :]
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1).astype("float32")


def _vit_ti16(x, classes):
    """ViT-Ti/16: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
    Recognition at Scale", 2021, with the pooling and position embedding of Beyer et al., "Better
    plain ViT baselines for ImageNet-1k", 2022."""
    dim, depth, heads, mlp = 192, 12, 3, 768
    x, h, w = _patch_tokens(x, 16, dim)
    x = L.Rescaling(1.0, offset=_sincos_2d(h, w, dim), name="pos_embed")(x)
    for i in range(depth):
        # The pre-norm residual pattern of `_mixer_s16` again, written out on purpose: each builder
        # reads as its paper's block, and its layer names are the measured tables' `layer_name`s.
        name = f"encoder{i + 1}"
        y = L.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
        y = L.MultiHeadAttention(heads, dim // heads, name=f"{name}_attention")(y, y)
        x = L.Add(name=f"{name}_attention_add")([x, y])
        y = L.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
        y = L.Dense(mlp, activation="gelu", name=f"{name}_mlp1")(y)
        y = L.Dense(dim, name=f"{name}_mlp2")(y)
        x = L.Add(name=f"{name}_mlp_add")([x, y])
    x = L.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    x = L.GlobalAveragePooling1D(name="avg_pool")(x)
    return L.Dense(classes, activation="softmax", name="predictions")(x)


def _unet(x, classes):
    """U-Net: Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    2015 (16 base filters, same padding, 2-class per-pixel head; `classes` is ignored)."""
    del classes

    def double_conv(t, f, name):
        t = L.Conv2D(f, 3, padding="same", activation="relu", name=f"{name}_conv1")(t)
        return L.Conv2D(f, 3, padding="same", activation="relu", name=f"{name}_conv2")(t)

    base, skips = 16, []
    for level in range(4):
        x = double_conv(x, base * 2 ** level, f"down{level + 1}")
        skips.append(x)
        x = L.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = double_conv(x, base * 16, "bottleneck")
    x = L.Dropout(0.5, name="bottleneck_dropout")(x)
    for level in reversed(range(4)):
        f = base * 2 ** level
        x = L.Conv2DTranspose(f, 2, strides=2, name=f"up{level + 1}_upconv")(x)
        x = L.Concatenate(name=f"up{level + 1}_concat")([skips[level], x])
        x = double_conv(x, f, f"up{level + 1}")
    return L.Conv2D(2, 1, activation="softmax", name="predictions")(x)


# --------------------------------------------------------------------------- registry and API

_BUILDERS = {
    "LeNet5": _lenet5,
    "AlexNet": _alexnet,
    "GoogLeNet": _googlenet,
    "SqueezeNet11": _squeezenet11,
    "ShuffleNetV2": _shufflenetv2,
    "MnasNetA1": _mnasnet_a1,
    "GhostNet": _ghostnet,
    "RegNetX400MF": _regnetx_400mf,
    "ResNeXt26": _resnext26,
    "SEResNet18": _se_resnet18,
    "DarkNet19": _darknet19,
    "MixerS16": _mixer_s16,
    "ViTTi16": _vit_ti16,
    "UNet": _unet,
}
NAMES: list[str] = list(_BUILDERS)
# The input side must be a multiple of this (patch size, or 2**poolings for the U-Net skips).
SIZE_DIVISOR = {"MixerS16": 16, "ViTTi16": 16, "UNet": 16}


def check_size(name: str, input_size: int) -> str | None:
    """Why `name` cannot take `input_size` (None when it can)."""
    if name not in _BUILDERS:
        return f"unknown architecture {name!r}; known: {', '.join(NAMES)}"
    if not MIN_SIZE <= input_size <= MAX_SIZE:
        return f"input size {input_size} is outside the supported {MIN_SIZE}-{MAX_SIZE}"
    divisor = SIZE_DIVISOR.get(name, 1)
    if input_size % divisor:
        return f"{name} needs an input size divisible by {divisor}, got {input_size}"
    return None


def accepted_sizes(name: str, step: int = 1) -> list[int]:
    return [s for s in range(MIN_SIZE, MAX_SIZE + 1, step) if check_size(name, s) is None]


def build(name: str, input_size: int, classes: int = 1000) -> keras.Model:
    """Build architecture `name` for square RGB input `(input_size, input_size, 3)`."""
    reason = check_size(name, input_size)
    if reason:
        raise ValueError(reason)
    inputs = keras.Input(shape=(input_size, input_size, 3), name="input")
    return keras.Model(inputs, _BUILDERS[name](inputs, classes), name=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print names, layer and parameter counts")
    parser.add_argument("--write", metavar="DIR", help="save DIR/<Name>_<size>.keras files")
    parser.add_argument("--sizes", default="128", help="comma-separated input sizes (default 128)")
    parser.add_argument("--names", default=",".join(NAMES), help="comma-separated subset of names")
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args(argv)
    if not (args.list or args.write):
        parser.error("give --list and/or --write DIR")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    unknown = [n for n in names if n not in _BUILDERS]
    if unknown:
        parser.error(f"unknown names {unknown}; known: {', '.join(NAMES)}")
    out_dir = Path(args.write) if args.write else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        for size in sizes:
            reason = check_size(name, size)
            if reason:
                print(f"skip {name} at {size}: {reason}", file=sys.stderr)
                continue
            model = build(name, size, args.classes)
            if args.list:
                print(f"{name:14s} size={size:3d} layers={len(model.layers):4d} params={model.count_params():,}")
            if out_dir:
                path = out_dir / f"{name}_{size}.keras"
                model.save(path)
                print(f"wrote {path}")
            del model
            keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
