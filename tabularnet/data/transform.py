"""Applying fitted preprocessing to a table: numpy and pandas only, no torch.

This is everything prediction needs from the data side (the fitted state is a plain dict: column roles, scaling
statistics, category vocabularies, class labels), shared by training (:class:`~tabularnet.data.preprocessing.
Preprocessor` wraps it in tensors) and by the torch-free predictor of exported models (:mod:`tabularnet.serving`).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from tabularnet.data.schema import Schema, check_columns, check_numeric, mark_missing, warn

# Reserved categorical ids: every categorical column maps missing values to 0 and categories never seen
# in training (or seen fewer than ``min_frequency`` times) to 1, so the embedding tables have
# ``n_categories + 2`` rows.
MISSING_ID, UNKNOWN_ID, N_RESERVED = 0, 1, 2


def factorized_strings(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, strings)``: ``strings[codes[i]]`` is row ``i``'s category string, ``codes[i] == -1`` if missing.

    The string rules run once per distinct value (``pd.factorize`` hashes the column in C), so a million-row
    column with a few dozen categories costs a few milliseconds.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    values = np.asarray(uniques)
    if pd.api.types.is_bool_dtype(series):
        strings = values.astype(str).astype(object)
    elif pd.api.types.is_numeric_dtype(series):
        floats = values.astype(np.float64)
        whole = np.isfinite(floats) & (floats == np.round(floats))
        strings = values.astype(str).astype(object)  # the column's own precision: float32 0.1 -> "0.1"
        strings[whole] = floats[whole].astype(np.int64).astype(str)
    else:
        strings = np.array([_category_string(v) for v in values], dtype=object)
    return codes, strings


def hash_codes(series: pd.Series, n_buckets: int) -> np.ndarray:
    """Category ids ``N_RESERVED .. N_RESERVED + n_buckets - 1`` from a hash of each value's category string
    (missing -> MISSING_ID). CRC-32 of the UTF-8 bytes: the same id in every process, unlike Python's salted
    ``hash()`` of a string."""
    codes, strings = factorized_strings(series)
    unique_ids = [zlib.crc32(s.encode("utf-8")) % n_buckets + N_RESERVED for s in strings]
    return np.array([*unique_ids, MISSING_ID], dtype=np.int64)[codes]  # code -1 (missing): the last entry


def category_strings(series: pd.Series) -> pd.Series:
    """Category values as strings, stable across files: 3, 3.0 and "3" all become "3"; missing stays NaN."""
    codes, strings = factorized_strings(series)
    return pd.Series(np.append(strings, np.nan).astype(object)[codes], index=series.index)


def _category_string(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def encode_categories(series: pd.Series, categories: list[str]) -> np.ndarray:
    """Ids of ``series``' values in the vocabulary ``categories`` (missing -> MISSING_ID, others -> UNKNOWN_ID)."""
    codes, strings = factorized_strings(series)
    ids = {category: i + N_RESERVED for i, category in enumerate(categories)}
    unique_ids = [ids.get(s, UNKNOWN_ID) for s in strings]  # a value not among the categories: unknown
    return np.array([*unique_ids, MISSING_ID], dtype=np.int64)[codes]  # code -1 (missing): the last entry


# Wichura's algorithm AS 241 (PPND16): the standard normal quantile to about 1e-16 relative error.
_A = [3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125,
      45921.953931549871457, 67265.770927008700853, 33430.575583588128105, 2509.0809287301226727]  # fmt: skip
_B = [1.0, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077, 21213.794301586595867,
      39307.89580009271061, 28729.085735721942674, 5226.495278852545925]  # fmt: skip
_C = [1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504,
      1.27045825245236838258, 0.24178072517745061177, 0.0227238449892691845833, 7.7454501427834140764e-4]  # fmt: skip
_D = [1.0, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455, 0.14810397642748007459,
      0.0151986665636164571966, 5.475938084995344946e-4, 1.05075007164441684324e-9]  # fmt: skip
_E = [6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, 0.29656057182850489123,
      0.026532189526576123093,
      0.0012426609473880784386, 2.71155556874348757815e-5, 2.01033439929228813265e-7]  # fmt: skip
_F = [1.0, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525, 7.868691311456132591e-4,
      1.8463183175100546818e-5, 1.4215117583164458887e-7, 2.04426310338993978564e-15]  # fmt: skip


