"""Teacher outputs for distillation: read from a file, or cross-fitted from a teacher spec and cached.

The teacher is data, not code in the training loop: its outputs are computed once, before training, and
travel in the batch. Classification teachers give logits (log-probabilities, one column per class); regression
teachers (``classes=None`` below) give one column of predictions in the target's units. Cross-fitting: the
training split is cut into ``folds`` folds (stratified by class for classification, plain shuffled ``KFold`` for
regression); each row's output comes from a teacher fitted on the other folds, so the student never sees a
teacher's prediction on a row that teacher was trained on. Validation and test rows are never used to fit a
teacher.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from tabularnet.atomic import atomic_path
from tabularnet.data.schema import DataError, check_known_keys
from tabularnet.data.sources import read_table
from tabularnet.data.task import regression_targets, scale_target

EPS = 1e-10
Task = Literal["classification", "regression"]
# the methods a teacher class needs, per task
TEACHER_METHODS = {"classification": ("fit", "predict_proba"), "regression": ("fit", "predict")}


def task_of(classes: list | None) -> Task:
    """``classes=None`` means regression throughout this module."""
    return "regression" if classes is None else "classification"


def build_teacher(spec: dict, task: Task = "classification"):
    """Instantiate ``{class_path: module.Class, init_args: {...}}``; the class needs ``fit`` and ``predict_proba``
    (classification) or ``fit`` and ``predict`` (regression)."""
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise DataError(f"data.teacher must be {{class_path: ..., init_args: {{...}}}}, however: {spec!r}")
    check_known_keys(spec, ("class_path", "init_args"), "data.teacher")
    module_name, _, class_name = str(spec["class_path"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise DataError(f"data.teacher: cannot import class_path {spec['class_path']!r}") from None
    needed = TEACHER_METHODS[task]
    missing = [method for method in needed if not hasattr(cls, method)]
    if missing:
        raise DataError(
            f"data.teacher: {spec['class_path']} has no {'/'.join(missing)} method{'s' * (len(missing) > 1)} "
            f"(a {task} teacher needs {' and '.join(needed)})"
        )
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


def fold_assignment(y: np.ndarray, folds: int, seed: int, stratified: bool = True) -> np.ndarray:
    """The cross-fitting fold of each training row (stratified by ``y``, or plain shuffled ``KFold``)."""
    if folds < 2:
        raise DataError(f"data.teacher_folds must be at least 2, however: teacher_folds={folds}")
    fold_of = np.zeros(len(y), dtype=np.int64)
    kind = StratifiedKFold if stratified else KFold
    splitter = kind(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold_of[held_out] = k
    return fold_of


def _weighted(sample_weight: np.ndarray | None, rows) -> dict:
    """``fit``'s keyword arguments: ``sample_weight`` of ``rows`` when there are weights."""
    return {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)[rows]}


def teacher_outputs(teacher, X: pd.DataFrame, classes: list | None) -> np.ndarray:
    """A fitted teacher's logits ``(n, n_classes)`` in the column order of ``classes``, or its regression
    predictions ``(n, 1)`` float64 (``classes=None``)."""
    if classes is None:
        return np.asarray(teacher.predict(X), dtype=np.float64).reshape(len(X), 1)
    return probs_to_logits(teacher.predict_proba(X), teacher.classes_, classes)


