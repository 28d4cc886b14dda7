"""ONNX export and the torch-free predictor: parity with `tabularnet predict`, repairs, errors, imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATASETS, make_table, requires_shared_datasets

from tabularnet.cli import main
from tabularnet.data.schema import DataError
from tabularnet.models import MLPClassifier, TransformerClassifier
from tabularnet.models.classifiers import load_estimator

pytest.importorskip("onnxruntime")
from tabularnet.serving import Predictor  # noqa: E402

# every model family and numeric embedding (the MLP without embeddings too), and TabM ensembles of the MLP
VARIANTS = {
    "mlp": ["--model=tabularnet.MLPLightningModule", "--model.hidden_dims=[16, 8]"],
    "mlp_linear": ["--model=tabularnet.MLPLightningModule", "--model.hidden_dims=[16]", "--model.num_embedding=linear"],
    "mlp_plr": ["--model=tabularnet.MLPLightningModule", "--model.hidden_dims=[16]", "--model.num_embedding=plr"],
    "mlp_ple": ["--model=tabularnet.MLPLightningModule", "--model.hidden_dims=[16]", "--model.num_embedding=ple"],
    "mlp_tabm": ["--model=tabularnet.MLPLightningModule", "--model.hidden_dims=[16, 8]", "--model.k=4"],
    "mlp_tabm_mini": [
        "--model=tabularnet.MLPLightningModule",
        "--model.hidden_dims=[16]",
        "--model.num_embedding=ple",
        "--model.k=4",
        "--model.ensemble=mini",
    ],
    **{
        f"ft_{embedding}": [
            "--model=tabularnet.TransformerLightningModule",
            "--model.d_model=16",
            "--model.nhead=2",
            "--model.num_layers=1",
            f"--model.num_embedding={embedding}",
        ]
        for embedding in ("linear", "plr", "ple")
    },
}


def fit_checkpoint(train_path: Path, root: Path, variant: str, *extra: str) -> Path:
    """A short `tabularnet fit` of ``variant``; its best checkpoint (calibrated: the temperature is not 1)."""
    main(
        [
            "fit",
            *VARIANTS[variant],
            f"--data.train_path={train_path}",
            "--data.val_fraction=0.2",
            "--model.calibrate=true",
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={root}",
            "--seed_everything=0",
            *extra,
        ]
    )
    metrics = json.loads((root / "lightning_logs" / "version_0" / "metrics.json").read_text())
    assert metrics["temperature"] != 1.0
    return Path(metrics["best_checkpoint"])


def cli_probabilities(ckpt_path: Path, table: Path, out: Path) -> np.ndarray:
    """``tabularnet predict`` (from a checkpoint or an ONNX file) into Parquet: its probability columns."""
    main(["predict", f"--ckpt_path={ckpt_path}", f"--data.predict_path={table}", f"--predictions_path={out}"])
    return pd.read_parquet(out).filter(like="proba_").to_numpy()


def damaged(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``df`` with unseen categories, missing numbers and missing-value tokens in some rows."""
    rng = np.random.default_rng(seed)
    df = df.copy()
    numeric = list(df.select_dtypes(include="number").columns)
    for column in [c for c in df.columns if c not in numeric]:
        df[column] = df[column].astype(object)
        df.loc[rng.random(len(df)) < 0.05, column] = "a-value-never-seen"
        df.loc[rng.random(len(df)) < 0.05, column] = "?"
    for column in numeric:
        df[column] = df[column].astype(float)
        df.loc[rng.random(len(df)) < 0.05, column] = np.nan
    return df


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serving")
    df = make_table(300, seed=4)
    paths = {"train": folder / "train.csv", "predict": folder / "predict.parquet"}
    df.to_csv(paths["train"], index=False)
    damaged(df.drop(columns="target").iloc[:97]).to_parquet(paths["predict"])
    return paths


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnx_equals_tabularnet_predict(variant, tiny, tmp_path):
    ckpt = fit_checkpoint(tiny["train"], tmp_path, variant)
    onnx_path = tmp_path / "model.onnx"
    main(["export", f"--ckpt_path={ckpt}", f"--output={onnx_path}"])
    expected = cli_probabilities(ckpt, tiny["predict"], tmp_path / "ckpt.parquet")
    assert np.abs(cli_probabilities(onnx_path, tiny["predict"], tmp_path / "onnx.parquet") - expected).max() <= 1e-5
    for batch_size in (1, 7, 1000):
        probs = Predictor(onnx_path, batch_size=batch_size).predict_proba(tiny["predict"])
        assert probs.shape == expected.shape and np.abs(probs - expected).max() <= 1e-5


@pytest.mark.parametrize("cls", [MLPClassifier, TransformerClassifier])
def test_estimator_export_onnx(cls, tmp_path):
    df = make_table(200, seed=5, n_classes=3)
    X, y = df.drop(columns="target"), df["target"]
    small = dict(d_model=8, nhead=2, num_layers=1) if cls is TransformerClassifier else dict(hidden_dims=[8])
    model = cls(**small, calibrate=True, training={"epochs": 2}).fit(X, y)
    path = model.export_onnx(tmp_path / "model.onnx")
    predictor = Predictor(path)
    X_new = damaged(X)
    assert np.abs(predictor.predict_proba(X_new) - model.predict_proba(X_new)).max() <= 1e-5
    assert (predictor.predict(X_new) == model.predict(X_new)).all()
    assert predictor.classes_.tolist() == model.classes_.tolist() == ["c0", "c1", "c2"]
    assert predictor.metadata["temperature"] == pytest.approx(model.temperature_)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An MLPClassifier on the tiny table, its ONNX file and the table's features."""
    folder = tmp_path_factory.mktemp("exported")
    df = make_table(200, seed=6)
    X, y = df.drop(columns="target"), df["target"]
    model = MLPClassifier(hidden_dims=[8], training={"epochs": 2}).fit(X, y)
    return model, model.export_onnx(folder / "model.onnx"), X


