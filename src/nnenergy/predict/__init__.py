"""Predict a model's inference energy and latency from the registered predictor."""

from nnenergy.predict.api import PredictError, Prediction, predict, predict_many  # noqa: F401
