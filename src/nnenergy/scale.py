"""The scale a dataset's labels are stated at: the canonical reference they are normalised to, and
the speed elasticity they are normalised with (`nnenergy.speed` reads the speed index and applies both
to predictions; `measure.elasticity` fits the exponent).

A label is `raw / speed_index ** elasticity`, where the speed index is the reference network's cost
when the row was measured over its canonical cost. 1.0 (the default) is plain division; a canonical
reference with an `elasticity` entry (fitted on its datasets' measure-twice pairs) gives each side its
exponent, which may depend on the configuration's size: on the Intel Xeon a 3 ms network followed the
reference nearly one for one and a 1 s one by a third of it (`per_decade`: the exponent's change per
tenfold latency, held constant outside the latencies it was fitted on). Sweeps store the rows divided
one for one (`energy_j` = `energy_raw_j / speed_index`, kept with the raw figures): `relabel` derives
the labels predictors learn from them when a dataset is loaded.

Where single readings of the reference are noisy (the EPYC Zen 4 of 2026-12-07: its blocks' indices swung
0.8-1.6 within minutes while the networks' raw costs repeated to ~5%), the index is split in two
(`slow_window_min`): its *slow part*, the median of the readings within +-that many minutes (the dataset's rows'
indices for a label, the host's history for a prediction), applied one for one, so that labels measured on
different days share a scale, and its *fast part* (the reading over its slow part) applied to the fitted exponent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

ELASTICITY_KEY = "elasticity"  # in a canonical reference: {"energy": b, "latency": b, how it was fitted}
PIVOT_MS = 30.0  # the latency a size-dependent exponent is stated at (the middle of the sweeps' range)
SLOW_WINDOW_KEY = "slow_window_min"  # in the elasticity entry: the index's slow part is a median over +-this
MIN_SLOW_READINGS = 5  # a slow part is a median of at least this many readings (the window grows to find them)
MAX_SLOW_GROWTH = 8  # ... to at most this many times its size


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


@dataclass(frozen=True)
class Elasticity:
    """How a network's cost follows the speed index: exponents (energy, latency) at `pivot_ms` of
    latency, each changing by its `*_per_decade` per tenfold latency between `lo_ms` and `hi_ms` (the
    latencies fitted on) and constant beyond them. The defaults are plain division."""

    energy: float = 1.0
    latency: float = 1.0
    energy_per_decade: float = 0.0
    latency_per_decade: float = 0.0
    pivot_ms: float = PIVOT_MS
    lo_ms: float = 0.0
    hi_ms: float = math.inf
    slow_window_min: float | None = None  # the index's slow part: the median of the readings within +-this

    @classmethod
    def of(cls, value) -> "Elasticity":
        """`value` itself when it is one, else a single energy exponent (1.0: plain division)."""
        return value if isinstance(value, cls) else cls(float(value))

    @property
    def plain(self) -> bool:
        return ((self.energy, self.latency, self.energy_per_decade, self.latency_per_decade) == (1.0, 1.0, 0.0, 0.0)
                and not self.slow_window_min)

    def _at(self, base: float, per_decade: float, latency_s):
        if not per_decade:
            return base
        import numpy as np

        ms = np.asarray(latency_s, dtype=float) * 1e3
        ms = np.where(np.isfinite(ms) & (ms > 0), ms, self.pivot_ms)  # no latency known: the pivot's exponent
        ms = np.clip(ms, max(self.lo_ms, 1e-6), self.hi_ms)
        out = base + per_decade * np.log10(ms / self.pivot_ms)
        return float(out) if out.ndim == 0 else out

    def energy_at(self, latency_s):
        """The energy exponent of a configuration of `latency_s` per pass (a number or an array)."""
        return self._at(self.energy, self.energy_per_decade, latency_s)

    def latency_at(self, latency_s):
        return self._at(self.latency, self.latency_per_decade, latency_s)


def elasticity(canon: dict | None) -> Elasticity:
    """The canonical reference's elasticity; plain division where none was fitted (every profile but
    the ones `measure.elasticity --write` was run for)."""
    e = (canon or {}).get(ELASTICITY_KEY) or {}
    size = e.get("size") or {}  # the size term, where the fit found one
    lo, hi = size.get("range_ms") or (0.0, math.inf)
    window = float(e.get(SLOW_WINDOW_KEY) or 0)
    if not (math.isfinite(window) and window >= 0):
        raise ValueError(f"{SLOW_WINDOW_KEY} must be minutes >= 0 (0: no split), not {e.get(SLOW_WINDOW_KEY)!r}")
    return Elasticity(float(e.get("energy", 1.0)), float(e.get("latency", 1.0)),
                      float(size.get("energy_per_decade", 0.0)), float(size.get("latency_per_decade", 0.0)),
                      float(size.get("pivot_ms", PIVOT_MS)), float(lo), float(hi), window or None)


def normalised(raw, speed_index, exponent: float, slow=1.0):
    """A label from its raw figure and the speed index it was read at (numbers or columns alike): the index's
    slow part (1.0: none) one for one, the rest of it to `exponent`."""
    return raw / (slow * (speed_index / slow) ** exponent)


def slow_index(times_s, indices, at_s, window_min: float):
    """The slow part of a speed index at each time of `at_s` (seconds): the median of the `indices` read at
    `times_s` within +-`window_min` minutes of it (in logs), the window doubled, up to `MAX_SLOW_GROWTH` times
    its size, where it holds fewer than `MIN_SLOW_READINGS`; NaN where no reading is usable (a caller then
    takes the reading itself, one for one: never readings of another day's session)."""
    import numpy as np

    if not window_min > 0:
        raise ValueError(f"a slow part's window must be minutes > 0, not {window_min!r}")

    t = np.asarray(times_s, dtype=float)
    v = np.asarray(indices, dtype=float)
    ok = np.isfinite(t) & np.isfinite(v) & (v > 0)
    order = np.argsort(t[ok])
    t, logs = t[ok][order], np.log(v[ok][order])
    at = np.atleast_1d(np.asarray(at_s, dtype=float))
    out = np.full(at.shape, np.nan)
    for i, when in enumerate(at):
        w = window_min * 60
        while np.isfinite(when) and w <= window_min * 60 * MAX_SLOW_GROWTH:
            lo, hi = np.searchsorted(t, when - w), np.searchsorted(t, when + w, side="right")
            if hi - lo >= max(1, min(MIN_SLOW_READINGS, len(t))):
                out[i] = math.exp(float(np.median(logs[lo:hi])))
                break
            w *= 2
    return out


def row_seconds(models):
    """Each row's time of measurement (`measured_at`), in seconds since the epoch (NaN where unknown)."""
    import pandas as pd

    if "measured_at" not in models:
        return pd.Series(float("nan"), index=models.index)
    when = pd.to_datetime(models["measured_at"], utc=True, errors="coerce", format="ISO8601")
    return (when - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def slow_parts(models, window_min: float | None) -> dict:
    """{index column: its slow part at each row} from the rows' own readings (`slow_index`); {} without a
    window."""
    if not window_min:
        return {}
    import pandas as pd

    t = row_seconds(models).to_numpy(float)
    return {col: pd.Series(slow_index(t, models[col].to_numpy(float), t, window_min), index=models.index)
            for col in ("speed_index", "latency_speed_index") if col in models}


def relabel(models, layers, canon: dict | None):
    """A dataset's tables with its labels normalised by `canon`'s elasticity: `energy_j` =
    `energy_raw_j / speed_index ** elasticity`, or with a slow window `energy_raw_j / (slow * (speed_index /
    slow) ** elasticity)` where `slow` is the median of the rows' indices around it (`slow_parts`) (latency
    alike; a size-dependent exponent read at the
    row's latency as stored, `latency_raw_s / latency_speed_index`, so relabelling twice reads the same
    one; a prediction reads it at its predicted latency, which differs from that by index^(1 - exponent), a
    few hundredths of a decade: < 0.5% on the factor for indices of 0.8-1.3), the in-context layer targets
    scaled with their configuration's label. Rows without a speed
    index keep their labels; applying it again changes nothing. `cpu_j`, `ram_j` and the per-statistic
    columns stay as stored (no predictor reads them)."""
    el = elasticity(canon)
    if el.plain or "speed_index" not in models or "energy_raw_j" not in models:
        return models, layers
    models = models.copy()
    old = models.set_index("config_id")[["energy_j", "latency_s"]]
    size = _size_latency(models)
    slow = slow_parts(models, el.slow_window_min)
    ok = models["speed_index"].notna() & models["energy_raw_j"].notna()
    models.loc[ok, "energy_j"] = normalised(models.loc[ok, "energy_raw_j"], models.loc[ok, "speed_index"],
                                            el.energy_at(size[ok]), _slow(slow, "speed_index", models, ok))
    if {"latency_speed_index", "latency_raw_s"} <= set(models.columns):
        ok = models["latency_speed_index"].notna() & models["latency_raw_s"].notna()
        models.loc[ok, "latency_s"] = normalised(models.loc[ok, "latency_raw_s"], models.loc[ok, "latency_speed_index"],
                                                 el.latency_at(size[ok]),
                                                 _slow(slow, "latency_speed_index", models, ok))
    if layers is not None and len(layers):
        new = models.set_index("config_id")[["energy_j", "latency_s"]]
        layers = layers.copy()
        cid = layers["config_id"]
        for col, target in (("ctx_energy_j", "energy_j"), ("ctx_latency_s", "latency_s")):
            if col in layers:
                layers[col] = layers[col] * (cid.map(new[target]) / cid.map(old[target])).fillna(1.0).to_numpy(float)
    return models, layers


def _slow(slow: dict, col: str, models, ok):
    """The rows' slow parts of `col` (their own index where it has none: one for one, as without a window)."""
    if col not in slow:
        return 1.0
    return slow[col][ok].fillna(models.loc[ok, col])


def _size_latency(models):
    """Each row's latency the size-dependent exponent is read at: raw over the speed index one for one
    (the stored `latency_s` before any relabelling), so it does not move when the labels do."""
    if {"latency_raw_s", "latency_speed_index"} <= set(models.columns):
        return (models["latency_raw_s"] / models["latency_speed_index"]).fillna(models["latency_s"])
    return models["latency_s"]
