"""Lightning callbacks of the CLI: the predictions file writer."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from tabularnet.data.sources import write_table
from tabularnet.data.transform import predictions_frame


class PredictionWriter(BasePredictionWriter):
    """Writes all predictions of ``trainer.predict`` to ``path`` (CSV or Parquet, by extension), in input order."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.path = Path(path)
        self.written = False

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module, predictions, batch_indices) -> None:
        if not trainer.is_global_zero:
            return  # under DDP every rank predicts every row (the predict loader is not sharded); rank 0 writes
        classes = trainer.datamodule.classes
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        probs = torch.cat(batches).cpu().numpy() if batches else np.zeros((0, len(classes)))
        self.write(probs, classes)

    def write(self, probs: np.ndarray, classes: list) -> None:
        write_table(predictions_frame(probs, classes), self.path)
        self.written = True
        print(f"wrote {len(probs)} predictions to {self.path}")
