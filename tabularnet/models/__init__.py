"""The Python API: scikit-learn estimators with the original interface."""

from tabularnet.models.classifiers import MLPClassifier, TransformerClassifier

__all__ = ["MLPClassifier", "TransformerClassifier", "XGBoostClassifier"]


def __getattr__(name: str):
    # NOTE: xgboost loads only when its estimator is asked for: the neural estimators (and prediction services
    # that load them) do not pay its import
    if name == "XGBoostClassifier":
        from tabularnet.models.xgboost import XGBoostClassifier

        return XGBoostClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
