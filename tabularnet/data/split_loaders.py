"""The batches of :class:`~tabularnet.data.tabular_data.TabularData`'s splits: in-memory tensor batches or streamed
Parquet, for training, evaluation (sharded or whole) and prediction; the dataloader methods Lightning calls."""

from __future__ import annotations

import torch

from tabularnet.data.loader import TensorBatchLoader
from tabularnet.data.schema import DataError
from tabularnet.data.streaming import StreamingParquetLoader, split_loader
from tabularnet.data.streaming_fit import sample_parquet


class SplitLoaders:
    """Loaders over the splits of a :class:`~tabularnet.data.tabular_data.TabularData` (its base class: the methods
    use its ``hparams``, ``split_tensors``, streams, fitted preprocessing and ``_resident_device``)."""

    def unsharded_loader(self, split: str):
        """Every row of ``split`` in ``eval_batch_size`` batches, on every rank (for calibration and figures);
        ``None`` when the split has no data."""
        if split in self._streams():
            return self._streaming_loader(split, train=False)
        tensors = self.split_tensors(split)
        if tensors is None:
            return None
        return TensorBatchLoader(tensors, batch_size=self.hparams.eval_batch_size, shard=False)

    def training_numeric_inputs(self, max_streamed_rows: int = 100_000, *, with_weights: bool = False):
        """``x_num`` of the training split, for data-dependent initialisation (PLE bin edges); when the training
        file streams, of a uniform sample of at most ``max_streamed_rows`` of its training rows. ``with_weights``:
        ``(x_num, sample weights or None)``."""
        if "train" not in self._streams():
            tensors = self.split_tensors("train")
            x_num, weight = tensors["x_num"], tensors.get("weight")
        else:
            hp, (path, rows) = self.hparams, self._streams()["train"]
            sample = sample_parquet(path, min(hp.sample_rows, max_streamed_rows), rows=rows, seed=hp.seed)
            x_num = self._ensure_fitted().transform(sample, source=path)["x_num"]
            weights = self._sample_weight(sample)
            weight = None if weights is None else torch.tensor(weights, dtype=torch.float32)
        return (x_num, weight) if with_weights else x_num

    def _streaming_loader(self, split: str, *, train: bool) -> StreamingParquetLoader:
        path, rows = self._streams()[split]
        # the training file's weights were validated when the preprocessing was fitted; a file of its own now
        check = path != self._paths()["train"] and path not in self._checked_weight_files
        loader = split_loader(
            path,
            rows,
            self._ensure_fitted(),
            self.hparams,
            labeled=split != "predict",
            train=train,
            check_weights=check,
        )
        if check and loader.transform.weight_column is not None:
            self._checked_weight_files.add(path)
        return loader

    # ------------------------------------------------------------- dataloaders
    def _loader(self, split: str, *, train: bool = False):
        if split in self._streams():
            return self._streaming_loader(split, train=train)
        tensors = self.split_tensors(split)
        if tensors is None:
            return []
        hp = self.hparams
        batch_size = hp.batch_size if train else hp.eval_batch_size
        return TensorBatchLoader(
            tensors, batch_size=batch_size, shuffle=train, seed=hp.seed, shard=split != "predict", pad=train,
            device=self._resident_device(),
        )  # fmt: skip

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        if not self.has_split("test"):
            raise DataError("no test data: set data.test_path (or data.test_fraction)")
        return self._loader("test")

    def predict_dataloader(self):
        return self._loader("predict")
