"""Predictors: layer-wise regressors summed to whole models."""
