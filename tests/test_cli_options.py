"""Trainer options through `tabularnet`: configuration errors as one line, `enable_checkpointing false`,
`validate --ckpt_path`, bf16 mixed precision and the learning-rate finder, on the tiny synthetic table."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback, LearningRateFinder
from lightning.pytorch.plugins.precision import MixedPrecision

from tabularnet.cli import build_cli, main
from tabularnet.reporting.events import epoch_curves, read_scalars

DEFAULT_LR = 1e-3  # OptimizerConfig's default


def fit_args(table_files, root: Path, *extra: str, epochs: int = 2) -> list[str]:
    return [
        "fit",
        "--model=tabularnet.MLPLightningModule",
        "--model.hidden_dims=[16]",
        f"--data.train_path={table_files['train']}",
        f"--data.test_path={table_files['test']}",
        "--data.batch_size=32",
        f"--trainer.max_epochs={epochs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={root}",
        "--seed_everything=0",
        *extra,
    ]


def run_dir(root: Path) -> Path:
    return root / "lightning_logs" / "version_0"


def failed(args: list[str], capsys) -> tuple[list[str], str]:
    """Run the CLI, which must exit with status 2; (the ``tabularnet: error:`` lines, all of stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("tabularnet: error: ")], stderr


# ----------------------------------------------------------------------------------- configuration errors: one line
UNAVAILABLE = {
    "gpu": not torch.cuda.is_available(),
    "mps": not torch.backends.mps.is_available(),
    "tpu": True,  # no torch_xla here
}


@pytest.mark.parametrize("accelerator", sorted(UNAVAILABLE))
def test_unavailable_accelerator_is_one_line_naming_the_option(accelerator, table_files, tmp_path, capsys):
    if not UNAVAILABLE[accelerator]:
        pytest.skip(f"this machine has a {accelerator}")
    errors, stderr = failed(fit_args(table_files, tmp_path, f"--trainer.accelerator={accelerator}"), capsys)
    assert len(errors) == 1, stderr
    assert [line for line in stderr.splitlines() if "trainer.accelerator" in line] == errors
    assert f"trainer.accelerator='{accelerator}'" in errors[0]
    assert not (tmp_path / "lightning_logs").exists() or not any(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--trainer.max_epochs=abc", "trainer.max_epochs: expected int or null, got 'abc'"),
        ("--trainer.precision=7", "trainer.precision: expected one of"),
        ("--trainer.acelerator=gpu", "unrecognized arguments: --trainer.acelerator"),
        ("--model.dropout=foo", "model.dropout: expected float, got 'foo'"),
        ("--data.batch_size=x", "data.batch_size: expected int, got 'x'"),
        ("--config=/nonexistent/run.yaml", "config: File does not exist: '/nonexistent/run.yaml'"),
    ],
)
def test_parser_errors_are_one_line_naming_the_option(option, expected, table_files, tmp_path, capsys):
    errors, stderr = failed(fit_args(table_files, tmp_path, option), capsys)
    assert stderr.count("\n") == 1 and len(errors) == 1, stderr  # no usage, no multi-line report
    assert expected in errors[0] and errors[0].endswith("(see tabularnet fit --help)")


def test_trainer_devices_error_names_the_option(table_files, tmp_path, capsys):
    errors, stderr = failed(fit_args(table_files, tmp_path, "--trainer.accelerator=cpu", "--trainer.devices=0"), capsys)
    assert len(errors) == 1 and "trainer.devices=" in errors[0] and "not a valid input" in errors[0], stderr


def test_misconfiguration_during_fit_is_one_line(table_files, tmp_path, capsys):
    """Lightning's MisconfigurationException raised once training starts (not while building the Trainer)."""
    args = fit_args(table_files, tmp_path, "--trainer.logger=false", "--trainer.callbacks+=LearningRateMonitor")
    errors, stderr = failed(args, capsys)
    assert len(errors) == 1 and "LearningRateMonitor" in errors[0] and "no logger" in errors[0], stderr


