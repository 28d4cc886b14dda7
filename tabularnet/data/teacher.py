"""Teacher logits for distillation: read from a file, or cross-fitted from a teacher spec and cached.

The teacher is data, not code in the training loop: its logits are computed once, before training, and
travel in the batch. Cross-fitting: the training split is cut into ``folds`` stratified folds; each row's
logits come from a teacher fitted on the other folds, so the student never sees a teacher's prediction on a
row that teacher was trained on. Validation and test rows are never used to fit a teacher.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from tabularnet.atomic import atomic_path
from tabularnet.data.schema import DataError, check_known_keys
from tabularnet.data.sources import read_table

EPS = 1e-10


def build_teacher(spec: dict):
    """Instantiate ``{class_path: module.Class, init_args: {...}}``; the class needs ``fit`` and ``predict_proba``."""
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise DataError(f"data.teacher must be {{class_path: ..., init_args: {{...}}}}, however: {spec!r}")
    check_known_keys(spec, ("class_path", "init_args"), "data.teacher")
    module_name, _, class_name = str(spec["class_path"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise DataError(f"data.teacher: cannot import class_path {spec['class_path']!r}") from None
    if not (hasattr(cls, "fit") and hasattr(cls, "predict_proba")):
        raise DataError(f"data.teacher: {spec['class_path']} has no fit/predict_proba methods")
    try:
        return cls(**(spec.get("init_args") or {}))
    except TypeError as err:
        raise DataError(f"data.teacher: {spec['class_path']}: {err}") from None


def probs_to_logits(probs: np.ndarray, teacher_classes, classes: list) -> np.ndarray:
    """Log-probabilities in the column order of ``classes`` (a class the teacher never saw gets log(EPS))."""
    index = {c.item() if isinstance(c, np.generic) else c: i for i, c in enumerate(teacher_classes)}
    out = np.full((len(probs), len(classes)), np.log(EPS))
    for j, label in enumerate(classes):
        if label in index:
            out[:, j] = np.log(np.clip(probs[:, index[label]], EPS, None))
    return out


def as_logits(values: np.ndarray) -> np.ndarray:
    """Teacher outputs as logits: rows that are non-negative and sum to 1 are probabilities (logged), anything
    else is already logits (log-probabilities included)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError("teacher logits/probabilities have NaN or infinite values")
    if (values >= 0).all() and np.allclose(values.sum(1), 1.0, atol=1e-4):
        return np.log(np.clip(values, EPS, None))
    return values


def fold_assignment(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The cross-fitting fold of each training row (stratified)."""
    if folds < 2:
        raise DataError(f"data.teacher_folds must be at least 2, however: teacher_folds={folds}")
    fold_of = np.zeros(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold_of[held_out] = k
    return fold_of


def _weighted(sample_weight: np.ndarray | None, rows) -> dict:
    """``fit``'s keyword arguments: ``sample_weight`` of ``rows`` when there are weights."""
    return {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)[rows]}


