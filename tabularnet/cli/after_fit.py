"""What ``tabularnet fit`` does after training: calibrate and evaluate the best checkpoint (without checkpoints:
the last epoch's weights) on the validation and test splits, draw the figures, log the hyperparameters with the
final metrics, write ``metrics.json`` and ``timings.json`` and print the summary; and the figures of ``test``.
Functions of the running :class:`~tabularnet.cli.app.TabularCLI` (its trainer, model and data module)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from lightning.pytorch.loggers import TensorBoardLogger

from tabularnet import atomic
from tabularnet.data.checkpoint import load_checkpoint
from tabularnet.reporting.summary import LAST_EPOCH, print_summary
from tabularnet.training import budget
from tabularnet.training.calibration import expected_calibration_error

LINKED = ("n_num_features", "cat_cardinalities", "n_classes", "classes", "class_counts", "task_type", "target_scaling")
TIMINGS_FILE = "timings.json"


def finish_fit(cli, started: float, *, test: bool = True, figures: bool = True) -> None:
    """Calibrate and evaluate the best checkpoint (without checkpoints: the last epoch's weights) on validation
    (and test) data, draw the figures, log the
    hyperparameters with the final metrics, write ``metrics.json`` and print the summary. ``test=False`` leaves the
    test split alone and ``figures=False`` draws nothing (``tabularnet tune``'s trials)."""
    trainer = cli.trainer
    if trainer.interrupted:
        return
    train_seconds = time.perf_counter() - started
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    metrics = {"best_checkpoint": best, "epochs": trainer.current_epoch, "stop_reason": stop_reason(trainer)}
    if trainer.checkpoint_callback is None:  # --trainer.enable_checkpointing false
        metrics["evaluated_weights"] = LAST_EPOCH
    # NOTE: the best checkpoint is read once: its epoch, its weights (evaluated below) and, when calibrating, the
    # state the temperature is written into
    best_checkpoint = load_checkpoint(best) if best else None
    if best_checkpoint is not None:
        metrics["best_epoch"] = int(best_checkpoint.get("epoch", -1))
        cli.model.load_state_dict(best_checkpoint["state_dict"])
    log_dir = Path(trainer.log_dir or trainer.default_root_dir)  # NOTE: a collective under DDP: every rank asks
    # NOTE: the curves come first, from the event files: the evaluation below logs the best checkpoint's
    # metrics at the last step too, which is no point of the training curve
    teacher = teacher_metrics(cli.datamodule, cli.model.task)
    if not test:
        teacher = {k: v for k, v in teacher.items() if not k.startswith("teacher_test_")}
    curves = learning_curves(cli, log_dir, teacher) if figures else {}
    if cli.model.hparams.get("calibrate"):
        metrics.update(calibrate(cli, best, best_checkpoint))
    metrics.update(evaluate(cli, test=test))
    if test and cli.model.hparams.get("calibrate") and cli.datamodule.has_split("test"):
        metrics["test_ece_uncalibrated"] = uncalibrated_ece(cli, "test")
    metrics.update(teacher)
    metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
    # NOTE: times go to their own file: metrics.json stays identical for identical runs
    timings = {
        "train_seconds": round(train_seconds, 3),
        "fit_seconds": round(time.perf_counter() - started, 3),
    }
    if not trainer.fast_dev_run:
        if figures:
            draw_figures(cli, log_dir, curves)
        log_final_hparams(cli, {**metrics, **timings})
    if trainer.is_global_zero:
        out = log_dir / "metrics.json"
        atomic.write_text(out, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        atomic.write_text(log_dir / TIMINGS_FILE, json.dumps(timings, indent=2) + "\n")
        print_summary({**metrics, **timings})
        print(f"metrics: {out}")
        if trainer.checkpoint_callback is not None:
            print(f"best checkpoint: {best or '(none)'}")
        if isinstance(trainer.logger, TensorBoardLogger):
            print(f"logs: {log_dir} (TensorBoard event files, figures/, config.yaml)")
            print(f"curves: tensorboard --logdir {log_dir.parent}")
        print(f"report: tabularnet report {log_dir}")


def stop_reason(trainer) -> str:
    """Why training ended, for the summary (early stopping, or the epoch budget)."""
    stopper = trainer.early_stopping_callback
    stopped = stopper is not None and stopper.stopped_epoch > 0
    return budget.stop_reason(stopped, trainer.current_epoch, trainer.max_epochs, getattr(stopper, "patience", None))


def finish_test(cli) -> None:
    """Figures of the test split of the tested checkpoint (``tabularnet test``)."""
    if not cli.trainer.fast_dev_run and cli.trainer.logger is not None:
        draw_figures(cli, Path(cli.trainer.log_dir), {}, splits=("test",))


def calibrate(cli, best: str, checkpoint: dict | None) -> dict:
    """Fit the temperature of the model's weights (the best checkpoint's, loaded) on the validation split and
    store it in the best ``checkpoint`` (its file ``best``)."""
    result = cli.model.calibrate_temperature(cli.datamodule.unsharded_loader("val"))
    if checkpoint is not None and cli.trainer.is_global_zero:
        checkpoint["state_dict"]["temperature"] = torch.tensor(result["temperature"])
        atomic.torch_save(checkpoint, best)
    cli.trainer.strategy.barrier()
    return result


def uncalibrated_ece(cli, split: str) -> float:
    from tabularnet.reporting.run import split_probabilities

    y, _, uncalibrated = split_probabilities(cli.model, cli.datamodule, split)
    return expected_calibration_error(uncalibrated, y)


def evaluate(cli, test: bool = True) -> dict:
    """The model's metrics (it holds the best checkpoint's weights, or the last epoch's) on validation and, with
    ``test``, test."""
    trainer, results = cli.trainer, {}
    for result in trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False):
        results.update(result)
    if test and cli.datamodule.has_split("test"):
        for result in trainer.test(cli.model, datamodule=cli.datamodule, verbose=False):
            results.update(result)
    return results


def teacher_metrics(datamodule, task=None) -> dict[str, float]:
    """``teacher_{val,test}_*``: the teacher's metrics, computed as the student's (the task's ``table_metrics``;
    ``task``: the model's, default the data's)."""
    if task is None and datamodule.teacher_evaluations:
        from tabularnet.training.tasks import make_task

        task = make_task(datamodule.task_type)
    return {
        name: value
        for split, (outputs, y) in datamodule.teacher_evaluations.items()
        for name, value in task.table_metrics(outputs, y, f"teacher_{split}_", datamodule.target_scaling).items()
    }


def learning_curves(cli, log_dir: Path, teacher: dict) -> dict:
    if cli.trainer.fast_dev_run or not cli.trainer.is_global_zero:
        return {}
    from tabularnet.reporting import run  # matplotlib only when figures are drawn

    return run.learning_curves(log_dir, teacher)


def draw_figures(cli, log_dir: Path, figures: dict, splits: tuple[str, ...] = ("val", "test")) -> None:
    """Add the evaluation figures of ``splits`` to ``figures``; save them and log them to TensorBoard."""
    if not cli.trainer.is_global_zero:
        return
    from tabularnet.reporting import run

    figures = {**figures, **run.evaluation_figures(cli.model, cli.datamodule, splits)}
    logger = cli.trainer.logger
    experiment = logger.experiment if isinstance(logger, TensorBoardLogger) else None
    run.save_figures(figures, log_dir, experiment, step=cli.trainer.global_step)


def log_final_hparams(cli, metrics: dict) -> None:
    """The HParams tab: the run's hyperparameters with its final metrics (as ``hp/<metric>``)."""
    logger = cli.trainer.logger
    if logger is None:
        return
    # the user's options only: not LightningCLI's internal keys (_class_path, _instantiator) nor the sizes the
    # data linked into the model
    params = {
        k: v
        for k, v in {**cli.datamodule.hparams_initial, **cli.model.hparams_initial}.items()
        if not k.startswith("_") and k not in LINKED
    }
    final = {f"hp/{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "epochs"}
    logger.log_hyperparams(params, metrics=final, step=cli.trainer.global_step)
    logger.finalize("success")
