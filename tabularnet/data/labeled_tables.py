"""The labeled tables of a data module in memory: which file each split comes from, reading and cleaning them,
validating the training table, and carving validation and test splits from it where no file is given.

The functions take the data module's arguments (``hp``: ``target``, ``weight_column``, ``na_values``, the split
paths and fractions, ``seed``, ...) and the ``frames`` dict of split -> table they fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tabularnet.data.schema import (
    DataError,
    Schema,
    check_columns,
    check_target,
    check_weighted_classes,
    check_weights,
    drop_missing_targets,
    infer_schema,
    mark_missing,
)
from tabularnet.data.sources import dataset_files, read_table
from tabularnet.data.task import Task, regression_targets

TEACHER_ROW = "__teacher_row__"  # a training row's index into the teacher's logits (survives dropped rows, splits)


def split_paths(hp: Mapping[str, Any]) -> dict[str, str | None]:
    """The file of each split (``None``: none given); a named ``dataset`` fills the training (and test) file."""
    paths = {"train": hp["train_path"], "val": hp["val_path"], "test": hp["test_path"], "predict": hp["predict_path"]}
    if hp["dataset"]:
        files = dataset_files(hp["dataset"], hp["data_dir"])
        paths["train"] = str(files["train"])
        paths["test"] = paths["test"] or (str(files["test"]) if "test" in files else None)
    return paths


def stratified_split(df: pd.DataFrame, fraction: float, *, target: str, seed: int, stratified: bool = True):
    """Split ``df`` into (rest, held-out ``fraction``), stratified by ``target`` where every class allows it
    (``stratified=False``, regression: a plain random split)."""
    if not 0 < fraction < 1:
        raise DataError(f"a split fraction must be in (0, 1), however: {fraction}")
    counts = df[target].value_counts()
    stratify = df[target] if stratified and counts.min() >= 2 else None
    rest, held_out = train_test_split(df, test_size=fraction, random_state=seed, stratify=stratify)
    return rest, held_out


def clean_table(df: pd.DataFrame, hp: Mapping[str, Any], source: str) -> pd.DataFrame:
    """Missing-value tokens to NaN; rows of a labeled table whose label is missing dropped (with a warning)."""
    df = mark_missing(df, hp["na_values"], source=source)
    if hp["target"] in df.columns:
        df = drop_missing_targets(df, hp["target"], source=source)
    return df


def read_split_table(split: str, path: str, hp: Mapping[str, Any]) -> pd.DataFrame:
    """The table of ``split`` read from ``path``: a prediction table as it is; a labeled one with its weights
    validated (when it has the weight column) and cleaned."""
    df = read_table(path)
    if split == "predict":
        return df
    weight_column = hp["weight_column"]
    if weight_column is not None and weight_column in df.columns:  # validation and test rows: weighted if given
        check_weights(df[weight_column], what=f"{path}: weight column {weight_column!r}")
    return clean_table(df, hp, path)


def sample_weights(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """The rows' weights from ``column`` (validated when read), ``None`` without the column. Weights that are all
    1 are no weights: the weighted formulas then equal the plain ones, and the plain ones run."""
    if column is None or column not in frame.columns:
        return None
    weights = pd.to_numeric(frame[column]).to_numpy(dtype=np.float64)
    return None if (weights == 1).all() else weights


def check_training_columns(train: pd.DataFrame, hp: Mapping[str, Any], source: str) -> None:
    """The target (and weight) column are there, and the weights valid: early, before any work."""
    check_columns(train, [hp["target"]], what="target column", source=source)
    weight_column = hp["weight_column"]
    if weight_column is not None:  # validated on the whole file, so an error's row is the file's row
        check_columns(train, [weight_column], what="weight column", source=source)
        check_weights(train[weight_column], what=f"{source}: weight column {weight_column!r}")


def clean_training_table(
    train: pd.DataFrame, hp: Mapping[str, Any], source: str, schema: Schema | None, task: Task = "classification"
) -> tuple[pd.DataFrame, Schema]:
    """The cleaned training table and the column roles (``schema``, inferred here unless given); a regression
    target is validated as numbers (a one-line error naming the first row that is not a finite number)."""
    target, weight_column = hp["target"], hp["weight_column"]
    train = clean_table(train, hp, source)
    check_target(train[target], source=source)
    if task == "regression":
        regression_targets(train[target], source=source, transform=hp.get("target_transform", "none"))
    elif weight_column is not None:
        weights = pd.to_numeric(train[weight_column]).to_numpy(dtype=np.float64)
        check_weighted_classes(train[target], weights, what=f"{source}: weight column {weight_column!r}")
    if schema is None:
        # NOTE: roles are inferred and values validated on the whole table, before any split, so that an
        # error's row number is the row of the user's file.
        features = train.drop(columns=[TEACHER_ROW, weight_column], errors="ignore")
        schema = infer_schema(
            features, target=target, categorical=hp["categorical"], numeric=hp["numeric"], source=source
        )
        if weight_column is not None:  # seen in training, not a feature: prediction tables may have it
            schema.dropped.append(weight_column)
    return train, schema


def carve_splits(
    frames: dict[str, pd.DataFrame],
    train: pd.DataFrame,
    paths: dict[str, str | None],
    hp: Mapping[str, Any],
    task: Task = "classification",
) -> None:
    """Fill ``frames`` with the training, validation and test tables: read from their files, or carved from
    ``train`` (stratified for classification, with the run's seed) by ``test_fraction`` and ``val_fraction``."""
    split = {"target": hp["target"], "seed": hp["seed"], "stratified": task == "classification"}
    if paths["test"] and "test" not in frames:
        frames["test"] = read_split_table("test", paths["test"], hp)
    elif hp["test_fraction"] > 0 and "test" not in frames:
        train, frames["test"] = stratified_split(train, hp["test_fraction"], **split)
    if paths["val"] and "val" not in frames:
        frames["val"] = read_split_table("val", paths["val"], hp)
    elif "val" in frames:
        frames["val"] = clean_table(frames["val"], hp, "validation data")
    elif hp["val_fraction"] > 0:
        train, frames["val"] = stratified_split(train, hp["val_fraction"], **split)
    frames["train"] = train
