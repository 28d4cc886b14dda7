"""Parquet tables larger than memory: row groups streamed through a shuffle buffer, preprocessing fitted on a sample.

Memory is bounded by the shuffle buffer, one row group being decoded, and the preprocessing sample; it does not
grow with the file. Rows are assigned to the train/val/test splits without reading the file: row ``i`` of row
group ``g`` draws ``u`` from a generator seeded with ``(seed, g)`` and falls in a split by the interval ``u`` lies in
(:class:`RowSplit`), so every pass over the file, in any order, agrees on the split.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from tabularnet.data.loader import Batch, _rank_and_world_size
from tabularnet.data.preprocessing import MISSING_ID, Preprocessor
from tabularnet.data.schema import (
    DataError,
    check_columns,
    check_weighted_classes,
    check_weights,
    infer_schema,
    mark_missing,
)
from tabularnet.data.sources import PARQUET_SUFFIXES

# NOTE: rows decoded per read: large enough for Arrow's vectorized decoding, small next to the shuffle buffer.
CHUNK_ROWS = 65_536
# Seeds the preprocessing sample's generator apart from the split and shuffle generators of the same seed.
SAMPLE_STREAM = 7919


def is_parquet(path: str | Path | None) -> bool:
    return path is not None and str(path).lower().endswith(PARQUET_SUFFIXES)


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """Open ``path`` for row-group reads; a missing or unreadable file is a one-line DataError."""
    if not Path(path).is_file():
        raise DataError(f"file not found: {path}")
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for files that are not Parquet
        raise DataError(f"{path}: cannot read the file ({type(err).__name__}: {str(err).splitlines()[0]})") from None


def row_group_sizes(parquet: pq.ParquetFile) -> np.ndarray:
    metadata = parquet.metadata
    return np.array([metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)], dtype=np.int64)


@dataclass(frozen=True)
class RowSplit:
    """The rows of a file whose seeded uniform draw ``u`` lies in ``[low, high)``: a random split, streamed.

    ``RowSplit()`` is every row. The draw of a row depends only on ``seed``, its row group and its position in
    it, so the training, validation and test streams of one file are disjoint and together cover it.
    """

    seed: int = 0
    low: float = 0.0
    high: float = 1.0

    @property
    def everything(self) -> bool:
        return self.low <= 0.0 and self.high >= 1.0

    def mask(self, row_group: int, n_rows: int) -> np.ndarray | None:
        """Boolean mask of the selected rows of ``row_group`` (``None``: all of them)."""
        if self.everything:
            return None
        u = np.random.default_rng([self.seed, row_group]).random(n_rows)
        return (u >= self.low) & (u < self.high)

    def counts(self, sizes: np.ndarray) -> np.ndarray:
        """Selected rows per row group."""
        if self.everything:
            return sizes.copy()
        return np.array([self.mask(g, int(n)).sum() for g, n in enumerate(sizes)], dtype=np.int64)


def split_intervals(seed: int, *, val_fraction: float, test_fraction: float) -> dict[str, RowSplit]:
    """Train/val/test :class:`RowSplit` of one file: test takes ``[0, t)``, val ``[t, t + v)``, train the rest."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise DataError(
            f"data.val_fraction + data.test_fraction must be in [0, 1), however: {val_fraction} + {test_fraction}"
        )
    splits = {"train": RowSplit(seed, val_fraction + test_fraction, 1.0)}
    if test_fraction > 0:
        splits["test"] = RowSplit(seed, 0.0, test_fraction)
    if val_fraction > 0:
        splits["val"] = RowSplit(seed, test_fraction, test_fraction + val_fraction)
    return splits


# ------------------------------------------------------------------------------------------------ fitting
def sample_parquet(path: str | Path, n_rows: int, *, rows: RowSplit = RowSplit(), seed: int = 0) -> pd.DataFrame:
    """A uniform random sample of at most ``n_rows`` of the ``rows`` of ``path``, spread over all row groups.

    The number of rows drawn from each row group is multivariate-hypergeometric (a uniform sample without
    replacement of the whole file), then the rows outside ``rows`` are dropped; one row group is decoded at a time.
    """
    parquet = open_parquet(path)
    sizes = row_group_sizes(parquet)
    rng = np.random.default_rng([seed, SAMPLE_STREAM])
    draws = sizes if sizes.sum() <= n_rows else rng.multivariate_hypergeometric(sizes, n_rows)
    tables = []
    for group in np.flatnonzero(draws):
        positions = np.sort(rng.choice(int(sizes[group]), int(draws[group]), replace=False))
        mask = rows.mask(int(group), int(sizes[group]))
        if mask is not None:
            positions = positions[mask[positions]]
        tables.append(parquet.read_row_group(int(group)).take(pa.array(positions)))
    if not tables:
        return parquet.schema_arrow.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


