"""Hydra entry points (one per MLproject entry point) and where their configs live."""

import os
from pathlib import Path

# conf/ sits at the repository root (the user's layout); NNENERGY_CONF points elsewhere.
CONF_DIR = str(Path(os.environ.get("NNENERGY_CONF", Path(__file__).resolve().parents[3] / "conf")))


def _register_resolvers() -> None:
    """`${nnenergy_profile:}` in configs: this machine's hardware profile (data/<profile>/...)."""
    from omegaconf import OmegaConf

    from nnenergy.measure.hardware import current_profile_name

    if not OmegaConf.has_resolver("nnenergy_profile"):
        OmegaConf.register_new_resolver("nnenergy_profile", current_profile_name)


_register_resolvers()
