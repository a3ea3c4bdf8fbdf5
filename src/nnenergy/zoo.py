"""The model zoo: build a model by name (`keras.applications` names, built-in tiny models, generated
architectures) or load a `.keras`/`.h5` file. Sweeps measure these models (`measure/`) and prediction
builds them (`predict/`): both import this module, neither imports the other."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path


class ArchitectureError(ValueError):
    """An architecture that cannot be built (unknown name, unreadable file, bad size)."""


def application_names() -> list[str]:
    import keras

    apps = keras.applications
    return sorted(
        n for n in dir(apps) if n[:1].isupper() and callable(getattr(apps, n, None))
    )


def family_of(name: str) -> str:
    """Group variants of one design (ResNet50/101 -> ResNet) for architecture-held-out splits."""
    rules = [
        (r"^EfficientNetV2.*", "EfficientNetV2"),
        (r"^EfficientNetB\d$", "EfficientNet"),
        (r"^ResNet\d+V2$", "ResNetV2"),
        (r"^ResNet(RS)?\d+$", "ResNet"),
        (r"^MobileNetV3.*", "MobileNetV3"),
        (r"^ConvNeXt.*", "ConvNeXt"),
        (r"^DenseNet\d+$", "DenseNet"),
        (r"^VGG\d+$", "VGG"),
        (r"^NASNet.*", "NASNet"),
        (r"^dense_only_.*", "DenseOnly"),
    ]
    for pattern, family in rules:
        if re.match(pattern, name):
            return family
    return name


# Tiny models for tests and the `tiny` sweep: every common layer kind, runs in milliseconds.
def _tiny_cnn(input_size: int):
    import keras
    from keras import layers

    inp = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="rescale")(inp)
    x = layers.ZeroPadding2D(1, name="pad")(x)
    x = layers.Conv2D(8, 3, strides=2, name="conv1")(x)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    a = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    b = layers.Conv2D(8, 1, name="pw")(x)
    x = layers.Add(name="add")([a, b])
    x = layers.Activation("swish", name="swish")(x)
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = layers.Conv2D(8, 1, activation="sigmoid", name="se_gate")(s)
    x = layers.Multiply(name="se_mul")([x, s])
    x = layers.Concatenate(name="concat")([x, b])
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.2, name="drop")(x)
    out = layers.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name="tiny_cnn")


def _tiny_mlp(input_size: int):
    import keras
    from keras import layers

    inp = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Reshape((input_size * input_size * 3,), name="reshape")(inp)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.1, name="drop")(x)
    x = layers.LayerNormalization(name="ln")(x)
    out = layers.Dense(10, name="fc2")(x)
    return keras.Model(inp, out, name="tiny_mlp")


def _dense_only(widths: tuple[int, ...]):
    def build(input_size: int):
        import keras
        from keras import layers

        inp = keras.Input((input_size, input_size, 3), name="image")
        x = layers.Flatten(name="flatten")(inp)
        for i, w in enumerate(widths):
            x = layers.Dense(w, activation="relu", name=f"fc{i}")(x)
        return keras.Model(inp, x, name="dense_only")

    return build


def _reference_cnn(input_size: int):
    """The protocol's reference: a fixed small model of the common kinds (conv, depthwise, BN,
    activations, add, pooling, dense), measured in every round to witness the machine's speed."""
    import keras
    from keras import layers

    inp = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", name="stem")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, width in enumerate((32, 64)):
        y = layers.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        y = layers.Activation("swish", name=f"dw{i}_act")(y)
        y = layers.Conv2D(width, 1, name=f"pw{i}")(y)
        x = x if x.shape[-1] == width else layers.Conv2D(width, 1, name=f"proj{i}")(x)
        x = layers.Add(name=f"add{i}")([x, y])
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(100, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name="reference_cnn")


BUILTIN = {
    "reference_cnn": _reference_cnn,
    "tiny_cnn": _tiny_cnn,
    "tiny_mlp": _tiny_mlp,
    "dense_only_small": _dense_only((256, 128, 10)),
    "dense_only_wide": _dense_only((1024, 1024, 10)),
    "dense_only_deep": _dense_only((256,) * 6 + (10,)),
}