def cross_fit_outputs(
    spec: dict,
    X: pd.DataFrame,
    y: np.ndarray,
    classes: list | None,
    *,
    folds: int,
    seed: int,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold teacher outputs for every row of ``X`` (teachers fitted with ``sample_weight`` when given):
    logits ``(n, n_classes)``, or with ``classes=None`` regression predictions ``(n, 1)`` float64."""
    task = task_of(classes)
    if task == "regression":
        y = regression_targets(y, source="teacher cross-fitting", name="y")
    fold_of = fold_assignment(y, folds, seed, stratified=task == "classification")
    outputs = np.zeros((len(y), 1 if classes is None else len(classes)))
    for k in range(folds):
        fit_rows, held_out = fold_of != k, fold_of == k
        teacher = build_teacher(spec, task)
        teacher.fit(X[fit_rows], y[fit_rows], **_weighted(sample_weight, fit_rows))
        outputs[held_out] = teacher_outputs(teacher, X[held_out], classes)
    return outputs


cross_fit_logits = cross_fit_outputs  # the name from before regression teachers


def teacher_evaluations(
    spec: dict,
    train: tuple,
    evaluations: dict[str, tuple],
    classes: list | None,
    sample_weight: np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fit one teacher on the whole training split (with ``sample_weight`` when given) and give, per evaluation
    split, its class probabilities ``(n, n_classes)`` and the labels as class indices, or with ``classes=None`` its
    predictions ``(n,)`` and the targets ``(n,)``, both float64 (the metrics are the student's, computed from these
    by the command line)."""
    task = task_of(classes)
    teacher = build_teacher(spec, task)
    if task == "regression":
        teacher.fit(
            train[0], regression_targets(train[1], source="teacher", name="y"), **_weighted(sample_weight, slice(None))
        )
        return {
            split: (
                teacher_outputs(teacher, X, None)[:, 0],
                regression_targets(y, source=f"teacher ({split} split)", name="y"),
            )
            for split, (X, y) in evaluations.items()
        }
    teacher.fit(*train, **_weighted(sample_weight, slice(None)))
    result = {}
    for split, (X, y) in evaluations.items():
        probs = np.exp(probs_to_logits(teacher.predict_proba(X), teacher.classes_, classes)).astype(np.float64)
        probs /= probs.sum(1, keepdims=True)  # float32 teachers' rows sum to 1 only up to rounding
        index = {label: i for i, label in enumerate(classes)}
        result[split] = (probs, np.array([index[label] for label in np.asarray(y, dtype=object)], dtype=np.int64))
    return result


def cache_key(spec: dict, train: pd.DataFrame, folds: int, seed: int, task: Task = "classification") -> str:
    """A hash of the training rows, the teacher spec, the cross-fitting settings and the task."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes())
    # NOTE: the task is hashed only when it is regression, so the keys of classification caches written before
    # regression existed stay valid
    settings = [spec, list(map(str, train.columns)), folds, seed, *([task] if task != "classification" else [])]
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
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
    # NOTE: "_probs" holds the teacher's outputs on a split: class probabilities, or regression predictions
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
    classes: list | None,
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
    """Cross-fitted outputs of the teacher ``spec`` for the rows of ``train`` (:func:`cross_fit_outputs`: logits,
    or with ``classes=None`` regression predictions ``(n, 1)``) and its outputs on the evaluation splits
    (:func:`teacher_evaluations`), from the cache in ``cache_dir`` (keyed by the rows, the spec, the cross-fitting
    settings and the task), else computed and cached. ``evaluations()`` gives ``{split: (X, y)}``, called only
    when the cache misses."""
    X, y = train[features], train[target].to_numpy()
    keyed = [*features, target, *([weight_column] if sample_weight is not None else [])]
    key = cache_key(spec, train[keyed], folds, seed, task_of(classes))
    cached = load_cached(cache_dir, key)
    if cached is not None:
        return cached
    logits = cross_fit_outputs(spec, X, y, classes, folds=folds, seed=seed, sample_weight=sample_weight)
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


def check_teacher(teacher: dict, task: str) -> None:
    """Build ``teacher`` once: a classification teacher needs ``predict_proba``, a regression one ``predict``; for
    ``task: auto`` either will do (the classification error is the one raised)."""
    try:
        build_teacher(teacher, task="regression" if task == "regression" else "classification")
    except DataError as error:
        if task != "auto":
            raise
        try:
            build_teacher(teacher, task="regression")
        except DataError:
            raise error from None


def student_targets(values: np.ndarray, target_scaling: dict | None) -> np.ndarray:
    """Teacher outputs as the student's targets: logits for classification (:func:`as_logits`); for regression
    (``target_scaling`` given) the teacher's predictions, one column in original units, on the model's standard
    scale."""
    if target_scaling is None:
        return as_logits(values)
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if values.shape[1] != 1:
        raise DataError(f"regression teacher outputs need one column (predictions), however: shape {values.shape}")
    return scale_target(values, target_scaling)
