"""Recompute a measured dataset's in-context targets with grouped convolutions' untraced time
restored (`nnenergy.measure.incontext.restore_untraced`); no measurement, no TensorFlow.

Sweeps do this themselves when they write a dataset; this brings datasets written before it up
to date. Idempotent (it starts from the traced op time every time).

    .venv/bin/python scripts/restore_untraced.py data/<profile>/external [more dataset folders]
"""

from __future__ import annotations

import sys

from nnenergy import dataset as ds
from nnenergy.measure.incontext import restore_untraced


def main(paths: list[str]) -> int:
    for path in paths:
        data = ds.load(path, stored=True)
        layers, models = restore_untraced(data.layers, data.models)
        ds.save(models, layers, path)
        touched = int((models["ctx_untraced_s"] > 0).sum())
        print(f"{path}: {touched} of {len(models)} configurations have grouped convolutions' untraced time restored")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
