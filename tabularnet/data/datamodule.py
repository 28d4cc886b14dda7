"""``TabularDataModule``: :class:`~tabularnet.data.tabular_data.TabularData` as a Lightning ``LightningDataModule``."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from tabularnet.data.tabular_data import TabularData


class TabularDataModule(TabularData, pl.LightningDataModule):
    __doc__ = TabularData.__doc__

    def _record_arguments(self, arguments: dict[str, Any]) -> None:
        # Lightning's hparams: hparams.yaml and the checkpoint's data arguments (under LightningCLI, the config's)
        self.save_hyperparameters(arguments)

    def _resident_device(self) -> torch.device | None:
        # device_resident: the tables live on the trainer's root device, once this data module is attached to one
        if not self.hparams.device_resident or self.trainer is None:
            return None
        return self.trainer.strategy.root_device

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # NOTE: our batches are flat dicts of tensors; Lightning's generic collection walk costs more per step.
        # The hook lives here, not in the LightningModule: Lightning warns when both a module hook and a data
        # module are in play.
        if isinstance(batch, dict) and all(isinstance(v, torch.Tensor) for v in batch.values()):
            return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
