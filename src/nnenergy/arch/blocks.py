"""Building blocks of the architecture space, each written once against a small graph interface.

A block is a function `(g, x, p, name) -> x`: `g` is a graph (`nnenergy.arch.graphs`: a `KerasGraph`
or a `CostGraph`), `x` its current tensor, `p` the block's sampled parameters (a JSON-able dict) and
`name` a unique prefix such as `b3`. Every layer is named `<name>_<part>`, so names never collide, and
the same block code both builds the Keras model and counts its layers and MACs.
"""

from __future__ import annotations

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
    # Keras' InceptionResNetV2 scales with its CustomScaleLayer (x + scale * y, priced as an add); a Rescaling here
    y = g.rescale(y, p["scale"], name=f"{n}_scale")
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


def self_attention(g, x, p, n):
    """Multi-head self-attention on (tokens, hidden), causal (GPT) or not, optionally with its residual add."""
    y = g.mha(x, p["heads"], p["key_dim"], f"{n}_mha", causal=p.get("causal", False))
    return g.add([x, y], f"{n}_add") if p.get("residual") else y


def gelu_mlp(g, x, p, n):
    """A transformer's MLP: Dense to `units` with GELU, inside the Dense (as keras-hub writes it) or as
    a layer of its own, optionally followed by the Dense back to the input width."""
    if p["fused"]:
        y = g.dense(x, p["units"], f"{n}_fc1", activation="gelu")
    else:
        y = g.act(g.dense(x, p["units"], f"{n}_fc1"), "gelu", f"{n}_gelu")
    return g.dense(y, g.shape(x)[-1], f"{n}_fc2") if p.get("down") else y


def embedding(g, x, p, n):
    """Token ids -> vectors. The sweep feeds floats in [0, 1): a Rescaling by `vocab - 1` turns them
    into ids (the Embedding casts them to int32), with plain built-in layers only (safe mode)."""
    ids = g.rescale(x, float(p["vocab"] - 1), name=f"{n}_ids")
    return g.embedding(ids, p["vocab"], p["dim"], f"{n}_embed")


def recurrent(g, x, p, n):
    """`layers` LSTM or GRU layers on (steps, features), stacked (each but the last returns every step),
    each optionally Bidirectional; the last returns its last state or every step's."""
    layers = p.get("layers", 1)
    for i in range(layers):
        name = f"{n}_{p['cell']}" if layers == 1 else f"{n}_{p['cell']}{i}"
        x = g.rnn(x, p["cell"], p["units"], p["return_sequences"] or i < layers - 1, name,
                  bidirectional=p.get("bidirectional", False))
    return x


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
    spatial_gate, unet, mlp, tokens, attention, self_attention, gelu_mlp, embedding, recurrent, xception_module,
    nas_cell, convnext, convnext_down,
    pool, pad, dropout, gap, flatten, norm, rescale, head, seg_head,
)}


def apply_blocks(g, input_shape, blocks):
    """Run a block list on graph `g`; returns (input, output). Block i is named `b<i>`."""
    inp = x = g.input(input_shape, "input")
    for i, p in enumerate(blocks):
        x = BLOCKS[p["type"]](g, x, p, f"b{i}")
    return inp, x
