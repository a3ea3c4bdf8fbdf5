"""Hydra entry points (one per MLproject entry point) and where their configs live."""

import os
from pathlib import Path

# conf/ sits at the repository root (the user's layout); NNENERGY_CONF points elsewhere.
CONF_DIR = str(Path(os.environ.get("NNENERGY_CONF", Path(__file__).resolve().parents[3] / "conf")))


def _register_resolvers() -> None:
    """`${nnenergy_profile:[device]}` (this machine's hardware profile for the CPU or the GPU under the
    Keras backend in force), `${nnenergy_dataset:}` (the dataset
    the main job trains), `${nnenergy_external:<dataset>}` (its external test set) and
    `${nnenergy_kernels:<dataset>}` (its profile's kernel sweep) in configs."""
    from omegaconf import OmegaConf

    from nnenergy import profiles
    from nnenergy.measure.backends import profile_name

    for name, fn in (("nnenergy_profile", lambda device="cpu": profile_name(device)),
                     ("nnenergy_dataset", profiles.default_dataset),
                     ("nnenergy_external", profiles.external_dataset),
                     ("nnenergy_kernels", profiles.kernel_dataset)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


_register_resolvers()
