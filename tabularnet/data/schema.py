"""Column roles and input validation: every data error a user can cause is raised here, by name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad user input (file, column, option). The CLI prints it as one line and exits with status 2."""


# NOTE: integer columns with at most this many distinct values are treated as categorical codes
# (e.g. 0/1 flags, small enums); wider integer columns are counts and measurements.
MAX_INT_CATEGORIES = 10


@dataclass
class Schema:
    """Column roles of a table. ``numeric`` and ``categorical`` are in table order."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    target: str | None = None

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical), "target": self.target}

    @classmethod
    def from_dict(cls, state: dict) -> Schema:
        return cls(list(state["numeric"]), list(state["categorical"]), state["target"])


def _is_categorical_dtype(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return True
    if pd.api.types.is_integer_dtype(series):
        return series.nunique(dropna=True) <= MAX_INT_CATEGORIES
    return False


def check_columns(df: pd.DataFrame, columns: Sequence[str], *, what: str, source: str) -> None:
    """Raise a DataError listing the ``columns`` that ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        available = ", ".join(map(repr, list(df.columns)[:20]))
        raise DataError(f"{source}: {what} {', '.join(map(repr, missing))} not found (columns: {available})")


def infer_schema(
    df: pd.DataFrame,
    *,
    target: str | None,
    categorical: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    source: str = "table",
) -> Schema:
    """Assign each column of ``df`` a role.

    Args:
        df: the training table.
        target: name of the label column (``None`` for a table of features only).
        categorical: columns forced to be categorical; the rest are inferred.
        numeric: columns forced to be numeric; the rest are inferred.
        source: the file or object name used in error messages.
    """
    if df.columns.duplicated().any():
        dupes = sorted(set(map(str, df.columns[df.columns.duplicated()])))
        raise DataError(f"{source}: duplicate column names: {', '.join(map(repr, dupes))}")
    if target is not None:
        check_columns(df, [target], what="target column", source=source)
    categorical, numeric = list(categorical or []), list(numeric or [])
    check_columns(df, categorical, what="categorical column", source=source)
    check_columns(df, numeric, what="numeric column", source=source)
    both = sorted(set(categorical) & set(numeric))
    if both:
        raise DataError(f"{source}: column(s) {', '.join(map(repr, both))} declared both numeric and categorical")
    schema = Schema(target=target)
    for name in df.columns:
        if name == target:
            continue
        if name in numeric:
            check_numeric(df[name], name=name, source=source)
            schema.numeric.append(name)
        elif name in categorical or _is_categorical_dtype(df[name]):
            schema.categorical.append(name)
        else:
            schema.numeric.append(name)
    if not schema.features:
        raise DataError(f"{source}: no feature columns besides the target {target!r}")
    return schema


def check_numeric(series: pd.Series, *, name: str, source: str) -> np.ndarray:
    """Return ``series`` as float64, or raise naming the first value that is not a number."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & series.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: column {name!r} has non-numeric values (first: {series.iloc[row]!r} at row {row})")
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise DataError(f"{source}: column {name!r} has an infinite value at row {row}")
    return values


def check_target(y: pd.Series, *, source: str) -> pd.Series:
    """Validate a training target: no missing labels, at least two classes."""
    if y.isna().any():
        row = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise DataError(
            f"{source}: target column {y.name!r} has {int(y.isna().sum())} missing labels (first at row {row})"
        )
    if y.nunique() < 2:
        raise DataError(f"{source}: target column {y.name!r} has only one class ({y.iloc[0]!r}); need at least two")
    return y
