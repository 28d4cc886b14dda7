"""``TabularDataModule``: :class:`~tabularnet.data.datamodule.TabularData` as a Lightning ``LightningDataModule``."""

from __future__ import annotations

import lightning.pytorch as pl

from tabularnet.data.datamodule import TabularData


class TabularDataModule(TabularData, pl.LightningDataModule):
    __doc__ = TabularData.__doc__
