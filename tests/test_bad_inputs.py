"""Messy tables through both front doors: every bad input is one line naming the file, column or value (exit 2 in
the CLI, a DataError in Python); repairable ones are repaired with a one-line warning; nothing else is lost."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_table

from tabularnet.cli import main
from tabularnet.data.schema import DataError
from tabularnet.models import MLPClassifier

FIT = [
    "fit",
    "--model=tabularnet.MLPLightningModule",
    "--model.hidden_dims=[8]",
    "--data.batch_size=64",
    "--trainer.max_epochs=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--seed_everything=0",
]


def write(df: pd.DataFrame, path: Path) -> Path:
    df.to_parquet(path) if path.suffix == ".parquet" else df.to_csv(path, index=False)
    return path


def with_values(column: str, rows: dict[int, object]) -> pd.DataFrame:
    df = make_table(120, seed=4)
    df[column] = df[column].astype(object)
    for row, value in rows.items():
        df.loc[row, column] = value
    return df


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in this process; return (exit status, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def one_line_error(code: int, stderr: str) -> str:
    assert code == 2
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("tabularnet: error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


# ------------------------------------------------------------------------------------------ fit, bad training data
def text_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


FIT_CASES = {
    "missing file": (lambda d: d / "nope.csv", [], ["file not found", "nope.csv"]),
    "empty file": (lambda d: text_file(d / "train.csv", ""), [], ["train.csv", "empty"]),
    "header only": (lambda d: write(make_table(5).iloc[:0], d / "train.csv"), [], ["train.csv", "no rows"]),
    "unknown format": (
        lambda d: text_file(d / "train.xlsx", "a,b\n"),
        [],
        ["train.xlsx", "unknown file format"],
    ),
    "unreadable parquet": (
        lambda d: text_file(d / "train.parquet", "PAR1 not parquet"),
        [],
        ["train.parquet", "cannot read the file"],
    ),
    "target absent": (
        lambda d: write(make_table(50), d / "train.csv"),
        ["--data.target=label"],
        ["train.csv", "target column 'label' not found"],
    ),
    "target one class": (
        lambda d: write(make_table(50).assign(target="yes"), d / "train.csv"),
        [],
        ["train.csv", "target column 'target'", "only one class", "'yes'"],
    ),
    "target all missing": (
        lambda d: write(make_table(50).assign(target=np.nan), d / "train.csv"),
        [],
        ["train.csv", "target column 'target'", "no labels"],
    ),
    "stray text in numeric column": (
        lambda d: write(with_values("age", {7: "oops"}), d / "train.csv"),
        [],
        ["train.csv", "column 'age'", "'oops' at row 7", "na_values"],
    ),
    "stray text in a declared numeric column": (
        lambda d: write(
            with_values("age", {7: "oops", 8: "huh", 9: "what"} | {i: "x" for i in range(20, 40)}), d / "train.csv"
        ),
        ["--data.numeric=[age]"],
        ["train.csv", "column 'age'", "'oops' at row 7"],
    ),
    "infinity": (
        lambda d: write(with_values("age", {11: np.inf}), d / "train.parquet"),
        [],
        ["train.parquet", "column 'age'", "infinite", "row 11"],
    ),
    "minus infinity in a CSV": (
        lambda d: write(with_values("income", {3: "-inf"}), d / "train.csv"),
        [],
        ["train.csv", "column 'income'", "infinite", "row 3"],
    ),
    "duplicate column names": (
        lambda d: text_file(d / "train.csv", "age,age,target\n1,2,a\n3,4,b\n"),
        [],
        ["train.csv", "duplicate column names: 'age'"],
    ),
    "class_weight with an unknown label": (
        lambda d: write(make_table(50), d / "train.csv"),
        ["--model.class_weight={maybe: 2.0}"],
        ["class_weight", "unknown label", "'maybe'"],
    ),
    "min_frequency zero": (
        lambda d: write(make_table(50), d / "train.csv"),
        ["--data.min_frequency=0"],
        ["min_frequency", "0"],
    ),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_bad_training_data_is_one_line_error(case, tmp_path, capsys):
    make_file, extra, expected = FIT_CASES[case]
    path = make_file(tmp_path)
    code, stderr = run_main(
        [*FIT, f"--data.train_path={path}", f"--trainer.default_root_dir={tmp_path}", *extra], capsys
    )
    line = one_line_error(code, stderr)
    for text in expected:
        assert text in line, line
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").rglob("*.ckpt"))


def test_errors_are_one_line_in_a_real_process(tmp_path):
    """The installed command: no traceback, exit status 2, the same line."""
    path = write(with_values("age", {7: "oops"}), tmp_path / "train.csv")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tabularnet",
            *FIT,
            f"--data.train_path={path}",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "tabularnet: error: " in result.stderr and "'oops' at row 7" in result.stderr


# --------------------------------------------------------------------------------- fit, repaired with a warning
def fit_ok(tmp_path: Path, train: pd.DataFrame, capsys, *extra: str) -> tuple[dict, str]:
    tmp_path.mkdir(exist_ok=True)
    path = write(train, tmp_path / "train.csv")
    code, stderr = run_main(
        [*FIT, f"--data.train_path={path}", f"--trainer.default_root_dir={tmp_path}", *extra], capsys
    )
    assert code == 0, stderr
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    return torch.load(checkpoint, weights_only=True), stderr


def test_missing_labels_are_dropped_with_a_warning(tmp_path, capsys):
    train = make_table(120, seed=4)
    train.loc[[5, 9], "target"] = np.nan
    checkpoint, stderr = fit_ok(tmp_path, train, capsys)
    assert (
        "tabularnet: warning: " in stderr
        and "dropped 2 rows whose target 'target' is missing (first at row 5)" in stderr
    )
    counts = checkpoint["TabularDataModule"]["preprocessing"]["class_counts"]
    assert sum(counts) < 118  # the rest was split off for validation; the two unlabeled rows are gone


def test_missing_tokens_make_a_numeric_column(tmp_path, capsys):
    train = with_values("age", {3: "?", 4: "n/a", 5: " NA "})
    checkpoint, _ = fit_ok(tmp_path, train, capsys)
    preprocessing = checkpoint["TabularDataModule"]["preprocessing"]
    assert "age" in preprocessing["numeric"] and preprocessing["numeric"]["age"]["indicator"]


def test_declared_missing_tokens(tmp_path, capsys):
    train = with_values("age", {3: "missing", 4: "-"})
    checkpoint, _ = fit_ok(tmp_path, train, capsys, "--data.na_values=[missing, '-']")
    assert "age" in checkpoint["TabularDataModule"]["preprocessing"]["numeric"]


def test_all_missing_column_is_dropped_with_a_warning(tmp_path, capsys):
    train = make_table(120, seed=4).assign(empty=np.nan)
    checkpoint, stderr = fit_ok(tmp_path, train, capsys)
    assert "column 'empty' has no values" in stderr
    schema = checkpoint["TabularDataModule"]["preprocessing"]["schema"]
    assert schema["dropped"] == ["empty"] and "empty" not in schema["numeric"] + schema["categorical"]


def test_high_cardinality_text_is_dropped_or_hashed(tmp_path, capsys):
    train = make_table(200, seed=4)
    train["name"] = [f"passenger {i}" for i in range(len(train))]
    checkpoint, stderr = fit_ok(tmp_path / "drop", train, capsys, "--data.max_categories=50")
    assert "column 'name' has" in stderr and "max_categories=50" in stderr
    assert checkpoint["TabularDataModule"]["preprocessing"]["schema"]["dropped"] == ["name"]
    checkpoint, _ = fit_ok(tmp_path / "hash", train, capsys, "--data.max_categories=50", "--data.high_cardinality=hash")
    assert checkpoint["TabularDataModule"]["preprocessing"]["hashed"] == {"name": 50}
    assert checkpoint["hyper_parameters"]["cat_cardinalities"][-1] == 50 + 2


# ---------------------------------------------------------------------------------------- predict from a checkpoint
@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fitted")
    train = write(make_table(200, seed=5), root / "train.csv")
    main([*FIT, f"--data.train_path={train}", f"--trainer.default_root_dir={root}", "--data.test_fraction=0.2"])
    return root / "lightning_logs" / "version_0"


def fingerprint(run_dir: Path) -> dict[str, str]:
    """sha256 of every file of a run (checkpoints, metrics.json, config, events)."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in run_dir.rglob("*")
        if p.is_file()
    }


