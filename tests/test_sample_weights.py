"""Sample weights: a row of integer weight k is k copies of it -- in the loss, the preprocessing, the metrics, both
drivers and both front doors; weight 0 is a row left out; weights of all ones are no weights."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_table
from test_bad_inputs import FIT, one_line_error, run_main, write

from tabularnet.cli import main
from tabularnet.data.checkpoint import load_checkpoint
from tabularnet.data.datamodule import TabularDataModule
from tabularnet.data.preprocessing import Preprocessor, weighted_quantiles
from tabularnet.data.schema import DataError, infer_schema
from tabularnet.data.tabular_data import TabularData
from tabularnet.models import MLPClassifier, TransformerClassifier
from tabularnet.nn import MLP
from tabularnet.nn.layers import PiecewiseLinearEmbeddings, weighted_lower_quantiles
from tabularnet.training.config import Recipe
from tabularnet.training.lightning_modules import MLPLightningModule
from tabularnet.training.metrics import classification_metrics
from tabularnet.training.objectives import AugmentationRNG, label_loss, training_loss
from tabularnet.training.torch_trainer import TorchTrainer

SMALL = {
    MLPClassifier: dict(hidden_dims=[16, 8]),
    TransformerClassifier: dict(d_model=8, nhead=2, num_layers=1),
}


def repeated(frame, weights: np.ndarray):
    """``frame`` (DataFrame, Series or array) with row ``i`` repeated ``weights[i]`` times."""
    if isinstance(frame, (pd.DataFrame, pd.Series)):
        return frame.iloc[np.repeat(np.arange(len(frame)), weights)].reset_index(drop=True)
    return np.repeat(frame, weights, axis=0)


@pytest.fixture(scope="module")
def weighted_table():
    df = make_table(80, seed=2)
    weights = np.random.default_rng(0).integers(0, 4, len(df))
    return df.drop(columns="target"), df["target"], weights


def full_batch(cls, **options):
    """Full-batch training without dropout: the batches (one per epoch) and dropout masks cannot differ."""
    options = {
        **SMALL[cls],
        "dropout": 0.0,
        "training": {"batch_size": 4096, "epochs": 6},
        "optimizer": {"name": "AdamW", "lr": 1e-2},
        "random_seed": 3,
        **options,
    }
    return cls(**options)


# ------------------------------------------------------------------------------------------------ estimators
@pytest.mark.parametrize("use_lightning", [False, True], ids=["torch", "lightning"])
@pytest.mark.parametrize("cls", [MLPClassifier, TransformerClassifier])
def test_weighted_fit_equals_fit_on_repeated_rows(cls, use_lightning, weighted_table):
    X, y, w = weighted_table
    options = dict(use_lightning=use_lightning, class_weight="balanced", label_smoothing=0.1)
    weighted = full_batch(cls, **options).fit(X, y, sample_weight=w)
    copies = full_batch(cls, **options).fit(repeated(X, w), repeated(y, w))
    np.testing.assert_allclose(weighted.predict_proba(X), copies.predict_proba(X), atol=1e-5, rtol=0)
    assert weighted.hparams_["class_counts"] == pytest.approx(copies.hparams_["class_counts"])
    for name, stats in copies.preprocessing_["numeric"].items():  # e.g. the quantile scaling's quantiles
        for key, value in stats.items():
            assert weighted.preprocessing_["numeric"][name][key] == pytest.approx(value), (name, key)


def test_weighted_distillation_equals_repeated_rows(weighted_table):
    X, y, w = weighted_table
    teacher = np.random.default_rng(1).dirichlet([1, 1], size=len(y))
    options = dict(distillation={"enabled": True, "lambda": 0.6, "temperature": 2.0, "consistency": 0.5})
    weighted = full_batch(MLPClassifier, **options).fit(X, y, sample_weight=w, teacher_probs=teacher)
    copies = full_batch(MLPClassifier, **options).fit(
        repeated(X, w), repeated(y, w), teacher_probs=repeated(teacher, w)
    )
    np.testing.assert_allclose(weighted.predict_proba(X), copies.predict_proba(X), atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_lightning", [False, True], ids=["torch", "lightning"])
def test_unit_weights_equal_no_weights_exactly(use_lightning, weighted_table):
    X, y, _ = weighted_table
    options = dict(hidden_dims=[8], training={"epochs": 2, "batch_size": 16}, use_lightning=use_lightning)
    plain = MLPClassifier(**options).fit(X, y).predict_proba(X)
    ones = MLPClassifier(**options).fit(X, y, sample_weight=np.ones(len(y))).predict_proba(X)
    np.testing.assert_array_equal(plain, ones)


def test_zero_weights_equal_removing_the_rows(weighted_table):
    X, y, _ = weighted_table
    keep = np.arange(len(y)) % 4 != 0
    weighted = full_batch(MLPClassifier).fit(X, y, sample_weight=keep.astype(float))
    removed = full_batch(MLPClassifier).fit(X[keep], y[keep])
    np.testing.assert_allclose(weighted.predict_proba(X), removed.predict_proba(X), atol=1e-5, rtol=0)


def test_validation_rows_carved_from_x_keep_their_weights(weighted_table):
    X, y, w = weighted_table
    early = {"enabled": True, "patience": 100}
    model = MLPClassifier(hidden_dims=[8], training={"epochs": 2, "early_stopping": early, "validation_split": 0.5})
    model.fit(X, y, sample_weight=w)
    dm = TabularData.from_frames(X.assign(target=y, w=w), target="target", weight_column="w", val_fraction=0.5)
    val = dm.split_tensors("val")
    assert "weight" in val and "weight" in dm.split_tensors("train")
    assert torch.isin(val["weight"], torch.tensor([0.0, 1.0, 2.0, 3.0])).all()


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (lambda n: np.ones((n, 2)), "sample_weight must be 1-D"),
        (lambda n: np.ones(n + 1), "sample_weight has 81 weights but X has 80 rows"),
        (lambda n: np.r_[np.ones(n - 1), -1.0], "sample_weight has a negative value -1.0 at row 79"),
        (lambda n: np.r_[np.inf, np.ones(n - 1)], "sample_weight has a non-finite value inf at row 0"),
        (lambda n: np.r_[1.0, np.nan, np.ones(n - 2)], "sample_weight has a missing value at row 1"),
        (lambda n: ["a"] * n, "sample_weight has a non-numeric value 'a' at row 0"),
        (lambda n: np.zeros(n), "sample_weight: all weights are zero"),
    ],
    ids=["2-D", "length", "negative", "inf", "nan", "text", "zeros"],
)
def test_bad_sample_weights_are_one_line_errors(weights, message, weighted_table):
    X, y, _ = weighted_table
    with pytest.raises(DataError) as err:
        MLPClassifier(training={"epochs": 1}).fit(X, y, sample_weight=weights(len(y)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_weights_leaving_one_class_are_an_error_naming_the_class(weighted_table):
    X, y, _ = weighted_table
    with pytest.raises(DataError, match=r"only one class has rows of positive weight \('yes'\)"):
        MLPClassifier(training={"epochs": 1}).fit(X, y, sample_weight=(y == "yes").to_numpy().astype(float))


# ------------------------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("scaling", ["standard", "quantile"])
def test_weighted_preprocessing_equals_repeated_rows(scaling):
    df = make_table(200, seed=5)
    df.loc[df.index[:40], "color"] = np.where(np.arange(40) % 2, "purple", "teal")  # rarer categories
    weights = np.random.default_rng(2).integers(0, 4, len(df))
    schema = infer_schema(df, target="target")
    options = dict(scaling=scaling, min_frequency=3)
    weighted = Preprocessor(**options).fit(df, schema, sample_weight=weights).state_dict()
    copies = Preprocessor(**options).fit(repeated(df, weights), schema).state_dict()
    assert weighted["categorical"] == copies["categorical"] and weighted["classes"] == copies["classes"]
    assert weighted["class_counts"] == copies["class_counts"]
    for name, stats in copies["numeric"].items():
        assert weighted["numeric"][name].keys() == stats.keys()
        for key, value in stats.items():
            assert weighted["numeric"][name][key] == pytest.approx(value, rel=1e-12, abs=1e-12), (name, key)


def test_weighted_quantiles_equal_numpy_on_repeated_values():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values, weights = rng.normal(size=25), rng.integers(0, 4, 25)
        weights[0] = 1
        q = np.linspace(0, 1, 17)
        np.testing.assert_array_equal(
            weighted_quantiles(values, q, weights.astype(float)), np.quantile(np.repeat(values, weights), q)
        )
        torch.testing.assert_close(
            weighted_lower_quantiles(torch.tensor(values), torch.tensor(q), torch.tensor(weights, dtype=torch.float64)),
            torch.quantile(torch.tensor(np.repeat(values, weights)), torch.tensor(q), interpolation="lower"),
            rtol=0,
            atol=0,
        )


def test_ple_edges_from_weighted_rows_equal_those_of_repeated_rows():
    x = torch.randn(60, 3)
    weights = torch.randint(0, 4, (60,))
    weighted, copies = PiecewiseLinearEmbeddings(3, 4, n_bins=8), PiecewiseLinearEmbeddings(3, 4, n_bins=8)
    weighted.initialize_from_data(x, weight=weights.float())
    copies.initialize_from_data(x.repeat_interleave(weights, dim=0))
    torch.testing.assert_close(weighted.edges, copies.edges, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- objectives
def batch(n: int = 24, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "x_num": torch.randn(n, 5, generator=g),
        "x_cat": torch.randint(0, 4, (n, 2), generator=g),
        "y": torch.randint(0, 3, (n,), generator=g),
        "teacher_logits": torch.randn(n, 3, generator=g) * 2,
        "weight": torch.randint(0, 4, (n,), generator=g).float(),
    }


def net() -> MLP:
    torch.manual_seed(0)
    return MLP(n_num_features=5, cat_cardinalities=[4, 4], d_out=3, hidden_dims=[16], dropout=0.0)


def test_weighted_training_loss_equals_the_loss_of_repeated_rows():
    b = batch()
    counts = b["weight"].long()
    copies = {k: v.repeat_interleave(counts, dim=0) for k, v in b.items() if k != "weight"}
    recipe = Recipe.from_options(
        label_smoothing=0.1,
        class_weight={"0": 2.0, "2": 0.5},
        classes=[0, 1, 2],
        distillation={"enabled": True, "lambda": 0.5, "temperature": 2.0, "consistency": 0.3},
    )
    weighted = training_loss(net(), b, recipe, AugmentationRNG(0)).loss
    plain = training_loss(net(), copies, recipe, AugmentationRNG(0)).loss
    torch.testing.assert_close(weighted, plain)


def test_weighted_mixup_weights_both_terms_by_the_mixed_rows_weight():
    b = batch()
    logits, y, v = torch.randn(len(b["y"]), 3), b["y"], b["weight"]
    class_weight, lam, perm = torch.tensor([2.0, 1.0, 0.5]), 0.7, torch.randperm(len(y))
    loss = label_loss(logits, y, lam=lam, perm=perm, weight=class_weight, sample_weight=v, label_smoothing=0.1)
    rows = torch.nn.functional.cross_entropy
    first = (v * rows(logits, y, weight=class_weight, reduction="none", label_smoothing=0.1)).sum()
    second = (v * rows(logits, y[perm], weight=class_weight, reduction="none", label_smoothing=0.1)).sum()
    expected = lam * first / (v * class_weight[y]).sum() + (1 - lam) * second / (v * class_weight[y[perm]]).sum()
    torch.testing.assert_close(loss, expected)


def test_unit_sample_weights_give_the_unweighted_loss():
    b = batch()
    recipe = Recipe.from_options(label_smoothing=0.1, class_weight={"1": 3.0}, classes=[0, 1, 2])
    ones = {**b, "weight": torch.ones(len(b["y"]))}
    without = {k: v for k, v in b.items() if k != "weight"}
    torch.testing.assert_close(
        training_loss(net(), ones, recipe, AugmentationRNG(0)).loss,
        training_loss(net(), without, recipe, AugmentationRNG(0)).loss,
    )


# ------------------------------------------------------------------------------------------------- metrics
def test_weighted_metrics_equal_torchmetrics_on_repeated_rows():
    g = torch.Generator().manual_seed(1)
    probs = torch.randn(300, 3, generator=g).mul(2).softmax(-1)
    probs[:20] = probs[20:40]  # ties
    y = torch.randint(0, 3, (300,), generator=g)
    weight = torch.randint(0, 4, (300,), generator=g)
    weighted, plain = classification_metrics(3, "val_", weighted=True), classification_metrics(3, "val_")
    for start in range(0, 300, 70):  # several batches
        rows = slice(start, start + 70)
        weighted.update(probs[rows], y[rows], weight=weight[rows].float())
    plain.update(probs.repeat_interleave(weight, 0), y.repeat_interleave(weight))
    got, expected = weighted.compute(), plain.compute()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-5, msg=name)


def test_both_drivers_report_the_weighted_validation_loss_and_accuracy():
    df = make_table(120, seed=7)
    weights = np.random.default_rng(3).integers(1, 4, len(df)).astype(float)
    train, val = df.iloc[:80].assign(w=1.0), df.iloc[80:].assign(w=weights[80:])
    dm = TabularDataModule.from_frames(train, val=val, target="target", weight_column="w", batch_size=32)
    torch.manual_seed(0)
    module = MLPLightningModule(dm.n_num_features, dm.cat_cardinalities, dm.n_classes, hidden_dims=[8])
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    lightning = trainer.validate(module, datamodule=dm, verbose=False)[0]
    torch_loss, torch_acc = TorchTrainer(Recipe(), max_epochs=1).evaluate(module.net, dm.val_dataloader())
    copies = TabularDataModule.from_frames(train, val=repeated(val.drop(columns="w"), weights[80:].astype(int)))
    copies.preprocessor = dm.preprocessor
    plain_loss, plain_acc = TorchTrainer(Recipe(), max_epochs=1).evaluate(module.net, copies.val_dataloader())
    assert lightning["val_loss"] == pytest.approx(plain_loss, abs=1e-5) and torch_loss == pytest.approx(plain_loss)
    assert lightning["val_acc"] == pytest.approx(plain_acc, abs=1e-6) and torch_acc == pytest.approx(plain_acc)


# ----------------------------------------------------------------------------------------------------- CLI
@pytest.fixture()
def weighted_csv(tmp_path) -> Path:
    df = make_table(120, seed=4)
    df.insert(2, "w", np.random.default_rng(0).integers(0, 4, len(df)).astype(float))
    return write(df, tmp_path / "train.csv")


def test_cli_weight_column_trains_and_is_not_a_feature(weighted_csv, tmp_path, capsys):
    root = tmp_path / "run"
    code, stderr = run_main(
        [*FIT, f"--data.train_path={weighted_csv}", "--data.weight_column=w", f"--trainer.default_root_dir={root}"],
        capsys,
    )
    assert code == 0, stderr
    run = root / "lightning_logs" / "version_0"
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    schema = checkpoint["TabularDataModule"]["preprocessing"]["schema"]
    assert "w" not in schema["numeric"] + schema["categorical"] and "w" in schema["dropped"]
    assert checkpoint["datamodule_hyper_parameters"]["weight_column"] == "w"
    assert "val_loss" in json.loads((run / "metrics.json").read_text())
    # prediction needs no weight column, and ignores one that is there
    for name, frame in {"without": make_table(30, seed=9), "with": make_table(30, seed=9).assign(w=-5.0)}.items():
        source = write(frame.drop(columns="target"), tmp_path / f"{name}.csv")
        out = tmp_path / f"{name}_preds.csv"
        main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), f"--data.predict_path={source}",
              f"--predictions_path={out}"])  # fmt: skip
        assert len(pd.read_csv(out)) == 30
        assert "w" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ({5: -1.0}, ["train.csv", "weight column 'w'", "negative value -1.0 at row 5"]),
        ({7: "heavy"}, ["train.csv", "weight column 'w'", "non-numeric value 'heavy' at row 7"]),
        ({3: np.inf}, ["train.csv", "weight column 'w'", "non-finite value inf at row 3"]),
        ({2: np.nan}, ["train.csv", "weight column 'w'", "missing value at row 2"]),
    ],
    ids=["negative", "text", "inf", "missing"],
)
def test_cli_bad_weights_are_one_line_errors(rows, expected, tmp_path, capsys):
    df = make_table(60, seed=4).assign(w=1.0)
    df["w"] = df["w"].astype(object)
    for row, value in rows.items():
        df.loc[row, "w"] = value
    path = write(df, tmp_path / "train.csv")
    code, stderr = run_main(
        [*FIT, f"--data.train_path={path}", "--data.weight_column=w", f"--trainer.default_root_dir={tmp_path}"], capsys
    )
    line = one_line_error(code, stderr)
    for text in expected:
        assert text in line, line


def test_cli_missing_weight_column_is_one_line_error(tmp_path, capsys):
    path = write(make_table(60, seed=4), tmp_path / "train.csv")
    code, stderr = run_main(
        [*FIT, f"--data.train_path={path}", "--data.weight_column=w", f"--trainer.default_root_dir={tmp_path}"], capsys
    )
    line = one_line_error(code, stderr)
    assert "train.csv" in line and "weight column 'w' not found" in line


# ----------------------------------------------------------------------------------------------- streaming
@pytest.fixture()
def weighted_parquet(tmp_path) -> tuple[Path, pd.DataFrame]:
    df = make_table(400, seed=6).assign(w=np.random.default_rng(4).integers(0, 4, 400).astype(float))
    path = tmp_path / "train.parquet"
    df.to_parquet(path, row_group_size=100)
    return path, df


def test_streaming_weights_fit_the_preprocessing_and_travel_in_batches(weighted_parquet):
    path, df = weighted_parquet
    # standard scaling: its weighted mean and std are the statistics compared below
    options = dict(target="target", weight_column="w", val_fraction=0.0, batch_size=64, scaling="standard")
    streamed = TabularData(train_path=str(path), streaming=True, **options)
    in_memory = TabularData(train_path=str(path), streaming=False, **options)
    assert streamed.class_counts == pytest.approx(in_memory.class_counts)  # the classes' total weights
    state, expected = streamed.preprocessor.state_dict(), in_memory.preprocessor.state_dict()
    assert state["schema"] == expected["schema"] and "w" in state["schema"]["dropped"]
    assert state["categorical"] == expected["categorical"]
    for name, stats in expected["numeric"].items():
        assert state["numeric"][name] == pytest.approx(stats)
    batches = list(streamed.train_dataloader())
    assert all("weight" in b for b in batches)
    assert float(sum(b["weight"].sum() for b in batches)) == pytest.approx(df["w"].sum())


def test_streaming_bad_weight_names_the_files_row(weighted_parquet, tmp_path):
    _, df = weighted_parquet
    df.loc[250, "w"] = -2.0
    path = tmp_path / "bad.parquet"
    df.to_parquet(path, row_group_size=100)
    with pytest.raises(DataError, match=r"bad.parquet: weight column 'w' has a negative value -2.0 at row 250"):
        _ = TabularData(train_path=str(path), target="target", weight_column="w", streaming=True).n_classes
    with pytest.raises(DataError, match=r"weight column 'v' not found"):
        _ = TabularData(train_path=str(path), target="target", weight_column="v", streaming=True).n_classes
