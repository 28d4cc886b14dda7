"""Which rows of which Parquet file each split streams (tables larger than memory), decided without reading them.

Rows are assigned to the train/val/test splits from the file's metadata only: row ``i`` of row group ``g`` draws
``u`` from a generator seeded with ``(seed, g)`` and falls in a split by the interval ``u`` lies in
(:class:`RowSplit`), so every pass over the file, in any order, agrees on the split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tabularnet.data.schema import DataError
from tabularnet.data.sources import PARQUET_SUFFIXES


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


EVERY_ROW = RowSplit()  # the whole file (frozen: a safe default argument)


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


def streamed_splits(
    paths: dict[str, str | None], hp: Mapping[str, Any], *, fitting: bool
) -> dict[str, tuple[str, RowSplit]]:
    """:func:`plan_streams` for a data module's arguments ``hp``; never automatic with a teacher or
    ``device_resident`` (their tables live in memory)."""
    in_memory = hp["teacher"] is not None or hp["teacher_logits_path"] is not None or hp["device_resident"]
    return plan_streams(
        paths,
        streaming=False if in_memory else hp["streaming"],
        threshold_rows=hp["streaming_threshold_rows"],
        fitting=fitting,
        seed=hp["seed"],
        val_fraction=hp["val_fraction"],
        test_fraction=hp["test_fraction"],
    )


def check_streaming_options(hp: Mapping[str, Any]) -> None:
    """The data module's streaming options agree with each other (one-line DataErrors)."""
    if hp["streaming"] and hp["device_resident"]:
        raise DataError("data.device_resident needs the table in memory: it cannot be combined with data.streaming")
    if hp["streaming"] and (hp["teacher"] is not None or hp["teacher_logits_path"] is not None):
        raise DataError("data.streaming does not support distillation: unset data.teacher/data.teacher_logits_path")
    for name in ("shuffle_buffer", "sample_rows"):
        if hp[name] < 1:
            raise DataError(f"data.{name} must be positive, however: {name}={hp[name]}")
