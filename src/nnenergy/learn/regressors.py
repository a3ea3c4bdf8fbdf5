"""Regressor factories referenced by `conf/predictor/*.yaml` through Hydra `_target_`."""

from __future__ import annotations


def polynomial(degree: int = 2, alpha: float = 1e-3):
    """NeuralPower-style polynomial baseline: standardised polynomial features + ridge."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return make_pipeline(StandardScaler(), PolynomialFeatures(degree), StandardScaler(), Ridge(alpha=alpha))


def catboost(**params):
    """CatBoost with a multi-target loss (log energy and log latency at once)."""
    from catboost import CatBoostRegressor

    params.setdefault("loss_function", "MultiRMSE")
    params.setdefault("verbose", False)
    params.setdefault("allow_writing_files", False)
    return CatBoostRegressor(**params)
