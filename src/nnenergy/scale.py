"""The scale a dataset's labels are stated at: the canonical reference they are normalised to, and
the speed elasticity they are normalised with (`nnenergy.speed` reads the speed index and applies both
to predictions; `measure.elasticity` fits the exponent).

A label is `raw / speed_index ** elasticity`, where the speed index is the reference network's cost
when the row was measured over its canonical cost. 1.0 (the default) is plain division; a canonical
reference with an `elasticity` entry (fitted on its datasets' measure-twice pairs) gives each side its
exponent. Sweeps store the rows divided one for one (`energy_j` = `energy_raw_j / speed_index`, kept
with the raw figures): `relabel` derives the labels predictors learn from them when a dataset is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

ELASTICITY_KEY = "elasticity"  # in a canonical reference: {"energy": b, "latency": b, how it was fitted}


def canonical_of_dataset(dataset: Path, models=None) -> dict | None:
    """The canonical reference a dataset's labels are normalised to: its own `canonical.json` (written
    by its sweep), else its profile's `reference.json` (datasets older than that file); None for rows
    measured before the protocol had a reference (the first release's `cpu`: no speed index, so
    they are on no reference's scale and a prediction from them is never rescaled). `models`: its
    rows, where the caller has read them already."""
    try:
        if models is None:
            import pandas as pd

            models = pd.read_parquet(Path(dataset) / "models.parquet", columns=["speed_index"])
        if models["speed_index"].isna().all():
            return None
    except (OSError, ValueError, KeyError, ImportError):
        return None
    for path in (Path(dataset) / "canonical.json", Path(dataset).parent / "reference.json"):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None


def canonical_key(canon: dict | None) -> str | None:
    """What names a canonical reference: when it was measured and the statistic it is read by. A profile
    can have two (`reference.json` for one-visit labels, `reference-q25.json` for 3-visit ones), and a
    speed index means nothing against the other one."""
    if not canon:
        return None
    return f"{canon.get('measured_at')}|{canon.get('statistic', 'round_min_median')}"


def elasticity(canon: dict | None) -> tuple[float, float]:
    """The canonical reference's exponents (energy, latency): how a network's cost follows its speed
    index. 1.0, 1.0 where none was fitted (every profile but the ones `fit_elasticity` was written for)."""
    e = (canon or {}).get(ELASTICITY_KEY) or {}
    return float(e.get("energy", 1.0)), float(e.get("latency", 1.0))


def normalised(raw, speed_index, exponent: float):
    """A label from its raw figure and the speed index it was read at (numbers or columns alike)."""
    return raw / speed_index ** exponent


def relabel(models, layers, canon: dict | None):
    """A dataset's tables with its labels normalised by `canon`'s elasticity: `energy_j` =
    `energy_raw_j / speed_index ** elasticity` (latency alike), the in-context layer targets scaled
    with their configuration's label. Rows without a speed index keep their labels; applying it again
    changes nothing. `cpu_j`, `ram_j` and the per-statistic columns stay as stored (no predictor reads them)."""
    beta_e, beta_l = elasticity(canon)
    if (beta_e, beta_l) == (1.0, 1.0) or "speed_index" not in models or "energy_raw_j" not in models:
        return models, layers
    models = models.copy()
    old = models.set_index("config_id")[["energy_j", "latency_s"]]
    ok = models["speed_index"].notna() & models["energy_raw_j"].notna()
    models.loc[ok, "energy_j"] = normalised(models.loc[ok, "energy_raw_j"], models.loc[ok, "speed_index"], beta_e)
    if {"latency_speed_index", "latency_raw_s"} <= set(models.columns):
        ok = models["latency_speed_index"].notna() & models["latency_raw_s"].notna()
        models.loc[ok, "latency_s"] = normalised(models.loc[ok, "latency_raw_s"], models.loc[ok, "latency_speed_index"],
                                                 beta_l)
    if layers is not None and len(layers):
        new = models.set_index("config_id")[["energy_j", "latency_s"]]
        layers = layers.copy()
        cid = layers["config_id"]
        for col, target in (("ctx_energy_j", "energy_j"), ("ctx_latency_s", "latency_s")):
            if col in layers:
                layers[col] = layers[col] * (cid.map(new[target]) / cid.map(old[target])).fillna(1.0).to_numpy(float)
    return models, layers
