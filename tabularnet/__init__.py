"""tabularnet: deep learning for tabular data (MLP, FT-Transformer, distillation from gradient boosting)."""

__version__ = "0.1.0"

from tabularnet.data.datamodule import TabularDataModule  # noqa: E402
from tabularnet.data.schema import DataError  # noqa: E402
from tabularnet.models import MLPClassifier, TransformerClassifier, XGBoostClassifier  # noqa: E402
from tabularnet.training.lightning_modules import MLPLightningModule, TransformerLightningModule  # noqa: E402

__all__ = [
    "DataError",
    "MLPClassifier",
    "MLPLightningModule",
    "TabularDataModule",
    "TransformerClassifier",
    "TransformerLightningModule",
    "XGBoostClassifier",
    "__version__",
]