def predict(run_dir: Path, source: Path, out: Path, capsys) -> tuple[int, str]:
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    return run_main(
        ["predict", "--ckpt_path", str(ckpt), f"--data.predict_path={source}", f"--predictions_path={out}"], capsys
    )


def new_rows(n: int = 30) -> pd.DataFrame:
    return make_table(n, seed=9).drop(columns="target")


PREDICT_CASES = {
    "missing feature columns": (
        lambda d: write(new_rows().drop(columns=["age", "color"]), d / "new.csv"),
        ["new.csv", "feature column 'age', 'color' not found"],
    ),
    "missing file": (lambda d: d / "absent.parquet", ["file not found", "absent.parquet"]),
    "stray text in a numeric column": (
        lambda d: write(
            new_rows().astype({"income": object}).assign(income=lambda f: f["income"].where(f.index != 4, "lots")),
            d / "new.csv",
        ),
        ["new.csv", "column 'income'", "'lots' at row 4"],
    ),
    "duplicate column names": (
        lambda d: text_file(d / "new.csv", "age,income,color,level,age\n1,2,red,1,3\n"),
        ["new.csv", "duplicate column names: 'age'"],
    ),
}


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_failed_predict_is_one_line_and_leaves_the_run_intact(case, fitted_run, tmp_path, capsys):
    before = fingerprint(fitted_run)
    make_file, expected = PREDICT_CASES[case]
    out = tmp_path / "preds.csv"
    line = one_line_error(*predict(fitted_run, make_file(tmp_path), out, capsys))
    for text in expected:
        assert text in line, line
    assert not out.exists()
    assert fingerprint(fitted_run) == before  # checkpoints and metrics.json untouched
    # ... and the run still predicts: the same checkpoint on good rows
    code, stderr = predict(fitted_run, write(new_rows(), tmp_path / "good.csv"), out, capsys)
    assert code == 0, stderr
    preds = pd.read_csv(out)
    assert len(preds) == 30 and set(preds["prediction"]) <= {"no", "yes"}
    np.testing.assert_allclose(preds[["proba_no", "proba_yes"]].sum(axis=1), 1.0, atol=1e-5)


