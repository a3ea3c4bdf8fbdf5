"""Building blocks of the architecture space, each written once against a small graph interface.

A block is a function `(g, x, p, name) -> x`: `g` is a graph, `x` its current tensor, `p` the block's
sampled parameters (a JSON-able dict) and `name` a unique prefix such as `b3`. Every layer is named
`<name>_<part>`, so names never collide. Two graphs run the same block code:

- `KerasGraph` creates real Keras layers (plain built-in layers only: models load in safe mode);
- `CostGraph` only walks shapes (without batch) and counts layers and multiply-accumulates (MACs),

so the generator sizes a model analytically, without Keras, and the count always matches the model.
"""

from __future__ import annotations

import math

Shape = tuple[int, ...]


def _pair(k) -> tuple[int, int]:
    return (int(k[0]), int(k[1])) if isinstance(k, (list, tuple)) else (int(k), int(k))


def _out(n: int, k: int, s: int, padding: str) -> int:
    return -(-n // s) if padding == "same" else (n - k) // s + 1


class CostGraph:
    """Shapes, layer names and MACs of the layers a block would create; no Keras involved.

    MACs count convolutions, dense layers and attention matmuls; pooling and elementwise layers count 0.
    """

    def __init__(self):
        self.macs = 0
        self.names: list[str] = []
        self.classes: list[str] = []  # the Keras layer class of each name

    def _op(self, name: str, shape, macs: int = 0, cls: str = "") -> Shape:
        if min(shape) < 1:  # Keras would fail to build it
            raise ValueError(f"{name}: empty output shape {tuple(shape)}")
        self.names.append(name)
        self.classes.append(cls)
        self.macs += int(macs)
        return tuple(int(v) for v in shape)

    @staticmethod
    def shape(x: Shape) -> Shape:
        return x

    def input(self, shape, name):
        return self._op(name, shape, cls="InputLayer")

    def conv(self, x, filters, kernel, stride=1, padding="same", name="", groups=1, use_bias=True, activation=None):
        (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
        h, w = _out(x[0], kh, sh, padding), _out(x[1], kw, sw, padding)
        return self._op(name, (h, w, filters), h * w * kh * kw * (x[2] // groups) * filters, "Conv2D")

    def dwconv(self, x, kernel, stride=1, padding="same", name=""):
        k = _pair(kernel)
        h, w = _out(x[0], k[0], stride, padding), _out(x[1], k[1], stride, padding)
        return self._op(name, (h, w, x[2]), h * w * k[0] * k[1] * x[2], "DepthwiseConv2D")

    def sepconv(self, x, filters, kernel, stride=1, padding="same", name=""):
        k = _pair(kernel)
        h, w = _out(x[0], k[0], stride, padding), _out(x[1], k[1], stride, padding)
        return self._op(name, (h, w, filters), h * w * x[2] * (k[0] * k[1] + filters), "SeparableConv2D")

    def conv_transpose(self, x, filters, kernel, stride, name=""):
        k = _pair(kernel)
        macs = x[0] * x[1] * k[0] * k[1] * x[2] * filters
        return self._op(name, (x[0] * stride, x[1] * stride, filters), macs, "Conv2DTranspose")

    def dense(self, x, units, name="", activation=None):
        return self._op(name, (*x[:-1], units), math.prod(x[:-1]) * x[-1] * units, "Dense")

    def mha(self, x, heads, key_dim, name=""):
        t, c = x
        proj = heads * key_dim  # value_dim defaults to key_dim
        return self._op(name, x, 3 * t * c * proj + 2 * t * t * proj + t * proj * c, "MultiHeadAttention")

    def bn(self, x, name=""):
        return self._op(name, x, cls="BatchNormalization")

    def ln(self, x, name=""):
        return self._op(name, x, cls="LayerNormalization")

    def act(self, x, kind, name=""):
        return self._op(name, x, cls="ReLU" if kind == "relu6" else "Activation")

    def dropout(self, x, rate, name=""):
        return self._op(name, x, cls="Dropout")

    def rescale(self, x, scale, offset=0.0, name=""):
        return self._op(name, x, cls="Rescaling")

    @staticmethod
    def _broadcast(xs, name) -> Shape:
        """Elementwise merge shape; like Keras, dims must match or be 1."""
        if len({len(x) for x in xs}) > 1 or any(len(set(d) - {1}) > 1 for d in zip(*xs)):
            raise ValueError(f"{name}: cannot merge shapes {xs}")
        return tuple(max(d) for d in zip(*xs))

    def add(self, xs, name=""):
        return self._op(name, self._broadcast(xs, name), cls="Add")

    def mul(self, xs, name=""):
        return self._op(name, self._broadcast(xs, name), cls="Multiply")

    def concat(self, xs, name=""):
        if len({x[:-1] for x in xs}) > 1:
            raise ValueError(f"{name}: cannot concatenate shapes {xs}")
        return self._op(name, (*xs[0][:-1], sum(x[-1] for x in xs)), cls="Concatenate")

    def pool(self, x, kind, size, stride, padding="same", name=""):
        shape = (_out(x[0], size, stride, padding), _out(x[1], size, stride, padding), x[2])
        return self._op(name, shape, cls="MaxPooling2D" if kind == "max" else "AveragePooling2D")

    def pad(self, x, pad, name=""):
        (t, b), (left, right) = pad if isinstance(pad, (list, tuple)) else ((pad, pad), (pad, pad))
        return self._op(name, (x[0] + t + b, x[1] + left + right, x[2]), cls="ZeroPadding2D")

    def gap(self, x, name="", keepdims=False):
        cls = "GlobalAveragePooling2D" if len(x) == 3 else "GlobalAveragePooling1D"
        return self._op(name, (1,) * (len(x) - 1) + x[-1:] if keepdims else x[-1:], cls=cls)

    def flatten(self, x, name=""):
        return self._op(name, (math.prod(x),), cls="Flatten")

    def reshape(self, x, shape, name=""):
        return self._op(name, shape, cls="Reshape")

    def upsample(self, x, size, name=""):
        return self._op(name, (x[0] * size, x[1] * size, x[2]), cls="UpSampling2D")


class KerasGraph:
    """The same interface, creating named Keras layers on symbolic tensors."""

    def __init__(self):
        from keras import layers

        self.L = layers

    @staticmethod
    def shape(x) -> Shape:
        return tuple(int(d) for d in x.shape[1:])

    def input(self, shape, name):
        import keras

        return keras.Input(shape=tuple(shape), name=name)

    def conv(self, x, filters, kernel, stride=1, padding="same", name="", groups=1, use_bias=True, activation=None):
        return self.L.Conv2D(filters, _pair(kernel), strides=stride, padding=padding, groups=groups,
                             use_bias=use_bias, activation=activation, name=name)(x)

    def dwconv(self, x, kernel, stride=1, padding="same", name=""):
        return self.L.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False, name=name)(x)

    def sepconv(self, x, filters, kernel, stride=1, padding="same", name=""):
        return self.L.SeparableConv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name)(x)

    def conv_transpose(self, x, filters, kernel, stride, name=""):
        return self.L.Conv2DTranspose(filters, kernel, strides=stride, padding="same", name=name)(x)

    def dense(self, x, units, name="", activation=None):
        return self.L.Dense(units, activation=activation, name=name)(x)

    def mha(self, x, heads, key_dim, name=""):
        return self.L.MultiHeadAttention(num_heads=heads, key_dim=key_dim, name=name)(x, x)

    def bn(self, x, name=""):
        return self.L.BatchNormalization(name=name)(x)

    def ln(self, x, name=""):
        return self.L.LayerNormalization(epsilon=1e-6, name=name)(x)

    def act(self, x, kind, name=""):
        # relu6 as a ReLU layer, as MobileNetV2 writes it; everything else by its Keras name.
        if kind == "relu6":
            return self.L.ReLU(max_value=6.0, name=name)(x)
        return self.L.Activation(kind, name=name)(x)

    def dropout(self, x, rate, name=""):
        return self.L.Dropout(rate, name=name)(x)

    def rescale(self, x, scale, offset=0.0, name=""):
        return self.L.Rescaling(scale, offset=offset, name=name)(x)

    def add(self, xs, name=""):
        return self.L.Add(name=name)(list(xs))

    def mul(self, xs, name=""):
        return self.L.Multiply(name=name)(list(xs))

    def concat(self, xs, name=""):
        return self.L.Concatenate(name=name)(list(xs))

    def pool(self, x, kind, size, stride, padding="same", name=""):
        cls = self.L.MaxPooling2D if kind == "max" else self.L.AveragePooling2D
        return cls(size, strides=stride, padding=padding, name=name)(x)

    def pad(self, x, pad, name=""):
        return self.L.ZeroPadding2D(pad, name=name)(x)

    def gap(self, x, name="", keepdims=False):
        cls = self.L.GlobalAveragePooling2D if len(x.shape) == 4 else self.L.GlobalAveragePooling1D
        return cls(keepdims=keepdims, name=name)(x)

    def flatten(self, x, name=""):
        return self.L.Flatten(name=name)(x)

    def reshape(self, x, shape, name=""):
        return self.L.Reshape(tuple(shape), name=name)(x)

    def upsample(self, x, size, name=""):
        return self.L.UpSampling2D(size, name=name)(x)


# --- helpers shared by blocks -------------------------------------------------------------------------

def conv_bn_act(g, x, filters, kernel, stride, act, name, bn=True, padding="same", groups=1):
    x = g.conv(x, filters, kernel, stride, padding, name=f"{name}_conv", use_bias=not bn, groups=groups)
    if bn:
        x = g.bn(x, f"{name}_bn")
    return g.act(x, act, f"{name}_act") if act else x


def _se(g, x, ratio, act, name):
    c = g.shape(x)[-1]
    s = g.gap(x, f"{name}_pool", keepdims=True)
    s = g.conv(s, max(1, int(c * ratio)), 1, name=f"{name}_reduce", activation=act)
    s = g.conv(s, c, 1, name=f"{name}_expand", activation="sigmoid")
    return g.mul([x, s], f"{name}_excite")


def _shortcut(g, x, out_c, stride, name, bn=True):
    """Identity when shapes match, else a strided 1x1 projection (ResNet option B)."""
    if stride == 1 and g.shape(x)[-1] == out_c:
        return x
    s = g.conv(x, out_c, 1, stride, name=f"{name}_proj", use_bias=not bn)
    return g.bn(s, f"{name}_proj_bn") if bn else s


# --- blocks -------------------------------------------------------------------------------------------

def conv(g, x, p, n):
    if p.get("pad"):
        x = g.pad(x, p["pad"], f"{n}_pad")
    return conv_bn_act(g, x, p["filters"], p["kernel"], p["stride"], p.get("act"), n, p.get("bn", True),
                       p.get("padding", "same"), p.get("groups", 1))


def res_basic(g, x, p, n):
    """ResNet v1 basic block: conv-BN-act, conv-BN, add, act (post-activation)."""
    s = _shortcut(g, x, p["filters"], p["stride"], n)
    x = conv_bn_act(g, x, p["filters"], p["kernel"], p["stride"], p["act"], f"{n}_1")
    x = conv_bn_act(g, x, p["filters"], p["kernel"], 1, None, f"{n}_2")
    return g.act(g.add([s, x], f"{n}_add"), p["act"], f"{n}_out")


def res_preact(g, x, p, n):
    """ResNet v2 block: BN-act first; the projection shortcut reads the pre-activated tensor."""
    pre = g.act(g.bn(x, f"{n}_pre_bn"), p["act"], f"{n}_pre_act")
    same = p["stride"] == 1 and g.shape(x)[-1] == p["filters"]
    s = x if same else _shortcut(g, pre, p["filters"], p["stride"], n, bn=False)
    y = conv_bn_act(g, pre, p["filters"], p["kernel"], p["stride"], p["act"], f"{n}_1")
    y = g.conv(y, p["filters"], p["kernel"], 1, name=f"{n}_2_conv")
    return g.add([s, y], f"{n}_add")


def bottleneck(g, x, p, n):
    """1x1 reduce, kxk (grouped with `groups` > 1: ResNeXt), 1x1 expand to `filters * expansion`,
    projection shortcut when the shape changes."""
    out = p["filters"] * p["expansion"]
    s = _shortcut(g, x, out, p["stride"], n)
    y = conv_bn_act(g, x, p["filters"], 1, 1, p["act"], f"{n}_1")
    y = conv_bn_act(g, y, p["filters"], p["kernel"], p["stride"], p["act"], f"{n}_2", groups=p.get("groups", 1))
    y = conv_bn_act(g, y, out, 1, 1, None, f"{n}_3")
    return g.act(g.add([s, y], f"{n}_add"), p["act"], f"{n}_out")


def _branch(g, x, b, stride, act, pool, n):
    """One inception branch; with stride 2 its last layer downsamples."""
    op, k, f = b["op"], b["kernel"], b["filters"]
    red = b.get("reduce", f)
    if op == "pool":
        x = g.pool(x, pool, 3, stride, "same", f"{n}_pool")
        return x if stride > 1 and not f else conv_bn_act(g, x, f, 1, 1, act, f"{n}_1")
    if op == "conv":
        return conv_bn_act(g, x, f, k, stride, act, f"{n}_1")
    x = conv_bn_act(g, x, red, 1, 1, act, f"{n}_1")
    if op == "reduce":
        return conv_bn_act(g, x, f, k, stride, act, f"{n}_2")
    if op == "double":
        x = conv_bn_act(g, x, f, k, 1, act, f"{n}_2")
        return conv_bn_act(g, x, f, k, stride, act, f"{n}_3")
    if op == "factorized":  # InceptionV3's 1xk then kx1
        x = conv_bn_act(g, x, red, (1, k), 1, act, f"{n}_2")
        return conv_bn_act(g, x, f, (k, 1), stride, act, f"{n}_3")
    raise ValueError(f"unknown inception branch op {op!r}")


def inception(g, x, p, n):
    """2-4 parallel branches (different kernels, a pool) joined by Concatenate or Add."""
    ys = [_branch(g, x, b, p["stride"], p["act"], p.get("pool", "avg"), f"{n}_br{i}") for i, b in
          enumerate(p["branches"])]
    return g.add(ys, f"{n}_merge") if p["merge"] == "add" else g.concat(ys, f"{n}_merge")


def inception_res(g, x, p, n):
    """Inception-ResNet block: branches, concat, linear 1x1 back to the input width, scaled residual add."""
    ys = [_branch(g, x, b, 1, p["act"], "avg", f"{n}_br{i}") for i, b in enumerate(p["branches"])]
    y = g.conv(g.concat(ys, f"{n}_mix"), g.shape(x)[-1], 1, name=f"{n}_up")
    y = g.rescale(y, p["scale"], name=f"{n}_scale")  # Rescaling stands in for Keras' CustomScaleLayer
    return g.act(g.add([x, y], f"{n}_add"), p["act"], f"{n}_out")


def dwsep(g, x, p, n):
    """MobileNet v1: DepthwiseConv2D-BN-act, then 1x1 Conv2D-BN-act."""
    x = g.act(g.bn(g.dwconv(x, p["kernel"], p["stride"], name=f"{n}_dw"), f"{n}_dw_bn"), p["act"], f"{n}_dw_act")
    return conv_bn_act(g, x, p["filters"], 1, 1, p["act"], f"{n}_pw")


def dw(g, x, p, n):
    """DepthwiseConv2D, optional BN and activation: the depthwise kernel alone (kernel sweep)."""
    x = g.dwconv(x, p["kernel"], p["stride"], name=f"{n}_dw")
    if p.get("bn", True):
        x = g.bn(x, f"{n}_bn")
    return g.act(x, p["act"], f"{n}_act") if p.get("act") else x


def sepconv(g, x, p, n):
    x = g.sepconv(x, p["filters"], p["kernel"], p["stride"], name=f"{n}_sep")
    return g.act(g.bn(x, f"{n}_bn"), p["act"], f"{n}_act")


def inverted_residual(g, x, p, n):
    """MBConv: 1x1 expand, depthwise kxk, optional SE, linear 1x1 project, residual when shapes match."""
    c_in = g.shape(x)[-1]
    y = x
    if p["expand"] != 1:
        y = conv_bn_act(g, x, max(8, int(round(c_in * p["expand"]))), 1, 1, p["act"], f"{n}_expand")
    y = g.dwconv(y, p["kernel"], p["stride"], name=f"{n}_dw")
    y = g.act(g.bn(y, f"{n}_dw_bn"), p["act"], f"{n}_dw_act")
    if p.get("se_ratio"):
        y = _se(g, y, p["se_ratio"], p["act"], f"{n}_se")
    y = conv_bn_act(g, y, p["filters"], 1, 1, None, f"{n}_project")
    if p["stride"] == 1 and c_in == p["filters"]:
        if p.get("drop"):
            y = g.dropout(y, p["drop"], f"{n}_drop")
        y = g.add([x, y], f"{n}_add")
    return y


def se(g, x, p, n):
    return _se(g, x, p["ratio"], p["act"], n)


def spatial_gate(g, x, p, n):
    """A per-pixel sigmoid gate (CBAM-style spatial attention without the channel pools)."""
    gate = g.conv(x, 1, p["kernel"], name=f"{n}_conv", activation="sigmoid")
    return g.mul([x, gate], f"{n}_mul")


def unet(g, x, p, n):
    """Encoder-decoder: conv + downsample per level, bottom conv, then upsample + skip concat + conv."""
    skips = []
    for i, f in enumerate(p["filters"][:-1]):
        x = conv_bn_act(g, x, f, 3, 1, p["act"], f"{n}_enc{i}")
        skips.append(x)
        x = (g.pool(x, "max", 2, 2, "same", f"{n}_down{i}") if p["down"] == "pool"
             else conv_bn_act(g, x, f, 3, 2, p["act"], f"{n}_down{i}"))
    x = conv_bn_act(g, x, p["filters"][-1], 3, 1, p["act"], f"{n}_mid")
    for i in reversed(range(len(skips))):
        f = p["filters"][i]
        if p["up"] == "transpose":
            x = g.conv_transpose(x, f, 2, 2, name=f"{n}_up{i}")
        else:
            x = g.upsample(x, 2, f"{n}_up{i}")
        x = g.concat([x, skips[i]], f"{n}_skip{i}")
        x = conv_bn_act(g, x, f, 3, 1, p["act"], f"{n}_dec{i}")
    return x


def mlp(g, x, p, n):
    """Dense, optional BatchNormalization or LayerNormalization, activation, optional Dropout."""
    x = g.dense(x, p["units"], f"{n}_dense")
    if p["norm"] == "bn":
        x = g.bn(x, f"{n}_bn")
    elif p["norm"] == "ln":
        x = g.ln(x, f"{n}_ln")
    x = g.act(x, p["act"], f"{n}_act")
    return g.dropout(x, p["dropout"], f"{n}_drop") if p.get("dropout") else x


def tokens(g, x, p, n):
    """Feature map HxWxC -> (H*W, C) tokens, optionally projected to `dim`."""
    h, w, c = g.shape(x)
    x = g.reshape(x, (h * w, c), f"{n}_reshape")
    return g.dense(x, p["dim"], f"{n}_embed") if p.get("dim") else x


def attention(g, x, p, n):
    """Pre-norm transformer encoder block: LN, MHA, add; LN, Dense-gelu-Dense, add."""
    c = g.shape(x)[-1]
    y = g.mha(g.ln(x, f"{n}_ln1"), p["heads"], p["key_dim"], f"{n}_mha")
    if p.get("dropout"):
        y = g.dropout(y, p["dropout"], f"{n}_drop")
    x = g.add([x, y], f"{n}_add1")
    y = g.dense(g.ln(x, f"{n}_ln2"), int(c * p["mlp_ratio"]), f"{n}_fc1")
    y = g.dense(g.act(y, "gelu", f"{n}_gelu"), c, f"{n}_fc2")
    return g.add([x, y], f"{n}_add2")


def xception_module(g, x, p, n):
    """Xception: (act) SeparableConv-BN repeated, max-pool when strided, residual add (1x1 projection)."""
    s = _shortcut(g, x, p["filters"][-1], p["stride"], n)
    y = x
    for i, f in enumerate(p["filters"]):
        if i or p["first_act"]:
            y = g.act(y, p["act"], f"{n}_act{i}")
        y = g.bn(g.sepconv(y, f, p["kernel"], name=f"{n}_sep{i}"), f"{n}_bn{i}")
    if p["stride"] > 1:
        y = g.pool(y, "max", 3, p["stride"], "same", f"{n}_pool")
    return g.add([s, y], f"{n}_add")


def _nas_sep(g, x, f, k, stride, n):
    """NASNet's separable unit: (ReLU, SeparableConv, BN) twice, the first one strided."""
    for i, s in enumerate((stride, 1)):
        x = g.bn(g.sepconv(g.act(x, "relu", f"{n}_act{i}"), f, k, s, name=f"{n}_sep{i}"), f"{n}_bn{i}")
    return x


def nas_cell(g, x, p, n):
    """A NASNet-A cell reduced to one input: two 1x1 views of it play the roles of h(i) and h(i-1)."""
    f, s = p["filters"], 2 if p["reduce"] else 1
    h = conv_bn_act(g, g.act(x, "relu", f"{n}_in_act"), f, 1, 1, None, f"{n}_h")
    q = conv_bn_act(g, g.act(x, "relu", f"{n}_prev_act"), f, 1, 1, None, f"{n}_q")
    pool = "max" if p["reduce"] else "avg"
    outs = [
        g.add([_nas_sep(g, h, f, 5, s, f"{n}_l1"), _nas_sep(g, q, f, 3, s, f"{n}_r1")], f"{n}_add1"),
        g.add([_nas_sep(g, q, f, 5, s, f"{n}_l2"), _nas_sep(g, q, f, 3, s, f"{n}_r2")], f"{n}_add2"),
        g.add([g.pool(h, "avg", 3, s, "same", f"{n}_l3"), g.pool(q, pool, 3, s, "same", f"{n}_r3")], f"{n}_add3"),
    ]
    if not p["reduce"]:
        outs.append(g.add([_nas_sep(g, h, f, 3, 1, f"{n}_l4"), h], f"{n}_add4"))
    return g.concat(([] if p["reduce"] else [q]) + outs, f"{n}_concat")


def convnext(g, x, p, n):
    """ConvNeXt block without LayerScale (a custom layer in Keras): grouped kxk conv, LN, MLP, add."""
    c = g.shape(x)[-1]
    y = g.conv(x, c, p["kernel"], groups=c, name=f"{n}_dw")
    y = g.dense(g.ln(y, f"{n}_ln"), int(c * p["mlp_ratio"]), f"{n}_pw1")
    y = g.dense(g.act(y, "gelu", f"{n}_gelu"), c, f"{n}_pw2")
    return g.add([x, y], f"{n}_add")


def convnext_down(g, x, p, n):
    return g.conv(g.ln(x, f"{n}_ln"), p["filters"], p["kernel"], p["kernel"], "valid", name=f"{n}_conv")


def pool(g, x, p, n):
    return g.pool(x, p["kind"], p["size"], p["stride"], p.get("padding", "same"), n)


def pad(g, x, p, n):
    return g.pad(x, p["pad"], n)


def dropout(g, x, p, n):
    return g.dropout(x, p["rate"], n)


def gap(g, x, p, n):
    return g.gap(x, n)


def flatten(g, x, p, n):
    return g.flatten(x, n)


def norm(g, x, p, n):
    x = g.ln(x, f"{n}_ln") if p["kind"] == "ln" else g.bn(x, f"{n}_bn")
    return g.act(x, p["act"], f"{n}_act") if p.get("act") else x


def rescale(g, x, p, n):
    return g.rescale(x, p["scale"], p.get("offset", 0.0), n)


def head(g, x, p, n):
    if p.get("dropout"):
        x = g.dropout(x, p["dropout"], f"{n}_drop")
    return g.dense(x, p["classes"], f"{n}_dense", activation="softmax")


def seg_head(g, x, p, n):
    """Per-pixel classifier for encoder-decoders: 1x1 conv then softmax over channels."""
    return g.act(g.conv(x, p["classes"], 1, name=f"{n}_conv"), "softmax", f"{n}_softmax")


BLOCKS = {f.__name__: f for f in (
    conv, res_basic, res_preact, bottleneck, inception, inception_res, dwsep, dw, sepconv, inverted_residual, se,
    spatial_gate, unet, mlp, tokens, attention, xception_module, nas_cell, convnext, convnext_down,
    pool, pad, dropout, gap, flatten, norm, rescale, head, seg_head,
)}


def apply_blocks(g, input_shape, blocks):
    """Run a block list on graph `g`; returns (input, output). Block i is named `b<i>`."""
    inp = x = g.input(input_shape, "input")
    for i, p in enumerate(blocks):
        x = BLOCKS[p["type"]](g, x, p, f"b{i}")
    return inp, x
