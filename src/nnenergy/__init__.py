"""nnenergy: how much energy and time a neural network's inference costs, before you run it.

    import nnenergy
    p = nnenergy.predict("ResNet50", batch_size=32)
    p.energy_j, p.latency_s, p.layers_frame()
"""

# `nnenergy.predict` is the subpackage, callable as the prediction function (see its docstring).
from nnenergy.predict import PredictError, Prediction, predict_many  # noqa: F401

__version__ = "0.1.0"
