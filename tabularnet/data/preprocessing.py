"""Preprocessing fitted on the training split only; its state is plain lists and numbers (checkpoint-safe)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch

from tabularnet.data.schema import DEFAULT_NA_VALUES, DataError, Schema, check_numeric, mark_missing, warn
from tabularnet.data.task import Task, fit_target_scaling, regression_targets, scale_target
from tabularnet.data.transform import (  # noqa: F401 (re-exported: the names predate the torch-free module)
    MISSING_ID,
    N_RESERVED,
    UNKNOWN_ID,
    category_strings,
    factorized_strings,
    hash_codes,
    transform_table,
)

Scaling = Literal["standard", "quantile", "none"]
# the numeric scaling of a table that names none: rank-Gauss, chosen with PLE by validation accuracy across the shared
# datasets (bench/defaults.py; README, "How the defaults were chosen")
DEFAULT_SCALING: Scaling = "quantile"
HighCardinality = Literal["drop", "hash", "keep"]


def _native(value):
    return value.item() if isinstance(value, np.generic) else value


def weighted_quantiles(values: np.ndarray, q, weight: np.ndarray) -> np.ndarray:
    """``np.quantile(values, q)`` (linear interpolation) of the column in which value ``i`` occurs ``weight[i]``
    times: equal to it on the repeated column for integer weights (rows of weight 0 are never chosen); real
    weights count as fractional repeats."""
    q = np.asarray(q, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values, cumulative = values[order], np.cumsum(weight[order])
    position = np.clip(q * (cumulative[-1] - 1), 0, None)  # the virtual index in the repeated, sorted column
    below = np.floor(position)
    last = len(values) - 1
    a = sorted_values[np.searchsorted(cumulative, below, side="right").clip(max=last)]
    b = sorted_values[np.searchsorted(cumulative, below + 1, side="right").clip(max=last)]
    t = position - below
    # NOTE: numpy's own lerp (a + (b - a) t, from the upper end when t >= 0.5), so unit weights give its numbers
    return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)


def _category_counts(series: pd.Series, weight: np.ndarray | None) -> pd.Series:
    """Rows per category string (missing values not counted); with ``weight``, the categories' total weights,
    only those above 0."""
    strings = category_strings(series)
    if weight is None:
        return strings.value_counts()
    totals = pd.Series(weight, index=series.index).groupby(strings).sum()
    return totals[totals > 0].sort_values(ascending=False, kind="stable")


class Preprocessor:
    """Numeric scaling with median imputation + missing indicators, categorical index encoding, labels.

    Args:
        scaling: ``"standard"`` (zero mean, unit variance), ``"quantile"`` (rank-Gauss: empirical CDF
            mapped to a standard normal, robust to heavy tails such as Adult's capital-gain) or ``"none"``.
        na_values: text values that mean "missing" (see :func:`~tabularnet.data.schema.mark_missing`).
        high_cardinality: what to do with a categorical column of more than ``max_categories`` distinct values
            (names, ticket numbers, ids): ``"drop"`` it (with a warning), ``"hash"`` it into ``max_categories``
            buckets, or ``"keep"`` one embedding row per value.
        max_categories: the cardinality above which a categorical column is high-cardinality.
        min_frequency: categories seen fewer times than this in training share the unknown id.
    """

    def __init__(
        self,
        scaling: Scaling = DEFAULT_SCALING,
        *,
        na_values: Sequence[str] = DEFAULT_NA_VALUES,
        high_cardinality: HighCardinality = "drop",
        max_categories: int = 100,
        min_frequency: int = 1,
    ) -> None:
        if scaling not in ("standard", "quantile", "none"):
            raise DataError(f"scaling must be 'standard', 'quantile' or 'none', however: scaling={scaling!r}")
        if high_cardinality not in ("drop", "hash", "keep"):
            raise DataError(
                f"high_cardinality must be 'drop', 'hash' or 'keep', however: high_cardinality={high_cardinality!r}"
            )
        if max_categories < 1:
            raise DataError(f"max_categories must be at least 1, however: max_categories={max_categories}")
        if min_frequency < 1:
            raise DataError(f"min_frequency must be at least 1, however: min_frequency={min_frequency}")
        self.scaling = scaling
        self.na_values = [str(v) for v in na_values]
        self.high_cardinality, self.max_categories, self.min_frequency = high_cardinality, max_categories, min_frequency
        self.state: dict | None = None

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        df: pd.DataFrame,
        schema: Schema,
        *,
        classes=None,
        source: str = "train",
        sample_weight=None,
        task: Task = "classification",
        target_transform: str = "none",
    ) -> Preprocessor:
        """Fit on the training split ``df``; ``classes`` (default: the labels in ``df``) fixes the label set of a
        classification task; a regression target's scaling (``target_transform``, then mean and standard
        deviation: :mod:`tabularnet.data.task`) is fitted on ``df`` instead.

        ``sample_weight`` (one non-negative number per row, validated by the caller) weighs every statistic as
        frequency weights: the fit equals the fit on ``df`` with row ``i`` repeated ``sample_weight[i]`` times
        (for integer weights; rows of weight 0 count as absent): means, standard deviations, medians, quantiles,
        category counts (``min_frequency``, ``max_categories``) and class counts.
        """
        df = mark_missing(df, self.na_values, source=source)
        weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        schema = Schema.from_dict(schema.to_dict())  # high-cardinality columns may move to ``dropped``
        numeric = {}
        for name in schema.numeric:
            values = check_numeric(df[name], name=name, source=source)
            numeric[name] = self._fit_numeric(values, weight)
        categorical, hashed = {}, {}
        for name in list(schema.categorical):
            counts = _category_counts(df[name], weight)
            if len(counts) > self.max_categories and self.high_cardinality == "drop":
                warn(
                    f"{source}: column {name!r} has {len(counts)} distinct values (more than max_categories="
                    f"{self.max_categories}); it is not used (set high_cardinality to 'hash' or 'keep' to use it)"
                )
                schema.categorical.remove(name)
                schema.dropped.append(name)
            elif len(counts) > self.max_categories and self.high_cardinality == "hash":
                hashed[name] = self.max_categories
            else:
                categorical[name] = sorted(counts.index[counts.to_numpy() >= self.min_frequency].tolist())
        class_counts, target_scaling = None, None
        if task == "regression":
            classes = None
            if schema.target is not None:
                y = regression_targets(df[schema.target], source=source, transform=target_transform)
                target_scaling = fit_target_scaling(y, target_transform, weight)
        elif classes is None and schema.target is not None:
            classes = np.unique(df[schema.target].to_numpy())
        if classes is not None:
            classes = [_native(c) for c in classes]
            if schema.target is not None:
                labels = pd.Series([_native(v) for v in df[schema.target].to_numpy()], dtype=object)
                if weight is None:
                    class_counts = [int(k) for k in labels.value_counts().reindex(classes, fill_value=0).to_numpy()]
                else:  # the classes' total weights
                    totals = pd.Series(weight).groupby(labels.to_numpy()).sum()
                    class_counts = [float(k) for k in totals.reindex(classes, fill_value=0.0).to_numpy()]
        self.state = {
            "scaling": self.scaling,
            "na_values": list(self.na_values),
            "schema": schema.to_dict(),
            "numeric": numeric,
            "categorical": categorical,
            "hashed": hashed,
            "classes": classes,
            "class_counts": class_counts,
            "task": task,
            "target_scaling": target_scaling,
        }
        return self

    def _fit_numeric(self, values: np.ndarray, weight: np.ndarray | None = None) -> dict:
        if weight is not None:
            return self._fit_numeric_weighted(values, weight)
        observed = values[~np.isnan(values)]
        median = float(np.median(observed)) if observed.size else 0.0
        stats = {"median": median, "indicator": bool(observed.size < values.size)}
        filled = np.where(np.isnan(values), median, values)
        if self.scaling == "standard":
            std = float(filled.std())
            stats.update(mean=float(filled.mean()), std=std if std > 0 else 1.0)
        elif self.scaling == "quantile":
            n_quantiles = int(min(1000, max(filled.size, 2)))
            stats["quantiles"] = np.quantile(filled, np.linspace(0, 1, n_quantiles)).tolist()
        return stats

    def _fit_numeric_weighted(self, values: np.ndarray, weight: np.ndarray) -> dict:
        """:meth:`_fit_numeric` of the column with value ``i`` repeated ``weight[i]`` times."""
        missing = np.isnan(values)
        observed, observed_weight = values[~missing], weight[~missing]
        present = observed_weight.sum() > 0
        median = float(weighted_quantiles(observed, [0.5], observed_weight)[0]) if present else 0.0
        stats = {"median": median, "indicator": bool((weight[missing] > 0).any())}
        filled = np.where(missing, median, values)
        if self.scaling == "standard":
            mean = np.sum(weight * filled) / np.sum(weight)
            std = float(np.sqrt(np.sum(weight * (filled - mean) ** 2) / np.sum(weight)))
            stats.update(mean=float(mean), std=std if std > 0 else 1.0)
        elif self.scaling == "quantile":
            n_quantiles = int(min(1000, max(weight.sum(), 2)))
            stats["quantiles"] = weighted_quantiles(filled, np.linspace(0, 1, n_quantiles), weight).tolist()
        return stats

    # ---------------------------------------------------------------- metadata
    @property
    def schema(self) -> Schema:
        return Schema.from_dict(self._fitted()["schema"])

    @property
    def n_num_features(self) -> int:
        numeric = self._fitted()["numeric"]
        return len(numeric) + sum(stats["indicator"] for stats in numeric.values())

    @property
    def cat_cardinalities(self) -> list[int]:
        state = self._fitted()
        hashed = state["hashed"]
        return [
            (hashed[name] if name in hashed else len(state["categorical"][name])) + N_RESERVED
            for name in self.schema.categorical
        ]

    @property
    def class_counts(self) -> list[int] | None:
        """Training rows per class (their total sample weight with weights), in the order of :attr:`classes`;
        ``None`` when fitted without a target."""
        return self._fitted()["class_counts"]

    @property
    def classes(self) -> list:
        classes = self._fitted()["classes"]
        if classes is None:
            if self.task == "regression":
                raise DataError("a regression model has no classes")
            raise DataError("the preprocessing was fitted without a target column, so it has no classes")
        return classes

    @property
    def task(self) -> Task:
        """``classification`` or ``regression`` (states saved before regression existed are classification)."""
        return self._fitted().get("task", "classification")

    @property
    def target_scaling(self) -> dict | None:
        """A regression target's ``{"transform", "mean", "std"}`` (:mod:`tabularnet.data.task`); else ``None``."""
        return self._fitted().get("target_scaling")

    def _fitted(self) -> dict:
        if self.state is None:
            raise RuntimeError("Preprocessor is not fitted: call fit() or load_state_dict() first")
        return self.state

    # --------------------------------------------------------------- transform
    def transform(self, df: pd.DataFrame, *, source: str = "table") -> dict[str, torch.Tensor]:
        """Features of ``df`` as ``{"x_num": (N, n_num_features) float32, "x_cat": (N, n_cat) int64}`` (see
        :func:`~tabularnet.data.transform.transform_table`, which prediction without torch shares)."""
        x_num, x_cat = transform_table(self._fitted(), df, source=source)
        return {"x_num": torch.from_numpy(x_num), "x_cat": torch.from_numpy(x_cat)}

    def encode_targets(self, y: pd.Series | np.ndarray, *, source: str = "table") -> torch.Tensor:
        """The model's targets: class indices (int64), or a regression target on its standard scale (float32)."""
        if self.task == "regression":
            scaling = self.target_scaling
            values = regression_targets(y, source=source, transform=scaling["transform"])
            return torch.from_numpy(scale_target(values, scaling).astype(np.float32))
        return self.encode_labels(y, source=source)

    def encode_labels(self, y: pd.Series | np.ndarray, *, source: str = "table") -> torch.Tensor:
        """Labels as class indices; raises naming the first label not seen in training."""
        classes = self.classes
        index = {c: i for i, c in enumerate(classes)}
        values = [_native(v) for v in np.asarray(y)]
        try:
            return torch.tensor([index[v] for v in values], dtype=torch.int64)
        except KeyError as err:
            raise DataError(f"{source}: label {err.args[0]!r} was not seen in training (classes: {classes})") from None

    def decode_labels(self, indices: np.ndarray | torch.Tensor) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[np.asarray(indices)]

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return self._fitted()

    def load_state_dict(self, state: dict) -> Preprocessor:
        self.scaling = state["scaling"]
        self.na_values = list(state["na_values"])
        self.state = state
        return self