def cross_fit_logits(
    spec: dict,
    X: pd.DataFrame,
    y: np.ndarray,
    classes: list,
    *,
    folds: int,
    seed: int,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold teacher logits for every row of ``X`` (teachers fitted with ``sample_weight`` when given)."""
    fold_of = fold_assignment(y, folds, seed)
    logits = np.zeros((len(y), len(classes)))
    for k in range(folds):
        fit_rows, held_out = fold_of != k, fold_of == k
        teacher = build_teacher(spec)
        teacher.fit(X[fit_rows], y[fit_rows], **_weighted(sample_weight, fit_rows))
        logits[held_out] = probs_to_logits(teacher.predict_proba(X[held_out]), teacher.classes_, classes)
    return logits


def teacher_evaluations(
    spec: dict, train: tuple, evaluations: dict[str, tuple], classes: list, sample_weight: np.ndarray | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fit one teacher on the whole training split (with ``sample_weight`` when given) and give, per evaluation
    split, its class probabilities ``(n, n_classes)`` and the labels as class indices (the metrics are the
    student's, computed from these by the command line)."""
    teacher = build_teacher(spec)
    teacher.fit(*train, **_weighted(sample_weight, slice(None)))
    result = {}
    for split, (X, y) in evaluations.items():
        probs = np.exp(probs_to_logits(teacher.predict_proba(X), teacher.classes_, classes)).astype(np.float64)
        probs /= probs.sum(1, keepdims=True)  # float32 teachers' rows sum to 1 only up to rounding
        index = {label: i for i, label in enumerate(classes)}
        result[split] = (probs, np.array([index[label] for label in np.asarray(y, dtype=object)], dtype=np.int64))
    return result


def cache_key(spec: dict, train: pd.DataFrame, folds: int, seed: int) -> str:
    """A hash of the training rows, the teacher spec and the cross-fitting settings."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes())
    digest.update(json.dumps([spec, list(map(str, train.columns)), folds, seed], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def load_cached(folder: Path, key: str) -> tuple[np.ndarray, dict] | None:
    logits_path, eval_path = folder / f"teacher-{key}.npy", folder / f"teacher-{key}-eval.npz"
    if logits_path.is_file() and eval_path.is_file():
        with np.load(eval_path, allow_pickle=False) as saved:
            splits = {name.rsplit("_", 1)[0] for name in saved.files}
            evaluations = {split: (saved[f"{split}_probs"], saved[f"{split}_y"]) for split in splits}
        return np.load(logits_path, allow_pickle=False), evaluations
    return None


def save_cached(folder: Path, key: str, logits: np.ndarray, evaluations: dict) -> None:
    # NOTE: the logits first, the evaluations last: load_cached needs both, so a killed writer leaves no half entry
    with atomic_path(folder / f"teacher-{key}.npy") as tmp:
        np.save(tmp, logits, allow_pickle=False)
    arrays = {
        f"{split}_{part}": value
        for split, (probs, y) in evaluations.items()
        for part, value in (("probs", probs), ("y", y))
    }
    with atomic_path(folder / f"teacher-{key}-eval.npz") as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def cached_teacher_logits(
    spec: dict,
    train: pd.DataFrame,
    classes: list,
    evaluations: Callable[[], dict[str, tuple]],
    *,
    features: list[str],
    target: str,
    weight_column: str | None,
    sample_weight: np.ndarray | None,
    folds: int,
    seed: int,
    cache_dir: Path,
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Cross-fitted logits of the teacher ``spec`` for the rows of ``train`` and its probabilities on the
    evaluation splits (:func:`teacher_evaluations`), from the cache in ``cache_dir`` (keyed by the rows, the spec
    and the cross-fitting settings), else computed and cached. ``evaluations()`` gives ``{split: (X, y)}``, called
    only when the cache misses."""
    X, y = train[features], train[target].to_numpy()
    keyed = [*features, target, *([weight_column] if sample_weight is not None else [])]
    key = cache_key(spec, train[keyed], folds, seed)
    cached = load_cached(cache_dir, key)
    if cached is not None:
        return cached
    logits = cross_fit_logits(spec, X, y, classes, folds=folds, seed=seed, sample_weight=sample_weight)
    evaluated = teacher_evaluations(spec, (X, y), evaluations(), classes, sample_weight=sample_weight)
    save_cached(cache_dir, key, logits, evaluated)
    return logits, evaluated


def read_teacher_logits(path: str, n_rows: int) -> np.ndarray:
    """Teacher logits (or probabilities) from ``.npy`` or a table (CSV/Parquet, one column per class)."""
    if str(path).endswith(".npy"):
        if not Path(path).is_file():
            raise DataError(f"file not found: {path}")
        values = np.load(path, allow_pickle=False)
    else:
        values = read_table(path).to_numpy(dtype=np.float64)
    if values.ndim != 2 or len(values) != n_rows:
        raise DataError(
            f"{path}: teacher logits need one row per training row ({n_rows}), however: shape {values.shape}"
        )
    return values
