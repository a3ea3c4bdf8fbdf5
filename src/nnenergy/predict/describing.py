"""Describing: a model argument -> the layer tables the predictor reads.

A model argument is classified once (`classify`) into a `ModelSource`: a layer-table file, a model file,
a name (keras.applications, built-in, generated, keras-hub) or an in-memory Keras model. `describe`
turns it into one `Described` per configuration: a layer-table file is read as it is (no TensorFlow);
a name or file described before comes from the table cache (`<cache>/tables/`, no TensorFlow); anything
else is built at the requested input shape (`resolve_model`, with `models` doing the Keras surgery) and
described on its inputs (`feeds`: dict and multi-input models). A new kind of model argument (a keras-hub
preset, a model with custom layers to trace) is a new `kind` here, a branch of `resolve_model`, and a
module of `describe_traced`/`feeds` if it needs one.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from nnenergy.paths import cache_dir
from nnenergy.predict import models
from nnenergy.predict.errors import PredictError
from nnenergy.predict.inputs import check_model_file, is_table, looks_like_path, read_layer_table


@dataclass(frozen=True)
class ModelSource:
    """What a model argument is: `kind` says how `value` (a Path, a name or a keras.Model) is described."""

    kind: Literal["table", "file", "name", "keras"]
    value: object


def classify(model) -> ModelSource:
    """A model argument as the caller gave it (a `ModelSource` passes as it is) -> its `ModelSource`."""
    if isinstance(model, ModelSource):
        return model
    if not isinstance(model, (str, os.PathLike)):
        return ModelSource("keras", model)
    if is_table(model):
        return ModelSource("table", Path(model))
    if looks_like_path(model):
        return ModelSource("file", Path(model))
    return ModelSource("name", str(model))


def check_arguments(model, batch_size, input_shape) -> ModelSource:
    """Everything that can be checked without TensorFlow, Keras or MLflow, in a few milliseconds; the
    model argument classified."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise PredictError(f"batch size must be a positive integer, got {batch_size!r}")
    if input_shape is not None:
        try:
            dims = [int(d) for d in input_shape]
        except (TypeError, ValueError):
            raise PredictError(f"input shape must be positive integers, got {input_shape!r}") from None
        if not dims or any(d <= 0 for d in dims):
            raise PredictError(f"input shape must be positive integers, got {input_shape!r}")
    source = classify(model)
    if source.kind in ("table", "file"):
        check_model_file(source.value)
    elif source.kind == "name" and not source.value.strip():
        raise PredictError("no model given: pass a .keras/.h5 file or a keras.applications name")
    return source


def resolve_model(model, input_shape: tuple[int, ...] | None, structured: bool = False):
    """A keras.Model, a `.keras`/`.h5` path or a name -> (keras.Model at the input shape, name).

    `structured`: its inputs are fed by `feeds` (given by name, or its own specs), so its input
    shape is left as it is; a model with several inputs always is."""
    import keras

    source = classify(model)
    if source.kind == "name":
        name = models.canonical_name(source.value)
        km, fitted = models.build_named(name, input_shape)
        if fitted:
            return km, name
    elif source.kind == "file":
        check_model_file(source.value)
        km, name = models.load_file(source.value), source.value.stem
    elif source.kind == "keras" and isinstance(source.value, keras.Model):
        km, name = source.value, source.value.name
    elif source.kind == "table":
        raise PredictError(f"{source.value} is a layer table: it is predicted as it is, not built")
    else:
        raise PredictError(f"expected a keras.Model, a model file or an application name, got {type(model).__name__}")
    return models.fit_inputs(km, input_shape, structured), name


class Described(NamedTuple):
    """One configuration a model argument stands for, described."""

    name: str
    layers: object  # the layer table (pandas), its `config_id` prefixed as `describe` was asked
    input_shape: list[int]
    batch_size: int
    inputs: dict  # name -> {"shape", "dtype"} of each input it was described on


def _model_of(config: str) -> str:
    """The model a layer table's configuration (`schema.config_id`: model|size|batch) was described from."""
    from nnenergy.schema import parse_config_id

    try:
        return parse_config_id(config)[0]
    except ValueError:  # a table written by other means: its own name
        return config


