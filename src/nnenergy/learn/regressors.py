"""Regressor factories referenced by `conf/predictor/*.yaml` through Hydra `_target_`."""

from __future__ import annotations

from nnenergy.features.layer_features import COMMON


def polynomial(degree: int = 2, alpha: float = 1.0, features: tuple[str, ...] = tuple(COMMON[:6])):
    """NeuralPower-style polynomial baseline on the size features only, named from `COMMON`
    (every kind's feature list starts with it): a polynomial over those few keeps the baseline a
    baseline (a degree-2 polynomial over all ~25 features extrapolates wildly to unseen families).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    unknown = [f for f in features if f not in COMMON]
    if unknown:
        raise ValueError(f"polynomial features must be among {COMMON}, not {unknown}")
    select = ColumnTransformer([("size", "passthrough", [COMMON.index(f) for f in features])])
    return make_pipeline(select, StandardScaler(), PolynomialFeatures(degree), StandardScaler(), Ridge(alpha=alpha))


def catboost(**params):
    """CatBoost with a multi-target loss (log energy and log latency at once)."""
    from catboost import CatBoostRegressor

    params.setdefault("loss_function", "MultiRMSE")
    params.setdefault("verbose", False)
    params.setdefault("allow_writing_files", False)
    return CatBoostRegressor(**params)
