"""A model to predict, as Keras sees it: a name or file -> a keras.Model, and a keras.Model at the
requested input shape (the input-shape surgery: building an unbuilt Sequential, cloning onto a new
input). Which of them a model argument is, `describing` decides."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from nnenergy import zoo
from nnenergy.predict.errors import PredictError, first_line
from nnenergy.quiet import import_tensorflow as import_tensorflow_quietly  # noqa: F401  (its home before)

BUILTIN_DEFAULT_SIZE = 32  # the built-in test models (tiny_cnn, ...) when no --input-shape is given


def canonical_name(name: str) -> str:
    """An application, built-in or generated name as the builders spell it. A name that differs
    from a known one only by case resolves to it; an unknown name raises with close names (never
    the name itself) suggested. Imports Keras (the list of keras.applications)."""
    if name in zoo.BUILTIN or zoo.is_generated(name):
        return name
    if name.startswith("hub_"):  # keras-hub backbones in our configurations (nnenergy.hub)
        try:
            zoo.check_name(name)
        except zoo.ArchitectureError as exc:
            raise PredictError(str(exc)) from None
        return name
    apps = zoo.application_names()
    if name in apps:
        return name
    by_lower = {n.lower(): n for n in [*apps, *zoo.BUILTIN]}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    try:
        zoo.application(name, None, build=False)
    except zoo.ArchitectureError as exc:
        raise PredictError(str(exc)) from None
    return name  # unreachable: an unknown name raised above


def load_file(path: Path):
    """A `.keras`/`.h5` file -> its keras.Model; a file Keras cannot read says why in one line."""
    try:
        return zoo.load_model_file(path)
    except zoo.ArchitectureError as exc:
        cause = exc.__cause__  # unreadable bytes (h5py raises OSError), a broken archive or config
        if isinstance(cause, (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError)):
            raise PredictError(f"{path} is corrupt or not a Keras model: "
                               f"{first_line(cause, 200, type(cause).__name__)}") from None
        raise PredictError(str(exc)) from None


def build_named(name: str, input_shape) -> tuple[object, bool]:
    """A canonical name -> (keras.Model, whether it is already at the input shape): keras-hub backbones
    and keras.applications are built at it; built-in and generated models at its first dimension."""
    try:
        if name.startswith("hub_"):  # sized by one number: the image side or the sequence length
            from nnenergy.hub import default_size

            return zoo.build(name, int(input_shape[0]) if input_shape else default_size(name)).model, True
        if name in zoo.BUILTIN or zoo.is_generated(name):
            return zoo.build(name, int(input_shape[0]) if input_shape else BUILTIN_DEFAULT_SIZE).model, False
        return zoo.application(name, input_shape), True
    except zoo.ArchitectureError as exc:
        raise PredictError(str(exc)) from None


def fit_inputs(km, input_shape, structured: bool = False):
    """`km` at the requested input shape. `structured`: its inputs are fed by `feeds` (given by name, or
    its own specs), so its input shape is left as it is; a model with several inputs always is."""
    if structured or _several_inputs(km):
        if input_shape is not None:
            from nnenergy.predict.feeds import input_names

            raise PredictError(f"the model takes {len(km.inputs)} inputs ({', '.join(input_names(km))}): give their "
                               "shapes with --input NAME=SHAPE[:DTYPE] (inputs={...}), not --input-shape")
        _check_graph(km)
        return km
    return _with_input_shape(km, input_shape)


def _several_inputs(km) -> bool:
    inputs = _model_inputs(km)
    return inputs is not None and len(inputs) > 1


def _check_graph(km) -> None:
    import keras

    if not isinstance(km, keras.Sequential) and not hasattr(km, "_nodes_by_depth"):
        raise PredictError(f"{type(km).__name__} is a subclassed model: its layers have no graph to predict from; "
                           "build it as a Functional or Sequential model")


def _model_inputs(km):
    """The model's symbolic inputs, or None for a Sequential model that has no input shape yet."""
    try:
        return km.inputs or None
    except AttributeError:  # Keras: "Sequential model ... has no defined inputs yet."
        return None


def _with_input_shape(km, input_shape):
    import keras

    _check_graph(km)
    if _model_inputs(km) is None:  # a Sequential saved (or made) before it was built
        if input_shape is None:
            raise PredictError("the model has no input shape (a Sequential model saved before it was built): "
                               "pass --input-shape (input_shape=...)")
        shape = tuple(int(d) for d in input_shape)
        try:  # on a copy: a failed build would leave the caller's model configured for a wrong shape
            km = keras.models.clone_model(km)
        except Exception:
            pass
        try:
            km.build((None, *shape))
        except Exception as exc:  # Keras raises several types when shapes do not propagate
            raise PredictError(f"input shape {shape} does not fit the model: "
                               f"{first_line(exc, 200, type(exc).__name__)}") from None
        if _model_inputs(km) is None:
            raise PredictError(f"the model could not be built on input shape {shape}")
        return km
    current = tuple(km.inputs[0].shape[1:])
    if input_shape is None:
        if any(d is None for d in current):
            raise PredictError(f"the model's input shape {current} has unknown dimensions: pass --input-shape "
                               "(or --seq-len N for a sequence)")
        return km
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != len(current) or any(c is not None and c != s for c, s in zip(current, input_shape)):
        if all(c is not None for c in current):
            raise PredictError(f"input shape {input_shape} does not fit the model, which takes {current}")
    if current == input_shape:
        return km
    try:
        return keras.models.clone_model(km, input_tensors=keras.Input(input_shape))
    except Exception as exc:  # Keras raises several types when shapes do not propagate
        raise PredictError(f"input shape {input_shape} does not fit the model: {str(exc).splitlines()[0]}") from None
