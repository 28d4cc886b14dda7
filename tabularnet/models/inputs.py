"""What the estimators accept, checked and converted: X as a DataFrame, teacher probabilities as logits, sample
weights, the training device (scikit-learn's conventions; its own helpers for some of these are private)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_array

from tabularnet.data.schema import DataError, check_weighted_classes, check_weights
from tabularnet.data.teacher import as_logits


def as_frame(X, feature_names: Optional[list[str]] = None) -> pd.DataFrame:
    """X (DataFrame, ndarray, list of lists, pyarrow table) as a DataFrame with string column names.

    Arrays go through scikit-learn's ``check_array`` (2-D, non-empty, not sparse, not complex; NaN allowed).
    """
    if hasattr(X, "to_pandas") and not isinstance(X, pd.DataFrame):  # pyarrow Table, polars DataFrame
        X = X.to_pandas()
    if isinstance(X, pd.DataFrame):
        return X.rename(columns=str) if not all(isinstance(c, str) for c in X.columns) else X
    array = check_array(X, dtype=object if _has_strings(X) else "numeric", ensure_all_finite="allow-nan")
    columns = feature_names if feature_names and len(feature_names) == array.shape[1] else None
    return pd.DataFrame(array, columns=columns or [f"x{i}" for i in range(array.shape[1])]).infer_objects()


def _has_strings(X) -> bool:
    try:
        return np.asarray(X).dtype.kind in "OUS"
    except ValueError:
        return True


def teacher_logits_from(teacher_probs, n_rows: int, n_classes: int) -> torch.Tensor:
    """``teacher_probs`` (probabilities or logits, see :func:`~tabularnet.data.teacher.as_logits`) as logits."""
    values = np.asarray(teacher_probs, dtype=np.float64)
    if values.shape != (n_rows, n_classes):
        raise DataError(
            f"teacher_probs must have shape {(n_rows, n_classes)} (rows x classes), however: {values.shape}"
        )
    return torch.as_tensor(as_logits(values), dtype=torch.float32)


def check_sample_weight(sample_weight, y: np.ndarray, *, classes: bool = True) -> np.ndarray | None:
    """``sample_weight`` as float64, one per row of ``y``: 1-D, finite, non-negative, not all zero, and (``classes``)
    positive on rows of at least two classes (scikit-learn's rules, checked here: its own helper is private)."""
    if sample_weight is None:
        return None
    values = np.asarray(sample_weight)
    if values.ndim != 1:
        raise DataError(f"sample_weight must be 1-D (one weight per row), however: its shape is {values.shape}")
    if len(values) != len(y):
        raise DataError(f"sample_weight has {len(values)} weights but X has {len(y)} rows")
    weights = check_weights(values, what="sample_weight")
    if classes:
        check_weighted_classes(y, weights, what="sample_weight")
    return weights


def training_device(spec) -> torch.device:
    """``training['device']``: ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'`` or ``'auto'`` (CUDA when present)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"training.device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', however: {spec!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"training.device={spec!r}, but this torch build sees no CUDA device (use 'cpu' or 'auto')")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"training.device={spec!r}, but MPS is not available here (use 'cpu' or 'auto')")
    return device
