"""Hydra entry points (one per MLproject entry point) and where their configs live."""

import os
from pathlib import Path

# conf/ sits at the repository root (the user's layout); NNENERGY_CONF points elsewhere.
CONF_DIR = str(Path(os.environ.get("NNENERGY_CONF", Path(__file__).resolve().parents[3] / "conf")))
