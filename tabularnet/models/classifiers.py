"""The original Python API (``MLPClassifier(...).train(X, y)``) as scikit-learn estimators.

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
from tabularnet.nn import MLP, FTTransformer
from tabularnet.training.options import MLPOptions, RecipeOptions, TransformerOptions, with_options


@with_options(MLPOptions, RecipeOptions, EstimatorOptions)
class MLPClassifier(TabularEstimator):
    """An MLP classifier with the original API and the scikit-learn estimator contract."""

    network_class, module_name, network_options = MLP, "MLPLightningModule", MLPOptions


@with_options(TransformerOptions, RecipeOptions, EstimatorOptions)
class TransformerClassifier(TabularEstimator):
    """An FT-Transformer classifier with the original API and the scikit-learn estimator contract."""

    network_class, module_name, network_options = FTTransformer, "TransformerLightningModule", TransformerOptions


ESTIMATORS = (MLPClassifier, TransformerClassifier)


def load_estimator(path: str | Path) -> TabularEstimator:
    """The estimator of a file written by ``save()`` or a ``tabularnet fit`` checkpoint, whichever model it holds."""
    class_path = load_model_checkpoint(path)["hyper_parameters"]["_class_path"]
    for cls in ESTIMATORS:
        if class_path.endswith(cls.module_name):
            return cls.load(path)
    raise DataError(f"{path}: holds a {class_path or 'model of unknown class'}, which tabularnet cannot load")
