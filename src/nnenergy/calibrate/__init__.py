"""Adapt a profile's predictor to a new machine from a one-minute panel of measurements.

The same model costs 1.1-2.6x more on one CPU than another, per kind of work (large GEMMs gain
most from AVX-512), so one global speed ratio is not enough. The panel holds small kernels of
each group of layer kinds (dense compute, depthwise, memory-bound), two small models and eleven
small generated models (one per macro kind of the architecture space), measured here with the
interleaved protocol. Each is predicted by the source predictor; per group g, a factor s_g >= 0
is fitted so that predicted * sum_g(s_g * share_g) matches the measurement (relative least
squares, shrunk towards the median ratio), or (the default, `model="size"`) a per-layer factor
e^a * (t / 1 ms)^b of the layer's predicted latency t: how well an op uses the cores and vector
units depends on how much work it has more than on its kind. Factors are fitted on all panel
items by default, or on its whole models only (`fit_on="models"`, few-shot as in HELP /
MAPLE-Edge). The learned residuals of the source predictor stay as they are: calibration
rescales its costs.

One module per job: `panel` (what is measured), `measure` (measuring and recording it), `fit`
(fitting the factors). The saved calibration and how it is applied live with prediction
(`nnenergy.predict.calibration`); the command is `nnenergy.cli.calibrate`.
"""

from nnenergy.calibrate.fit import FIT_ON, MODELS, SHRINK, SHRINK_SLOPE, calibrate, summary  # noqa: F401
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
