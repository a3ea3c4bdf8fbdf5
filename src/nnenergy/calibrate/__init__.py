"""Adapt the project's predictors to a machine they were not trained on: `nnenergy calibrate`.

Two methods, one per job of this package:
- `bringup` (the default): measure the machine's bring-up set (generated architectures of `space`,
  from tiny kernels to the largest layers) for a few minutes, transfer each registered layer-wise
  predictor to it per kernel (`nnenergy.learn.transfer`), keep the one with the lowest held-out
  error, register it as the machine's `champion-<profile>`; chosen by `benchmarks/transfer.py`.
- the panel (`--method size`, the previous release's): `panel` (16 small kernels, 2 small models
  and 11 small generated models), `measure` (measuring and recording it), `fit` (a per-layer factor
  e^a * (t / 1 ms)^b of the layer's predicted latency t, or one factor per group of layer kinds),
  stored as a file that `nnenergy predict --calibration` applies (`nnenergy.predict.calibration`).
The command is `nnenergy.cli.calibrate`.
"""

from nnenergy.calibrate.fit import (  # noqa: F401
    FIT_ON,
    MODELS,
    SHRINK,
    SHRINK_SLOPE,
    applied_text,
    applied_to_models,
    calibrate_with_panel,
    summary,
)
from nnenergy.calibrate.measure import measure_panel, record_panel  # noqa: F401
from nnenergy.calibrate.panel import SMALL_MODELS, WHOLE_MODELS, is_whole_model, panel_models  # noqa: F401
from nnenergy.paths import calibration_file  # noqa: F401
from nnenergy.predict.calibration import (  # noqa: F401
    DEFAULT_GROUP,
    GROUPS,
    SIZE_REF_S,
    Calibration,
    group_of,
    size_factor,
)
