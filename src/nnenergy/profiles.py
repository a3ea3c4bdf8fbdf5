"""Hardware profiles on disk: `data/<profile>/<dataset>/`, one CPU per profile folder."""

from __future__ import annotations

import logging
from pathlib import Path

from nnenergy import dataset as ds
from nnenergy.measure.hardware import current_profile_name
from nnenergy.paths import DATA_ROOT
from nnenergy.schema import EXTERNAL_HUB

log = logging.getLogger(__name__)
MAIN_DATASET = "space"  # generated architectures + keras.applications, per profile
# What the main job trains when this machine's CPU has no data of its own.
SHIPPED = "amd-epyc-f25m17-avx512-2c"
LEGACY = ("intel-xeon-avx512-2c", "cpu")  # the first release's keras.applications-only dataset
_WARNED: set = set()


def profiles(root: Path = DATA_ROOT) -> dict[str, list[str]]:
    """profile -> its measured datasets (folders holding a models table)."""
    out = {}
    for p in sorted(Path(root).glob("*/")):
        sets = sorted(d.name for d in p.iterdir() if (d / ds.MODELS_FILE).exists())
        if sets:
            out[p.name] = sets
    return out


def default_dataset(root: Path = DATA_ROOT) -> str:
    """This machine's profile's main dataset when it exists, else the shipped one (said in the log)."""
    mine = current_profile_name()
    for profile in (mine, SHIPPED):
        for name in (MAIN_DATASET, LEGACY[1]):
            path = Path(root) / profile / name
            if (path / ds.MODELS_FILE).exists():
                if profile != mine and (mine, str(path)) not in _WARNED:
                    _WARNED.add((mine, str(path)))  # the resolver runs once per interpolation: say it once
                    log.warning("no dataset for this machine's profile %s: training on the shipped %s "
                                "(measure yours with `nnenergy measure sweep=space`)", mine, path)
                return str(path)
    return str(Path(root) / LEGACY[0] / LEGACY[1])


def sibling_dataset(dataset: str, name: str) -> str | None:
    """The dataset `name` measured on the same profile as `dataset` (a sibling folder), if there is one."""
    path = Path(dataset).parent / name
    return str(path) if (path / ds.MODELS_FILE).exists() and Path(dataset).name != name else None


def external_dataset(dataset: str) -> str | None:
    """The external test set measured on the same profile as `dataset` (its sibling `external`), if any."""
    return sibling_dataset(dataset, "external")


def external_hub_dataset(dataset: str) -> str | None:
    """The keras-hub test set measured on the same profile as `dataset` (its sibling `external_hub`), if any:
    training scores it as a second level-2 set."""
    return sibling_dataset(dataset, EXTERNAL_HUB)


KERNELS = "kernels"  # the kernel sweep's dataset of a profile (`nnenergy measure sweep=kernels`)
SEQ_KERNELS = "kernels_seq"  # its sequence kernels (`nnenergy measure sweep=kernels_seq`)


def kernel_dataset(dataset: str) -> str | None:
    """The kernel sweep's rows measured on the same profile as `dataset` (its sibling `kernels`), if any:
    training adds them to every fold by default."""
    return sibling_dataset(dataset, KERNELS)


def loop_kernel_dataset(dataset: str) -> str | None:
    """The sequence kernels measured on the same profile as `dataset` (its sibling `kernels_seq`), if any:
    training fits the layer-wise predictors' loop term (`learn.loops`) on their LSTM/GRU configurations."""
    return sibling_dataset(dataset, SEQ_KERNELS)
