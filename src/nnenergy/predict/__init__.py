"""Predict a model's inference energy and latency from the registered predictor."""

from nnenergy.predict.api import Prediction, PredictError, predict  # noqa: F401
