"""Fitting the preprocessing on a Parquet table larger than memory: a uniform random sample of its rows for the
statistics, a scan of its target column for the label classes and their counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tabularnet.data.preprocessing import Preprocessor
from tabularnet.data.schema import DataError, check_weighted_classes, check_weights, infer_schema, mark_missing
from tabularnet.data.streaming_plan import EVERY_ROW, RowSplit, open_parquet, row_group_sizes
from tabularnet.data.task import decide_task

# Seeds the preprocessing sample's generator apart from the split and shuffle generators of the same seed.
SAMPLE_STREAM = 7919


def sample_parquet(path: str | Path, n_rows: int, *, rows: RowSplit = EVERY_ROW, seed: int = 0) -> pd.DataFrame:
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
    path: str | Path,
    target: str,
    rows: RowSplit = EVERY_ROW,
    weight_column: str | None = None,
    *,
    count_labels: bool = True,
) -> tuple[np.ndarray, list] | None:
    """The sorted distinct labels of ``target`` over the whole file, and how many of ``rows`` have each, reading
    only that column. A missing label is a DataError naming its row.

    ``weight_column``: the file must have it; its values are validated over the whole file (errors name the file's
    row) and the counts are the labels' total weights over ``rows``. ``count_labels=False`` (regression): only the
    checks (missing targets, weights); returns ``None``.
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
        if not count_labels:
            if weight_column is not None:
                check_weights(
                    table.column(weight_column).to_pandas(), what=what, first_row=offset, require_positive=False
                )
            offset += len(column)
            continue
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
    if not count_labels:
        return None
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
    task: str = "classification",
    target_transform: str = "none",
) -> Preprocessor:
    """Fit ``preprocessor`` on a uniform sample of at most ``sample_rows`` training rows of ``path``; the label
    classes and the training rows per class (total weights per class with ``weight_column``) come from a scan of
    the whole target column. With ``weight_column`` the sample's statistics are weighted by it. ``task``:
    ``auto`` is decided from the sample's target; a regression target's scaling is fitted on the sample."""
    sample = mark_missing(sample_parquet(path, sample_rows, rows=rows, seed=seed), preprocessor.na_values, source=path)
    if target in sample.columns:
        task = decide_task(sample[target].dropna(), task, source=path)
    regression = task == "regression"
    # the scan also validates the weights and the missing targets of the whole file
    labels = parquet_labels(path, target, rows, weight_column, count_labels=not regression)
    classes, class_counts = labels if labels is not None else (None, None)
    features = sample.drop(columns=[weight_column] if weight_column else [])
    schema = infer_schema(features, target=target, categorical=categorical, numeric=numeric, source=path)
    weights = None
    if weight_column is not None:
        schema.dropped.append(weight_column)  # not a feature; prediction tables may have it
        weights = pd.to_numeric(sample[weight_column]).to_numpy(dtype=np.float64)
        if not (weights > 0).any():
            weights = None  # a sample without a positive weight: fit it unweighted rather than not at all
    preprocessor.fit(
        sample, schema, classes=classes, source=path, sample_weight=weights, task=task,
        target_transform=target_transform,
    )  # fmt: skip
    preprocessor.state["class_counts"] = class_counts  # the whole training split's, not the sample's
    return preprocessor
