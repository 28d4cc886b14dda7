"""Column roles and input validation: every data error a user can cause is raised here, by name."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad user input (file, column, option). The CLI prints it as one line and exits with status 2."""


def check_known_keys(spec: dict, known, option: str) -> None:
    """Raise a DataError naming ``option`` and the keys of ``spec`` that are not in ``known`` (all option dicts)."""
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise DataError(f"{option}: unknown key(s) {unknown} (known: {sorted(known)})")


class DataWarning(UserWarning):
    """Input that tabularnet repaired (rows or columns dropped, columns ignored). The CLI prints it as one line."""


# NOTE: integer columns with at most this many distinct values are treated as categorical codes
# (e.g. 0/1 flags, small enums); wider integer columns are counts and measurements.
MAX_INT_CATEGORIES = 10
# Text that means "missing" in the tables people export (spreadsheets, R, SQL dumps); empty fields always are.
DEFAULT_NA_VALUES = ("?", "n/a", "N/A", "NA", "NaN", "nan", "null", "NULL", "None")
# NOTE: a text column whose non-missing values are at least this share numbers is a numeric column with
# stray text (a typo, an undeclared missing token), not a categorical column: an error names the first stray.
NUMERIC_SHARE = 0.9


def warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


class DataNote(DataWarning):
    """What tabularnet decided about the data for the user (the task, say): one line, not a problem."""


def note(message: str) -> None:
    warnings.warn(message, DataNote, stacklevel=3)


@dataclass
class Schema:
    """Column roles of a table. ``numeric`` and ``categorical`` are in table order."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    target: str | None = None
    dropped: list[str] = field(default_factory=list)  # columns seen in training but not used (all missing...)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "target": self.target,
            "dropped": list(self.dropped),
        }

    @classmethod
    def from_dict(cls, state: dict) -> Schema:
        return cls(list(state["numeric"]), list(state["categorical"]), state["target"], list(state.get("dropped", [])))


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
    check_unique_columns(df.columns, source=source)
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
        if len(df) and df[name].isna().all():
            warn(f"{source}: column {name!r} has no values (all missing); it is not used")
            schema.dropped.append(name)
        elif name in numeric:
            check_numeric(df[name], name=name, source=source)
            schema.numeric.append(name)
        elif name in categorical or _is_categorical_dtype(df[name]):
            if name not in categorical:
                check_not_mostly_numeric(df[name], name=name, source=source)
            schema.categorical.append(name)
        else:
            check_numeric(df[name], name=name, source=source)  # infinities
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
    """Validate a training target: some rows, no missing labels, at least two classes."""
    if y.empty:
        raise DataError(f"{source}: the table has no rows")
    if y.isna().any():
        row = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise DataError(
            f"{source}: target column {y.name!r} has {int(y.isna().sum())} missing labels (first at row {row})"
        )
    if y.nunique() < 2:
        raise DataError(
            f"{source}: target column {y.name!r} has only one class (value {y.iloc[0]!r}); need at least two"
        )
    return y


def check_weights(values, *, what: str, first_row: int = 0, require_positive: bool = True) -> np.ndarray:
    """Sample weights as float64: one number per row, finite, non-negative and not all zero; else a DataError that
    starts with ``what`` (``"sample_weight"``, ``"train.csv: weight column 'w'"``) and names the first bad row
    (counted from ``first_row``: a chunk's offset in its file). ``require_positive=False``: all zeros allowed (a
    chunk of a file, whose total the caller checks)."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object).ravel())
    if pd.api.types.is_bool_dtype(series):
        numbers = series.to_numpy(dtype=np.float64)
    else:
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    present = series.notna().to_numpy()
    checks = [
        (np.isnan(numbers) & present, "a non-numeric value"),
        (~present, "a missing value"),
        (np.isinf(numbers), "a non-finite value"),
        (numbers < 0, "a negative value"),
    ]
    for bad, what_is_wrong in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = {"a missing value": "", "a non-numeric value": f" {series.iloc[row]!r}"}.get(
                what_is_wrong, f" {float(numbers[row])!r}"
            )
            raise DataError(
                f"{what} has {what_is_wrong}{shown} at row {first_row + row}; weights must be finite numbers >= 0"
            )
    if require_positive and len(numbers) and not (numbers > 0).any():
        raise DataError(f"{what}: all weights are zero; at least one row needs a positive weight")
    return numbers


