"""Regression teachers (``classes=None``): shuffled KFold cross-fitting, predictions in the target's units, the
cache keyed by task, and clear errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

from tabularnet.data.schema import DataError
from tabularnet.data.teacher import (
    build_teacher,
    cache_key,
    cached_teacher_logits,
    cross_fit_logits,
    cross_fit_outputs,
    fold_assignment,
    teacher_evaluations,
)


class RecordingRegressor:
    """Predicts 1.0 for rows it was fitted on and 0.0 otherwise (keyed by ``row``); records every fit."""

    fits: list[dict] = []

    def fit(self, X, y, sample_weight=None):
        self.seen = set(X["row"])
        type(self).fits.append({"rows": self.seen, "y": np.asarray(y), "sample_weight": sample_weight})
        return self

    def predict(self, X):
        return X["row"].isin(self.seen).to_numpy(dtype=np.float32)


class ProbabilitiesOnly:
    def fit(self, X, y):
        return self

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


class PredictOnly:
    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(len(X))


SPEC = {"class_path": "test_teacher_regression.RecordingRegressor"}


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"row": np.arange(120), "x": rng.normal(size=120), "price": rng.normal(100, 20, 120)})


@pytest.fixture(autouse=True)
def forget_fits():
    RecordingRegressor.fits = []


def test_every_row_gets_a_prediction_from_a_teacher_that_never_saw_it(table):
    weights = np.linspace(0.5, 2.0, len(table))
    oof = cross_fit_outputs(
        SPEC, table[["row", "x"]], table["price"].to_numpy(), None, folds=4, seed=0, sample_weight=weights
    )
    assert oof.shape == (120, 1) and oof.dtype == np.float64
    assert (oof == 0.0).all()  # "unseen" for every row
    assert len(RecordingRegressor.fits) == 4
    for fit in RecordingRegressor.fits:  # the targets in their own units, the weights of the rows fitted
        rows = np.array(sorted(fit["rows"]))
        np.testing.assert_array_equal(fit["y"], table["price"].to_numpy()[rows])
        np.testing.assert_array_equal(fit["sample_weight"], weights[rows])
    assert cross_fit_logits is cross_fit_outputs


def test_regression_folds_are_a_shuffled_kfold():
    y = np.random.default_rng(1).normal(size=50)  # continuous: StratifiedKFold would refuse it
    folds = fold_assignment(y, 5, seed=3, stratified=False)
    for k, (_, held_out) in enumerate(KFold(5, shuffle=True, random_state=3).split(y)):
        assert (np.flatnonzero(folds == k) == held_out).all()


@pytest.mark.parametrize(
    ("cls", "task", "message"),
    [
        ("ProbabilitiesOnly", "regression", "has no predict method (a regression teacher needs fit and predict)"),
        ("PredictOnly", "classification", "has no predict_proba method (a classification teacher needs"),
        ("collections.OrderedDict", "regression", "has no fit/predict methods"),
        ("collections.OrderedDict", "classification", "has no fit/predict_proba methods"),
    ],
)
def test_build_teacher_names_the_missing_methods(cls, task, message):
    class_path = cls if "." in cls else f"test_teacher_regression.{cls}"
    with pytest.raises(DataError, match="^" + re.escape(f"data.teacher: {class_path} {message}")):
        build_teacher({"class_path": class_path}, task)


def test_build_teacher_accepts_each_task_its_methods():
    assert isinstance(build_teacher({"class_path": "test_teacher_regression.PredictOnly"}, "regression"), PredictOnly)
    assert isinstance(build_teacher({"class_path": "test_teacher_regression.ProbabilitiesOnly"}), ProbabilitiesOnly)


def test_evaluations_are_predictions_and_targets(table):
    train, val = table[:80], table[80:]
    splits = {"val": (val[["row", "x"]], val["price"])}
    evaluated = teacher_evaluations(SPEC, (train[["row", "x"]], train["price"]), splits, None)
    predictions, y = evaluated["val"]
    assert predictions.shape == y.shape == (40,) and predictions.dtype == y.dtype == np.float64
    assert (predictions == 0.0).all()  # the teacher fitted on the training rows never saw these
    np.testing.assert_array_equal(y, val["price"].to_numpy())


def cached(table: pd.DataFrame, cache_dir, classes=None, spec=SPEC):
    calls = []

    def evaluations():
        calls.append(1)
        return {"val": (table[["row", "x"]][:20], table["price"][:20].to_numpy())}

    options = dict(features=["row", "x"], target="price", weight_column=None, sample_weight=None, folds=3, seed=0)
    return cached_teacher_logits(spec, table, classes, evaluations, cache_dir=cache_dir, **options), calls


def test_cache_hit_gives_the_same_arrays(table, tmp_path):
    (oof, evaluated), calls = cached(table, tmp_path)
    fits = len(RecordingRegressor.fits)
    (again, evaluated_again), calls_again = cached(table, tmp_path)
    assert len(RecordingRegressor.fits) == fits and not calls_again  # read from the cache
    assert oof.shape == (120, 1) and len(calls) == 1
    np.testing.assert_array_equal(again, oof)
    for computed, read in zip(evaluated["val"], evaluated_again["val"]):
        np.testing.assert_array_equal(read, computed)
        assert read.dtype == np.float64


def test_the_cache_key_includes_the_task(table):
    rows = table[["row", "x", "price"]]
    regression = cache_key(SPEC, rows, 3, 0, "regression")
    assert regression != cache_key(SPEC, rows, 3, 0, "classification")
    assert cache_key(SPEC, rows, 3, 0) == cache_key(SPEC, rows, 3, 0, "classification")


def test_xgboost_regressor_as_the_teacher(table, tmp_path):
    spec = {"class_path": "tabularnet.models.XGBoostRegressor", "init_args": {"n_estimators": 10}}
    (oof, evaluated), _ = cached(table, tmp_path, spec=spec)
    assert oof.shape == (120, 1) and np.isfinite(oof).all()
    assert abs(oof.mean() - table["price"].mean()) < 10  # in the target's units
    assert evaluated["val"][0].shape == (20,)


def test_a_bad_target_names_its_row(table):
    y = table["price"].to_numpy().astype(object)
    y[11] = "unknown"
    with pytest.raises(
        DataError, match="cross-fitting: regression target 'y' has a non-numeric value 'unknown' at row 11"
    ):
        cross_fit_outputs(SPEC, table[["row", "x"]], y, None, folds=3, seed=0)
