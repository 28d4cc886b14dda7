"""The original Python API (``MLPClassifier(...).train(X, y)``) as scikit-learn estimators, and its regressors
(``MLPRegressor``, ``TransformerRegressor``): the same arguments, ``teacher_preds`` instead of ``teacher_probs``.

Both drivers train the same network with the same recipe: ``use_lightning=True`` runs Lightning's Trainer on the
LightningModule that wraps it, ``use_lightning=False`` (the default, as in the original) runs
:class:`~tabularnet.training.torch_trainer.TorchTrainer` -- and imports no Lightning at all, nor does prediction
from a saved model. Their parameters are the options declared in :mod:`tabularnet.training.options` (the network's
and the recipe's, as for the LightningModules) and :class:`~tabularnet.models.estimators.EstimatorOptions`.
"""

from __future__ import annotations

from pathlib import Path

from tabularnet.data.checkpoint import load_model_checkpoint
from tabularnet.data.schema import DataError
from tabularnet.models.estimators import EstimatorOptions, TabularEstimator
from tabularnet.models.task_estimators import ClassifierEstimator, RegressorEstimator, RegressorOptions
from tabularnet.nn import MLP, FTTransformer
from tabularnet.training.options import MLPOptions, RecipeOptions, TransformerOptions, with_options


class _MLPFamily:
    network_class, module_name, network_options = MLP, "MLPLightningModule", MLPOptions


class _TransformerFamily:
    network_class, module_name, network_options = FTTransformer, "TransformerLightningModule", TransformerOptions


@with_options(MLPOptions, RecipeOptions, EstimatorOptions)
class MLPClassifier(_MLPFamily, ClassifierEstimator):
    """An MLP classifier with the original API and the scikit-learn estimator contract."""


@with_options(TransformerOptions, RecipeOptions, EstimatorOptions)
class TransformerClassifier(_TransformerFamily, ClassifierEstimator):
    """An FT-Transformer classifier with the original API and the scikit-learn estimator contract."""


@with_options(MLPOptions, RecipeOptions, EstimatorOptions, RegressorOptions)
class MLPRegressor(_MLPFamily, RegressorEstimator):
    """An MLP regressor: the MLPClassifier's arguments, a numeric target, predictions in its units, ``score`` = R^2.
    Label smoothing, class weights and calibration do not apply (errors); ``loss``: ``mse`` (default) or ``huber``."""


@with_options(TransformerOptions, RecipeOptions, EstimatorOptions, RegressorOptions)
class TransformerRegressor(_TransformerFamily, RegressorEstimator):
    """An FT-Transformer regressor: the TransformerClassifier's arguments, a numeric target, ``score`` = R^2."""


ESTIMATORS = (MLPClassifier, TransformerClassifier, MLPRegressor, TransformerRegressor)


def load_estimator(path: str | Path) -> TabularEstimator:
    """The estimator of a file written by ``save()`` or a ``tabularnet fit`` checkpoint, whichever model it holds."""
    hparams = load_model_checkpoint(path)["hyper_parameters"]
    class_path, task = hparams["_class_path"], hparams.get("task_type", "classification")
    for cls in ESTIMATORS:
        if class_path.endswith(cls.module_name) and cls.task == task:
            return cls.load(path)
    raise DataError(f"{path}: holds a {class_path or 'model of unknown class'}, which tabularnet cannot load")
