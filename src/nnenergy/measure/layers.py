"""Run one layer of a model in isolation: the report's way of measuring a layer."""

from __future__ import annotations

from typing import Callable

from nnenergy.describe import LayerInfo


def isolated_callable(layer, info: LayerInfo, batch_size: int, backend=None) -> Callable[[], object]:
    """A compiled call of the model's own layer object (weights and state intact) on random input."""
    from nnenergy.measure import backends

    backend = backend or backends.current()
    if info.type == "InputLayer":
        return backend.no_op()
    xs = [backend.random((batch_size, *s), info.dtype) for s in info.input_shapes]
    multi = isinstance(layer.input, (list, tuple))
    import keras

    if isinstance(layer, keras.layers.MultiHeadAttention):  # query, value (and key) are separate arguments
        if len(xs) > 3:
            raise ValueError(f"{info.name}: an attention layer with a mask input is not isolated")
        run = backend.compile_fn(lambda q, v=None, k=None: layer(q, q if v is None else v, k, training=False))
        return lambda: run(*xs)
    run = backend.compile_fn(lambda *args: layer(list(args) if multi else args[0], training=False))
    return lambda: run(*xs)
