"""XGBoostClassifier and XGBoostRegressor: gradient-boosted teachers with the original ``train``/``predict`` API,
native categorical columns, sample weights and JSON model files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d

from tabularnet import atomic
from tabularnet.atomic import atomic_path
from tabularnet.data.schema import DataError
from tabularnet.data.task import regression_targets
from tabularnet.data.teacher import cross_fit_outputs
from tabularnet.models.inputs import as_frame, check_sample_weight


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


def _check_rows(y: np.ndarray, n_rows: int, noun: str) -> None:
    if len(y) != n_rows:
        raise DataError(f"y has {len(y)} {noun} but X has {n_rows} rows")


class _XGBoostEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters (documented on each), categorical columns, fit,
    cross-fitting, files."""

    _booster_class: type[xgb.XGBModel]  # xgboost's scikit-learn estimator underneath
    _booster_options: dict = {}

    def __init__(
        self,
        n_estimators: int = 300,
        max_depth: int = 6,
        learning_rate: float = 0.1,
        subsample: float = 0.9,
        colsample_bytree: float = 0.9,
        random_seed: int = 42,
        n_jobs: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.random_seed = random_seed
        self.n_jobs = n_jobs

    def _booster_model(self) -> xgb.XGBModel:
        return self._booster_class(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            random_state=self.random_seed,
            n_jobs=self.n_jobs,
            enable_categorical=True,
            tree_method="hist",
            **self._booster_options,
        )

    def _targets(self, y, n_rows: int) -> np.ndarray:
        """``y`` as xgboost's targets (checked; the classifier records ``classes_`` here)."""
        raise NotImplementedError

    def _sample_weight(self, sample_weight, targets: np.ndarray) -> np.ndarray | None:
        return check_sample_weight(sample_weight, targets)

    def train(self, X, y, sample_weight=None):
        """Fit on ``X, y`` (each row weighted by ``sample_weight`` when given)."""
        frame = _as_xgb_frame(X)
        targets = self._targets(y, len(frame))
        weights = self._sample_weight(sample_weight, targets)
        self.categories_ = {n: list(frame[n].cat.categories) for n in frame.columns if frame[n].dtype == "category"}
        self.n_features_in_ = frame.shape[1]
        self.model_ = self._booster_model().fit(frame, targets, sample_weight=weights)
        return self

    def fit(self, X, y, sample_weight=None):
        return self.train(X, y, sample_weight=sample_weight)

    def _frame(self, X) -> pd.DataFrame:
        """``X`` for the fitted model: its categorical columns with the training categories."""
        check_is_fitted(self, "model_")
        frame = _as_xgb_frame(X, self.categories_)
        if frame.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input"
            )
        return frame

    def _cross_fit(self, X, y, classes: list | None, n_splits: int, sample_weight) -> np.ndarray:
        spec = {"class_path": f"{type(self).__module__}.{type(self).__name__}", "init_args": self.get_params()}
        return cross_fit_outputs(
            spec, as_frame(X), y, classes, folds=n_splits, seed=self.random_seed, sample_weight=sample_weight
        )

    def _meta(self) -> dict:
        """What the sidecar file keeps beyond the parameters and the categories."""
        return {}

    def _restore(self, meta: dict) -> None:
        """Set what :meth:`_meta` saved."""

    def save(self, path: str | Path) -> None:
        """Save as xgboost's JSON model plus a JSON sidecar (``<path>.meta.json``) with the parameters and the
        categories (and the classifier's classes)."""
        check_is_fitted(self, "model_")
        with atomic_path(path) as tmp:  # xgboost picks the format from the extension, which tmp keeps
            self.model_.save_model(str(tmp))
        meta = {"params": self.get_params(), "categories": self.categories_, **self._meta()}
        atomic.write_text(f"{path}.meta.json", json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path):
        meta = json.loads(Path(f"{path}.meta.json").read_text())
        estimator = cls(**meta["params"])
        estimator.model_ = cls._booster_class()
        estimator.model_.load_model(str(path))
        estimator.categories_ = meta["categories"]
        estimator.n_features_in_ = estimator.model_.n_features_in_
        estimator._restore(meta)
        return estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # xgboost learns where missing values go
        tags.input_tags.categorical = tags.input_tags.string = True  # native categorical columns
        tags.non_deterministic = False  # seeded by random_seed
        return tags


ARGS = """

Args:
    n_estimators: boosting rounds.
    max_depth: maximum tree depth.
    learning_rate: shrinkage.
    subsample: row subsampling per tree.
    colsample_bytree: column subsampling per tree.
    random_seed: seed.
    n_jobs: threads (``None``: all cores).
"""  # the two estimators' arguments (their shared constructor's)


class XGBoostClassifier(ClassifierMixin, _XGBoostEstimator):
    __doc__ = (
        "xgboost's ``XGBClassifier`` with native categorical support, labels of any type, and JSON model files." + ARGS
    )

    _booster_class = xgb.XGBClassifier

    def _targets(self, y, n_rows: int) -> np.ndarray:
        y = np.asarray(y)
        _check_rows(y, n_rows, "labels")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(f"y has a single class {self.classes_[0]!r}; need at least two")
        return codes

    def predict_proba(self, X) -> np.ndarray:
        frame = self._frame(X)
        return self.model_.predict_proba(frame)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def oof_logits(self, X, y, n_splits: int = 5, sample_weight=None) -> np.ndarray:
        """Out-of-fold log-probabilities ``(n, n_classes)``: each row's come from a model trained on the other folds
        only (the same cross-fitting the data module's ``teacher`` option uses)."""
        y = np.asarray(y)
        classes = [c.item() if isinstance(c, np.generic) else c for c in np.unique(y)]
        return self._cross_fit(X, y, classes, n_splits, sample_weight)

    def _meta(self) -> dict:
        return {"classes": self.classes_.tolist()}

    def _restore(self, meta: dict) -> None:
        self.classes_ = np.asarray(meta["classes"])


class XGBoostRegressor(RegressorMixin, _XGBoostEstimator):
    __doc__ = (
        "xgboost's ``XGBRegressor`` (squared error) with native categorical support and JSON model files; "
        "``score`` is R²." + ARGS
    )

    _booster_class = xgb.XGBRegressor
    _booster_options = {"objective": "reg:squarederror"}

    def _targets(self, y, n_rows: int) -> np.ndarray:
        y = regression_targets(column_or_1d(y, warn=True), source="XGBoostRegressor", name="y")
        _check_rows(y, n_rows, "values")
        return y

    def _sample_weight(self, sample_weight, targets: np.ndarray) -> np.ndarray | None:
        return check_sample_weight(sample_weight, targets, classes=False)  # no classes to keep weighted

    def predict(self, X) -> np.ndarray:
        """Predictions ``(n,)`` float64, in the target's units."""
        frame = self._frame(X)
        return self.model_.predict(frame).astype(np.float64)

    def oof_predictions(self, X, y, n_splits: int = 5, sample_weight=None) -> np.ndarray:
        """Out-of-fold predictions ``(n,)`` float64: each row's comes from a model trained on the other folds only
        (the same cross-fitting, plain shuffled ``KFold``, the data module's ``teacher`` option uses)."""
        y = regression_targets(column_or_1d(y), source="XGBoostRegressor", name="y")
        return self._cross_fit(X, y, None, n_splits, sample_weight)[:, 0]
