"""A saved calibration and how it is applied: per-layer factors from a source profile's predictor to
this machine (`nnenergy calibrate` fits them, `nnenergy.calibrate`; `predict(..., calibration=...)`
applies them here). The factor of a layer depends on its group of kinds (`model="groups"`) or on
its predicted latency (`model="size"`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nnenergy.paths import calibration_file

GROUPS = {  # layer kind -> calibration group
    "conv": "compute", "dense": "compute",
    "depthwise_conv": "depthwise",
}
DEFAULT_GROUP = "memory"
SIZE_REF_S = 1e-3  # layer latency at which the size model's factor is exp(log_a)


def group_of(kind: str) -> str:
    return GROUPS.get(kind, DEFAULT_GROUP)


def size_factor(latency, log_a: float, b: float):
    """The size model's factor for layers of predicted `latency` (seconds): e^log_a * (t / 1 ms)^b."""
    return np.exp(log_a) * (np.clip(latency, 1e-7, None) / SIZE_REF_S) ** b


@dataclass
class Calibration:
    """Per-layer factors (by kind group, or by size) from a source profile's predictor to this machine."""

    source_profile: str
    target_profile: str
    speed_ratio: float  # median of measured / predicted over the fitted panel items
    spread: float  # (max - min) / median of those ratios: how far from one global ratio
    energy_factors: dict[str, float]
    latency_factors: dict[str, float]
    panel_error_before: float  # RMSPE of the panel, predicted by the source predictor
    panel_error_after: float  # ... after calibration (in-sample: the panel fitted it)
    seconds: float
    measured_at: str
    panel: list[dict] = field(default_factory=list)
    method: str = "predictions of the source predictor"  # or "measured panel of the source profile"
    fit_on: str = "all"  # which panel items the factors are fitted on: all (files before this field), or models
    # "groups": one factor per group of layer kinds; "size": a factor exp(log_a) * (t / 1 ms)^b per
    # layer, t its predicted latency here on the source profile (parallel efficiency and vector
    # width gains depend on how much work one op has, not on its kind).
    model: str = "groups"
    size_params: dict = field(default_factory=dict)  # target -> [log_a, b] for model "size"

    def layer_scale(self, layers: pd.DataFrame, target: str) -> pd.Series:
        """The factor of each layer row of a pyfunc output, for `target`."""
        if self.model == "size":
            return pd.Series(size_factor(layers["latency_s"].to_numpy(float), *self.size_params[target]),
                             index=layers.index)
        factors = self.energy_factors if target == "energy_j" else self.latency_factors
        return layers["kind"].map(lambda k: factors.get(group_of(k), self.speed_ratio)).astype(float)

    def save(self, path: Path | None = None) -> Path:
        """Write it as JSON (default: `nnenergy.paths.calibration_file()`)."""
        path = Path(path) if path is not None else calibration_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path | None = None) -> "Calibration":
        return cls(**json.loads((Path(path) if path is not None else calibration_file()).read_text()))

    def apply(self, out: pd.DataFrame) -> pd.DataFrame:
        """Rescale a pyfunc output (layer, correction and total rows) to this machine."""
        out = out.copy()
        layer = out["row"] == "layer"
        scales = {t: self.layer_scale(out[layer], t) for t in ("energy_j", "latency_s")}  # before rescaling
        for target, factors in (("energy_j", self.energy_factors), ("latency_s", self.latency_factors)):
            scale = scales[target]
            for cid, g in out[layer].groupby("config_id"):
                total = (out["config_id"] == cid) & (out["row"] == "total")
                s = scale.loc[g.index]
                ratio = float((g[target] * s).sum() / g[target].sum()) if g[target].sum() > 0 else self.speed_ratio
                out.loc[g.index, target] = g[target] * s
                corr = (out["config_id"] == cid) & (out["row"] == "correction")
                out.loc[corr, target] = out.loc[corr, target] * ratio
                out.loc[total, target] = out.loc[total, target] * ratio
                if target == "energy_j":
                    for col in ("energy_lo_j", "energy_hi_j"):
                        out.loc[total, col] = out.loc[total, col] * ratio
            # Model-wise predictors (no layer rows): one ratio per target, the interval with it.
            whole_only = (out["row"] == "total") & ~out["config_id"].isin(out.loc[layer, "config_id"])
            ratio = self.speed_ratio if target == "energy_j" else float(np.median(list(factors.values())))
            out.loc[whole_only, target] *= ratio
            if target == "energy_j":
                for col in ("energy_lo_j", "energy_hi_j"):
                    out.loc[whole_only, col] *= ratio
        return out
