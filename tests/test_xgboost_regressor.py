"""XGBoostRegressor: the scikit-learn contract, R², JSON files, sample weights, out-of-fold predictions, bad targets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_table
from sklearn.metrics import r2_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from tabularnet.data.schema import DataError
from tabularnet.models import XGBoostClassifier, XGBoostRegressor

# With subsample=1.0 a weighted fit equals the fit on repeated rows exactly (the check passes then, and
# test_weight_two_is_a_repeated_row proves it); at the default 0.9 each tree samples its rows from a different
# set of rows, so the two fits differ.
WEIGHT_EQUIVALENCE = "row subsampling (subsample=0.9) draws different rows from weighted and from repeated data"


@parametrize_with_checks(
    [XGBoostRegressor()],
    expected_failed_checks=lambda estimator: {"check_sample_weight_equivalence_on_dense_data": WEIGHT_EQUIVALENCE},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def xy():
    """The shared synthetic table (numeric with NaN, string categorical with missing values) with a numeric
    target: a noisy linear function of age, color and level."""
    df = make_table(300, seed=3)
    noise = np.random.default_rng(0).normal(0, 0.5, len(df))
    y = df["age"] / 12 + (df["color"] == "red") * 1.5 + df["level"] * 0.5 + noise
    return df.drop(columns="target"), y.to_numpy()


@pytest.fixture(scope="module")
def fitted(xy):
    X, y = xy
    return XGBoostRegressor(n_estimators=50).fit(X[:200], y[:200])


def test_fit_predict_score(xy, fitted):
    X, y = xy
    predictions = fitted.predict(X[200:])
    assert predictions.shape == (100,) and predictions.dtype == np.float64
    assert fitted.score(X[200:], y[200:]) == pytest.approx(r2_score(y[200:], predictions))
    assert fitted.score(X[200:], y[200:]) > 0.5
    assert set(fitted.categories_) == {"color"}


def test_save_load_round_trip(xy, fitted, tmp_path):
    X, _ = xy
    path = tmp_path / "teacher.json"
    fitted.save(path)
    meta = json.loads((tmp_path / "teacher.json.meta.json").read_text())
    assert "classes" not in meta and meta["params"] == fitted.get_params()
    loaded = XGBoostRegressor.load(path)
    assert isinstance(loaded, XGBoostRegressor) and loaded.n_features_in_ == 4
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_sample_weight_changes_the_fit(xy):
    X, y = xy
    weights = np.where(X["color"] == "red", 10.0, 1.0)
    plain = XGBoostRegressor(n_estimators=30).fit(X, y).predict(X)
    weighted = XGBoostRegressor(n_estimators=30).fit(X, y, sample_weight=weights).predict(X)
    assert np.abs(plain - weighted).max() > 0.05


def test_weight_two_is_a_repeated_row(xy):
    X, y = xy
    weights = np.random.default_rng(1).integers(0, 3, len(y))
    rows = np.repeat(np.arange(len(y)), weights)
    options = dict(n_estimators=30, subsample=1.0)  # row subsampling would draw different rows (see above)
    weighted = XGBoostRegressor(**options).fit(X, y, sample_weight=weights).predict(X)
    repeated = XGBoostRegressor(**options).fit(X.iloc[rows], y[rows]).predict(X)
    np.testing.assert_allclose(weighted, repeated, atol=1e-6)


def test_oof_predictions_never_come_from_a_model_that_saw_the_row():
    # a target with nothing to learn but the row itself: a unique id lets the trees memorise each row in sample
    # (200 rows: one histogram bin per id), while a model that never saw a row can only guess it from other rows,
    # which carry no information about it
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"row_id": rng.permutation(200).astype(float), "noise": rng.normal(size=200)})
    y = rng.normal(size=200)
    model = XGBoostRegressor(n_estimators=100, subsample=1.0, colsample_bytree=1.0)
    in_sample = model.fit(X, y).predict(X)
    oof = model.oof_predictions(X, y, n_splits=4)
    assert oof.shape == (200,) and oof.dtype == np.float64
    assert np.corrcoef(in_sample, y)[0, 1] > 0.95  # measured 0.99
    assert abs(np.corrcoef(oof, y)[0, 1]) < 0.2  # measured 0.06


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("n/a", "XGBoostRegressor: regression target 'y' has a non-numeric value 'n/a' at row 7"),
        (np.inf, "XGBoostRegressor: regression target 'y' has an infinite value at row 7"),
        (None, "XGBoostRegressor: regression target 'y' has a missing value at row 7"),
    ],
)
def test_bad_target_names_the_row(xy, bad, message):
    X, y = xy
    y = y.astype(object)
    y[7] = bad
    for call in (XGBoostRegressor().fit, XGBoostRegressor().oof_predictions):
        with pytest.raises(DataError, match=message) as error:
            call(X, y)
        assert "\n" not in str(error.value)


def test_bad_sample_weight_names_the_row(xy):
    X, y = xy
    weights = np.ones(len(y))
    weights[5] = -1.0
    with pytest.raises(DataError, match="sample_weight has a negative value -1.0 at row 5"):
        XGBoostRegressor().fit(X, y, sample_weight=weights)


def test_classifier_takes_sample_weight_too():
    df = make_table(300, seed=3)
    X, y = df.drop(columns="target"), df["target"]
    weights = np.where(y == "yes", 5.0, 1.0)
    plain = XGBoostClassifier(n_estimators=20).fit(X, y).predict_proba(X)
    weighted = XGBoostClassifier(n_estimators=20).fit(X, y, sample_weight=weights).predict_proba(X)
    assert weighted[:, 1].mean() > plain[:, 1].mean() + 0.02
