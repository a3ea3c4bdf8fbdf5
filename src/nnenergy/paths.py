"""Where nnenergy finds and keeps its files, each folder defined here once.

- The configs: `conf/` at the repository root, or `$NNENERGY_CONF`.
- The measured data: `data/<profile>/<dataset>/`, relative to the working folder (`DATA_ROOT`).
- What it can rebuild: one cache folder, `$NNENERGY_CACHE` or `.nnenergy_cache`. Everything cached lives
  under it: layer features (`features/`), resolved predictors (`predictors/`), the calibration
  `nnenergy calibrate` stores (`calibration.json`), isolated-layer measurements (the sweeps' `cache_dir`,
  `conf/sweep/_measurement.yaml`, resolves the same variable).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NNENERGY_CACHE"
DEFAULT_CACHE = ".nnenergy_cache"
CONF_ENV = "NNENERGY_CONF"
DATA_ROOT = Path("data")


def conf_dir() -> Path:
    """The Hydra config folder: `$NNENERGY_CONF` when set, else `conf/` at the root of the checkout this
    code runs from (src/nnenergy/paths.py -> ../../conf: the user's layout)."""
    return Path(os.environ.get(CONF_ENV, Path(__file__).resolve().parents[2] / "conf"))


def cache_dir() -> Path:
    """The cache folder: `$NNENERGY_CACHE` when set, else `.nnenergy_cache` (relative to the working folder)."""
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE))


def calibration_file() -> Path:
    """Where `nnenergy calibrate` stores its calibration and `nnenergy predict --calibration` finds it."""
    return cache_dir() / "calibration.json"


SPEED_FILE = "speed.json"  # data/<profile>/speed.json: a machine's speed index, last read by `nnenergy calibrate`
