"""Parquet tables larger than memory, streamed: row groups through a shuffle buffer into dict batches.

Memory is bounded by the shuffle buffer and one row group being decoded; it does not grow with the file. Which
rows a split streams is :mod:`tabularnet.data.streaming_plan`'s; the preprocessing is fitted on a sample by
:mod:`tabularnet.data.streaming_fit`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from tabularnet.data.loader import Batch, rank_and_world_size
from tabularnet.data.preprocessing import MISSING_ID, Preprocessor
from tabularnet.data.schema import DataError, check_columns
from tabularnet.data.streaming_fit import parquet_labels
from tabularnet.data.streaming_plan import EVERY_ROW, RowSplit, open_parquet, row_group_sizes

# NOTE: rows decoded per read: large enough for Arrow's vectorized decoding, small next to the shuffle buffer.
CHUNK_ROWS = 65_536


# ---------------------------------------------------------------------------------------------- transform
class ChunkTransform:
    """The fitted Preprocessor applied to Arrow record batches, vectorized.

    Numeric columns go through ``Preprocessor.transform``; categorical columns are dictionary-encoded by Arrow and
    only their distinct values go through it, so the per-row work is an integer gather instead of a string lookup.
    Both use views of the one fitted state, so streamed rows are encoded exactly as in-memory rows are.
    """

    def __init__(
        self, preprocessor: Preprocessor, *, target: str | None, source: str, weight_column: str | None = None
    ) -> None:
        state, schema = preprocessor.state_dict(), preprocessor.schema.to_dict()
        self.numeric = Preprocessor().load_state_dict(
            {**state, "categorical": {}, "schema": {**schema, "categorical": []}}
        )
        self.categorical = Preprocessor().load_state_dict({**state, "numeric": {}, "schema": {**schema, "numeric": []}})
        self.numeric_columns, self.categorical_columns = list(schema["numeric"]), list(schema["categorical"])
        regression = preprocessor.task == "regression"
        self.classes = pd.Index(preprocessor.classes) if target is not None and not regression else None
        self.preprocessor = preprocessor
        self.target, self.source, self.weight_column = target, source, weight_column

    @property
    def columns(self) -> list[str]:
        """The file columns a batch needs."""
        labels = [self.target] if self.target else []
        weights = [self.weight_column] if self.weight_column else []
        return [*self.numeric_columns, *self.categorical_columns, *labels, *weights]

    def __call__(self, batch: pa.RecordBatch) -> Batch:
        n_rows = batch.num_rows
        numeric = (
            batch.select(self.numeric_columns).to_pandas()
            if self.numeric_columns
            else pd.DataFrame(index=range(n_rows))
        )
        out = {"x_num": self.numeric.transform(numeric, source=self.source)["x_num"], "x_cat": self._categories(batch)}
        if self.target is not None:
            out["y"] = self._labels(batch.column(self.target))
        if self.weight_column is not None:  # validated by parquet_labels' scan of the file
            weights = pc.cast(batch.column(self.weight_column), pa.float32()).to_numpy(zero_copy_only=False)
            out["weight"] = torch.from_numpy(weights.copy())
        return out

    def _categories(self, batch: pa.RecordBatch) -> torch.Tensor:
        if not self.categorical_columns:
            return torch.zeros((batch.num_rows, 0), dtype=torch.int64)
        encoded = [_dictionary(batch.column(name)) for name in self.categorical_columns]
        # (K, n_cat): the ids of each column's distinct values; shorter columns are padded with missing values
        distinct = pd.DataFrame(
            {name: column.dictionary.to_pandas() for name, column in zip(self.categorical_columns, encoded)}
        )
        ids = self.categorical.transform(distinct, source=self.source)["x_cat"].numpy()
        codes = []
        for j, column in enumerate(encoded):
            indices = column.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            column_ids = ids[indices, j] if len(ids) else np.full(batch.num_rows, MISSING_ID)
            if column.indices.null_count:
                column_ids[column.indices.is_null().to_numpy(zero_copy_only=False)] = MISSING_ID
            codes.append(column_ids)
        return torch.from_numpy(np.stack(codes, axis=1).astype(np.int64))

    def _labels(self, column: pa.Array) -> torch.Tensor:
        values = column.to_numpy(zero_copy_only=False)
        if self.classes is None:  # regression: the target on its standard scale
            return self.preprocessor.encode_targets(values, source=self.source)
        indices = self.classes.get_indexer(values)
        if (indices < 0).any():
            first = values[np.flatnonzero(indices < 0)[0]]
            raise DataError(f"{self.source}: label {first!r} was not seen in training (classes: {list(self.classes)})")
        return torch.from_numpy(indices.astype(np.int64))


def _dictionary(column: pa.Array) -> pa.DictionaryArray:
    return column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)


# ------------------------------------------------------------------------------------------------- loader
class _ShuffleBuffer:
    """Holds up to ``capacity`` transformed rows; when full, shuffles them and emits all but half as batches."""

    def __init__(self, *, capacity: int, batch_size: int, rng: np.random.Generator | None) -> None:
        self.capacity, self.batch_size, self.rng = capacity, batch_size, rng
        self.parts: list[Batch] = []
        self.n_rows = 0

    def add(self, chunk: Batch) -> Iterator[Batch]:
        self.parts.append(chunk)
        self.n_rows += len(chunk["x_num"])
        if self.rng is None:  # evaluation order: emit whole batches as soon as they are complete
            yield from self._emit(keep=0, partial=False)
        elif self.n_rows >= self.capacity:
            yield from self._emit(keep=self.capacity // 2, partial=False)

    def drain(self, *, drop_last: bool) -> Iterator[Batch]:
        yield from self._emit(keep=0, partial=not drop_last)

    def _emit(self, *, keep: int, partial: bool) -> Iterator[Batch]:
        if self.n_rows == 0:
            return
        rows = {name: torch.cat([part[name] for part in self.parts]) for name in self.parts[0]}
        if self.rng is not None:
            order = torch.from_numpy(self.rng.permutation(self.n_rows))
            rows = {name: tensor.index_select(0, order) for name, tensor in rows.items()}
        n_emit = (self.n_rows - keep) // self.batch_size * self.batch_size
        if partial:
            n_emit = self.n_rows
        for start in range(0, n_emit, self.batch_size):
            yield {name: tensor[start : start + self.batch_size] for name, tensor in rows.items()}
        # NOTE: clone, so the kept rows do not pin the whole concatenated buffer in memory
        self.parts = [{name: tensor[n_emit:].clone() for name, tensor in rows.items()}]
        self.n_rows -= n_emit


class StreamingParquetLoader:
    """Dict batches (``x_num``, ``x_cat``, ``y``) streamed from a Parquet file, like :class:`TensorBatchLoader`'s.

    With ``shuffle``, epoch ``e`` reads the row groups in a random order drawn from ``(seed, e)`` and passes their
    rows through a shuffle buffer of ``shuffle_buffer`` rows: whenever it is full it is shuffled and all but half of
    it is emitted, so rows mix across row groups and the order depends only on the seed and the epoch. Without it,
    rows come in file order. Under ``torch.distributed``, rank ``r`` of ``w`` reads row groups ``r::w`` of the
    epoch's order and every rank stops after as many batches as the smallest shard gives, so all ranks take the
    same number of steps (rows beyond that in the larger shards are skipped for that epoch only).

    Args:
        path: the Parquet file.
        transform: the fitted preprocessing (:class:`ChunkTransform`), which also names the columns to read.
        batch_size: rows per batch.
        rows: the rows of the file that belong to this split (default all).
        shuffle: random row-group order and a shuffle buffer; otherwise file order.
        shuffle_buffer: rows held for shuffling (memory: about 8 bytes per feature per row).
        drop_last: drop the last incomplete batch.
        seed: base seed of the row-group order and the buffer's permutations.
        shard: split row groups across distributed ranks (turn off for evaluation and prediction).
    """

    def __init__(
        self,
        path: str | Path,
        transform: ChunkTransform,
        *,
        batch_size: int,
        rows: RowSplit = EVERY_ROW,
        shuffle: bool = False,
        shuffle_buffer: int = 262_144,
        drop_last: bool = False,
        seed: int = 0,
        shard: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, however: batch_size={batch_size}")
        self.path, self.transform, self.rows = str(path), transform, rows
        parquet = open_parquet(path)
        check_columns(
            pd.DataFrame(columns=parquet.schema_arrow.names), transform.columns, what="column", source=self.path
        )
        self.row_counts = rows.counts(row_group_sizes(parquet))  # rows of this split per row group
        self.batch_size, self.shuffle, self.shuffle_buffer = batch_size, shuffle, max(shuffle_buffer, batch_size)
        self.drop_last, self.seed, self.shard = drop_last, seed, shard
        self.epoch = 0

    @property
    def n_rows(self) -> int:
        return int(self.row_counts.sum())

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch whose order the next iteration uses."""
        self.epoch = epoch

    def _shards(self, epoch: int) -> tuple[list[np.ndarray], int]:
        """Row groups of every rank for ``epoch``, and this rank's index."""
        rank, world_size = rank_and_world_size() if self.shard else (0, 1)
        groups = np.flatnonzero(self.row_counts)
        if 1 < world_size > len(groups):
            raise DataError(
                f"{self.path}: {len(groups)} row groups cannot be shared by {world_size} devices; "
                "write the file with smaller row groups (pyarrow: row_group_size=...)"
            )
        if self.shuffle:
            groups = np.random.default_rng([self.seed, epoch]).permutation(groups)
        return [groups[r::world_size] for r in range(world_size)], rank

    def _n_batches(self, shards: list[np.ndarray]) -> int:
        def batches(n_rows: int) -> int:
            return n_rows // self.batch_size if self.drop_last else math.ceil(n_rows / self.batch_size)

        return min(batches(int(self.row_counts[shard].sum())) for shard in shards)

    def __len__(self) -> int:
        return self._n_batches(self._shards(self.epoch)[0])

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        shards, rank = self._shards(epoch)
        n_batches = self._n_batches(shards)
        rng = np.random.default_rng([self.seed, epoch, rank]) if self.shuffle else None
        buffer = _ShuffleBuffer(capacity=self.shuffle_buffer, batch_size=self.batch_size, rng=rng)
        batches = (batch for chunk in self._chunks(shards[rank]) for batch in buffer.add(chunk))
        for i, batch in enumerate(_chain(batches, lambda: buffer.drain(drop_last=self.drop_last))):
            if i == n_batches:
                return
            yield batch

    def _chunks(self, groups: np.ndarray) -> Iterator[Batch]:
        parquet = open_parquet(self.path)
        # NOTE: string columns read as Arrow dictionaries straight from Parquet's dictionary pages: no string hashing
        strings = [
            f.name for f in parquet.schema_arrow if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        ]
        parquet = pq.ParquetFile(
            self.path, read_dictionary=[c for c in self.transform.categorical_columns if c in strings]
        )
        columns = self.transform.columns
        for group in groups:
            mask, offset = self.rows.mask(int(group), parquet.metadata.row_group(int(group)).num_rows), 0
            for record_batch in parquet.iter_batches(batch_size=CHUNK_ROWS, row_groups=[int(group)], columns=columns):
                if mask is not None:
                    n_read = record_batch.num_rows
                    record_batch = record_batch.filter(pa.array(mask[offset : offset + n_read]))
                    offset += n_read
                if record_batch.num_rows:
                    yield self.transform(record_batch)


def _chain(first: Iterator[Batch], then) -> Iterator[Batch]:
    yield from first
    yield from then()


def split_loader(
    path: str, rows: RowSplit, preprocessor: Preprocessor, hp: Mapping[str, Any], *, labeled: bool, train: bool,
    check_weights: bool,
) -> StreamingParquetLoader:  # fmt: skip
    """The loader of a split that streams ``rows`` of ``path``, for a data module's arguments ``hp``: shuffled and
    sharded for training; in file order, every row on every rank otherwise. ``labeled``: with labels and, when the
    file has the weight column, weights (validated over the whole file first when ``check_weights``)."""
    weight_column = None
    if labeled and hp["weight_column"] in open_parquet(path).schema_arrow.names:
        weight_column = hp["weight_column"]
        if check_weights:
            parquet_labels(path, hp["target"], weight_column=weight_column)
    target = hp["target"] if labeled else None
    transform = ChunkTransform(preprocessor, target=target, source=path, weight_column=weight_column)
    return StreamingParquetLoader(
        path, transform, batch_size=hp["batch_size"] if train else hp["eval_batch_size"], rows=rows, shuffle=train,
        shuffle_buffer=hp["shuffle_buffer"], seed=hp["seed"], shard=train,
    )  # fmt: skip