def test_predict_repairs_what_it_can(fitted_run, tmp_path, capsys):
    """Extra columns (warned), reordered columns, unseen categories, missing tokens and numbers stored as text."""
    rows = new_rows()
    reference = predict(fitted_run, write(rows, tmp_path / "plain.csv"), tmp_path / "plain_out.csv", capsys)
    assert reference[0] == 0
    expected = pd.read_csv(tmp_path / "plain_out.csv")

    messy = rows[rows.columns[::-1]].assign(notes="free text")
    messy["level"] = messy["level"].astype(str)  # integers that arrive as text
    messy["age"] = messy["age"].astype(object)
    code, stderr = predict(fitted_run, write(messy, tmp_path / "messy.parquet"), tmp_path / "messy_out.parquet", capsys)
    assert code == 0 and "ignoring column(s) not seen in training: 'notes'" in stderr
    got = pd.read_parquet(tmp_path / "messy_out.parquet")
    np.testing.assert_allclose(
        got.filter(like="proba_").to_numpy(), expected.filter(like="proba_").to_numpy(), atol=1e-6
    )

    unseen = rows.assign(color="purple", age=lambda f: f["age"].astype(object).where(f.index != 0, "?"))
    code, _ = predict(fitted_run, write(unseen, tmp_path / "unseen.csv"), tmp_path / "unseen_out.csv", capsys)
    assert code == 0 and len(pd.read_csv(tmp_path / "unseen_out.csv")) == len(rows)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_zero_rows_writes_a_header(fitted_run, tmp_path, capsys, suffix):
    out = tmp_path / f"preds{suffix}"
    code, stderr = predict(fitted_run, write(new_rows().iloc[:0], tmp_path / f"empty{suffix}"), out, capsys)
    assert code == 0, stderr
    preds = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert len(preds) == 0 and list(preds.columns) == ["prediction", "proba_no", "proba_yes"]


