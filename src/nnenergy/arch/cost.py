"""What a spec costs, without Keras: its layers walked on a `CostGraph` (block specs exactly, the
Keras-constructor variants as replays of their layer structure), and the batch sizes that keep a pass
within the sweep's time range.
"""

from __future__ import annotations

import math

import numpy as np

from nnenergy.arch.blocks import apply_blocks
from nnenergy.arch.graphs import CostGraph
from nnenergy.arch.spec import MACS_PER_S, ArchSpec


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
