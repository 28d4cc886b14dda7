"""The ``tabularnet`` command: LightningCLI over TabularDataModule and the tabular LightningModules."""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn, Optional

import numpy as np
import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from tabularnet import atomic
from tabularnet._quiet import quiet_lightning
from tabularnet.callbacks import PredictionWriter
from tabularnet.console import argument_error_line, error_line, one_line_error, user_errors
from tabularnet.console import main as console_main
from tabularnet.data.checkpoint import load_checkpoint
from tabularnet.data.datamodule import TabularDataModule
from tabularnet.data.schema import DataError
from tabularnet.progress import default_progress_bar
from tabularnet.reporting.summary import LAST_EPOCH, print_summary
from tabularnet.runs import AtomicCheckpointIO, LastCheckpoint, RunLogger, checkpoint_version, last_checkpoint
from tabularnet.training.calibration import expected_calibration_error
from tabularnet.training.lightning_modules import TrainingMixin

HARDWARE_OPTIONS = ("accelerator", "devices", "strategy", "precision", "num_nodes", "plugins")
LINKED = ("n_num_features", "cat_cardinalities", "n_classes", "classes", "class_counts")
EVAL_SUBCOMMANDS = ("validate", "test", "predict")
CHECKPOINT_DEFAULTS = {"checkpoint.monitor": "val_loss", "checkpoint.mode": "min", "checkpoint.save_last": True}
DESCRIPTION = (
    "Train and use tabular deep-learning models (fit, validate, test, predict). "
    "`tabularnet report RUN_DIR` writes a self-contained HTML report of a finished run."
)
TIMINGS_FILE = "timings.json"
PREDICTIONS_PATH_HELP = "predict: where to write predictions (.csv or .parquet); default predictions.csv"


