"""The measured dataset: a models table and a layers table (Parquet) plus a datasheet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

MODELS_FILE = "models.parquet"
LAYERS_FILE = "layers.parquet"
DATASHEET_FILE = "DATASHEET.md"
# What a predictor records of the hardware its data came from (metadata `hardware`).
HARDWARE_KEYS = ("profile", "hardware_id", "cpu_model", "cpu_cores", "gpu_model", "cpu_measurement",
                 "ram_measurement", "gpu_measurement", "intra_op_threads", "inter_op_threads")


class DatasetError(FileNotFoundError):
    pass


class NothingMeasuredBefore(ValueError):
    """`measured_before` cut every row."""


@dataclass
class Dataset:
    models: pd.DataFrame  # one row per (architecture, input size, batch size)
    layers: pd.DataFrame  # one row per layer occurrence in each of those configurations
    path: Path
    # the canonical reference its labels were normalised to when loaded (None: stored rows, or no reference)
    canonical: dict | None = None

    def hardware(self) -> dict:
        """The hardware the rows were measured on (one profile per dataset: the first row says it)."""
        first = self.models.iloc[0]
        return {k: str(first[k]) for k in HARDWARE_KEYS if k in self.models}

    @property
    def hardware_id(self) -> str:
        ids = self.models["hardware_id"].unique()
        return ids[0] if len(ids) == 1 else ",".join(map(str, ids))


def load(path: str | Path, stored: bool = False) -> Dataset:
    """A measured dataset, its labels normalised by its canonical reference's elasticity
    (`scale.relabel`: what predictors learn and are judged on); `stored`: the rows as the sweep wrote
    them (speed index applied one for one), for tools that write datasets (resume, merge)."""
    path = Path(path)
    missing = [f for f in (MODELS_FILE, LAYERS_FILE) if not (path / f).exists()]
    if missing:
        raise DatasetError(
            f"no dataset at {path} (missing {', '.join(missing)}); "
            "run `nnenergy measure sweep=tiny` or point `dataset=` at a measured folder"
        )
    models, layers = pd.read_parquet(path / MODELS_FILE), pd.read_parquet(path / LAYERS_FILE)
    if stored:
        return Dataset(models, layers, path)
    from nnenergy import scale

    canon = scale.canonical_of_dataset(path, models)
    models, layers = scale.relabel(models, layers, canon)
    return Dataset(models, layers, path, canon)


def parse_utc(when) -> datetime:
    """An ISO date or time (`2026-12-07`, `2026-12-07T10:00+01:00`; UTC when it names no zone), in UTC;
    ValueError on anything else."""
    try:
        t = datetime.fromisoformat(str(when))
    except ValueError:
        raise ValueError(f"{when!r} is not an ISO date or time (e.g. 2026-12-07)") from None
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def measured_before(data: Dataset, when) -> Dataset:
    """The rows of `data` measured before `when` (`parse_utc`): a predictor trained on them is judged on
    later days' measurements. ValueError on a time it cannot read; NothingMeasuredBefore when no row is that
    old."""
    cut = parse_utc(when)
    keep = (pd.to_datetime(data.models["measured_at"], utc=True, format="ISO8601") < cut).to_numpy()
    if not keep.any():
        raise NothingMeasuredBefore(f"no row of {data.path} was measured before {cut.isoformat()} "
                                    f"(its first: {data.models['measured_at'].min()})")
    models = data.models[keep].reset_index(drop=True)
    layers = data.layers[data.layers["config_id"].isin(models["config_id"])].reset_index(drop=True)
    return Dataset(models, layers, data.path, data.canonical)


def save(models: pd.DataFrame, layers: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    models.to_parquet(path / MODELS_FILE, index=False)
    layers.to_parquet(path / LAYERS_FILE, index=False)
