"""Regression end to end: the task decision, target scaling, the loss terms, both drivers, scikit-learn's checks,
checkpoints, the command line and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import WEIGHT_EQUIVALENCE, make_table
from sklearn.utils.estimator_checks import parametrize_with_checks

from tabularnet.cli import main
from tabularnet.data.schema import DataError, DataNote
from tabularnet.data.task import decide_task, fit_target_scaling, scale_target, unscale_target
from tabularnet.models import MLPRegressor, TransformerRegressor
from tabularnet.training.config import Recipe
from tabularnet.training.objectives import AugmentationRNG, training_loss
from tabularnet.training.tasks import Regression

QUIET = ["--trainer.enable_progress_bar=false"]


def make_regression_table(n_rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """The synthetic table of conftest with a positive, right-skewed numeric target (a price)."""
    df = make_table(n_rows, seed=seed).drop(columns="target")
    rng = np.random.default_rng(seed + 100)
    score = df["age"] / 12 + (df["color"] == "red") * 1.5 + df["level"] * 0.5 + rng.normal(0, 0.3, n_rows)
    df["target"] = np.round(np.exp(score), 3) * 1000
    return df


@pytest.fixture(scope="module")
def xy():
    df = make_regression_table(300, seed=3)
    return df.drop(columns="target"), df["target"].to_numpy()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("regression")
    df = make_regression_table(400, seed=1)
    paths = {"train": folder / "train.csv", "predict": folder / "predict.csv"}
    df.iloc[:300].to_csv(paths["train"], index=False)
    df.iloc[300:].drop(columns="target").to_csv(paths["predict"], index=False)
    return paths


# ----------------------------------------------------------------------------------------------- the task
def test_auto_decides_the_task_and_says_so():
    floats = pd.Series(np.linspace(0, 1, 100), name="price")
    with pytest.warns(DataNote, match="'price' is numeric with 100 distinct values, so the task is regression"):
        assert decide_task(floats, "auto", source="t.csv") == "regression"
    with pytest.warns(DataNote, match="holds labels, so the task is classification"):
        assert decide_task(pd.Series(["a", "b"] * 50, name="y"), "auto", source="t.csv") == "classification"
    with pytest.warns(DataNote, match="only 3 distinct values, so the task is classification.*--data.task regression"):
        assert decide_task(pd.Series([1, 2, 3] * 30, name="stars"), "auto", source="t.csv") == "classification"
    assert decide_task(pd.Series([1, 2, 3] * 30), "regression", source="t.csv") == "regression"


def test_the_override_makes_a_small_integer_target_a_regression(tmp_path):
    df = make_regression_table(200, seed=2)
    df["target"] = np.digitize(df["target"], np.quantile(df["target"], [0.33, 0.66]))  # 0, 1, 2: auto classifies
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    common = [f"--data.train_path={path}", "--trainer.max_epochs=1", *QUIET, "--model.hidden_dims=[8]"]
    main(["fit", *common, f"--trainer.default_root_dir={tmp_path / 'auto'}"])
    main(["fit", *common, "--data.task=regression", f"--trainer.default_root_dir={tmp_path / 'reg'}"])
    auto = json.loads((tmp_path / "auto/lightning_logs/version_0/metrics.json").read_text())
    regression = json.loads((tmp_path / "reg/lightning_logs/version_0/metrics.json").read_text())
    assert "val_acc" in auto and "val_rmse" not in auto
    assert "val_rmse" in regression and "val_acc" not in regression


# ------------------------------------------------------------------------------------------ target scaling
@pytest.mark.parametrize("transform", ["none", "log1p"])
def test_target_scaling_round_trips(transform):
    y = np.random.default_rng(0).lognormal(10, 1, 1000)
    scaling = fit_target_scaling(y, transform)
    z = scale_target(y, scaling)
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    np.testing.assert_allclose(unscale_target(z, scaling), y, rtol=1e-12)
    # the model's float32 outputs: the torch path gives the same numbers
    torch_values = unscale_target(torch.as_tensor(z, dtype=torch.float64), scaling).numpy()
    np.testing.assert_allclose(torch_values, y, rtol=1e-12)


@pytest.mark.parametrize("transform", ["none", "log1p"])
def test_a_model_that_predicts_the_scaled_target_predicts_the_target(transform, xy, monkeypatch):
    """Through predict: a network whose output is exactly the training target on its standard scale gives back
    the target in its own units (to float32 rounding)."""
    X, y = xy
    model = MLPRegressor(hidden_dims=[4], training={"epochs": 1}, target_transform=transform).fit(X, y)
    scaling = model.preprocessing_["target_scaling"]
    assert scaling["transform"] == transform
    z = torch.as_tensor(scale_target(y, scaling), dtype=torch.float64).unsqueeze(1)
    monkeypatch.setattr(model, "_network_outputs", lambda X, **options: z)
    np.testing.assert_allclose(model.predict(X), y, rtol=1e-12)  # the network's own precision is float32


# ------------------------------------------------------------------------------------------------- losses
def batch(n: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "x_num": torch.randn(n, 3, generator=g),
        "x_cat": torch.zeros(n, 0, dtype=torch.int64),
        "y": torch.randn(n, generator=g),
        "teacher_logits": torch.randn(n, 1, generator=g),
    }


def linear():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1)
    return lambda x_num, x_cat: layer(x_num)


def test_regression_mixup_mixes_the_targets():
    b, net = batch(), linear()
    recipe = Recipe.from_options(task_type="regression", mixup={"enabled": True, "alpha": 0.4})
    loss = training_loss(net, b, recipe, AugmentationRNG(7)).loss
    rng = AugmentationRNG(7)  # the same draws, by hand
    lam = float(rng.numpy.beta(0.4, 0.4))
    lam = max(lam, 1 - lam)
    perm = torch.randperm(16, generator=rng.torch)
    x = lam * b["x_num"] + (1 - lam) * b["x_num"][perm]
    y = lam * b["y"] + (1 - lam) * b["y"][perm]
    torch.testing.assert_close(loss, (net(x, None)[:, 0] - y).pow(2).mean())


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_distillation_lambda_zero_is_the_plain_loss_and_one_the_teacher_loss(loss):
    b, net = batch(), linear()
    out = net(b["x_num"], None)[:, 0]
    pointwise = Regression(loss).pointwise
    plain = training_loss(net, b, Recipe.from_options(task_type="regression", loss=loss), AugmentationRNG(0)).loss
    torch.testing.assert_close(plain, pointwise(out, b["y"]).mean())
    for lam, expected in ((0.0, plain), (1.0, pointwise(out, b["teacher_logits"][:, 0]).mean())):
        recipe = Recipe.from_options(task_type="regression", loss=loss, distillation={"enabled": True, "lambda": lam})
        torch.testing.assert_close(training_loss(net, b, recipe, AugmentationRNG(0)).loss, expected)


def test_distillation_with_lambda_one_fits_the_teacher(xy):
    X, y = xy
    teacher = np.full(len(y), float(np.median(y)) * 3)  # far from y: the student follows it, not y
    model = MLPRegressor(
        hidden_dims=[16], training={"epochs": 30}, optimizer={"lr": 1e-2}, distillation={"enabled": True, "lambda": 1.0}
    ).fit(X, y, teacher_preds=teacher)
    prediction = model.predict(X)
    assert np.abs(prediction - teacher).mean() < 0.1 * np.abs(y - teacher).mean()


# ------------------------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("cls", [MLPRegressor, TransformerRegressor])
def test_use_lightning_gives_the_same_model(cls, xy):
    X, y = xy
    options = dict(
        mixup={"enabled": True, "alpha": 0.2},
        noise={"enabled": True, "std": 0.05},
        scheduler={"name": "cosine", "warmup_proportion": 0.1},
        training={"batch_size": 32, "epochs": 3},
        target_transform="log1p",
        loss="huber",
        random_seed=5,
    )
    small = dict(d_model=16, nhead=2, num_layers=1) if cls is TransformerRegressor else dict(hidden_dims=[16, 8])
    teacher = y * 1.1
    distill = {"distillation": {"enabled": True, "lambda": 0.5, "consistency": 0.2}}
    predictions = [
        cls(**small, **options, **distill, use_lightning=flag).train(X, y, teacher_preds=teacher).predict(X)
        for flag in (False, True)
    ]
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-5)


# At their default arguments. As for the classifiers (tests/test_classifiers.py), the weighted fit equals the fit on
# repeated rows only to float32 rounding and with different minibatches, not to the check's rtol 1e-7.
@parametrize_with_checks(
    [MLPRegressor(), TransformerRegressor()],
    expected_failed_checks=lambda estimator: {"check_sample_weight_equivalence_on_dense_data": WEIGHT_EQUIVALENCE},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_save_load_and_the_command_line_read_an_estimator_file(xy, tmp_path):
    X, y = xy
    model = MLPRegressor(hidden_dims=[8], training={"epochs": 2}).fit(X, y)
    model.save(tmp_path / "model.ckpt")
    loaded = MLPRegressor.load(tmp_path / "model.ckpt")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.score(X, y) == pytest.approx(model.score(X, y))
    X.to_csv(tmp_path / "new.csv", index=False)
    main(["predict", f"--ckpt_path={tmp_path / 'model.ckpt'}", f"--data.predict_path={tmp_path / 'new.csv'}",
          f"--predictions_path={tmp_path / 'out.csv'}"])  # fmt: skip
    written = pd.read_csv(tmp_path / "out.csv")
    assert list(written.columns) == ["prediction"]
    np.testing.assert_allclose(written["prediction"], model.predict(X), atol=1e-6 * np.abs(y).max())  # float32
    from tabularnet.models import MLPClassifier

    with pytest.raises(DataError, match="holds a regression model; load it with the regression estimator"):
        MLPClassifier.load(tmp_path / "model.ckpt")


# ------------------------------------------------------------------------------------------ command line
def test_a_regression_checkpoint_predicts_from_the_checkpoint_alone(files, tmp_path, monkeypatch):
    main(["fit", f"--data.train_path={files['train']}", "--data.target_transform=log1p", "--data.test_fraction=0.2",
          "--trainer.max_epochs=2", *QUIET, f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    run = tmp_path / "lightning_logs" / "version_0"
    metrics = json.loads((run / "metrics.json").read_text())
    for name in ("val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2", "val_loss"):
        assert np.isfinite(metrics[name]), name
    assert {p.name for p in (run / "figures").glob("*.png")} >= {
        "predicted_vs_actual_val.png", "residuals_val.png", "predicted_vs_actual_test.png", "learning_curves.png"
    }  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = elsewhere / "predictions.parquet"
    main(["predict", f"--ckpt_path={metrics['best_checkpoint']}", f"--data.predict_path={files['predict']}",
          f"--predictions_path={out}"])  # fmt: skip
    predictions = pd.read_parquet(out)
    assert list(predictions.columns) == ["prediction"] and len(predictions) == 100
    prices = make_regression_table(400, seed=1)["target"].iloc[300:]
    assert predictions["prediction"].between(prices.min() / 10, prices.max() * 10).all()  # dollars, not z-scores


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.task=regression", "--model.label_smoothing=0.1"], "label_smoothing is for classification"),
        (["--data.task=regression", "--model.class_weight=balanced"], "class_weight is for classification"),
        (["--data.task=regression", "--model.calibrate=true"], "calibrate (temperature scaling) is for classification"),
        (["--data.task=regression", "--model.loss=cross_entropy"], "loss='cross_entropy' is not a regression loss"),
        (["--data.task=classification", "--model.loss=mse"], "loss='mse' is not a classification loss"),
        (["--data.task=guess"], "data.task"),
        (["--data.task=classification", "--data.target_transform=log1p"], "target_transform='log1p' is for regression"),
    ],
)
def test_options_that_do_not_apply_are_one_line_errors(args, message, files, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", f"--data.train_path={files['train']}", "--trainer.max_epochs=1", *QUIET, *args,
              f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "regression target 'target' has an infinite value at row 7"),
        ("cheap", "regression target 'target' has a non-numeric value 'cheap' at row 7"),
        ("-5", "target_transform log1p needs non-negative targets, however: 'target' is -5.0 at row 7"),
    ],
)
def test_bad_targets_name_the_row(value, message, tmp_path, capsys):
    df = make_regression_table(100, seed=5)
    df["target"] = df["target"].astype(object)
    df.loc[7, "target"] = value
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    with pytest.raises(SystemExit):
        main(["fit", f"--data.train_path={path}", "--data.task=regression", "--data.target_transform=log1p",
              "--data.na_values=[]", "--trainer.max_epochs=1", *QUIET,
              f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    assert message in capsys.readouterr().err


def test_missing_targets_are_dropped_with_a_warning(tmp_path, capsys):
    df = make_regression_table(100, seed=6)
    df.loc[[3, 9], "target"] = np.nan
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    main(["fit", f"--data.train_path={path}", "--data.task=regression", "--trainer.max_epochs=1", *QUIET,
          "--model.hidden_dims=[4]", f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    assert "dropped 2 rows whose target 'target' is missing (first at row 3)" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_ddp_regression_matches_single_process(tmp_path):
    """``--trainer.devices 2 --trainer.strategy ddp`` on CPU (gloo): the regression metrics are computed over every
    validation/test row across the ranks (torchmetrics' sync), in line with one process."""
    import subprocess
    import sys

    df = make_regression_table(6000, seed=8)
    df.iloc[:5000].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[5000:].to_csv(tmp_path / "test.csv", index=False)
    common = [f"--data.train_path={tmp_path / 'train.csv'}", f"--data.test_path={tmp_path / 'test.csv'}",
              "--data.task=regression", "--data.target_transform=log1p", "--model.hidden_dims=[32]",
              # the plain MLP on standard scaling: this test is about the metrics' sync, not the embeddings (with the
              # PLE default, 8 epochs leave the two runs 0.035 R² apart; at 24 epochs 0.002: under-training, not DDP)
              "--model.num_embedding=none", "--data.scaling=standard",
              "--model.optimizer={name: AdamW, lr: 0.003}", "--trainer.max_epochs=8",
              "--trainer.accelerator=cpu", *QUIET]  # fmt: skip
    results = {}
    # the same global batch (128) and so the same number of steps: 128 rows in one process, 64 on each of two ranks
    runs = {
        "one": ["--trainer.devices=1", "--data.batch_size=128"],
        "ddp": ["--trainer.devices=2", "--trainer.strategy=ddp", "--data.batch_size=64"],
    }
    for name, devices in runs.items():
        args = ["fit", *common, *devices, f"--trainer.default_root_dir={tmp_path / name}"]
        env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "tabularnet", *args], capture_output=True, text=True, env=env,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        results[name] = json.loads(next((tmp_path / name).glob("lightning_logs/version_*/metrics.json")).read_text())
    assert results["ddp"]["test_r2"] == pytest.approx(results["one"]["test_r2"], abs=0.03)
    assert results["ddp"]["test_r2"] > 0.6


def test_a_tabm_regressor_averages_its_members_the_same_everywhere(xy, tmp_path):
    """k members (TabM): both drivers give the same model; the saved model's ONNX export predicts the same."""
    X, y = xy
    options = dict(k=4, hidden_dims=[16], training={"batch_size": 32, "epochs": 2}, target_transform="log1p")
    models = [MLPRegressor(**options, use_lightning=flag).fit(X, y) for flag in (False, True)]
    np.testing.assert_allclose(models[0].predict(X), models[1].predict(X), rtol=1e-5)
    pytest.importorskip("onnxruntime")
    from tabularnet.serving import Predictor

    models[0].export_onnx(tmp_path / "model.onnx")
    np.testing.assert_allclose(Predictor(tmp_path / "model.onnx").predict(X), models[0].predict(X), rtol=1e-5)
