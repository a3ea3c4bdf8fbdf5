"""Run one layer of a model in isolation: the report's way of measuring a layer."""

from __future__ import annotations

from typing import Callable

from nnenergy.describe import LayerInfo


def isolated_callable(layer, info: LayerInfo, batch_size: int) -> Callable[[], object]:
    """A compiled call of the model's own layer object (weights and state intact) on random input."""
    import tensorflow as tf

    if info.type == "InputLayer":
        x = tf.random.uniform((batch_size, *info.input_shapes[0]))
        fn = tf.function(tf.identity)
        return lambda: fn(x)
    xs = [tf.random.uniform((batch_size, *s), dtype=info.dtype if "float" in info.dtype else "float32")
          for s in info.input_shapes]
    multi = isinstance(layer.input, (list, tuple))

    @tf.function
    def run(*args):
        return layer(list(args) if multi else args[0], training=False)

    return lambda: run(*xs)