# ------------------------------------------------------------------------------------------- the Python estimators
def estimator(**kwargs) -> MLPClassifier:
    return MLPClassifier(hidden_dims=[8], training={"epochs": 1, "batch_size": 64}, **kwargs)


def xy(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return df.drop(columns="target"), df["target"]


ESTIMATOR_CASES = {
    "stray text in numeric column": (
        lambda: xy(with_values("age", {7: "oops"})),
        {},
        ["column 'age'", "'oops' at row 7"],
    ),
    "infinity": (lambda: xy(with_values("income", {2: -np.inf})), {}, ["column 'income'", "infinite", "row 2"]),
    "duplicate column names": (
        lambda: (pd.DataFrame(np.ones((4, 2)), columns=["a", "a"]), np.array(["x", "y", "x", "y"])),
        {},
        ["duplicate column names: 'a'"],
    ),
    "missing labels": (
        lambda: (make_table(40).drop(columns="target"), make_table(40)["target"].where(lambda s: s.index != 3)),
        {},
        ["y contains NaN", "1 missing labels", "row 3"],
    ),
    "class_weight with an unknown label": (lambda: xy(make_table(60)), {"class_weight": {"maybe": 2.0}}, ["'maybe'"]),
    "bad high_cardinality": (
        lambda: xy(make_table(60)),
        {"high_cardinality": "ignore"},
        ["high_cardinality", "'ignore'"],
    ),
}


@pytest.mark.parametrize("case", sorted(ESTIMATOR_CASES))
def test_estimator_bad_input_is_a_data_error(case):
    make_xy, params, expected = ESTIMATOR_CASES[case]
    X, y = make_xy()
    with pytest.raises(ValueError) as err:
        estimator(**params).fit(X, y)
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, message


def test_estimator_predict_errors_and_repairs():
    X, y = xy(make_table(120, seed=4))
    model = estimator().fit(X, y)
    with pytest.raises(DataError, match=r"feature column 'age', 'income' not found"):
        model.predict(X.drop(columns=["age", "income"]))
    with pytest.raises(DataError, match=r"column 'age' has non-numeric values \(first: 'old' at row 1\)"):
        model.predict(X.astype({"age": object}).assign(age=lambda f: f["age"].where(f.index != 1, "old")))
    with pytest.warns(UserWarning, match="ignoring column"):
        extra = model.predict_proba(X.assign(notes="x")[["notes", *X.columns[::-1]]])
    np.testing.assert_allclose(extra, model.predict_proba(X), atol=1e-6)
    assert model.predict_proba(X.iloc[:0]).shape == (0, 2)


def test_estimator_accepts_pyarrow_tables():
    pa = pytest.importorskip("pyarrow")
    X, y = xy(make_table(120, seed=4))
    model = estimator(random_seed=1).fit(pa.Table.from_pandas(X, preserve_index=False), y)
    from_frame = estimator(random_seed=1).fit(X, y)
    np.testing.assert_allclose(
        model.predict_proba(pa.Table.from_pandas(X, preserve_index=False)), from_frame.predict_proba(X), atol=1e-6
    )
