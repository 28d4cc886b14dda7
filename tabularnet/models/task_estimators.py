"""The two halves of the estimators: what a classifier and a regressor add to :class:`TabularEstimator` (the
targets they accept, the teacher's outputs, ``predict``/``predict_proba``, ``score`` by scikit-learn's mixins)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin

from tabularnet.data.schema import DataError
from tabularnet.models.estimators import TabularEstimator
from tabularnet.models.inputs import teacher_logits_from
from tabularnet.training.calibration import calibrated_probabilities
from tabularnet.training.options import option
from tabularnet.training.tasks import Regression


@dataclass
class RegressorOptions:
    """Options of the regressors only (the command line has it in the data module)."""

    target_transform: str = option(
        "none",
        "``'log1p'``: model ``log(1 + y)`` (skewed, non-negative targets such as prices; predictions are "
        "transformed back); ``'none'``: ``y`` itself. Either way ``y`` is standardised inside the model.",
    )


class ClassifierEstimator(ClassifierMixin, TabularEstimator):
    """A classifier: labels of any type, class probabilities, ``score`` = accuracy."""

    task = "classification"

    def train(self, X, y, teacher_probs=None, X_val=None, y_val=None, sample_weight=None):
        """Fit on ``X, y``; ``teacher_probs`` (probabilities or logits, one row per row of X, columns in the order
        of the sorted labels) for distillation; ``X_val, y_val`` for validation (else ``training.validation_split``
        of X when early stopping or calibration is on).

        ``sample_weight``: one weight per row of X (finite, >= 0, not all zero). The training loss, the
        preprocessing statistics and ``class_weight='balanced'`` weigh each row by it (a row of integer weight
        ``k`` counts as ``k`` copies of it, weight 0 as absent); validation rows carved from X keep their weights
        and the validation metrics are then weighted. ``X_val, y_val`` rows weigh 1."""
        return self._fit(X, y, teacher_probs, X_val, y_val, sample_weight)

    def _teacher_outputs(self, teacher, y: np.ndarray) -> torch.Tensor:
        return teacher_logits_from(teacher, len(y), len(np.unique(y)))

    def _fitted_labels(self) -> None:
        self.classes_ = np.asarray(self.preprocessing_["classes"])

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``(n_rows, n_classes)``, columns in the order of ``classes_``."""
        outputs = self._network_outputs(X)
        if outputs is None:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return calibrated_probabilities(outputs, self.temperature_).numpy()

    def predict(self, X) -> np.ndarray:
        """Predicted labels, in the type of the training labels."""
        probs = self.predict_proba(X)
        return self.classes_[probs.argmax(1)]


class RegressorEstimator(RegressorMixin, TabularEstimator):
    """A regressor: a numeric target, standardised (after ``log1p`` if asked) inside the model; predictions in the
    target's units; ``score`` = R^2."""

    task = "regression"

    def train(self, X, y, teacher_preds=None, X_val=None, y_val=None, sample_weight=None):
        """Fit on ``X, y`` (numbers); ``teacher_preds`` (a teacher's predictions for the rows of X, in the units of
        ``y``; cross-fitted, e.g. :meth:`tabularnet.models.XGBoostRegressor.oof_predictions`) for distillation;
        ``X_val, y_val`` for validation (else ``training.validation_split`` of X when early stopping is on).
        ``sample_weight``: one weight per row of X, as for the classifiers."""
        return self._fit(X, y, teacher_preds, X_val, y_val, sample_weight)

    def _teacher_outputs(self, teacher, y: np.ndarray) -> np.ndarray:
        values = np.asarray(teacher, dtype=np.float64)
        if values.shape not in ((len(y),), (len(y), 1)):
            raise DataError(
                f"teacher_preds must have shape ({len(y)},) (one prediction per row), however: {values.shape}"
            )
        if not np.isfinite(values).all():
            raise DataError("teacher_preds has NaN or infinite values")
        return values.reshape(-1, 1)

    def _fitted_labels(self) -> None:
        pass

    def predict(self, X) -> np.ndarray:
        """Predictions in the units of the training target, ``(n_rows,)`` float64."""
        outputs = self._network_outputs(X, float64=True)
        if outputs is None:
            return np.zeros(0, dtype=np.float64)
        task = Regression()
        return task.outputs(outputs.double(), 1.0, self.preprocessing_["target_scaling"]).double().numpy()