@dataclass(frozen=True)
class BuiltModel:
    name: str
    family: str
    source: str  # keras.applications | builtin | file | generated | variant | kernel
    input_size: int
    model: object  # keras.Model
    spec: object = None  # the generator's ArchSpec for generated models and variants

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape (no batch); unknown spatial dimensions take the input size."""
        return tuple(int(d) if d else self.input_size for d in self.model.inputs[0].shape[1:])


def build(name: str, input_size: int | None) -> BuiltModel:
    """Build `name` at `input_size` (square RGB). Files keep their own input shape."""
    path = Path(name)
    if name.endswith((".keras", ".h5")):
        model = load_model_file(path)
        shape = model.inputs[0].shape
        size = int(shape[1]) if len(shape) == 4 and shape[1] else int(input_size or 0)
        return BuiltModel(path.stem, path.stem, "file", size, model)
    if name in BUILTIN:
        return BuiltModel(name, family_of(name), "builtin", input_size, BUILTIN[name](input_size))
    if name.startswith("hub_"):  # keras-hub backbones in our configurations (nnenergy.hub)
        from nnenergy import hub

        try:
            return BuiltModel(name, name, "keras-hub", input_size, hub.build(name, input_size))
        except ValueError as exc:
            raise ArchitectureError(str(exc)) from exc
    if is_generated(name):
        from nnenergy import arch

        try:
            model, spec = arch.build_named(name)
        except ValueError as exc:
            raise ArchitectureError(str(exc)) from exc
        source = {"generated": "generated", "kernel": "kernel"}.get(spec.family, "variant")
        return BuiltModel(name, spec.family, source, int(spec.input_shape[0]), model, spec)
    model = application(name, (input_size, input_size, 3))
    return BuiltModel(name, family_of(name), "keras.applications", input_size, model)


def is_generated(name: str) -> bool:
    """A name of the architecture generator (`gen1_s000123`, `var1_ResNet_s000004`, kernels `ker1_s000005`
    and `seq1_s000005`)."""
    return bool(re.match(r"^(gen|var|ker|seq)\d+_", name))


def check_name(name: str) -> None:
    """Raise `ArchitectureError` for a name no builder knows, before anything is measured."""
    if name.endswith((".keras", ".h5")):
        if not Path(name).exists():
            raise ArchitectureError(f"model file not found: {name}")
        return
    if name in BUILTIN or is_generated(name):
        return
    if name.startswith("hub_"):
        from nnenergy import hub

        if name not in hub.BACKBONES:
            raise ArchitectureError(f"unknown keras-hub backbone {name!r}: one of {', '.join(hub.BACKBONES)}")
        return
    application(name, None, build=False)


def application(name: str, input_shape: tuple[int, ...] | None, build: bool = True):
    """A `keras.applications` model with `weights=None` (no download); None = its default shape.
    `build=False` only checks the name."""
    import keras

    if name not in application_names():
        choices = application_names() + list(BUILTIN)
        lower = {n.lower(): n for n in choices}
        close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)]
        close = [c for c in close if c != name]  # never "did you mean X" with X the name itself
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ArchitectureError(f"unknown architecture {name!r}: not a file and not a keras.applications name{hint}")
    if not build:
        return None
    try:
        return getattr(keras.applications, name)(weights=None, input_shape=tuple(input_shape) if input_shape else None)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchitectureError(f"{name} cannot take input shape {tuple(input_shape or ())}: {first}") from exc


def load_model_file(path: Path):
    """Load a `.keras`/`.h5` file with Keras safe mode on: never run code from a file."""
    import keras

    if not path.exists():
        raise ArchitectureError(f"model file not found: {path}")
    _import_packages_of(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad files; report one line
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchitectureError(f"cannot load {path}: {msg}") from exc


def _import_packages_of(path: Path) -> None:
    """keras-hub registers its layers when it is imported: import it before loading a `.keras` file whose
    config names them (`pip install 'nnenergy[hub]'` where it is missing)."""
    import importlib
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            uses_hub = b"keras_hub" in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return  # not a .keras archive: Keras reports what is wrong with it
    if uses_hub:
        try:
            importlib.import_module("keras_hub")
        except ImportError as exc:
            raise ArchitectureError(f"{path} holds keras-hub layers: install keras-hub "
                                    "(pip install 'nnenergy[hub]')") from exc
