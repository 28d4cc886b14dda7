"""XGBoostClassifier: a gradient-boosted teacher with the original ``train``/``predict_proba`` API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from tabularnet import atomic
from tabularnet.atomic import atomic_path
from tabularnet.data.schema import DataError
from tabularnet.data.teacher import cross_fit_logits
from tabularnet.models.inputs import as_frame


def _as_xgb_frame(X, categories: dict | None = None) -> pd.DataFrame:
    """A DataFrame whose string/bool columns are pandas categoricals (xgboost's native categorical input)."""
    frame = as_frame(X).copy()
    for name in frame.columns:
        column = frame[name]
        if categories is not None and name in categories:
            frame[name] = pd.Categorical(
                column.astype(object).where(column.notna()).map(_str), categories=categories[name]
            )
        elif not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            frame[name] = pd.Categorical(column.astype(object).where(column.notna()).map(_str))
    return frame


def _str(value):
    return value if isinstance(value, float) and np.isnan(value) else str(value)


class XGBoostClassifier(ClassifierMixin, BaseEstimator):
    """xgboost's ``XGBClassifier`` with native categorical support, labels of any type, and JSON model files.

    Args:
        n_estimators: boosting rounds.
        max_depth: maximum tree depth.
        learning_rate: shrinkage.
        subsample: row subsampling per tree.
        colsample_bytree: column subsampling per tree.
        random_seed: seed.
        n_jobs: threads (``None``: all cores).
    """

    def __init__(
        self,
        n_estimators=300,
        max_depth=6,
        learning_rate=0.1,
        subsample=0.9,
        colsample_bytree=0.9,
        random_seed=42,
        n_jobs=None,
    ):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.random_seed = random_seed
        self.n_jobs = n_jobs

    def _booster_model(self) -> xgb.XGBClassifier:
        return xgb.XGBClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            random_state=self.random_seed,
            n_jobs=self.n_jobs,
            enable_categorical=True,
            tree_method="hist",
        )

    def train(self, X, y):
        """Fit on ``X, y`` (any label type)."""
        frame = _as_xgb_frame(X)
        y = np.asarray(y)
        if len(y) != len(frame):
            raise DataError(f"y has {len(y)} labels but X has {len(frame)} rows")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(f"y has a single class {self.classes_[0]!r}; need at least two")
        self.categories_ = {n: list(frame[n].cat.categories) for n in frame.columns if frame[n].dtype == "category"}
        self.n_features_in_ = frame.shape[1]
        self.model_ = self._booster_model().fit(frame, codes)
        return self

    def fit(self, X, y):
        return self.train(X, y)

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(_as_xgb_frame(X, self.categories_))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def oof_logits(self, X, y, n_splits: int = 5) -> np.ndarray:
        """Out-of-fold log-probabilities: each row's come from a model trained on the other folds only
        (the same cross-fitting the data module's ``teacher`` option uses)."""
        y = np.asarray(y)
        spec = {"class_path": f"{type(self).__module__}.{type(self).__name__}", "init_args": self.get_params()}
        classes = [c.item() if isinstance(c, np.generic) else c for c in np.unique(y)]
        return cross_fit_logits(spec, as_frame(X), y, classes, folds=n_splits, seed=self.random_seed)

    def save(self, path: str | Path) -> None:
        """Save as xgboost's JSON model plus a JSON sidecar (``<path>.meta.json``) with classes and categories."""
        check_is_fitted(self, "model_")
        with atomic_path(path) as tmp:  # xgboost picks the format from the extension, which tmp keeps
            self.model_.save_model(str(tmp))
        meta = {
            "params": self.get_params(),
            "classes": self.classes_.tolist(),
            "categories": self.categories_,
        }
        atomic.write_text(f"{path}.meta.json", json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path) -> XGBoostClassifier:
        meta = json.loads(Path(f"{path}.meta.json").read_text())
        estimator = cls(**meta["params"])
        estimator.model_ = xgb.XGBClassifier()
        estimator.model_.load_model(str(path))
        estimator.classes_ = np.asarray(meta["classes"])
        estimator.categories_ = meta["categories"]
        estimator.n_features_in_ = estimator.model_.n_features_in_
        return estimator
