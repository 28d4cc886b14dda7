"""Teacher logits for distillation: cross-fitting, caching, files, and clear errors for bad specs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_table

from tabularnet.data.datamodule import TabularDataModule
from tabularnet.data.schema import DataError
from tabularnet.data.teacher import as_logits, fold_assignment


class RecordingTeacher:
    """Says "seen" (class 0) for rows it was fitted on and "unseen" (class 1) otherwise, keyed by their `age`."""

    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        self.seen = set(X["age"].round(9))
        self.classes_ = np.array(["no", "yes"])
        return self

    def predict_proba(self, X):
        seen = X["age"].round(9).isin(self.seen).to_numpy()
        return np.where(seen[:, None], [[0.99, 0.01]], [[0.01, 0.99]])


SPEC = {"class_path": "test_teacher.RecordingTeacher"}


def datamodule(tmp_path, **kwargs) -> TabularDataModule:
    return TabularDataModule.from_frames(
        make_table(300, seed=5), target="target", teacher=SPEC, teacher_cache_dir=str(tmp_path), **kwargs
    )


def test_every_training_row_gets_logits_from_a_teacher_that_never_saw_it(tmp_path):
    dm = datamodule(tmp_path, teacher_folds=4)
    logits = dm.split_tensors("train")["teacher_logits"]
    assert logits.shape == (len(dm.split_tensors("train")["y"]), 2)
    assert (logits.argmax(1) == 1).all()  # "unseen" for every row: out-of-fold
    # the teacher measured on validation never saw validation rows either
    probs, y = dm.teacher_evaluations["val"]
    assert (probs.argmax(1) == 1).all() and (y == 1).mean() == pytest.approx(
        (dm._frames["val"]["target"] == "yes").mean()
    )


def test_folds_are_stratified_and_cover_every_row():
    y = np.array(["a"] * 40 + ["b"] * 20)
    folds = fold_assignment(y, 4, seed=0)
    assert sorted(set(folds)) == [0, 1, 2, 3]
    for k in range(4):
        assert (y[folds == k] == "b").sum() == 5


def test_cached_logits_are_reused(tmp_path):
    datamodule(tmp_path).split_tensors("train")
    fits = RecordingTeacher.fits
    datamodule(tmp_path).split_tensors("train")
    assert RecordingTeacher.fits == fits  # second run read the cache
    assert len(list(tmp_path.glob("teacher-*.npy"))) == 1


def test_teacher_logits_file_travels_with_the_training_rows(tmp_path):
    table = make_table(200, seed=2)
    path = tmp_path / "train.csv"
    table.to_csv(path, index=False)
    probs = np.tile([0.25, 0.75], (len(table), 1))
    np.save(tmp_path / "logits.npy", probs)
    dm = TabularDataModule(train_path=str(path), teacher_logits_path=str(tmp_path / "logits.npy"))
    logits = dm.split_tensors("train")["teacher_logits"].numpy()
    np.testing.assert_allclose(logits, np.log(probs[: len(logits)]), rtol=1e-6)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"class_path": "no.such.Teacher"}, "cannot import class_path 'no.such.Teacher'"),
        ({"class_path": "collections.OrderedDict"}, "no fit/predict_proba"),
        ({"class_path": "tabularnet.models.XGBoostClassifier", "init_args": {"n_trees": 3}}, "n_trees"),
        ({"class_path": "tabularnet.models.XGBoostClassifier", "init": {}}, "unknown key"),
        ("xgboost", "must be {class_path"),
    ],
)
def test_bad_teacher_spec_is_a_clear_error(spec, message):
    with pytest.raises(DataError, match=message.replace("{", r"\{").replace("(", r"\(")):
        TabularDataModule(dataset="adult", teacher=spec)


def test_teacher_file_with_wrong_rows_is_a_clear_error(tmp_path):
    table = make_table(50)
    table.to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame(np.zeros((10, 2))).to_parquet(tmp_path / "logits.parquet")
    dm = TabularDataModule(train_path=str(tmp_path / "t.csv"), teacher_logits_path=str(tmp_path / "logits.parquet"))
    with pytest.raises(DataError, match="one row per training row"):
        _ = dm.n_classes


def test_probabilities_become_logits_and_logits_stay():
    probs = np.array([[0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_allclose(as_logits(probs), np.log(probs))
    logits = np.array([[2.0, -1.0], [0.0, 3.0]])
    np.testing.assert_allclose(as_logits(logits), logits)


def test_teacher_metrics_are_the_students_metrics(tmp_path):
    """The teacher is measured by the code that measures the student: the same five metrics, the same values."""
    from tabularnet.cli.after_fit import teacher_metrics
    from tabularnet.training.metrics import classification_metrics

    dm = datamodule(tmp_path, teacher_folds=3)
    dm.split_tensors("train")
    metrics = teacher_metrics(dm)
    for split in ("val",):
        probs, y = dm.teacher_evaluations[split]
        student_code = classification_metrics(2, f"teacher_{split}_")
        student_code.update(torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(y))
        expected = {name: float(value) for name, value in student_code.compute().items()}
        assert set(expected) == {f"teacher_{split}_{m}" for m in ("acc", "auroc", "f1_macro", "logloss", "ece")}
        assert metrics == pytest.approx(expected)
