"""Silence Lightning messages that are noise for tabularnet users (advice to install other tools, deprecations
inside Lightning itself, warnings about loaders that our TensorBatchLoader answers by design)."""

from __future__ import annotations

import logging
import warnings

_NOISE = (
    r".*LeafSpec.*is deprecated.*",
    r".*Couldn't infer the batch indices fetched from your dataloader.*",
    r".*Total length of `(list|TensorBatchLoader)` across ranks is zero.*",
    r".*does not have many workers which may be a bottleneck.*",
    r".*LightningCLI's args parameter is intended to run from within Python.*",
    r".*The dirpath has changed from.*",
    r".*is smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",  # a resumed run continues in its own directory
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_lightning(verbose: bool = True) -> None:
    """Install the filters (idempotent); ``verbose=False`` also hides Lightning's info lines (GPU available...)."""
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
        if not verbose:
            logger.setLevel(logging.WARNING)
