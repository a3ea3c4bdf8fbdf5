"""Hydra entry points (one per MLproject entry point) and where their configs live."""

from nnenergy.paths import conf_dir
from nnenergy.quiet import quiet_environment

# `python -m nnenergy.apps.<app>` (MLproject's entry points) starts here, before TensorFlow loads.
quiet_environment()

CONF_DIR = str(conf_dir())  # a string: `hydra.main(config_path=...)` reads it when each app is defined


def _register_resolvers() -> None:
    """`${nnenergy_profile:[device]}` (this machine's hardware profile for the CPU or the GPU under the
    Keras backend in force), `${nnenergy_dataset:}` (the dataset
    the main job trains), `${nnenergy_external:<dataset>}` (its external test set),
    `${nnenergy_external_hub:<dataset>}` (its keras-hub test set), `${nnenergy_kernels:<dataset>}` (its
    profile's kernel sweep) and `${nnenergy_loop_kernels:<dataset>}` (its sequence kernels) in configs."""
    from omegaconf import OmegaConf

    from nnenergy import profiles
    from nnenergy.measure.backends import profile_name

    for name, fn in (("nnenergy_profile", lambda device="cpu": profile_name(device)),
                     ("nnenergy_dataset", profiles.default_dataset),
                     ("nnenergy_external", profiles.external_dataset),
                     ("nnenergy_external_hub", profiles.external_hub_dataset),
                     ("nnenergy_kernels", profiles.kernel_dataset),
                     ("nnenergy_loop_kernels", profiles.loop_kernel_dataset)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


_register_resolvers()
