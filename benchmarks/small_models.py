"""Small models for the depth-flag decision (issue 33, item 3): is a small model's every layer really
"out of range" because the whole model is shallower than anything trained on (`model_n_layers` < 13)?

Eight models a user writes in a tutorial, 2 to 12 Keras layers (MLPs on 784 features, small CNNs on
32-96 px), built with random weights and saved as `.keras` files. Measure them with the project's
sweep, then compare the predictor's error on them (`benchmarks/heldout.py`, which also counts the
layers flagged out of range) with its error on deeper models:

    .venv/bin/python benchmarks/small_models.py --write /tmp/small
    .venv/bin/nnenergy measure sweep=external sweep.name=small sweep.output_dir=data/<profile>/small \\
        "sweep.model_files=[$(ls /tmp/small/*.keras | paste -sd,)]"
    .venv/bin/python benchmarks/heldout.py data/<profile>/small --models /tmp/small
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _mlp(widths: list[int], name: str):
    import keras

    x = inp = keras.Input((784,), name="features")
    for i, w in enumerate(widths):
        x = keras.layers.Dense(w, activation="relu" if i < len(widths) - 1 else "softmax", name=f"dense{i}")(x)
    return keras.Model(inp, x, name=name)


def _cnn(side: int, filters: list[int], bn: bool, name: str):
    import keras

    L = keras.layers
    x = inp = keras.Input((side, side, 3), name="image")
    for i, f in enumerate(filters):
        x = L.Conv2D(f, 3, padding="same", use_bias=not bn, name=f"conv{i}")(x)
        if bn:
            x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        if i % 2 == 1:
            x = L.MaxPooling2D(name=f"pool{i}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inp, x, name=name)


MODELS = {  # name = Keras layers (input excluded) and input side
    "mlp2": lambda: _mlp([256, 10], "mlp2"),
    "mlp3": lambda: _mlp([512, 256, 10], "mlp3"),
    "mlp5": lambda: _mlp([1024, 1024, 512, 256, 10], "mlp5"),
    "cnn4_32px": lambda: _cnn(32, [32], False, "cnn4_32px"),
    "cnn9_32px": lambda: _cnn(32, [32, 64], True, "cnn9_32px"),
    "cnn9_64px": lambda: _cnn(64, [64, 128], True, "cnn9_64px"),
    "cnn9_96px": lambda: _cnn(96, [32, 64, 128], False, "cnn9_96px"),
    "cnn12_64px": lambda: _cnn(64, [48, 96, 192], True, "cnn12_64px"),
}


def write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        model = build()
        assert name.startswith(f"{name[:3]}{len(model.layers) - 1}"), (name, len(model.layers) - 1)
        model.save(folder / f"{name}.keras")
        print(f"{name}: {len(model.layers) - 1} layers -> {folder / (name + '.keras')}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", metavar="DIR", required=True)
    write(Path(ap.parse_args().write))
