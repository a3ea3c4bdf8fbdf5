"""Describe each layer of a model (signature, shapes, analytic cost) and run it in isolation."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Callable

Shape = tuple[int, ...]

# Keys that name or bookkeep a layer without changing what it computes.
_IGNORED_CONFIG_KEYS = {"name", "trainable"}


@dataclass(frozen=True)
class LayerInfo:
    """A layer as it occurs in one model: its shapes exclude the batch dimension."""

    index: int
    name: str
    type: str
    config: dict
    input_shapes: list[Shape]
    output_shape: Shape
    dtype: str
    params: int

    @property
    def config_json(self) -> str:
        cfg = {k: v for k, v in self.config.items() if k not in _IGNORED_CONFIG_KEYS}
        return json.dumps(cfg, sort_keys=True, default=str)

    def signature(self, batch_size: int, hardware_id: str) -> str:
        """Same type + config (name aside) + input shapes + batch + hardware -> same cost."""
        key = json.dumps(
            [self.type, self.config_json, [list(s) for s in self.input_shapes], batch_size, hardware_id]
        )
        return hashlib.sha1(key.encode()).hexdigest()[:16]


def _shape(t) -> Shape:
    return tuple(int(d) if d is not None else -1 for d in t.shape[1:])


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def describe(model) -> list[LayerInfo]:
    """All layers of a functional Keras model, in topological order."""
    infos = []
    for i, layer in enumerate(model.layers):
        out = _as_list(layer.output)[0]
        if type(layer).__name__ == "InputLayer":
            ins = [out]
        else:
            ins = _as_list(layer.input)
        infos.append(
            LayerInfo(
                index=i,
                name=layer.name,
                type=type(layer).__name__,
                config=layer.get_config(),
                input_shapes=[_shape(t) for t in ins],
                output_shape=_shape(out),
                dtype=str(getattr(ins[0], "dtype", "float32")),
                params=int(layer.count_params()),
            )
        )
    return infos


def _prod(shape: Shape) -> int:
    return int(math.prod(max(d, 1) for d in shape))


def _kernel_area(cfg: dict) -> int:
    k = cfg.get("kernel_size") or cfg.get("pool_size") or (1,)
    return _prod(tuple(k) if isinstance(k, (list, tuple)) else (k,))


def analytic_cost(info: LayerInfo, batch_size: int) -> dict:
    """FLOPs (multiply and add counted separately), elements and bytes moved, per pass."""
    cfg, t = info.config, info.type
    in_elems = sum(_prod(s) for s in info.input_shapes) * batch_size
    out_elems = _prod(info.output_shape) * batch_size
    c_in = info.input_shapes[0][-1] if info.input_shapes[0] else 1
    area = _kernel_area(cfg)
    if t in ("Conv1D", "Conv2D", "Conv3D"):
        groups = int(cfg.get("groups", 1) or 1)
        flops = 2 * out_elems * area * c_in // groups
    elif t in ("Conv2DTranspose", "Conv1DTranspose", "Conv3DTranspose"):
        flops = 2 * in_elems * area * int(cfg.get("filters", 1))
    elif t in ("DepthwiseConv2D", "DepthwiseConv1D"):
        flops = 2 * out_elems * area
    elif t in ("SeparableConv2D", "SeparableConv1D"):
        mult = int(cfg.get("depth_multiplier", 1))
        flops = 2 * (out_elems // max(int(cfg.get("filters", 1)), 1)) * (area * c_in * mult + c_in * mult * int(cfg.get("filters", 1)))
    elif t in ("Dense", "EinsumDense"):
        flops = 2 * in_elems * int(cfg.get("units", info.output_shape[-1] if info.output_shape else 1))
    elif t in ("BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization"):
        flops = 4 * out_elems
    elif "Pooling" in t and "Global" in t:
        flops = in_elems
    elif "Pooling" in t:
        flops = out_elems * area
    elif t in ("Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum"):
        flops = (len(info.input_shapes) - 1) * out_elems
    elif t in ("Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling", "LayerScale"):
        flops = out_elems
    else:  # data movement only: padding, reshape, concat, dropout at inference, input
        flops = 0
    bytes_moved = 4 * (in_elems + out_elems + info.params)
    return {
        "flops": float(flops),
        "params": float(info.params),
        "in_elems": float(in_elems),
        "out_elems": float(out_elems),
        "mem_bytes": float(bytes_moved),
    }


def isolated_callable(layer, info: LayerInfo, batch_size: int) -> Callable[[], object]:
    """A compiled call of the model's own layer object (weights and state intact) on random input."""
    import tensorflow as tf

    if info.type == "InputLayer":
        x = tf.random.uniform((batch_size, *info.input_shapes[0]))
        fn = tf.function(tf.identity)
        return lambda: fn(x)
    xs = [tf.random.uniform((batch_size, *s), dtype=info.dtype if "float" in info.dtype else "float32") for s in info.input_shapes]
    multi = isinstance(layer.input, (list, tuple))

    @tf.function
    def run(*args):
        return layer(list(args) if multi else args[0], training=False)

    return lambda: run(*xs)
