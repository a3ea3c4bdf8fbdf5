"""Layers `describe` cannot price as one row, described by the work they do.

A layer whose type no kind covers (a keras-hub `ViTEncoder`, a custom block) or whose cost a row
misstates (a recurrent loop, `RECURRENT_TYPES`) is traced once, in a `tf.function` at batch 1, while
every Keras layer inside it records its calls. Its rows are then, in call order:
  * each sublayer call of a type the predictor knows, as one row (`analytic_cost` prices it);
  * each sublayer call of another type, by the same rules, recursively;
  * the layer's own ops outside any sublayer call (`describe_ops`).
Rows are named `layer/sublayer/...` so the per-layer table still reads by the user's names. A layer
that cannot be traced (unknown dimensions, a call that fails) stays one row of its own type, which
the predictor prices with its generic fallback and `nnenergy predict` names.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

from nnenergy.describe_ops import _unique, rows_from_ops
from nnenergy.layer_info import RECURRENT_TYPES, LayerInfo  # recurrent: known as types, described op by op


def is_builtin(layer) -> bool:
    return type(layer).__module__.startswith("keras.")


def needs_tracing(layer, inside: bool = False) -> bool:
    """True for a layer described by its sublayers and ops rather than as one row: a recurrent layer,
    a layer of a type Keras does not ship, and (`inside` a traced layer) any layer no kind covers.
    A Keras layer in a model's own graph stays one row, as the measured datasets hold it."""
    from nnenergy.features.layer_features import kind_of

    name = type(layer).__name__
    if name == "InputLayer":
        return False
    return name in RECURRENT_TYPES or not is_builtin(layer) or (inside and kind_of(name) == "other")


@dataclass
class _Call:
    layer: object
    args: tuple
    kwargs: dict
    graph: object
    start: int
    end: int = -1
    outputs: object = None
    children: list = field(default_factory=list)


def _ops_count(graph) -> int:
    return len(graph.get_operations())


@contextlib.contextmanager
def _recording(layers, calls: list):
    """Each layer's `call` records (inputs, outputs, its range of the graph's ops, the call it runs
    inside) while tracing."""
    import tensorflow as tf

    active: list[_Call] = []
    patched = []
    for layer in layers:
        if "call" in vars(layer):
            continue  # already an instance attribute (patched by its owner): leave it alone
        original = layer.call

        def wrapper(*args, _orig=original, _layer=layer, **kwargs):
            graph = tf.compat.v1.get_default_graph()
            rec = _Call(_layer, args, kwargs, graph, _ops_count(graph))
            (active[-1].children if active else calls).append(rec)
            active.append(rec)
            try:
                rec.outputs = _orig(*args, **kwargs)
            finally:
                active.pop()
            rec.end = _ops_count(graph)
            return rec.outputs

        object.__setattr__(layer, "call", wrapper)
        patched.append(layer)
    try:
        yield
    finally:
        for layer in patched:
            vars(layer).pop("call", None)


def _tensors(call) -> list:
    """The data tensors a call reads, in its signature's order (masks and flags left out)."""
    import tensorflow as tf
    from keras import tree

    try:
        bound = call.layer._call_signature.bind(*call.args, **call.kwargs).arguments
    except (TypeError, AttributeError):
        bound = dict(enumerate(call.args)) | call.kwargs
    out = []
    for key, value in bound.items():
        if "mask" in str(key) or key in ("training", "kwargs"):
            continue
        out += [t for t in tree.flatten(value) if isinstance(t, tf.Tensor)]
    return out


def _safe_config(layer) -> dict:
    try:
        return layer.get_config()
    except Exception:  # a custom layer without a serializable config still describes by its shapes
        return {}


def _row_of_call(call, name: str) -> LayerInfo:
    from keras import tree

    from nnenergy.describe_ops import _dims, _row_shape

    ins = _tensors(call)
    outs = [t for t in tree.flatten(call.outputs) if hasattr(t, "shape")]
    return LayerInfo(index=0, name=name, type=type(call.layer).__name__, config=_safe_config(call.layer),
                     input_shapes=[_row_shape(_dims(t), 1) for t in ins],
                     output_shape=_row_shape(_dims(outs[0]), 1) if outs else (),
                     dtype=str(ins[0].dtype.name) if ins else "float32", params=int(call.layer.count_params()))


def _rows(call, name: str, graph) -> list[LayerInfo]:
    """The rows of one call: itself if the predictor prices its type, else its children and own ops."""
    if not needs_tracing(call.layer, inside=True):
        return [_row_of_call(call, name)]
    ops = graph.get_operations()[call.start:call.end]
    rows: list[LayerInfo] = []
    pos = call.start
    used: dict[str, int] = {}
    for child in [c for c in call.children if c.graph is graph and c.end >= 0]:
        # (calls inside a loop body or another function's graph are described by that body's ops)
        rows += rows_from_ops(ops[pos - call.start:child.start - call.start], graph, name)
        n = used.get(child.layer.name, 0)
        used[child.layer.name] = n + 1
        rows += _rows(child, f"{name}/{child.layer.name}" + (f":{n + 1}" if n else ""), graph)
        pos = child.end
    rows += rows_from_ops(ops[pos - call.start:], graph, name)
    return rows


def _spec(x, batch: int = 1):
    """A symbolic input as a TensorSpec at batch 1; None where another dimension is unknown."""
    import tensorflow as tf

    dims = list(x.shape)
    if any(d is None for d in dims[1:]):
        return None
    return tf.TensorSpec((batch, *dims[1:]) if dims else (), x.dtype)


def trace(layer, name: str, args: tuple, kwargs: dict) -> list[LayerInfo] | None:
    """The rows of `layer` called on `args`/`kwargs` (KerasTensors as the model's graph feeds it),
    or None when it cannot be traced (the caller keeps it as one row)."""
    import tensorflow as tf
    from keras import tree
    from keras.src.backend import KerasTensor

    flat = [x for x in tree.flatten((args, kwargs)) if isinstance(x, KerasTensor)]
    specs = [_spec(x) for x in flat]
    if not flat or any(s is None for s in specs):
        return None

    def fn(*tensors):
        mapping = {id(x): t for x, t in zip(flat, tensors)}
        a, k = tree.map_structure(lambda x: mapping.get(id(x), x), (args, kwargs))
        return layer(*a, **k)

    calls: list[_Call] = []
    try:
        with _recording(list(layer._flatten_layers(include_self=True, recursive=True)), calls):
            graph = tf.function(fn, autograph=False).get_concrete_function(*specs).graph
    except Exception:  # a call that does not trace on these shapes: one row, priced as unknown
        return None
    roots = [c for c in calls if c.layer is layer and c.graph is graph and c.end >= 0]
    if not roots:
        return None
    rows = _unique(_rows(roots[0], name, graph))
    return [replace(r, index=i) for i, r in enumerate(rows)] or None
