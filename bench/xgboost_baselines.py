"""XGBoost beside the neural models of `make bench-accuracy`, on exactly their splits.

- ``XGBoost``: 300 trees, learning rate 0.1, depth 6, no tuning (the distillation teacher's settings), fitted on
  the training split.
- ``XGBoost tuned``: lightly tuned, a fair opponent: for each depth in 4..10, up to 2,000 trees at learning rate
  0.1 with early stopping on the validation split (50 rounds); the depth (and its tree count) with the best
  validation accuracy is kept. Never the test split.

The splits are the data module's (``TabularData`` with the benchmark's flags): the same rows as ``tabularnet fit``.
"""

from __future__ import annotations

import time

import numpy as np
import xgboost as xgb

from tabularnet.data.tabular_data import TabularData
from tabularnet.models.xgboost import _as_xgb_frame

DEPTHS = range(4, 11)


def frames(dataset: str, test_fraction: float | None, task: str) -> tuple[dict, list[str], TabularData]:
    """``{split: frame}`` of train, val and test, carved as ``tabularnet fit`` carves them, and the features."""
    kwargs = {"dataset": dataset, "seed": 0, "task": task}
    if test_fraction:
        kwargs["test_fraction"] = test_fraction
    data = TabularData(**kwargs)
    features = data._ensure_fitted().schema.features
    return {split: data._frame(split) for split in ("train", "val", "test")}, features, data


def regression_scores(dataset: str, test_fraction: float = 0.2) -> dict:
    """XGBoost (300 trees, lr 0.1, depth 6, untuned) on a regression dataset's splits: test and validation RMSE
    and R^2 in the target's units, and the fit's seconds."""
    from tabularnet.models import XGBoostRegressor

    split_frames, features, _ = frames(dataset, test_fraction, "regression")
    started = time.perf_counter()
    model = XGBoostRegressor(n_estimators=300, max_depth=6, learning_rate=0.1, n_jobs=1)
    model.fit(split_frames["train"][features], split_frames["train"]["target"].to_numpy())
    scores = {"seconds": time.perf_counter() - started}
    for split in ("val", "test"):
        y = split_frames[split]["target"].to_numpy()
        error = model.predict(split_frames[split][features]) - y
        scores[f"{split}_rmse"] = float(np.sqrt(np.mean(error**2)))
        scores[f"{split}_r2"] = float(1 - np.mean(error**2) / np.var(y))
    return scores


def splits(dataset: str, test_fraction: float | None) -> dict:
    """``{split: (X, y as class codes)}`` of train, val and test, carved as ``tabularnet fit`` carves them."""
    split_frames, features, data = frames(dataset, test_fraction, "classification")
    train = _as_xgb_frame(split_frames["train"][features])
    categories = {n: list(train[n].cat.categories) for n in train.columns if train[n].dtype == "category"}
    index = {label: i for i, label in enumerate(data.classes)}
    return {
        split: (
            train if split == "train" else _as_xgb_frame(frame[features], categories),
            np.array([index[v] for v in frame["target"].tolist()]),
        )
        for split, frame in split_frames.items()
    }


def _model(**params) -> xgb.XGBClassifier:
    return xgb.XGBClassifier(
        learning_rate=0.1, subsample=0.9, colsample_bytree=0.9, random_state=42, enable_categorical=True,
        tree_method="hist", n_jobs=1, **params,
    )  # fmt: skip


def xgboost_scores(dataset: str, test_fraction: float | None, tuned: bool = True) -> dict[str, dict]:
    """Test accuracy (and validation accuracy, seconds) of the untuned and (``tuned``) the lightly tuned XGBoost."""
    data = splits(dataset, test_fraction)
    (X, y), (X_val, y_val), (X_test, y_test) = data["train"], data["val"], data["test"]
    started = time.perf_counter()
    plain = _model(n_estimators=300, max_depth=6).fit(X, y)
    results = {
        "XGBoost": {
            "val_acc": float((plain.predict(X_val) == y_val).mean()),
            "test_acc": float((plain.predict(X_test) == y_test).mean()),
            "seconds": time.perf_counter() - started,
        }
    }
    if not tuned:
        return results
    started, best = time.perf_counter(), None
    metric = "mlogloss" if len(np.unique(y)) > 2 else "logloss"  # xgboost's names for the two log losses
    for depth in DEPTHS:
        model = _model(n_estimators=2000, max_depth=depth, early_stopping_rounds=50, eval_metric=metric)
        model.fit(X, y, eval_set=[(X_val, y_val)], verbose=False)
        val_acc = float((model.predict(X_val) == y_val).mean())
        if best is None or val_acc > best[0]:
            best = (val_acc, depth, model)
    val_acc, depth, model = best
    results["XGBoost tuned"] = {
        "val_acc": val_acc,
        "test_acc": float((model.predict(X_test) == y_test).mean()),
        "seconds": time.perf_counter() - started,
        "depth": depth,
        "trees": int(model.best_iteration) + 1,
    }
    return results