def test_predictor_inputs_and_repairs(exported, tmp_path):
    model, path, X = exported
    predictor = Predictor(path)
    expected = model.predict_proba(X)
    X.to_csv(tmp_path / "x.csv", index=False)
    pa = pytest.importorskip("pyarrow")
    shuffled = X[X.columns[::-1]].assign(unrelated=1.0)  # reordered columns and an extra one
    with pytest.warns(UserWarning, match="unrelated"):
        reordered = predictor.predict_proba(shuffled)
    for probs in (
        predictor.predict_proba(tmp_path / "x.csv"),
        predictor.predict_proba(pa.Table.from_pandas(X)),
        predictor.predict_proba(X.to_numpy(dtype=object)),
        reordered,
    ):
        assert np.abs(probs - expected).max() <= 1e-5
    assert predictor.predict_proba(X.iloc[:0]).shape == (0, 2)
    frame = predictor.predict_frame(X.iloc[:5])
    assert list(frame.columns) == ["prediction", "proba_no", "proba_yes"]


def test_predictor_errors(exported, tmp_path):
    _, path, X = exported
    predictor = Predictor(path)
    with pytest.raises(DataError, match="'color' not found"):
        predictor.predict_proba(X.drop(columns="color"))
    with pytest.raises(DataError, match="age"):
        predictor.predict_proba(X.assign(age="forty"))
    with pytest.raises(DataError, match="not found"):
        Predictor(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(DataError, match="not a loadable ONNX model"):
        Predictor(tmp_path / "junk.onnx")
    onnx = pytest.importorskip("onnx")
    bare = onnx.load(str(path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(DataError, match="not exported by tabularnet"):
        Predictor(tmp_path / "bare.onnx")


def one_line_error(capsys, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_command_line_errors(exported, tmp_path, capsys):
    model, path, X = exported
    model.save(tmp_path / "model.ckpt")
    assert "--output" in one_line_error(capsys, ["export", f"--ckpt_path={tmp_path / 'model.ckpt'}"])
    assert ".onnx" in one_line_error(
        capsys, ["export", f"--ckpt_path={tmp_path / 'model.ckpt'}", f"--output={tmp_path / 'model.txt'}"]
    )
    assert "checkpoint not found" in one_line_error(capsys, ["export", "--ckpt_path=nope.ckpt", "--output=m.onnx"])
    X.to_csv(tmp_path / "x.csv", index=False)
    err = one_line_error(
        capsys, ["predict", f"--ckpt_path={path}", f"--data.predict_path={tmp_path / 'x.csv'}", "--trainer.devices=2"]
    )
    assert "--trainer.devices=2" in err
    assert "--data.predict_path" in one_line_error(capsys, ["predict", f"--ckpt_path={path}"])
    assert not (tmp_path / "predictions.csv").exists()


def test_export_of_a_saved_estimator_equals_its_checkpoint(exported, tmp_path):
    model, _, X = exported
    model.save(tmp_path / "model.ckpt")
    main(["export", f"--ckpt_path={tmp_path / 'model.ckpt'}", f"--output={tmp_path / 'again.onnx'}"])
    assert isinstance(load_estimator(tmp_path / "model.ckpt"), MLPClassifier)
    assert np.abs(Predictor(tmp_path / "again.onnx").predict_proba(X) - model.predict_proba(X)).max() <= 1e-5


SERVING_SCRIPT = """
import sys, pandas as pd
from tabularnet.serving import Predictor
predictor = Predictor(sys.argv[1])
labels = predictor.predict(pd.read_csv(sys.argv[2]))
heavy = sorted(m for m in ("torch", "lightning", "sklearn", "onnx", "xgboost") if m in sys.modules)
print(len(labels), heavy)
"""


def test_serving_imports_no_training_stack(exported, tmp_path):
    _, path, X = exported
    X.to_csv(tmp_path / "x.csv", index=False)
    out = subprocess.run(
        [sys.executable, "-c", SERVING_SCRIPT, str(path), str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == [str(len(X)), "[]"]


@pytest.mark.slow
@requires_shared_datasets()
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnx_parity_on_the_adult_test_split(variant, tmp_path):
    """The issue's bar: the whole official Adult test split (16,281 rows), damaged, at batch sizes 1, 7 and all."""
    adult = SHARED_DATASETS / "adult"
    ckpt = fit_checkpoint(adult / "train.csv.gz", tmp_path, variant, "--trainer.limit_train_batches=20")
    test = damaged(pd.read_csv(adult / "test.csv").drop(columns="target"), seed=1)
    test.to_parquet(tmp_path / "test.parquet")
    main(["export", f"--ckpt_path={ckpt}", f"--output={tmp_path / 'adult.onnx'}"])
    expected = cli_probabilities(ckpt, tmp_path / "test.parquet", tmp_path / "ckpt.parquet")
    assert expected.shape == (16281, 2)
    for batch_size in (1, 7, 16281):
        probs = Predictor(tmp_path / "adult.onnx", batch_size=batch_size).predict_proba(test)
        assert np.abs(probs - expected).max() <= 1e-5
