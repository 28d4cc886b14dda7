"""Expected calibration error and temperature scaling: the math, the metric, the estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tabularnet import MLPClassifier
from tabularnet.training.calibration import expected_calibration_error, fit_temperature, reliability_bins
from tabularnet.training.metrics import ExpectedCalibrationError


def test_ece_of_known_inputs():
    # 4 rows at confidence 0.9 with 2 right: one bin, |0.5 - 0.9| = 0.4
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    assert expected_calibration_error(probs, np.array([0, 1, 1, 0])) == pytest.approx(0.4)
    # two bins, each holding half the rows: 0.6 confident with 1 of 2 right (gap 0.1), 1.0 confident and right (0)
    probs = np.array([[0.6, 0.4], [0.4, 0.6], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.5 * 0.1)


def test_ece_is_zero_when_confidence_equals_accuracy():
    # 10 rows at confidence 0.7, exactly 7 right
    probs = np.tile([0.7, 0.3], (10, 1))
    y = np.array([0] * 7 + [1] * 3)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0)


def test_reliability_bins_are_right_closed_and_count_every_row():
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [1.0, 0.0]])
    bins = reliability_bins(probs, np.array([0, 0, 0]), n_bins=5)
    assert bins.count.tolist() == [0, 0, 2, 0, 1]  # 0.5 and 0.6 fall in (0.4, 0.6], 1.0 in (0.8, 1.0]
    assert np.isnan(bins.accuracy[0]) and bins.accuracy[4] == 1.0


def test_ece_metric_equals_the_function():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=500)
    y = rng.integers(0, 4, 500)
    metric = ExpectedCalibrationError()
    for rows in np.array_split(np.arange(500), 7):  # accumulated over batches
        metric.update(torch.as_tensor(probs[rows]), torch.as_tensor(y[rows]))
    assert float(metric.compute()) == pytest.approx(expected_calibration_error(probs, y), abs=1e-6)


def over_confident(n_rows: int = 4000, scale: float = 4.0, seed: int = 0):
    """Labels drawn from softmax(z); the model reports ``scale * z`` (too sure of itself by a factor ``scale``)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n_rows, 3, generator=generator) * 1.5
    y = torch.multinomial(z.softmax(-1), 1, generator=generator).squeeze(1)
    return z * scale, y


def test_fit_temperature_undoes_over_confidence():
    logits, y = over_confident(scale=4.0)
    temperature = fit_temperature(logits, y)
    assert temperature == pytest.approx(4.0, rel=0.15)
    nll = torch.nn.functional.cross_entropy
    assert nll(logits / temperature, y) < nll(logits, y) - 0.1
    before = expected_calibration_error(logits.softmax(-1).numpy(), y.numpy())
    after = expected_calibration_error((logits / temperature).softmax(-1).numpy(), y.numpy())
    assert after < before / 3


def test_fit_temperature_keeps_a_calibrated_model():
    logits, y = over_confident(scale=1.0, seed=1)
    assert fit_temperature(logits, y) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("use_lightning", [False, True])
def test_estimator_calibrates_and_saves_the_temperature(table, tmp_path, use_lightning):
    X, y = table.drop(columns="target"), table["target"]
    model = MLPClassifier(
        hidden_dims=[16], training={"epochs": 3, "batch_size": 32}, calibrate=True, use_lightning=use_lightning
    ).fit(X, y)
    temperature = model.calibration_["temperature"]
    assert temperature > 0 and temperature != 1.0
    assert model.temperature_ == pytest.approx(temperature)
    assert set(model.calibration_) == {"temperature", "val_ece_uncalibrated", "val_ece_calibrated"}
    model.save(tmp_path / "model.ckpt")
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert float(checkpoint["state_dict"]["temperature"]) == pytest.approx(temperature)  # the CLI module's buffer
    loaded = MLPClassifier.load(tmp_path / "model.ckpt")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-6)
    # predict_proba is softmax(logits / T): with T reset to 1 the log-odds are T times larger
    loaded.temperature_ = 1.0
    uncalibrated = loaded.predict_proba(X)
    log_odds = np.log(model.predict_proba(X)[:, 1] / model.predict_proba(X)[:, 0])
    np.testing.assert_allclose(log_odds, np.log(uncalibrated[:, 1] / uncalibrated[:, 0]) / temperature, atol=1e-4)
