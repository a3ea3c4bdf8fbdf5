"""A Keras model -> its layer table: each layer's description (type, config, shapes, nesting) and
analytic cost (FLOPs, bytes). The one description the sweep stores and that prediction feeds the
predictor, so training and prediction never see different inputs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import pandas as pd

from nnenergy.layer_info import _IGNORED_CONFIG_KEYS, CUSTOM_SCALE_FLOPS_PER_ELEMENT, LayerInfo, Shape  # noqa: F401
from nnenergy.schema import GRAPH_COLUMNS, INPUT_COLUMNS


def _shape(t) -> Shape:
    return tuple(int(d) if d is not None else -1 for d in t.shape[1:])


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _is_graph_model(layer) -> bool:
    """A nested `keras.Model` whose layer graph we can see: a Functional model or a built
    Sequential (a subclassed model, or a Sequential Keras could not build, stays one layer)."""
    import keras

    if not isinstance(layer, keras.Model):
        return False
    if isinstance(layer, keras.Sequential):
        return getattr(layer, "_functional", None) is not None
    return hasattr(layer, "_nodes_by_depth")


def _graph(model):
    """The layer graph of a Functional model, or the Functional a built Sequential keeps inside."""
    import keras

    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise ValueError(f"Sequential model {model.name!r} has no input shape yet: build it on one "
                             "(`model.build((None, *shape))`) before describing it")
        return graph
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"{type(model).__name__} {model.name!r} is a subclassed model: its layers have no graph "
                         "to describe (build it as a Functional or Sequential model)")
    return model


def _leaves(model, prefix: str = "", top: bool = True):
    """(flattened name, layer) of every leaf layer, in the order `describe` lists them.

    Nested Functional/Sequential models are replaced by their own layers, named
    ``outer/inner``; the InputLayers of nested models (identities of a tensor the outer model
    already has) are left out. A top-level Sequential lists no InputLayer, as `model.layers`.
    """
    for layer in model.layers:
        if _is_graph_model(layer):
            yield from _leaves(layer, f"{prefix}{layer.name}/", top=False)
        elif type(layer).__name__ == "InputLayer" and not top:
            continue
        else:
            yield f"{prefix}{layer.name}", layer


def leaf_layers(model, flatten: bool = True) -> dict:
    """Flattened name -> layer object, keyed like `describe(model)`'s `LayerInfo.name`.

    Callers that look a described layer up by name (the sweep's isolated measurement) use this
    instead of `{l.name: l for l in model.layers}`, which misses every layer of a nested model.
    In-context attribution of nested layers needs the op's scope *path*: ops of
    ``backbone/conv1`` run under a ``<model>/backbone/conv1/...`` name scope, so the profiler's
    layer lookup must match consecutive scope parts joined by ``/``, not one part alone.
    """
    if not flatten:
        return {layer.name: layer for layer in model.layers}
    return dict(_leaves(model))


def _same_spec(a, b) -> bool:
    return tuple(a.shape) == tuple(b.shape) and str(a.dtype) == str(b.dtype)


def _walk(model, actual_inputs, flatten: bool, seen: dict, names: dict, producer: dict) -> list:
    """Run the graph of `model` on `actual_inputs` (KerasTensors) symbolically and record, for the
    first call of each leaf layer, its actual input tensors, first output tensor and the names of
    the leaf layers that produced its inputs in `seen` (`names`: id(layer) -> flattened name;
    `producer`: id(tensor) -> name of the leaf layer that produced it, filled as the walk goes).

    Where a node's inputs have the graph's own shapes the graph's tensors are reused (no work);
    where they differ (a nested model built on unknown dimensions, called on known ones) the
    layer's `compute_output_spec` propagates the actual shapes. Nothing is added to the model.
    """
    from keras import tree

    graph = _graph(model)
    tensors = {id(x): y for x, y in zip(graph.inputs, actual_inputs)}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            op = node.operation
            if op is None or node.is_input:
                continue
            if any(id(x) not in tensors for x in node.input_tensors):
                continue  # not computable from these inputs (as Keras' own graph run)
            ins = [tensors[id(x)] for x in node.input_tensors]
            if flatten and _is_graph_model(op):
                outs = _walk(op, ins, flatten, seen, names, producer)
            elif all(_same_spec(a, b) for a, b in zip(ins, node.input_tensors)):
                outs = list(node.outputs)
            else:
                args, kwargs = node.arguments.fill_in(tensors)
                try:
                    outs = tree.flatten(op.compute_output_spec(*args, **kwargs))
                except Exception:  # a layer that cannot infer its shape: keep the graph's own
                    outs = list(node.outputs)
            if not (flatten and _is_graph_model(op)):
                inbound = tuple(producer[id(t)] for t in ins if id(t) in producer)
                seen.setdefault(id(op), (ins, outs[0] if outs else node.outputs[0], inbound,
                                         node.arguments.fill_in(tensors)))
                for y in outs:
                    producer.setdefault(id(y), names.get(id(op)))
            for x, y in zip(node.outputs, outs):
                tensors[id(x)] = y
    return [tensors.get(id(x), x) for x in graph.outputs]


def describe(model, flatten: bool = True, inputs=None, trace: bool = True) -> list[LayerInfo]:
    """All leaf layers of a Functional or Sequential Keras model, in topological order.

    Nested Functional/Sequential models (a backbone inside a model, Sequential blocks) are
    flattened into their own layers, named ``outer_layer/inner_layer`` (deeper nesting adds
    more parts), with each leaf's input shapes from the inner model's graph run on the shapes
    the outer model actually feeds it. `leaf_layers(model)` maps these names to the layer
    objects. `flatten=False` keeps nested models as one opaque layer each (the old behaviour).
    A layer called at several places is described once, at its first call.

    `inputs`: KerasTensors to run the graph on instead of its own inputs (one per
    `model.inputs`, in order: other shapes or dtypes). With `trace`, a layer the predictor
    cannot price as one row (a custom or keras-hub layer, a recurrent loop) is described by its
    sublayers and traced ops (`describe_traced`), in rows named ``layer/sublayer/...``.
    """
    seen: dict = {}
    graph = _graph(model)
    actual = list(inputs) if inputs is not None else list(graph.inputs)
    named = list(leaf_layers(model, flatten).items())
    names = {id(layer): name for name, layer in named}
    producer = {id(t): name for name, layer in named if type(layer).__name__ == "InputLayer"
                for t in _as_list(layer.output)}
    fed = {id(x): y for x, y in zip(graph.inputs, actual)}
    producer |= {id(fed[k]): n for k, n in list(producer.items()) if k in fed}
    _walk(model, actual, flatten, seen, names, producer)
    infos, renamed = [], {}
    for name, layer in named:
        arguments = None
        if id(layer) in seen:
            ins, out, inbound, arguments = seen[id(layer)]
        else:  # an InputLayer, or a layer no node of this graph reaches: its own first call
            out = _as_list(layer.output)[0]
            out = fed.get(id(out), out)
            ins = [out] if type(layer).__name__ == "InputLayer" else _as_list(layer.input)
            inbound = ()
        info = LayerInfo(index=0, name=name, type=type(layer).__name__, config=_config(layer),
                         input_shapes=[_shape(t) for t in ins], output_shape=_shape(out),
                         dtype=str(getattr(ins[0], "dtype", "float32")), params=int(layer.count_params()),
                         inbound=tuple(n for n in inbound if n))
        rows = _traced(layer, name, arguments) if trace and arguments is not None else None
        if rows:
            rows = [replace(r, inbound=info.inbound if i == 0 else (rows[i - 1].name,)) for i, r in enumerate(rows)]
            renamed[name] = rows[-1].name  # what the layers reading this one read
        infos += rows or [info]
    return [replace(r, index=i, inbound=tuple(renamed.get(n, n) for n in r.inbound)) for i, r in enumerate(infos)]


def _config(layer) -> dict:
    try:
        return layer.get_config()
    except Exception:  # a custom layer without a serializable config: described by its shapes
        return {}


def _traced(layer, name: str, arguments) -> list[LayerInfo] | None:
    from nnenergy.describe_traced import needs_tracing, trace

    if not needs_tracing(layer):
        return None
    args, kwargs = arguments
    return trace(layer, name, args, kwargs)


def _prod(shape: Shape) -> int:
    return int(math.prod(max(d, 1) for d in shape))


def _kernel_area(cfg: dict) -> int:
    k = cfg.get("kernel_size") or cfg.get("pool_size") or (1,)
    return _prod(tuple(k) if isinstance(k, (list, tuple)) else (k,))


# Gate matrices per recurrent cell: LSTM (input, forget, cell, output), GRU (update, reset, new).
_RNN_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
_CONV_LSTM = {"ConvLSTM1D": 1, "ConvLSTM2D": 2, "ConvLSTM3D": 3}
_TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")


def _wrapped(info: LayerInfo, layer_cfg: dict, input_shapes: list[Shape], output_shape: Shape,
             params: int) -> LayerInfo:
    """The layer a wrapper (Bidirectional, TimeDistributed) holds, from its serialized config."""
    return LayerInfo(index=info.index, name=info.name, type=str(layer_cfg.get("class_name", "")),
                     config=dict(layer_cfg.get("config") or {}), input_shapes=input_shapes,
                     output_shape=output_shape, dtype=info.dtype, params=params)


def _attention_shapes(shapes: list[Shape]) -> tuple[Shape, Shape, Shape]:
    """(query, value, key) of an attention layer called as (query, value[, key]); key defaults to value."""
    q = shapes[0] if shapes else (1,)
    v = shapes[1] if len(shapes) > 1 else q
    k = shapes[2] if len(shapes) > 2 else v
    return q, v, k


def _einsum_dense_flops(cfg: dict, in_shape: Shape, out_shape: Shape) -> int:
    """2 x the product of every index's size in `equation` (per sample): an EinsumDense's output may
    have several dimensions from its kernel (heads x head size), which `units` does not say."""
    eq = str(cfg.get("equation", "")).replace(" ", "")
    try:
        (lhs, _kernel), out = eq.split("->")[0].split(","), eq.split("->")[1]
    except ValueError:
        return 2 * _prod(in_shape) * (out_shape[-1] if out_shape else 1)
    sizes: dict[str, int] = {}
    for term, shape in ((lhs, in_shape), (out, out_shape)):
        term = term.replace("...", "")
        for ch, d in zip(term[::-1], tuple(shape)[::-1]):  # from the right: the batch letter is left out
            sizes[ch] = max(sizes.get(ch, 1), int(d))
    return 2 * math.prod(sizes.values()) if sizes else 0


@dataclass
class _Pass:
    """One layer at one batch size: what every layer kind's count reads."""

    info: LayerInfo
    batch: int

    def __post_init__(self):
        cfg, shapes = self.info.config, self.info.input_shapes
        self.cfg, self.shapes = cfg, shapes
        self.in_elems = sum(_prod(s) for s in shapes) * self.batch
        self.out_elems = _prod(self.info.output_shape) * self.batch
        self.first = first = shapes[0] if shapes else ()
        c_in = (first[0] if cfg.get("data_format") == "channels_first" else first[-1]) if first else 1
        self.c_in = max(c_in, 1)
        self.area = _kernel_area(cfg)
        self.bytes_moved = 4 * (self.in_elems + self.out_elems + self.info.params)  # a kind may change it


def _conv(p: _Pass):
    return 2 * p.out_elems * p.area * p.c_in // int(p.cfg.get("groups", 1) or 1)


def _transposed(p: _Pass):  # every input element scatters into kernel area x filters outputs
    return 2 * p.in_elems * p.area * int(p.cfg.get("filters", 1))


def _depthwise(p: _Pass):
    return 2 * p.out_elems * p.area


def _separable(p: _Pass):
    mult, filters = int(p.cfg.get("depth_multiplier", 1)), int(p.cfg.get("filters", 1))
    return 2 * (p.out_elems // max(filters, 1)) * (p.area * p.c_in * mult + p.c_in * mult * filters)


def _dense(p: _Pass):
    out = p.info.output_shape
    return 2 * p.in_elems * int(p.cfg.get("units", out[-1] if out else 1))


def _rnn(p: _Pass):
    # per time step each gate multiplies [x_t, h_{t-1}] (input + hidden) by a (. x hidden)
    # matrix; return_sequences changes what is kept, not what is computed
    units = int(p.cfg.get("units", 1))
    steps = _prod(p.first[:-1]) if len(p.first) > 1 else 1
    return 2 * _RNN_GATES[p.info.type] * (p.c_in + units) * units * steps * p.batch


def _conv_lstm(p: _Pass):
    # 4 gates, each a convolution of the input (c_in channels) and of the hidden state (filters)
    rank = _CONV_LSTM[p.info.type]
    filters = int(p.cfg.get("filters", 1))
    steps = max(p.first[0], 1) if p.first else 1
    positions = _prod(p.info.output_shape[-(rank + 1):-1])
    return 2 * 4 * steps * p.batch * positions * p.area * (p.c_in + filters) * filters


def _bidirectional(p: _Pass):  # a forward and a backward copy of the wrapped layer
    out = p.info.output_shape
    if p.cfg.get("merge_mode", "concat") == "concat" and out:
        out = (*out[:-1], max(out[-1] // 2, 1))
    inner = _wrapped(p.info, p.cfg.get("layer") or {}, p.shapes, out, p.info.params // 2)
    return 2 * analytic_cost(inner, p.batch)["flops"]


def _time_distributed(p: _Pass):  # the wrapped layer once per step of axis 1
    steps = max(p.first[0], 1) if p.first else 1
    inner = _wrapped(p.info, p.cfg.get("layer") or {}, [s[1:] for s in p.shapes], p.info.output_shape[1:],
                     p.info.params)
    return steps * analytic_cost(inner, p.batch)["flops"]


def _multi_head_attention(p: _Pass):
    q, v, k = _attention_shapes(p.shapes)
    heads, key_dim = int(p.cfg.get("num_heads", 1)), int(p.cfg.get("key_dim", 1))
    value_dim = int(p.cfg.get("value_dim") or key_dim)
    tq, tk = _prod(q[:-1]), _prod(k[:-1])  # query and key/value positions (all attention axes)
    d_out = p.info.output_shape[-1] if p.info.output_shape else q[-1]
    projections = 2 * p.batch * (tq * q[-1] * heads * key_dim          # Q
                                 + tk * k[-1] * heads * key_dim        # K
                                 + tk * v[-1] * heads * value_dim      # V
                                 + tq * heads * value_dim * d_out)     # output
    scores = p.batch * heads * tq * tk
    p.bytes_moved += 4 * 2 * scores
    return projections + 2 * scores * key_dim + 2 * scores * value_dim  # QK^T and AV


def _attention(p: _Pass):
    q, v, k = _attention_shapes(p.shapes)
    scores = p.batch * _prod(q[:-1]) * _prod(k[:-1])
    additive = p.info.type == "AdditiveAttention" or p.cfg.get("score_mode") == "concat"
    per_score = 4 * q[-1] if additive else 2 * q[-1]  # tanh(q + k) . scale, or q . k
    p.bytes_moved += 4 * 2 * scores
    return scores * (per_score + 2 * v[-1])  # scores, then the weighted sum of values


def _dot(p: _Pass):
    axes = p.cfg.get("axes", -1)
    axis = int(axes[0] if isinstance(axes, (list, tuple)) else axes)
    axis = axis - 1 if axis > 0 else axis  # Keras counts the batch axis
    return 2 * p.out_elems * (max(p.first[axis], 1) if p.first else 1)


def _embedding(p: _Pass):  # a gather: no arithmetic; reads the indices, copies the rows it picks
    p.bytes_moved = 4 * (p.in_elems + p.out_elems)
    return 0


def _upsampling(p: _Pass):  # nearest repeats; bilinear blends
    return 0 if p.cfg.get("interpolation", "nearest") == "nearest" else p.out_elems


# FLOPs per pass of each layer type; pooling is matched by name below, anything else moves data only
# (padding, cropping, reshape, concat, dropout at inference, input).
_FLOPS = {
    **dict.fromkeys(("Conv1D", "Conv2D", "Conv3D"), _conv),
    **dict.fromkeys(_TRANSPOSED, _transposed),
    **dict.fromkeys(("DepthwiseConv2D", "DepthwiseConv1D"), _depthwise),
    **dict.fromkeys(("SeparableConv2D", "SeparableConv1D"), _separable),
    "Dense": _dense,
    "EinsumDense": lambda p: _einsum_dense_flops(p.cfg, p.first, p.info.output_shape) * p.batch,
    **dict.fromkeys(_RNN_GATES, _rnn),
    **dict.fromkeys(_CONV_LSTM, _conv_lstm),
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    "MultiHeadAttention": _multi_head_attention,
    **dict.fromkeys(("Attention", "AdditiveAttention"), _attention),
    "Dot": _dot,
    **dict.fromkeys(("Embedding", "ReversibleEmbedding"), _embedding),  # keras-hub's ties its matrix to the head
    **dict.fromkeys(("UpSampling1D", "UpSampling2D", "UpSampling3D"), _upsampling),
    **dict.fromkeys(("BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization",
                     "UnitNormalization"), lambda p: 4 * p.out_elems),
    **dict.fromkeys(("Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum"),
                    lambda p: (len(p.shapes) - 1) * p.out_elems),
    **dict.fromkeys(("Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling", "LayerScale"),
                    lambda p: p.out_elems),
    "CustomScaleLayer": lambda p: CUSTOM_SCALE_FLOPS_PER_ELEMENT * p.out_elems,
}


def _flops(p: _Pass):
    t = p.info.type
    if t in _FLOPS:
        return _FLOPS[t](p)
    if "Pooling" in t:
        return p.in_elems if "Global" in t else p.out_elems * p.area
    return 0


def analytic_cost(info: LayerInfo, batch_size: int) -> dict:
    """FLOPs (multiply and add counted separately), elements and bytes moved, per pass.

    Matrix products count 2 FLOPs per multiply-accumulate; biases, gate nonlinearities and
    softmaxes inside recurrent and attention layers are not counted (they are small next to the
    products). Bytes are 4 per element read or written (inputs, outputs, weights) unless a
    layer moves something else (an embedding reads only the rows it gathers; attention also
    writes and reads its score matrix).
    """
    p = _Pass(info, batch_size)
    flops = _flops(p)
    return {
        "flops": float(flops),
        "params": float(info.params),
        "in_elems": float(p.in_elems),
        "out_elems": float(p.out_elems),
        "mem_bytes": float(p.bytes_moved),
    }


def layer_row(info, batch_size: int, config_id: str) -> dict:
    """One layer's description and analytic cost (the columns of `schema.INPUT_COLUMNS`)."""
    return {
        "config_id": config_id,
        "layer_index": info.index,
        "layer_name": info.name,
        "layer_type": info.type,
        "batch_size": batch_size,
        "layer_config": info.config_json,
        "input_shapes": json.dumps([list(s) for s in info.input_shapes]),
        "output_shape": json.dumps(list(info.output_shape)),
        "n_inputs": len(info.input_shapes),
        **(info.cost_at(batch_size) if hasattr(info, "cost_at") else analytic_cost(info, batch_size)),
        "inbound_layers": json.dumps(list(info.inbound)),
    }


def describe_layers(model, batch_size: int, config_id: str = "model", inputs=None) -> pd.DataFrame:
    """Every layer of `model` at `batch_size`, as the predictor's input table (`inputs`: as `describe`)."""
    return pd.DataFrame([layer_row(i, batch_size, config_id) for i in describe(model, inputs=inputs)],
                        columns=INPUT_COLUMNS + GRAPH_COLUMNS)
