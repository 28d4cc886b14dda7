"""The learning task of a table -- classification or regression -- and the regression target's scaling.

Torch-free (numpy and pandas only): the data module, the estimators and the torch-free serving path share it.

A regression target is modelled on a standard scale: ``z = (f(y) - mean) / std`` with ``f`` the identity or
``log1p`` (``target_transform``), ``mean`` and ``std`` those of ``f(y)`` on the training split (weighted by the
sample weights when given). Predictions come back as ``f^{-1}(z * std + mean)``: in the target's original units.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from tabularnet.data.schema import DataError, note

Task = Literal["classification", "regression"]
TaskArg = Literal["auto", "classification", "regression"]
TargetTransform = Literal["none", "log1p"]
TASKS = ("auto", "classification", "regression")
TARGET_TRANSFORMS = ("none", "log1p")
MAX_AUTO_CLASSES = 30  # ``task: auto``: a numeric target with more distinct values than this is regression


def check_task_options(task: str, target_transform: str) -> None:
    if task not in TASKS:
        raise DataError(f"data.task must be 'auto', 'classification' or 'regression', however: task={task!r}")
    if target_transform not in TARGET_TRANSFORMS:
        raise DataError(f"data.target_transform must be 'none' or 'log1p', however: {target_transform!r}")
    if target_transform != "none" and task == "classification":
        raise DataError(f"data.target_transform={target_transform!r} is for regression, however: task=classification")


def decide_task(y: pd.Series, task: str, *, source: str) -> Task:
    """``task`` itself unless ``auto``; ``auto`` decides from the target and says what it decided in one line.

    Text, booleans and categoricals are classification. A numeric target with more than ``MAX_AUTO_CLASSES``
    distinct values is regression; one with fewer is ambiguous (class ids or a small count?): ``auto`` picks
    classification, and the line says how to override it."""
    if task != "auto":
        return task  # type: ignore[return-value]
    name = y.name
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if not numeric:
        note(f"{source}: target {name!r} holds labels, so the task is classification")
        return "classification"
    distinct = int(y.nunique())
    if distinct > MAX_AUTO_CLASSES:
        note(
            f"{source}: target {name!r} is numeric with {distinct} distinct values, so the task is regression "
            "(override with --data.task classification)"
        )
        return "regression"
    note(
        f"{source}: target {name!r} is numeric with only {distinct} distinct values, so the task is classification "
        "(override with --data.task regression)"
    )
    return "classification"


def regression_targets(y, *, source: str, name: str | None = None, transform: str = "none") -> np.ndarray:
    """``y`` as float64 numbers, or a one-line error naming the first row that is not a finite number (or, with
    ``log1p``, a negative one: the transform is for non-negative targets). The one check of a regression target:
    the data module, the estimators, the XGBoost regressor and the teacher's cross-fitting all call it."""
    raw = y.to_numpy() if isinstance(y, pd.Series) else np.asarray(y)
    label = repr(name if name is not None else getattr(y, "name", None) or "y")
    what = f"{source}: regression target {label}"
    series = None if raw.dtype.kind in "biuf" else pd.Series(raw.ravel(), dtype=object)
    if raw.dtype.kind == "b" or (series is not None and pd.api.types.is_bool_dtype(series.infer_objects())):
        raise DataError(f"{what} holds booleans; use data.task classification")
    if series is None:  # numbers already: only missing and infinite values to find
        values = raw.astype(np.float64).ravel()
        missing, non_numeric = np.isnan(values), np.zeros(len(values), dtype=bool)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        missing = series.isna().to_numpy()
        non_numeric = np.isnan(values) & ~missing
    if missing.any():
        raise DataError(f"{what} has a missing value at row {int(np.flatnonzero(missing)[0])}")
    if non_numeric.any():
        row = int(np.flatnonzero(non_numeric)[0])
        raise DataError(f"{what} has a non-numeric value {raw.ravel()[row]!r} at row {row}")
    if np.isinf(values).any():
        raise DataError(f"{what} has an infinite value at row {int(np.flatnonzero(np.isinf(values))[0])}")
    if transform == "log1p" and (values < 0).any():
        row = int(np.flatnonzero(values < 0)[0])
        raise DataError(
            f"{source}: target_transform log1p needs non-negative targets, however: {label} is {values[row]} "
            f"at row {row}"
        )
    return values


def fit_target_scaling(values: np.ndarray, transform: str = "none", sample_weight=None) -> dict:
    """``{"transform", "mean", "std"}`` of ``f(values)`` (weighted mean and standard deviation with weights)."""
    f = np.log1p(values) if transform == "log1p" else values
    weight = np.ones_like(f) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    mean = float(np.sum(weight * f) / np.sum(weight))
    std = float(np.sqrt(np.sum(weight * (f - mean) ** 2) / np.sum(weight)))
    return {"transform": transform, "mean": mean, "std": std if std > 0 else 1.0}


def scale_target(values, scaling: dict):
    """Original units to the model's standard scale (numpy arrays or torch tensors alike)."""
    f = _log1p(values) if scaling["transform"] == "log1p" else values
    return (f - scaling["mean"]) / scaling["std"]


def unscale_target(z, scaling: dict):
    """The model's standard scale back to original units (numpy arrays or torch tensors alike)."""
    f = z * scaling["std"] + scaling["mean"]
    return _expm1(f) if scaling["transform"] == "log1p" else f


def _log1p(x):
    return x.log1p() if hasattr(x, "log1p") else np.log1p(x)


def _expm1(x):
    return x.expm1() if hasattr(x, "expm1") else np.expm1(x)
