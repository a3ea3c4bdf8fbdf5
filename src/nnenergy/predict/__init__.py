"""Predict a model's inference energy and latency from the registered predictor.

`nnenergy.predict` is this package, and calling it predicts: `nnenergy.predict("ResNet50")` is
`nnenergy.predict.api.predict("ResNet50")`. One name is one object, so `import nnenergy.predict.api`
and `nnenergy.predict(...)` (the README's API) never stand for different things.
"""

import functools
import sys
import types

from nnenergy.predict.api import Prediction, predict, predict_many  # noqa: F401
from nnenergy.predict.errors import PredictError  # noqa: F401


class _CallablePackage(types.ModuleType):
    @functools.wraps(predict)
    def __call__(self, *args, **kwargs):
        return predict(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
