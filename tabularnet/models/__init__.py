"""The Python API: scikit-learn estimators with the original interface."""

import importlib

from tabularnet.models.classifiers import MLPClassifier, MLPRegressor, TransformerClassifier, TransformerRegressor

__all__ = [
    "MLPClassifier",
    "TransformerClassifier",
    "MLPRegressor",
    "TransformerRegressor",
    "XGBoostClassifier",
    "XGBoostRegressor",
]


def __getattr__(name: str):
    # NOTE: xgboost loads only when its estimator is asked for: the neural estimators (and prediction services
    # that load them) do not pay its import
    if name in ("XGBoostClassifier", "XGBoostRegressor"):
        return getattr(importlib.import_module("tabularnet.models.xgboost"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
