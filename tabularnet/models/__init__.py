"""The Python API: scikit-learn estimators with the original interface."""

from tabularnet.models.classifiers import MLPClassifier, TransformerClassifier
from tabularnet.models.xgboost import XGBoostClassifier

__all__ = ["MLPClassifier", "TransformerClassifier", "XGBoostClassifier"]