# ------------------------------------------------------------------------------------- enable_checkpointing false
def test_fit_without_checkpoints_evaluates_the_last_weights(table_files, tmp_path):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(fit_args(table_files, tmp_path, "--trainer.enable_checkpointing=false", epochs=3))
    assert not list(tmp_path.rglob("*.ckpt"))
    metrics = json.loads((run_dir(tmp_path) / "metrics.json").read_text())
    assert metrics["best_checkpoint"] == "" and metrics["evaluated_weights"] == "last_epoch"
    assert "best_epoch" not in metrics and metrics["epochs"] == 3
    assert all(math.isfinite(metrics[k]) for k in ("val_loss", "val_acc", "test_acc"))
    # the final evaluation is of the last epoch's weights: its val_loss is the one logged after epoch 2
    # (the final evaluation itself is logged at epoch 3, after the 3 trained epochs)
    curve = dict(epoch_curves(read_scalars(run_dir(tmp_path)), ("val_loss",))["val_loss"])
    assert sorted(curve) == [0, 1, 2, 3]
    assert metrics["val_loss"] == pytest.approx(curve[2], abs=1e-5) == curve[3]
    text = printed.getvalue()
    assert "no checkpoints (trainer.enable_checkpointing false): evaluated the last epoch's weights" in " ".join(
        text.split()
    )
    assert "last epoch's weights" in text.splitlines()[0]  # the summary table's title
    assert "best checkpoint" not in text


# ---------------------------------------------------------------------------------------- validate --ckpt_path
@pytest.fixture(scope="module")
def fitted(table_files, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fitted")
    main(fit_args(table_files, root, epochs=3))
    return run_dir(root)


def test_validate_from_the_best_checkpoint_reproduces_the_fit_metrics(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the checkpoint alone configures model and data
    metrics = json.loads((fitted / "metrics.json").read_text())
    cli = build_cli(["validate", "--ckpt_path", metrics["best_checkpoint"], "--trainer.enable_progress_bar=false"])
    reported = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    expected = {k: v for k, v in metrics.items() if k.startswith("val_")}
    assert {"val_loss", "val_acc", "val_auroc", "val_logloss", "val_ece"} <= set(expected)
    assert set(expected) <= set(reported)
    for name, value in expected.items():
        assert reported[name] == pytest.approx(value, abs=1e-5), name
    assert not any(k.startswith("test_") for k in reported)  # validate runs the validation split only


# ------------------------------------------------------------------------------------------- bf16 mixed precision
class OutputDtypes(Callback):
    """Records the dtype of the network's output in every training step."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()

    def on_train_start(self, trainer, pl_module) -> None:
        def record(module, inputs, output):
            if module.training:
                self.dtypes.add(output.dtype)

        self.handle = pl_module.net.register_forward_hook(record)

    def on_train_end(self, trainer, pl_module) -> None:
        self.handle.remove()


def test_bf16_mixed_precision_trains_under_autocast(table_files, tmp_path):
    args = fit_args(
        table_files,
        tmp_path,
        "--trainer.precision=bf16-mixed",
        "--trainer.accelerator=cpu",
        "--model.optimizer.lr=0.01",
    )
    cli = build_cli(args[1:], run=False)  # no subcommand: fit below, with the probe
    probe = OutputDtypes()
    cli.trainer.callbacks.append(probe)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.precision == "bf16-mixed"
    plugin = cli.trainer.precision_plugin
    assert isinstance(plugin, MixedPrecision) and plugin.precision == "bf16-mixed"
    assert probe.dtypes == {torch.bfloat16}  # the training steps ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in cli.model.parameters())  # fp32 master weights
    metrics = cli.trainer.callback_metrics
    assert all(math.isfinite(float(metrics[k])) for k in ("train_loss", "val_loss", "val_acc"))
    assert float(metrics["val_acc"]) >= 0.7  # it learned (fp32: 0.80; the majority class is about half the rows)


# ------------------------------------------------------------------------------------------------ LR finder
def test_learning_rate_finder_sets_the_optimizer_lr(table_files, tmp_path):
    args = fit_args(
        table_files,
        tmp_path,
        "--trainer.callbacks+=LearningRateFinder",
        "--trainer.callbacks.num_training_steps=30",
        "--trainer.callbacks.min_lr=1e-5",
        "--trainer.callbacks.max_lr=1.0",
    )
    cli = build_cli(args)
    finder = next(c for c in cli.trainer.callbacks if isinstance(c, LearningRateFinder))
    suggestion = finder.optimal_lr.suggestion()
    assert suggestion is not None and 1e-5 <= suggestion <= 1.0 and suggestion != pytest.approx(DEFAULT_LR)
    assert cli.model.lr == pytest.approx(suggestion)
    # training ran at the suggested rate (constant schedule): the optimizer's lr logged after each epoch ...
    logged = [value for _, value in read_scalars(run_dir(tmp_path))["lr"]]
    assert len(logged) == 2 and logged == pytest.approx([suggestion] * 2, rel=1e-5)
    # ... and at the end, in every parameter group
    (optimizer,) = cli.trainer.optimizers
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([suggestion] * 2, rel=1e-5)
    metrics = json.loads((run_dir(tmp_path) / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and math.isfinite(metrics["val_loss"])
