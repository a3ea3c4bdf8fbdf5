"""Model and layer-table files, checked and read without TensorFlow, Keras or MLflow (milliseconds,
before anything heavy loads): what `describing` classifies and checks a model argument with."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from nnenergy.predict.errors import PredictError

MODEL_SUFFIXES = (".keras", ".h5")
# A model already described (`nnenergy describe`, `describe_layers`): predicted without TensorFlow.
TABLE_SUFFIXES = (".parquet", ".csv")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def looks_like_path(model) -> bool:
    """A model argument that names a file (a model or a layer table), not a model by name."""
    if isinstance(model, os.PathLike):
        return True
    text = str(model)
    return (text.endswith(MODEL_SUFFIXES + TABLE_SUFFIXES) or os.sep in text or "/" in text
            or Path(text).exists())


def is_table(model) -> bool:
    """A layer-table file (`nnenergy describe`): predicted as it is, without TensorFlow."""
    return isinstance(model, (str, os.PathLike)) and str(model).endswith(TABLE_SUFFIXES)


def read_layer_table(path: Path) -> list[tuple[str, object, list[int], int]]:
    """A layer table file -> (name, layers, input shape, batch size) per configuration in it."""
    import pandas as pd

    from nnenergy.schema import INPUT_COLUMNS

    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pyarrow and the CSV parser raise many types
        raise PredictError(f"{path} is not a readable layer table: {str(exc).splitlines()[0][:200]}") from None
    missing = [c for c in INPUT_COLUMNS if c not in table.columns]
    if missing:
        raise PredictError(f"{path} lacks layer-table columns {missing} (write one with `nnenergy describe`)")
    out = []
    for cid, layers in table.groupby("config_id", sort=False):
        layers = layers.sort_values("layer_index")
        first = json.loads(layers["input_shapes"].iloc[0])
        shape = [int(d) for d in (first[0] if first else [])]
        out.append((str(cid), layers.reset_index(drop=True), shape, int(layers["batch_size"].iloc[0])))
    if not out:
        raise PredictError(f"{path} holds no layers")
    return out


def check_model_file(path: Path) -> None:
    """Cheap checks of a model file (no Keras): it exists, is a file, and has the bytes of a
    `.keras` archive (a zip holding `config.json`) or of an HDF5 `.h5` file."""
    if not path.exists():
        raise PredictError(f"model file not found: {path}")
    if path.is_dir() or path.suffix not in MODEL_SUFFIXES + TABLE_SUFFIXES:
        raise PredictError(f"not a .keras or .h5 file (or a .parquet/.csv layer table): {path}")
    if path.suffix in TABLE_SUFFIXES:
        return
    try:
        if path.suffix == ".keras":
            if not zipfile.is_zipfile(path):
                raise PredictError(f"{path} is corrupt or not a Keras model (not a .keras zip archive)")
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise PredictError(f"{path} is corrupt or not a Keras model (no config.json in the archive)")
        else:
            with open(path, "rb") as f:
                head = f.read(2056)
            if not any(head[o:o + 8] == _HDF5_SIGNATURE for o in (0, 512, 1024, 2048)):
                raise PredictError(f"{path} is corrupt or not a Keras model (not an HDF5 file)")
    except (OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, PermissionError):
            raise PredictError(f"cannot read {path}: permission denied") from None
        raise PredictError(f"{path} is corrupt or not a Keras model ({type(exc).__name__})") from None
