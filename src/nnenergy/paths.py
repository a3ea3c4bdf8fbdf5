"""Where nnenergy finds and keeps its files, each folder defined here once.

- The configs: `conf/` at the repository root, or `$NNENERGY_CONF`.
- The measured data: `data/<profile>/<dataset>/`, relative to the working folder (`DATA_ROOT`); what only
  reads it falls back to the checkout's `data/` (`data_root`).
- What it can rebuild: one cache folder, `$NNENERGY_CACHE` or the user's cache folder (platformdirs:
  `~/.cache/nnenergy` on Linux), whatever the working folder. Everything cached lives under it: layer
  features (`features/`), resolved predictors (`predictors/`), the calibration `nnenergy calibrate`
  stores (`calibration.json`), the speed history (`speed/`). The sweeps' isolated-layer measurements
  (`cache_dir` in `conf/sweep/_measurement.yaml`) resolve `$NNENERGY_CACHE` too, else they stay with
  the project (`.nnenergy_cache`): measuring is done in a checkout, predicting anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NNENERGY_CACHE"
CONF_ENV = "NNENERGY_CONF"
DATA_ROOT = Path("data")


def conf_dir() -> Path:
    """The Hydra config folder: `$NNENERGY_CONF` when set, else `conf/` at the root of the checkout this
    code runs from (src/nnenergy/paths.py -> ../../conf: the user's layout)."""
    return Path(os.environ.get(CONF_ENV, Path(__file__).resolve().parents[2] / "conf"))


def data_root() -> Path:
    """The measured data a command that only reads it uses: `data/` in the working folder when there is
    one, else the checkout's own `data/` (`nnenergy predict --hardware list` from any folder)."""
    if DATA_ROOT.is_dir():
        return DATA_ROOT
    return Path(__file__).resolve().parents[2] / "data"


def cache_dir() -> Path:
    """The cache folder: `$NNENERGY_CACHE` when set, else the platform's user cache folder for nnenergy
    (`~/.cache/nnenergy` on Linux, `$XDG_CACHE_HOME` honoured), so predicting from any folder leaves
    nothing in it."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("nnenergy", appauthor=False))


def calibration_file() -> Path:
    """Where `nnenergy calibrate` stores its calibration and `nnenergy predict --calibration` finds it."""
    return cache_dir() / "calibration.json"


def cache_problem() -> str | None:
    """Why the cache folder (`nnenergy.paths.cache_dir()`) cannot be written, in one line, or None."""
    import tempfile

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        return (f"cannot write the cache folder {folder} ({exc.strerror or exc}); set {CACHE_ENV} to a "
                "folder you can write")
    return None