def describe(model, batch_size: int, input_shape, config_id_prefix: str = "", inputs=None,
             seq_len: int | None = None) -> list[Described]:
    """Each configuration `model` stands for, described: one for a Keras model, file or name; one per
    configuration of a layer table file (read without TensorFlow). A name or file described before (same
    shapes, batch and code) comes from the table cache without TensorFlow: a repeated prediction answers
    in about a second. `inputs`/`seq_len`: the shapes and dtypes of a model's inputs by name (`feeds`)."""
    source = classify(model)
    if source.kind == "table":  # named by its model ("ResNet50", not its configuration "ResNet50|224|32")
        return [Described(_model_of(name), layers.assign(config_id=f"{config_id_prefix}{name}"), shape, batch, {})
                for name, layers, shape, batch in read_layer_table(source.value)]
    from nnenergy.predict.feeds import normalize

    structure = json.dumps([sorted(normalize(inputs).items()), seq_len]) if inputs or seq_len else None
    key = _table_key(source, batch_size, input_shape, structure)
    hit = _cached_table(key)
    if hit is not None:
        name, layers, shape, fed = hit
        return [Described(name, layers.assign(config_id=f"{config_id_prefix}{name}"), shape, batch_size, fed)]
    models.import_tensorflow_quietly()
    from nnenergy.describe import describe_layers
    from nnenergy.predict.feeds import describe_inputs, feed, input_names

    km, name = resolve_model(source, input_shape, structured=bool(inputs) or seq_len is not None)
    feeds = feed(km, inputs, seq_len) if inputs or seq_len is not None or len(km.inputs) > 1 else None
    try:
        layers = describe_layers(km, batch_size, config_id=f"{config_id_prefix}{name}", inputs=feeds)
    except ValueError as exc:  # a nested model without a layer graph
        raise PredictError(str(exc).splitlines()[0]) from None
    fed = describe_inputs(feeds or km.inputs, input_names(km))
    shape = next(iter(fed.values()))["shape"]
    _store_table(key, name, layers, shape, fed)
    return [Described(name, layers, shape, batch_size, fed)]


# The table cache: `<cache>/tables/<key>.parquet` and its `.json` (name, shape, inputs), written last.


@functools.lru_cache(maxsize=1)
def _describing_code() -> str:
    """The identity of the code that describes a model (its modules' bytes and Keras's version):
    read once per process, not once per candidate of a search."""
    import hashlib
    import importlib.util
    from importlib.metadata import version

    code = b"".join(Path(importlib.util.find_spec(m).origin).read_bytes()
                    for m in ("nnenergy.describe", "nnenergy.describe_ops", "nnenergy.describe_traced", "nnenergy.zoo",
                              "nnenergy.predict.models", "nnenergy.predict.feeds", "nnenergy.predict.describing"))
    return f"{hashlib.sha1(code).hexdigest()}|{version('keras')}"


def _table_key(source: ModelSource, batch_size: int, input_shape, structure=None) -> str | None:
    """The cache key of a model's described layer table: a pure function of the model (its name, or
    its file's bytes), the input shape, the batch size and the describing code (with Keras's
    version). None for a keras.Model object (no stable identity) or a file that is not there."""
    import hashlib

    if source.kind == "file":
        if not source.value.is_file():
            return None
        ident = "file:" + hashlib.sha1(source.value.read_bytes()).hexdigest()
    elif source.kind == "name":
        ident = "name:" + source.value
    else:
        return None
    shape = None if input_shape is None else [int(d) for d in input_shape]
    key = f"{ident}|{shape}|{batch_size}|{_describing_code()}" + (f"|{structure}" if structure else "")
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _cached_table(key: str | None):
    if key is None:
        return None
    folder = cache_dir() / "tables"
    try:
        import pandas as pd

        info = json.loads((folder / f"{key}.json").read_text())
        return info["name"], pd.read_parquet(folder / f"{key}.parquet"), info["shape"], info.get("inputs") or {}
    except (OSError, ValueError, KeyError):
        return None


def _store_table(key: str | None, name: str, layers, shape: list[int], inputs: dict) -> None:
    if key is None:
        return
    folder = cache_dir() / "tables"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{key}.{os.getpid()}.tmp"
        layers.to_parquet(tmp, index=False)
        tmp.replace(folder / f"{key}.parquet")
        (folder / f"{key}.json").write_text(json.dumps({"name": name, "shape": shape, "inputs": inputs}))  # last
    except OSError:  # the cache is an optimisation: never fail a prediction over it
        pass