def check_weighted_classes(y, weight: np.ndarray, *, what: str) -> None:
    """Raise unless rows of positive weight cover at least two classes (weight 0 is a row left out)."""
    labels = pd.unique(np.asarray(y, dtype=object)[np.asarray(weight) > 0])
    if len(labels) < 2:
        raise DataError(
            f"{what}: only one class has rows of positive weight ({labels[0]!r}); need at least two classes"
        )


def check_unique_columns(columns: Sequence, *, source: str) -> None:
    """Raise naming the column names that occur more than once."""
    seen, dupes = set(), []
    for name in map(str, columns):
        if name in seen and name not in dupes:
            dupes.append(name)
        seen.add(name)
    if dupes:
        raise DataError(f"{source}: duplicate column names: {', '.join(map(repr, dupes))}")


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def _token_mask(series: pd.Series, tokens: set[str]) -> np.ndarray:
    if isinstance(series.dtype, pd.StringDtype):  # pandas' text dtype: vectorized
        return series.str.strip().isin(tokens).to_numpy(dtype=bool)
    return series.map(lambda v: isinstance(v, str) and v.strip() in tokens).to_numpy(dtype=bool)


def mark_missing(df: pd.DataFrame, na_values: Sequence[str], *, source: str = "table") -> pd.DataFrame:
    """``df`` with the ``na_values`` tokens (compared after stripping spaces) in text columns replaced by NaN.

    A text column that holds only numbers once its tokens are gone becomes a float column, as if the file had
    left those fields empty. Returns ``df`` itself when nothing changes.
    """
    check_unique_columns(df.columns, source=source)
    tokens = {str(t).strip() for t in na_values}
    changed = {}
    for name in df.columns:
        series = df[name]
        if not tokens or not _is_text(series) or series.empty:
            continue
        is_token = _token_mask(series, tokens)
        if not is_token.any():
            continue
        cleaned = series.astype(object).where(~is_token, np.nan)
        numbers = pd.to_numeric(cleaned, errors="coerce")
        all_numbers = numbers.notna().sum() == cleaned.notna().sum()
        changed[name] = numbers.astype(np.float64) if all_numbers else cleaned
    for name in df.columns:  # Python numbers in an object column (built by hand, or mixed with tokens above)
        series = changed.get(name, df[name])
        if pd.api.types.is_object_dtype(series):
            inferred = series.infer_objects()
            if inferred.dtype != series.dtype:
                changed[name] = inferred
    return df.assign(**changed) if changed else df


def check_not_mostly_numeric(series: pd.Series, *, name: str, source: str) -> None:
    """A text column of numbers with a few stray strings is a numeric column with bad values: raise naming the
    first one (the user declares it missing with ``na_values`` or the column ``categorical``)."""
    if not _is_text(series):
        return
    present = series.notna().to_numpy()
    numbers = pd.to_numeric(series.astype(object), errors="coerce").notna().to_numpy()
    n_present = int(present.sum())
    n_numbers = int((numbers & present).sum())
    if n_present and n_numbers < n_present and n_numbers >= NUMERIC_SHARE * n_present:
        row = int(np.flatnonzero(present & ~numbers)[0])
        raise DataError(
            f"{source}: column {name!r} has non-numeric values (first: {series.iloc[row]!r} at row {row}); "
            "add the value to na_values if it means missing, or list the column in categorical"
        )


def drop_missing_targets(df: pd.DataFrame, target: str, *, source: str) -> pd.DataFrame:
    """``df`` without the rows whose label is missing (with a warning); an error when every label is missing."""
    missing = df[target].isna().to_numpy()
    if not missing.any():
        return df
    if missing.all():
        raise DataError(f"{source}: target column {target!r} has no labels (all {len(df)} are missing)")
    row = int(np.flatnonzero(missing)[0])
    warn(f"{source}: dropped {int(missing.sum())} rows whose target {target!r} is missing (first at row {row})")
    return df.loc[~missing]
