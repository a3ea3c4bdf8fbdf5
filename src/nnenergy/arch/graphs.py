"""The two graphs every block is written against (see `nnenergy.arch.blocks`):

- `KerasGraph` creates real Keras layers (plain built-in layers only: models load in safe mode);
- `CostGraph` only walks shapes (without batch) and counts layers and multiply-accumulates (MACs),

so the generator sizes a model analytically, without Keras, and the count always matches the model.
"""

from __future__ import annotations

import math

Shape = tuple[int, ...]
RNN_GATES = {"lstm": 4, "gru": 3}  # gate matrices per recurrent cell (describe.py's _RNN_GATES by class)
RNN_CLASSES = {"lstm": "LSTM", "gru": "GRU"}


def _pair(k) -> tuple[int, int]:
    return (int(k[0]), int(k[1])) if isinstance(k, (list, tuple)) else (int(k), int(k))


def _out(n: int, k: int, s: int, padding: str) -> int:
    return -(-n // s) if padding == "same" else (n - k) // s + 1


class CostGraph:
    """Shapes, layer names and MACs of the layers a block would create; no Keras involved.

    MACs count convolutions, dense layers, attention matmuls and recurrent gates; pooling, gathers and
    elementwise layers count 0.
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

    def mha(self, x, heads, key_dim, name="", causal=False):
        t, c = x
        proj = heads * key_dim  # value_dim defaults to key_dim; a causal mask hides scores, computes them all
        return self._op(name, x, 3 * t * c * proj + 2 * t * t * proj + t * proj * c, "MultiHeadAttention")

    def embedding(self, x, vocab, dim, name=""):
        return self._op(name, (*x, dim), cls="Embedding")  # a gather: no MACs

    def rnn(self, x, cell, units, return_sequences, name="", bidirectional=False):
        """LSTM (4 gates) or GRU (3): each step multiplies [x_t, h_{t-1}] by a (features + units) x units
        matrix per gate; a Bidirectional layer runs two such loops and concatenates their outputs."""
        t, f = x
        dirs = 2 if bidirectional else 1
        macs = dirs * RNN_GATES[cell] * t * (f + units) * units
        out = dirs * units
        return self._op(name, (t, out) if return_sequences else (out,), macs,
                        "Bidirectional" if bidirectional else RNN_CLASSES[cell])

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

    def mha(self, x, heads, key_dim, name="", causal=False):
        layer = self.L.MultiHeadAttention(num_heads=heads, key_dim=key_dim, name=name)
        return layer(x, x, use_causal_mask=True) if causal else layer(x, x)

    def embedding(self, x, vocab, dim, name=""):
        return self.L.Embedding(vocab, dim, name=name)(x)  # casts float ids to int32 itself

    def rnn(self, x, cell, units, return_sequences, name="", bidirectional=False):
        if not bidirectional:
            return getattr(self.L, RNN_CLASSES[cell])(units, return_sequences=return_sequences, name=name)(x)
        # The wrapped layer's own name is not the wrapper's: Keras names the two directions forward_/backward_ it.
        inner = getattr(self.L, RNN_CLASSES[cell])(units, return_sequences=return_sequences, name=f"{name}_rnn")
        return self.L.Bidirectional(inner, name=name)(x)

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
