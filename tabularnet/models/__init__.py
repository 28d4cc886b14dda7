"""The Python API: scikit-learn estimators with the original interface."""

from tabularnet.models.classifiers import MLPClassifier, MLPRegressor, TransformerClassifier, TransformerRegressor

__all__ = ["MLPClassifier", "TransformerClassifier", "MLPRegressor", "TransformerRegressor", "XGBoostClassifier"]


def __getattr__(name: str):
    # NOTE: xgboost loads only when its estimator is asked for: the neural estimators (and prediction services
    # that load them) do not pay its import
    if name == "XGBoostClassifier":
        from tabularnet.models.xgboost import XGBoostClassifier

        return XGBoostClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