def parquet_labels(
    path: str | Path, target: str, rows: RowSplit = RowSplit(), weight_column: str | None = None
) -> tuple[np.ndarray, list]:
    """The sorted distinct labels of ``target`` over the whole file, and how many of ``rows`` have each, reading
    only that column. A missing label is a DataError naming its row.

    ``weight_column``: the file must have it; its values are validated over the whole file (errors name the file's
    row) and the counts are the labels' total weights over ``rows``.
    """
    parquet = open_parquet(path)
    names = parquet.schema_arrow.names
    if target not in names:
        available = ", ".join(map(repr, names[:20]))
        raise DataError(f"{path}: target column {target!r} not found (columns: {available})")
    if weight_column is not None and weight_column not in names:
        available = ", ".join(map(repr, names[:20]))
        raise DataError(f"{path}: weight column {weight_column!r} not found (columns: {available})")
    counts, offset = {}, 0
    what = f"{path}: weight column {weight_column!r}"
    for group in range(parquet.metadata.num_row_groups):
        table = parquet.read_row_group(group, columns=[target] + ([weight_column] if weight_column else []))
        column = table.column(target)
        if column.null_count:
            row = offset + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}: target column {target!r} has missing labels (first at row {row})")
        for label in pc.unique(column).to_pylist():
            counts.setdefault(label, 0)
        mask = rows.mask(group, len(column))
        if weight_column is None:
            selected = column if mask is None else column.filter(pa.array(mask))
            for item in pc.value_counts(selected).to_pylist():
                counts[item["values"]] += item["counts"]
        else:
            weights = check_weights(
                table.column(weight_column).to_pandas(), what=what, first_row=offset, require_positive=False
            )
            labels = column.to_pandas()
            if mask is not None:
                labels, weights = labels[mask], weights[mask]
            for label, total in pd.Series(weights, index=labels.to_numpy()).groupby(level=0).sum().items():
                counts[label] += float(total)
        offset += len(column)
    if len(counts) < 2:
        raise DataError(f"{path}: target column {target!r} has only one class ({next(iter(counts), None)!r})")
    labels = sorted(counts)
    if weight_column is not None:
        totals = np.array([counts[c] for c in labels], dtype=np.float64)
        if not (totals > 0).any():
            raise DataError(f"{what}: all weights are zero; at least one row needs a positive weight")
        check_weighted_classes(np.asarray(labels, dtype=object), totals, what=what)
    return np.array(labels, dtype=object if any(isinstance(v, str) for v in labels) else None), [
        counts[c] for c in labels
    ]


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
        self.classes = pd.Index(preprocessor.classes) if target is not None else None
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
        rows: RowSplit = RowSplit(),
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
        rank, world_size = _rank_and_world_size() if self.shard else (0, 1)
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


# ------------------------------------------------------------------------------------- data-module glue
def wants_streaming(path: str | None, streaming: bool | None, threshold_rows: int) -> bool:
    """Whether ``path`` is streamed: a Parquet file, and ``streaming`` true, or ``None`` with more rows than
    ``threshold_rows`` (read from the file's metadata)."""
    if streaming is False or not is_parquet(path):
        return False
    return bool(streaming) or (Path(path).is_file() and open_parquet(path).metadata.num_rows > threshold_rows)


def plan_streams(
    paths: dict[str, str | None],
    *,
    streaming: bool | None,
    threshold_rows: int,
    fitting: bool,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> dict[str, tuple[str, RowSplit]]:
    """The splits that stream, as ``split -> (file, rows)``.

    When the training file streams (only while ``fitting``), the validation and test splits without a file of
    their own are carved from it by :class:`RowSplit` (random, not stratified). Any split with its own file
    streams when :func:`wants_streaming` says so; the others are read into memory as usual.
    """
    plan = {}
    train = paths["train"]
    if fitting and streaming and not is_parquet(train):
        raise DataError(f"data.streaming needs a Parquet data.train_path, however: {train or 'no training file'}")
    if fitting and wants_streaming(train, streaming, threshold_rows):
        fractions = {"val": val_fraction, "test": test_fraction}
        carved = {split: 0.0 if paths[split] else fraction for split, fraction in fractions.items()}
        for split, rows in split_intervals(seed, val_fraction=carved["val"], test_fraction=carved["test"]).items():
            plan[split] = (train, rows)
    for split in ("val", "test", "predict"):
        if paths[split] and wants_streaming(paths[split], streaming, threshold_rows):
            plan[split] = (paths[split], RowSplit())
    return plan


def fit_on_sample(
    preprocessor: Preprocessor,
    path: str,
    rows: RowSplit,
    *,
    target: str,
    sample_rows: int,
    seed: int,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    weight_column: str | None = None,
) -> Preprocessor:
    """Fit ``preprocessor`` on a uniform sample of at most ``sample_rows`` training rows of ``path``; the label
    classes and the training rows per class (total weights per class with ``weight_column``) come from a scan of
    the whole target column. With ``weight_column`` the sample's statistics are weighted by it."""
    classes, class_counts = parquet_labels(path, target, rows, weight_column)  # also validates the weights
    sample = mark_missing(sample_parquet(path, sample_rows, rows=rows, seed=seed), preprocessor.na_values, source=path)
    features = sample.drop(columns=[weight_column] if weight_column else [])
    schema = infer_schema(features, target=target, categorical=categorical, numeric=numeric, source=path)
    weights = None
    if weight_column is not None:
        schema.dropped.append(weight_column)  # not a feature; prediction tables may have it
        weights = pd.to_numeric(sample[weight_column]).to_numpy(dtype=np.float64)
        if not (weights > 0).any():
            weights = None  # a sample without a positive weight: fit it unweighted rather than not at all
    preprocessor.fit(sample, schema, classes=classes, source=path, sample_weight=weights)
    preprocessor.state["class_counts"] = class_counts  # the whole training split's, not the sample's
    return preprocessor
