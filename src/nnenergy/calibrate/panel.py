"""The calibration panel: small kernels of each group of layer kinds, two small models and eleven
small generated models (one per macro kind of the architecture space), ~5-100 ms per pass each."""

from __future__ import annotations

# Small generated models, one per macro kind of `nnenergy.arch`, ~10-40 ms per pass on 2 cores:
# (name, batch). Never keras.applications: those are what calibration is judged on.
WHOLE_MODELS = (("gen1_s000000", 8), ("gen1_s000012", 1), ("gen1_s000002", 16), ("gen1_s000003", 8),
                ("gen1_s000004", 8), ("gen1_s000005", 2), ("gen1_s000006", 4), ("gen1_s000007", 64),
                ("gen1_s000008", 4), ("gen1_s000020", 4), ("gen1_s000010", 2))
SMALL_MODELS = ("tiny_cnn_64", "reference_cnn_96")


def _kernel(name: str, shape: tuple[int, ...], body):
    import keras

    inp = keras.Input(shape, name="x")
    return keras.Model(inp, body(inp), name=name)


def panel_models() -> list[tuple[str, object, int]]:
    """(name, keras model, batch size): kernels of every group and two small models, ~5-100 ms each."""
    from keras import layers as L

    from nnenergy import zoo

    def conv_bn_relu(filters, k, stride=1):
        return lambda x: L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, k, stride, padding="same")(x)))

    def dw_bn_relu(k):
        return lambda x: L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(k, padding="same")(x)))

    items = [
        ("conv3x3_56x64", (56, 56, 64), conv_bn_relu(64, 3), 2),
        ("conv3x3_28x128", (28, 28, 128), conv_bn_relu(128, 3), 4),
        ("conv3x3_14x256", (14, 14, 256), conv_bn_relu(256, 3), 8),
        ("conv1x1_56x64to256", (56, 56, 64), conv_bn_relu(256, 1), 2),
        ("conv1x1_14x512to128", (14, 14, 512), conv_bn_relu(128, 1), 8),
        ("stem7x7_s2", (160, 160, 3), conv_bn_relu(64, 7, 2), 2),
        ("dw3x3_56x144", (56, 56, 144), dw_bn_relu(3), 2),
        ("dw3x3_14x576", (14, 14, 576), dw_bn_relu(3), 8),
        ("dw5x5_28x240", (28, 28, 240), dw_bn_relu(5), 4),
        ("dense_1024", (1024,), lambda x: L.Dense(1024, activation="relu")(x), 32),
        ("dense_2048to1000", (2048,), lambda x: L.Dense(1000)(x), 8),
        ("bn_relu_56x128", (56, 56, 128), lambda x: L.ReLU()(L.BatchNormalization()(x)), 4),
        ("add_28x256", (28, 28, 256), lambda x: L.Add()([x, L.Activation("swish")(x)]), 4),
        ("concat_28x128", (28, 28, 128), lambda x: L.Concatenate()([x, L.ReLU()(x)]), 4),
        ("maxpool_112x64", (112, 112, 64), lambda x: L.MaxPooling2D(3, 2, padding="same")(x), 2),
        ("gap_7x1280", (7, 7, 1280), lambda x: L.GlobalAveragePooling2D()(x), 16),
    ]
    out = [(name, _kernel(name, shape, body), batch) for name, shape, body, batch in items]
    out.append(("tiny_cnn_64", zoo.build("tiny_cnn", 64).model, 8))
    out.append(("reference_cnn_96", zoo.build("reference_cnn", 96).model, 4))
    out += [(name, zoo.build(name, None).model, batch) for name, batch in WHOLE_MODELS]
    return out


def is_whole_model(name: str) -> bool:
    return name in SMALL_MODELS or name in dict(WHOLE_MODELS)