class TabularArgumentParser(LightningArgumentParser):
    """Lightning's parser, with the errors of the command line as one line naming the option (the usage and the
    multi-line report of jsonargparse are behind ``--help`` and ``TABULARNET_DEBUG=1``)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or os.environ.get("TABULARNET_DEBUG"):  # nested parsers raise; their caller reports
            super().error(message, ex)
        words = (getattr(ex, "subcommand_parser", None) or self).prog.replace(" [options]", "").split()
        command = "tabularnet" + (f" {words[-1]}" if len(words) > 1 else "")
        one_line_error(f"{argument_error_line(message)} (see {command} --help)")


def trainer_error_line(err: Exception, trainer_config: dict) -> str:
    """An error Lightning raised while building the Trainer, as one line naming the options it comes from: those
    the message names, else the hardware options (accelerator, devices...) given values other than the defaults."""
    defaults = {name: p.default for name, p in inspect.signature(Trainer.__init__).parameters.items() if name != "self"}
    changed = {k: v for k, v in trainer_config.items() if k in defaults and not _same(v, defaults[k]) and v is not None}
    message = error_line(err)
    named = [k for k in changed if re.search(rf"\b{re.escape(k)}\b", message)]
    named = named or [k for k in HARDWARE_OPTIONS if k in changed]
    if not named:
        return f"trainer: {message}"
    return ", ".join(f"trainer.{k}={changed[k]!r}" for k in named) + f": {message}"


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. a tensor against a string
        return False


class TabularCLI(LightningCLI):
    """LightningCLI with data-derived model sizes linked in, a best/last checkpoint, metrics.json and predictions."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in LINKED:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        # NOTE: not add_lightning_class_args, which would make it a callback Lightning always adds: the
        # ModelCheckpoint is added in instantiate_trainer, unless `--trainer.enable_checkpointing false`
        parser.add_class_arguments(ModelCheckpoint, "checkpoint", fail_untyped=False, sub_configs=True)
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        # `tabularnet fit --data.dataset NAME` alone trains the MLP with its defaults
        parser.set_defaults({"model": {"class_path": "tabularnet.MLPLightningModule"}})
        parser.add_argument(
            "--predictions_path",
            type=Optional[str],
            default=None,
            help=PREDICTIONS_PATH_HELP,
        )

    def _parse_ckpt_path(self) -> None:
        # NOTE: main() already turned the checkpoint's hyperparameters into a config (model *and* data);
        # Lightning's own pass would add the linked sizes a second time as extra kwargs.
        return None

    def instantiate_trainer(self, **kwargs):
        trainer_config = self._get(self.config_init, "trainer", default={})
        root = trainer_config.get("default_root_dir") or os.getcwd()
        if self.subcommand == "predict":
            kwargs["logger"] = False  # prediction logs nothing: no empty lightning_logs/version_N folders
            self.save_config_callback = None  # ... and leaves no config.yaml behind
        elif trainer_config.get("logger") in (None, True):  # Lightning's default, with crash- and race-safe versions
            version = self._resume_version(root) if self.subcommand == "fit" else None
            # NOTE: no placeholder hp_metric: after_fit logs the hyperparameters with the real final metrics
            kwargs["logger"] = RunLogger(save_dir=root, version=version, default_hp_metric=False)
        callbacks = trainer_config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(default_progress_bar())
        # NOTE: the `checkpoint` options configure our ModelCheckpoint; `--trainer.enable_checkpointing false`
        # leaves it out (Lightning refuses a ModelCheckpoint then) and no checkpoint is written
        checkpointing = trainer_config.get("enable_checkpointing") is not False
        checkpoint = self._get(self.config_init, "checkpoint")
        keep_last = checkpointing and self.subcommand == "fit" and getattr(checkpoint, "save_last", None) is True
        if keep_last:
            checkpoint.save_last = False  # Lightning >= 2.6 would skip epochs without a better val_loss
        kwargs["callbacks"] = [*callbacks, checkpoint] if checkpointing else callbacks
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except Exception as err:  # the Trainer's own checks of its options: a configuration error, said in one line
            if os.environ.get("TABULARNET_DEBUG"):
                raise
            raise DataError(trainer_error_line(err, trainer_config)) from err
        if keep_last:  # after the ModelCheckpoint: both run after early stopping, the best one first
            trainer.callbacks.append(LastCheckpoint())
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def _resume_version(self, root: str) -> int | None:
        """``fit --ckpt_path last|PATH``: resolve ``last`` to the newest run's last.ckpt under ``root`` (or
        ``checkpoint.dirpath``); return that run's version so the resumed run logs into the same directory."""
        config = self.config_init[self.subcommand]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            return None
        if ckpt_path == "last":
            dirpath = self._get(self.config, "checkpoint").get("dirpath")
            if dirpath:
                found = (None, Path(dirpath, "last.ckpt")) if Path(dirpath, "last.ckpt").is_file() else None
            else:
                found = last_checkpoint(root)
            if found is None:
                print(f"tabularnet: no last.ckpt under {dirpath or root} to resume from; starting a new run")
                config["ckpt_path"] = None
                return None
            version, path = found
            config["ckpt_path"] = ckpt_path = str(path)
            print(f"tabularnet: resuming from {path}")
        if not Path(ckpt_path).is_file():
            raise DataError(f"--ckpt_path: checkpoint not found: {ckpt_path}")
        return checkpoint_version(ckpt_path, root)

    def before_predict(self) -> None:
        path = self.config[self.subcommand].get("predictions_path") or "predictions.csv"
        self.prediction_writer = PredictionWriter(path)
        self.trainer.callbacks.append(self.prediction_writer)

    def after_predict(self) -> None:
        # NOTE: Lightning runs no prediction epoch over a table with no rows, so nothing was written:
        # an empty table gets a predictions file with the header only.
        if not self.prediction_writer.written and self.trainer.is_global_zero:
            classes = self.datamodule.classes
            self.prediction_writer.write(np.zeros((0, len(classes))), classes)

    def before_fit(self) -> None:
        # cross-fitted teacher logits are cached next to the runs, keyed by data + teacher config
        self.datamodule.default_teacher_cache_dir = str(Path(self.trainer.default_root_dir) / "teacher_cache")
        if self.model.hparams.get("calibrate") and not self.datamodule.has_split("val"):
            raise DataError("model.calibrate needs validation data: set data.val_path or data.val_fraction > 0")
        self._fit_started = time.perf_counter()

    def after_fit(self) -> None:
        """Calibrate and evaluate the best checkpoint (without checkpoints: the last epoch's weights) on validation
        (and test) data, draw the figures, log the
        hyperparameters with the final metrics, write ``metrics.json`` and print the summary."""
        trainer = self.trainer
        if trainer.interrupted:
            return
        train_seconds = time.perf_counter() - self._fit_started
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        metrics = {"best_checkpoint": best, "epochs": trainer.current_epoch}
        if trainer.checkpoint_callback is None:  # --trainer.enable_checkpointing false
            metrics["evaluated_weights"] = LAST_EPOCH
        if best:
            metrics["best_epoch"] = int(load_checkpoint(best).get("epoch", -1))
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)  # NOTE: a collective under DDP: every rank asks
        # NOTE: the curves come first, from the event files: the evaluation below logs the best checkpoint's
        # metrics at the last step too, which is no point of the training curve
        figures = self._learning_curves(log_dir)
        if self.model.hparams.get("calibrate"):
            metrics.update(self._calibrate(best))
        metrics.update(self._evaluate(best or None))
        if self.model.hparams.get("calibrate") and self.datamodule.has_split("test"):
            metrics["test_ece_uncalibrated"] = self._uncalibrated_ece("test")
        metrics.update(self.datamodule.teacher_metrics)
        metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
        # NOTE: times go to their own file: metrics.json stays identical for identical runs
        timings = {
            "train_seconds": round(train_seconds, 3),
            "fit_seconds": round(time.perf_counter() - self._fit_started, 3),
        }
        if not trainer.fast_dev_run:
            self._figures(log_dir, figures)
            self._log_final_hparams({**metrics, **timings})
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

    def after_test(self) -> None:
        """Figures of the test split of the tested checkpoint (``tabularnet test``)."""
        if not self.trainer.fast_dev_run and self.trainer.logger is not None:
            self._figures(Path(self.trainer.log_dir), {}, splits=("test",))

    def _calibrate(self, best: str) -> dict:
        """Fit the temperature of the best weights on the validation split and store it in the best checkpoint."""
        if best:
            self.model.load_state_dict(load_checkpoint(best)["state_dict"])
        result = self.model.calibrate_temperature(self.datamodule.unsharded_loader("val"))
        if best and self.trainer.is_global_zero:
            checkpoint = load_checkpoint(best)
            checkpoint["state_dict"]["temperature"] = torch.tensor(result["temperature"])
            atomic.torch_save(checkpoint, best)
        self.trainer.strategy.barrier()
        return result

    def _uncalibrated_ece(self, split: str) -> float:
        from tabularnet.reporting.run import split_probabilities

        y, _, uncalibrated = split_probabilities(self.model, self.datamodule, split)
        return expected_calibration_error(uncalibrated, y)

    def _evaluate(self, ckpt_path: str | None) -> dict:
        trainer, results = self.trainer, {}
        for result in trainer.validate(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path, verbose=False):
            results.update(result)
        if self.datamodule.has_split("test"):
            for result in trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path, verbose=False):
                results.update(result)
        return results

    def _learning_curves(self, log_dir: Path) -> dict:
        if self.trainer.fast_dev_run or not self.trainer.is_global_zero:
            return {}
        from tabularnet.reporting import run  # matplotlib only when figures are drawn

        return run.learning_curves(log_dir, self.datamodule.teacher_metrics)

    def _figures(self, log_dir: Path, figures: dict, splits: tuple[str, ...] = ("val", "test")) -> None:
        """Add the evaluation figures of ``splits`` to ``figures``; save them and log them to TensorBoard."""
        if not self.trainer.is_global_zero:
            return
        from tabularnet.reporting import run

        figures = {**figures, **run.evaluation_figures(self.model, self.datamodule, splits)}
        logger = self.trainer.logger
        experiment = logger.experiment if isinstance(logger, TensorBoardLogger) else None
        run.save_figures(figures, log_dir, experiment, step=self.trainer.global_step)

    def _log_final_hparams(self, metrics: dict) -> None:
        """The HParams tab: the run's hyperparameters with its final metrics (as ``hp/<metric>``)."""
        logger = self.trainer.logger
        if logger is None:
            return
        # the user's options only: not LightningCLI's internal keys (_class_path, _instantiator) nor the sizes the
        # data linked into the model
        params = {
            k: v
            for k, v in {**self.datamodule.hparams_initial, **self.model.hparams_initial}.items()
            if not k.startswith("_") and k not in LINKED
        }
        final = {f"hp/{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "epochs"}
        logger.log_hyperparams(params, metrics=final, step=self.trainer.global_step)
        logger.finalize("success")


def _option_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _config_from_checkpoint(ckpt_path: str) -> dict:
    """The model and data configuration stored in a checkpoint (sizes come back through the links)."""
    checkpoint = load_checkpoint(ckpt_path)
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    class_path = hparams.pop("_class_path", None)
    if class_path is None:
        raise DataError(f"{ckpt_path}: the checkpoint does not say which model it holds (no _class_path)")
    init_args = {k: v for k, v in hparams.items() if not k.startswith("_") and k not in LINKED}
    data_args = {k: v for k, v in checkpoint.get("datamodule_hyper_parameters", {}).items() if not k.startswith("_")}
    data_args["preprocessing_path"] = ckpt_path
    return {"model": {"class_path": class_path, "init_args": init_args}, "data": data_args}


def _with_checkpoint_config(args: list[str], folder: str) -> list[str]:
    """``validate|test|predict --ckpt_path X`` without ``--config``: configure model and data from the checkpoint
    (written as a config file in ``folder``)."""
    if not args or args[0] not in EVAL_SUBCOMMANDS:
        return args
    ckpt_path = _option_value(args, "--ckpt_path")
    if ckpt_path is None or any(a in ("-c", "--config") or a.startswith("--config=") for a in args):
        return args
    config_path = Path(folder) / "checkpoint_config.yaml"
    config_path.write_text(yaml.safe_dump(_config_from_checkpoint(ckpt_path)))
    return [args[0], "--config", str(config_path), *args[1:]]


def build_cli(args: list[str] | None = None, run: bool = True) -> TabularCLI:
    """Parse ``args`` (default ``sys.argv[1:]``), build the CLI and, with ``run``, run its subcommand."""
    quiet_lightning()
    args = list(sys.argv[1:] if args is None else args)
    with user_errors(), tempfile.TemporaryDirectory(prefix="tabularnet-") as folder:
        return TabularCLI(
            TrainingMixin,
            TabularDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_class=TabularArgumentParser,
            parser_kwargs={"description": DESCRIPTION},
            args=_with_checkpoint_config(args, folder),
            run=run,
        )


# `tabularnet` (tabularnet.console.main) sends what needs no Lightning (report, export, ONNX predict) elsewhere
main = console_main

if __name__ == "__main__":
    main()
