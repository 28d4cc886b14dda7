"""tabularnet: deep learning for tabular data (MLP, FT-Transformer, distillation from gradient boosting).

The names below are imported on first use, so ``import tabularnet`` is instant and a script that uses only the
estimators with ``use_lightning=False`` (or loads a saved model to predict) never imports Lightning.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DataError": "tabularnet.data.schema",
    "TabularData": "tabularnet.data.tabular_data",
    "TabularDataModule": "tabularnet.data.datamodule",
    "MLPClassifier": "tabularnet.models.classifiers",
    "TransformerClassifier": "tabularnet.models.classifiers",
    "MLPRegressor": "tabularnet.models.classifiers",
    "TransformerRegressor": "tabularnet.models.classifiers",
    "XGBoostClassifier": "tabularnet.models.xgboost",
    "XGBoostRegressor": "tabularnet.models.xgboost",
    "MLPLightningModule": "tabularnet.training.lightning_modules",
    "TransformerLightningModule": "tabularnet.training.lightning_modules",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
