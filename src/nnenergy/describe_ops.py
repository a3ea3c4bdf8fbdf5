"""Traced TensorFlow ops -> rows the predictor prices, grouped into the project's kernel kinds.

A layer with real compute but no Keras sublayers to describe it by (a custom layer's `call`, the
residual adds of a keras-hub encoder block, the score products of an attention, a recurrent loop)
is described by the ops its call traces to: each op that does work becomes one row whose
`layer_type` is the Keras type of the same kernel (a weight product is a `Dense`, a product of two
activations a `Dense` with no parameters, an `Erf` a GELU `Activation`, a `Mean` a global pooling),
so the per-kind regressors that price Keras layers price it, with the op's own FLOPs and bytes.
Ops that move no data (reshapes, reads of variables, constants) give no row; an op no kind covers
becomes a `tf.<OpType>` row of kind `other` (the generic fallback), which `nnenergy predict` names.

Loops (a `While`, as `keras.layers.LSTM` runs) count their body once per step: its rows carry the
step count as a leading dimension, so a step's product of [1, 64] x [64, 256] over 20 steps reads
as a [20, 64] x [64, 256] product. Function calls (`PartitionedCall`, `If`) count their body once.
Shapes are the traced ones, at batch 1; costs scale with the batch size (`TracedInfo.cost_at`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from nnenergy.layer_info import LayerInfo

BYTES = 4  # per element, as analytic_cost counts them

# Ops that do no work of their own at inference: views, variable reads, constants, control.
FREE_OPS = {
    "Const", "Placeholder", "ReadVariableOp", "Identity", "IdentityN", "NoOp", "Reshape", "Squeeze", "ExpandDims",
    "Shape", "ShapeN", "Size", "Rank", "StopGradient", "PreventGradient", "VarHandleOp", "AssignVariableOp",
    "Pack", "Unpack", "Range", "Fill", "ZerosLike", "OnesLike", "BroadcastArgs", "BroadcastGradientArgs",
    "TensorListReserve", "TensorListFromTensor", "TensorListStack", "TensorListGetItem", "TensorListSetItem",
    "TensorListLength", "TensorListElementShape", "Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond",
    "Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot",
    "Split", "SplitV", "StridedSlice", "Slice", "Snapshot", "EnsureShape", "Assert", "CheckNumerics",
    "RandomUniform", "RandomStandardNormal", "StatelessRandomUniformV2", "StatelessRandomGetKeyCounter",
    "Bitcast", "Prod", "ArgMax", "ArgMin", "Cumsum",
}
MATMUL_OPS = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"}
UNARY_ACTIVATIONS = {
    "Relu": "relu", "Relu6": "relu6", "Elu": "elu", "Selu": "elu", "LeakyRelu": "relu", "Sigmoid": "sigmoid",
    "Tanh": "tanh", "Erf": "gelu", "Erfc": "gelu", "Gelu": "gelu", "Softplus": "linear", "Softsign": "linear",
    "Exp": "linear", "Log": "linear", "Log1p": "linear", "Rsqrt": "linear", "Sqrt": "linear", "Square": "linear",
    "Neg": "linear", "Abs": "linear", "Reciprocal": "linear", "Inv": "linear", "Sign": "linear", "Floor": "linear",
    "Ceil": "linear", "Round": "linear", "Cast": "linear", "Sin": "linear", "Cos": "linear", "HardSwish": "hard_swish",
}
BINARY_ADD = {"AddV2", "Add", "Sub", "BiasAdd", "Maximum", "Minimum", "SquaredDifference", "AddN"}
BINARY_MUL = {"Mul", "RealDiv", "Div", "DivNoNan", "FloorDiv", "FloorMod", "Pow", "Select", "SelectV2", "MulNoNan"}
REDUCTIONS = {"Mean": "GlobalAveragePooling1D", "Sum": "GlobalAveragePooling1D", "Max": "GlobalMaxPooling1D",
              "Min": "GlobalMaxPooling1D", "EuclideanNorm": "GlobalAveragePooling1D"}
CONVS = {"Conv2D": "Conv2D", "Conv3D": "Conv3D", "DepthwiseConv2dNative": "DepthwiseConv2D",
         "Conv2DBackpropInput": "Conv2DTranspose", "Conv3DBackpropInputV2": "Conv3DTranspose"}
POOLS = {"MaxPool": "MaxPooling2D", "AvgPool": "AveragePooling2D", "MaxPool3D": "MaxPooling3D",
         "AvgPool3D": "AveragePooling3D"}
MOVES = {"Transpose": "Permute", "ConcatV2": "Concatenate", "Concat": "Concatenate", "Pad": "ZeroPadding2D",
         "PadV2": "ZeroPadding2D", "MirrorPad": "ZeroPadding2D", "Tile": "UpSampling1D", "BroadcastTo": "UpSampling1D",
         "GatherV2": "Embedding", "Gather": "Embedding", "ResourceGather": "Embedding", "GatherNd": "Embedding",
         "OneHot": "Embedding", "ResizeBilinear": "UpSampling2D", "ResizeNearestNeighbor": "UpSampling2D"}
CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
LOOP_OPS = {"While", "StatelessWhile"}
COND_OPS = {"If", "StatelessIf"}


@dataclass(frozen=True)
class TracedInfo(LayerInfo):
    """A row described from traced ops: its cost at batch 1 (`per_sample`), scaled by `cost_at`."""

    per_sample: dict = field(default_factory=dict)

    def cost_at(self, batch_size: int) -> dict:
        c = self.per_sample
        flops, ins, outs = (float(c.get(k, 0.0)) * batch_size for k in ("flops", "in_elems", "out_elems"))
        params = float(self.params)
        return {"flops": flops, "params": params, "in_elems": ins, "out_elems": outs,
                "mem_bytes": BYTES * (ins + outs + params)}


def _dims(t) -> tuple[int, ...]:
    shape = t.shape
    if shape.rank is None:
        return (1,)
    return tuple(max(int(d), 1) if d is not None else 1 for d in shape)


def _elems(t) -> int:
    return int(math.prod(_dims(t)))


def _row_shape(dims: tuple[int, ...], steps: int) -> tuple[int, ...]:
    """A traced shape as a row's shape: the leading batch dimension (1) dropped, the steps of the loop
    it runs in (if any) in front."""
    dims = dims[1:] if len(dims) > 1 and dims[0] == 1 else dims
    return (steps, *dims) if steps > 1 else dims


def _is_weight(t) -> bool:
    """A tensor read from a variable (a layer's weights), possibly through a cast or identity."""
    op = t.op
    for _ in range(4):
        if op.type in ("ReadVariableOp", "ResourceGather", "VarHandleOp"):
            return True
        if op.type in ("Identity", "Cast", "Transpose", "Reshape") and op.inputs:
            op = op.inputs[0].op
            continue
        if op.type == "Placeholder" and str(op.outputs[0].dtype) == "<dtype: 'resource'>":
            return True
        return False
    return False


def _attr(op, name, default=None):
    try:
        value = op.get_attr(name)
    except (ValueError, TypeError):
        return default
    return value.decode() if isinstance(value, bytes) else value


def _einsum_flops(op) -> int:
    """2 x the product of every index's size (each output element sums over the contracted ones)."""
    equation = str(_attr(op, "equation", "")).replace(" ", "")
    lhs = equation.split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, t in zip(lhs, op.inputs):
        dims = _dims(t)
        letters = re.sub(r"\.\.\.", "", term)
        offset = len(dims) - len(letters)  # an ellipsis stands for the leading dimensions
        if offset > 0:
            sizes["..."] = max(sizes.get("...", 1), int(math.prod(dims[:offset])))
        for ch, d in zip(letters, dims[max(offset, 0):]):
            sizes[ch] = max(sizes.get(ch, 1), d)
    return 2 * int(math.prod(sizes.values())) if sizes else 2 * _elems(op.outputs[0])


def _matmul_flops(op) -> int:
    if op.type == "Einsum":
        return _einsum_flops(op)
    a = _dims(op.inputs[0])
    transpose_a = bool(_attr(op, "transpose_a", False) or _attr(op, "adj_x", False))
    contracted = a[-2] if transpose_a and len(a) > 1 else a[-1]
    return 2 * _elems(op.outputs[0]) * contracted


def _conv_config(op, layer_type: str) -> tuple[dict, int]:
    """(config, FLOPs) of a convolution op from its filter's shape and attributes (NHWC)."""
    filt = _dims(op.inputs[1])  # [kh, kw, cin, cout] (depthwise: [kh, kw, cin, mult])
    out = op.outputs[0]
    strides = list(_attr(op, "strides", [1, 1, 1, 1]) or [1, 1, 1, 1])
    kernel = list(filt[:-2])
    cfg = {"kernel_size": kernel, "strides": strides[1:-1], "padding": str(_attr(op, "padding", "VALID")).lower(),
           "use_bias": False}
    if layer_type == "DepthwiseConv2D":
        return cfg, 2 * _elems(out) * int(math.prod(kernel))
    if layer_type.endswith("Transpose"):
        cfg["filters"] = filt[-2]
        return cfg, 2 * _elems(op.inputs[2]) * int(math.prod(kernel)) * filt[-2]
    cfg["filters"] = filt[-1]
    return cfg, 2 * _elems(out) * int(math.prod(kernel)) * filt[-2]


def _classify(op) -> tuple[str, dict, int] | None:
    """(layer type, config, FLOPs at batch 1) of one op; None for an op that does no work."""
    t = op.type
    if t in FREE_OPS or not op.outputs:
        return None
    out = op.outputs[0]
    if out.shape.rank == 0 and t not in MATMUL_OPS:
        return None  # scalar bookkeeping: a loop counter, a sequence's length
    if t in MATMUL_OPS:
        return "Dense", {"units": _dims(out)[-1], "use_bias": False}, _matmul_flops(op)
    if t in CONVS:
        cfg, flops = _conv_config(op, CONVS[t])
        return CONVS[t], cfg, flops
    if t == "FusedBatchNormV3" or t == "FusedBatchNorm":
        return "BatchNormalization", {}, 4 * _elems(out)
    if t in ("Softmax", "LogSoftmax"):
        return "Softmax", {}, _elems(out)
    if t in UNARY_ACTIVATIONS:
        return "Activation", {"activation": UNARY_ACTIVATIONS[t]}, _elems(out)
    if t in BINARY_ADD:
        return "Add", {}, _elems(out) * max(len(op.inputs) - 1, 1)
    if t in BINARY_MUL:
        return "Multiply", {}, _elems(out)
    if t in REDUCTIONS:
        return REDUCTIONS[t], {"keepdims": bool(_attr(op, "keep_dims", False))}, _elems(op.inputs[0])
    if t in POOLS:
        ksize = list(_attr(op, "ksize", [1, 1, 1, 1]) or [1, 1, 1, 1])
        return POOLS[t], {"pool_size": ksize[1:-1], "strides": list(_attr(op, "strides", ksize))[1:-1],
                          "padding": str(_attr(op, "padding", "VALID")).lower()}, _elems(out) * math.prod(ksize)
    if t in MOVES:
        return MOVES[t], {}, 0
    return f"tf.{t}", {}, _elems(out)


def _inputs(op, t: str):
    """The op's data inputs (not its weights, shapes or axes) and its weight inputs."""
    data = [x for x in op.inputs if (x.dtype.is_floating or x.dtype.is_integer and t in MOVES)
            and x.op.type != "Const" and x.shape.rank != 0]  # not an axis, a shape or a scalar factor
    if t in CONVS:
        data = [op.inputs[2] if t.endswith("BackpropInput") or t.endswith("InputV2") else op.inputs[0]]
        return data, [op.inputs[1]]
    if t in MATMUL_OPS | BINARY_MUL | BINARY_ADD:
        weights = [x for x in data if _is_weight(x)]
        return [x for x in data if not _is_weight(x)], weights
    if t in ("GatherV2", "Gather", "ResourceGather", "GatherNd"):
        return [op.inputs[1]], []  # the indices; the rows read are the output
    if t in REDUCTIONS or t in ("Transpose", "Pad", "PadV2", "MirrorPad", "Tile", "BroadcastTo"):
        return data[:1], []
    return data, []


def op_row(op, name: str, index: int, steps: int = 1) -> TracedInfo | None:
    """One op as a row named `name` (None for an op that does no work)."""
    found = _classify(op)
    if found is None:
        return None
    layer_type, cfg, flops = found
    data, weights = _inputs(op, op.type)
    params = sum(_elems(w) for w in weights)
    in_elems = sum(_elems(x) for x in data)
    out_elems = sum(_elems(y) for y in op.outputs if y.dtype.is_floating or y.dtype.is_integer)
    return TracedInfo(
        index=index, name=name, type=layer_type, config={"op": op.type, **cfg},
        input_shapes=[_row_shape(_dims(x), steps) for x in data] or [_row_shape(_dims(op.outputs[0]), steps)],
        output_shape=_row_shape(_dims(op.outputs[0]), steps), dtype=str(op.outputs[0].dtype.name),
        params=int(params),
        per_sample={"flops": float(flops * steps), "in_elems": float(in_elems * steps),
                    "out_elems": float(out_elems * steps)},
    )


def _function_graphs(op, graph):
    """The bodies an op calls: a call's function, a loop's body, a conditional's branches."""
    names = []
    if op.type in CALL_OPS:
        names = [_attr(op, "f")]
    elif op.type in LOOP_OPS:
        names = [_attr(op, "body")]
    elif op.type in COND_OPS:
        names = [_attr(op, "then_branch")]  # one branch runs; the first stands for both
    out = []
    for fn in names:
        fname = getattr(fn, "name", fn)
        body = _lookup_function(graph, fname)
        if body is not None:
            out.append(body)
    return out


def _lookup_function(graph, name):
    g = graph
    while g is not None:
        fn = g._get_function(name) if hasattr(g, "_get_function") else None
        if fn is not None:
            return getattr(fn, "graph", None)
        g = getattr(g, "outer_graph", None)
    return None


def loop_steps(op, graph) -> int:
    """How many times a `While` runs its body: the leading dimension of the sequence it reads
    (`TensorListFromTensor` of a time-major input, as Keras' RNN loop builds it); 1 when unknown."""
    steps = [_dims(o.inputs[0])[0] for o in graph.get_operations()
             if o.type == "TensorListFromTensor" and o.inputs]
    return max(steps) if steps else 1


def rows_from_ops(ops, graph, prefix: str, start: int = 0, steps: int = 1) -> list[TracedInfo]:
    """The rows of a sequence of traced ops (one layer's own work), named `prefix/<op name>`, with
    function calls and loops expanded into their bodies' ops."""
    rows: list[TracedInfo] = []
    used: dict[str, int] = {}
    for op in ops:
        if op.type in CALL_OPS | LOOP_OPS | COND_OPS:
            inner = steps * (loop_steps(op, graph) if op.type in LOOP_OPS else 1)
            for body in _function_graphs(op, graph):
                rows += rows_from_ops(body.get_operations(), body, prefix, start + len(rows), inner)
            continue
        short = op.name.rsplit("/", 1)[-1]
        n = used.get(short, 0)
        used[short] = n + 1
        row = op_row(op, f"{prefix}/{short}" + (f":{n + 1}" if n else ""), start + len(rows), steps)
        if row is not None:
            rows.append(row)
    return _unique(rows)


def _unique(rows: list[TracedInfo]) -> list[TracedInfo]:
    """Names made unique (a loop body and its caller may both hold an `add`)."""
    from dataclasses import replace

    seen: dict[str, int] = {}
    out = []
    for r in rows:
        k = seen.get(r.name, 0)
        seen[r.name] = k + 1
        out.append(replace(r, name=f"{r.name}:{k + 1}") if k else r)
    return out


def traced_flops(fn, *specs) -> float:
    """FLOPs of one call of `fn` (a tf.function-able callable) on `specs`, from its traced ops: the
    same counting the rows use, for checks against the TF profiler."""
    import tensorflow as tf

    cf = tf.function(fn, autograph=False).get_concrete_function(*specs)
    return sum(r.per_sample["flops"] for r in rows_from_ops(cf.graph.get_operations(), cf.graph, "f"))