def _poly(coefficients: list[float], x: np.ndarray) -> np.ndarray:
    """``sum(c_k x^k)`` by Horner's rule, in place (one array for the whole evaluation)."""
    result = np.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        np.multiply(result, x, out=result)
        result += c
    return result


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile function (inverse CDF) of ``p`` in (0, 1), elementwise, in float64."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.425
    qc = q[central]
    r = 0.180625 - qc * qc
    values = _poly(_A, r)
    values *= qc
    values /= _poly(_B, r)
    out[central] = values
    tail = ~central
    if tail.any():
        pt = p[tail]
        r = np.sqrt(-np.log(np.minimum(pt, 1 - pt)))
        near, values = r <= 5.0, np.empty_like(r)
        for mask, shift, numerator, denominator in ((near, 1.6, _C, _D), (~near, 5.0, _E, _F)):
            if mask.any():
                x = r[mask] - shift
                values[mask] = _poly(numerator, x) / _poly(denominator, x)
        np.negative(values, out=values, where=q[tail] < 0)
        out[tail] = values
    return out


def scale_numeric(values: np.ndarray, stats: dict, scaling: str) -> np.ndarray:
    """One numeric column (missing values already imputed) scaled with its fitted ``stats``."""
    if scaling == "standard":
        return (values - stats["mean"]) / stats["std"]
    if scaling == "quantile":
        # NOTE: computed once per distinct value (most numeric columns repeat their values: ages, counts, codes)
        codes, uniques = pd.factorize(values)
        if len(uniques) < len(values) // 2:
            return scale_numeric(np.asarray(uniques, dtype=np.float64), stats, scaling)[codes]
        quantiles = np.asarray(stats["quantiles"])
        # NOTE: averaging the left and right interpolation handles repeated quantiles (many zeros).
        ranks = np.linspace(0, 1, quantiles.size)
        cdf = 0.5 * (np.interp(values, quantiles, ranks) - np.interp(-values, -quantiles[::-1], -ranks[::-1]))
        return normal_quantile(np.clip(cdf, 1e-3, 1 - 1e-3))
    return values


def transform_table(state: dict, df: pd.DataFrame, *, source: str = "table") -> tuple[np.ndarray, np.ndarray]:
    """Features of ``df`` under the fitted preprocessing ``state``: ``x_num (N, n_num) float32`` (scaled values,
    then missing indicators) and ``x_cat (N, n_cat) int64`` (category ids).

    Columns are found by name (order and extra columns do not matter; extras are reported once), text missing
    markers become missing, missing numbers take the training median, unseen categories the unknown id. A
    missing feature column or a non-numeric value in a numeric column is a :class:`DataError` naming it.
    """
    schema = Schema.from_dict(state["schema"])
    df = mark_missing(df, state["na_values"], source=source)
    check_columns(df, schema.features, what="feature column", source=source)
    known = {*schema.features, *schema.dropped, schema.target}
    extra = [str(c) for c in df.columns if c not in known and not str(c).startswith("__")]
    if extra:
        warn(f"{source}: ignoring column(s) not seen in training: {', '.join(map(repr, extra))}")
    numeric = state["numeric"]
    n_indicators = sum(bool(stats["indicator"]) for stats in numeric.values())
    # NOTE: written column by column into one float32 array (scaled in float64 first): no stack, no copy
    x_num = np.empty((len(df), len(numeric) + n_indicators), dtype=np.float32)
    indicator = len(numeric)
    for i, (name, stats) in enumerate(numeric.items()):
        values = check_numeric(df[name], name=name, source=source)
        missing = np.isnan(values)
        x_num[:, i] = scale_numeric(np.where(missing, stats["median"], values), stats, state["scaling"])
        if stats["indicator"]:
            x_num[:, indicator] = missing
            indicator += 1
    hashed = state["hashed"]
    codes = [
        hash_codes(df[name], hashed[name])
        if name in hashed
        else encode_categories(df[name], state["categorical"][name])
        for name in schema.categorical
    ]
    x_cat = np.stack(codes, axis=1) if codes else np.zeros((len(df), 0), dtype=np.int64)
    return x_num, x_cat


def predictions_frame(probs: np.ndarray, classes: list | None) -> pd.DataFrame:
    """``prediction`` (the original label) and one ``proba_<label>`` column per class, one row per input row;
    regression (``classes`` ``None``, ``probs`` the predictions ``(n,)``): the ``prediction`` column only."""
    if classes is None:
        return pd.DataFrame({"prediction": np.asarray(probs, dtype=np.float64).reshape(-1)})
    frame = pd.DataFrame({"prediction": np.asarray(classes, dtype=object)[probs.argmax(1)] if len(probs) else []})
    for i, label in enumerate(classes):
        frame[f"proba_{label}"] = probs[:, i] if len(probs) else []
    return frame
