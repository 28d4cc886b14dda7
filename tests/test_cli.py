"""The `tabularnet` command end to end: fit -> test -> predict from a checkpoint, resume, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tabularnet.cli import build_cli, main


def fit_synthetic(table_files, root: Path, *extra: str) -> Path:
    """Train 3 epochs on the synthetic table; return the run's log directory."""
    main(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.hidden_dims=[16, 16]",
            f"--data.train_path={table_files['train']}",
            f"--data.test_path={table_files['test']}",
            "--data.batch_size=32",
            "--trainer.max_epochs=3",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={root}",
            "--seed_everything=0",
            *extra,
        ]
    )
    return root / "lightning_logs" / "version_0"


@pytest.fixture(scope="module")
def run_dir(table_files, tmp_path_factory) -> Path:
    return fit_synthetic(table_files, tmp_path_factory.mktemp("run"))


def test_fit_writes_metrics_and_checkpoints(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        for name in ("acc", "auroc", "logloss", "f1_macro"):
            assert 0 <= metrics[f"{split}_{name}"] <= (10 if name == "logloss" else 1)
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("epoch=") for name in checkpoints)
    assert Path(metrics["best_checkpoint"]).is_file()


def test_checkpoint_is_plain_data(run_dir):
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["_class_path"] == "tabularnet.MLPLightningModule"
    assert checkpoint["TabularDataModule"]["preprocessing"]["classes"] == ["no", "yes"]


def test_predict_from_checkpoint_alone_matches_test(run_dir, table_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of the training run's config is reachable from here
    best = json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]
    out = tmp_path / "preds.csv"
    # the test file still has its target column: it must be ignored
    main(
        [
            "predict",
            "--ckpt_path",
            best,
            f"--data.predict_path={table_files['test']}",
            f"--predictions_path={out}",
        ]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["preds.csv"]  # no config.yaml, logs or temporaries left
    preds = pd.read_csv(out)
    test = pd.read_csv(table_files["test"])
    assert list(preds.columns) == ["prediction", "proba_no", "proba_yes"]
    assert len(preds) == len(test)
    probs = preds[["proba_no", "proba_yes"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (preds["prediction"] == np.where(probs[:, 1] > probs[:, 0], "yes", "no")).all()

    cli = build_cli(["test", "--ckpt_path", best])
    reported = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    y = (test["target"] == "yes").to_numpy().astype(int)
    logloss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    assert reported["test_acc"] == pytest.approx((preds["prediction"] == test["target"]).mean(), abs=1e-6)
    assert reported["test_logloss"] == pytest.approx(logloss, abs=1e-5)


def test_predict_parquet_and_reordered_columns(run_dir, table_files, tmp_path):
    frame = pd.read_csv(table_files["predict"])
    frame = frame[frame.columns[::-1]]
    source = tmp_path / "new.parquet"
    frame.to_parquet(source)
    out = tmp_path / "preds.parquet"
    main(
        [
            "predict",
            "--ckpt_path",
            str(run_dir / "checkpoints" / "last.ckpt"),
            f"--data.predict_path={source}",
            f"--predictions_path={out}",
        ]
    )
    assert len(pd.read_parquet(out)) == len(frame)


def test_tensorboard_has_scalars_and_hparams(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in run_dir.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"train_loss", "val_loss", "val_acc"} <= tags
    assert (run_dir / "hparams.yaml").read_text().count("hidden_dims") == 1


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tabularnet", *args], capture_output=True, text=True, timeout=120)


def test_help_and_print_config():
    assert run_cli("--help").returncode == 0
    printed = run_cli("fit", "--model=tabularnet.TransformerLightningModule", "--print_config")
    assert printed.returncode == 0 and "d_model: 64" in printed.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data.target=label"], "target column 'label' not found"),
        (["--data.train_path=/nonexistent/train.csv"], "file not found: /nonexistent/train.csv"),
        (["--model.hidden_dimz=[3]"], "hidden_dimz"),
    ],
)
def test_bad_input_is_one_line_error(table_files, args, expected):
    result = run_cli(
        "fit",
        "--model=tabularnet.MLPLightningModule",
        f"--data.train_path={table_files['train']}",
        "--trainer.fast_dev_run=1",
        *args,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_last_checkpoint_is_the_last_epoch_even_without_improvement(table_files, tmp_path):
    """last.ckpt holds the final epoch's state also when the monitored value stopped improving.

    Monitoring ``step`` with mode ``min`` makes epoch 0 the best for good: Lightning 2.6's ``save_last=True`` alone
    would leave last.ckpt at epoch 0. Early stopping's count of epochs without improvement is saved after its
    update of the last epoch, so a resumed run stops where an uninterrupted one would.
    """
    main(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.hidden_dims=[8]",
            f"--data.train_path={table_files['train']}",
            "--data.batch_size=64",
            "--trainer.max_epochs=3",
            "--trainer.enable_progress_bar=false",
            "--checkpoint.monitor=step",
            "--checkpoint.mode=min",
            "--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping",
            "--trainer.callbacks.monitor=lr",  # constant: never improves after epoch 0
            "--trainer.callbacks.mode=min",
            "--trainer.callbacks.patience=10",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    folder = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    last = torch.load(folder / "last.ckpt", weights_only=True)
    best = [p for p in folder.iterdir() if p.name.startswith("epoch=")]
    assert [p.name for p in best] == ["epoch=0-step=4.ckpt"]  # 240 training rows: 4 steps of 64 per epoch
    assert (last["epoch"], last["global_step"]) == (2, 12)
    (stopping,) = [state for key, state in last["callbacks"].items() if key.startswith("EarlyStopping")]
    assert stopping["wait_count"] == 2  # epochs 1 and 2 did not improve


def test_resumed_fit_equals_uninterrupted_fit(table_files, tmp_path):
    """Stopping after 2 epochs and resuming from last.ckpt to 4 gives the same weights as 4 epochs in one go."""
    common = [
        "--model=tabularnet.MLPLightningModule",
        "--model.hidden_dims=[16]",
        "--model.mixup={enabled: true, alpha: 0.4}",
        "--model.noise={enabled: true, std: 0.1}",
        f"--data.train_path={table_files['train']}",
        "--data.batch_size=32",
        "--trainer.enable_progress_bar=false",
        "--seed_everything=3",
    ]
    main(["fit", *common, "--trainer.max_epochs=4", f"--trainer.default_root_dir={tmp_path / 'once'}"])
    main(["fit", *common, "--trainer.max_epochs=2", f"--trainer.default_root_dir={tmp_path / 'twice'}"])
    last = tmp_path / "twice" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    main(
        [
            "fit",
            *common,
            "--trainer.max_epochs=4",
            f"--trainer.default_root_dir={tmp_path / 'twice'}",
            f"--ckpt_path={last}",
        ]
    )

    def final_weights(run: str, version: int) -> dict:
        path = tmp_path / run / "lightning_logs" / f"version_{version}" / "checkpoints" / "last.ckpt"
        return torch.load(path, weights_only=True)["state_dict"]

    once, resumed = final_weights("once", 0), final_weights("twice", 0)  # the resumed run continues version_0
    assert not (tmp_path / "twice" / "lightning_logs" / "version_1").exists()
    assert once.keys() == resumed.keys()
    for name in once:
        torch.testing.assert_close(once[name], resumed[name], rtol=0, atol=1e-6)
