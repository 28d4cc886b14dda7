"""The LightningCLI of ``tabularnet fit|validate|test|predict``: the data module's sizes linked into the model, the
trainer's defaults (run folder, best and last checkpoints, progress bar, atomic checkpoint writes), resuming,
configuration from a checkpoint alone, predictions; what ``fit`` does after training is in
:mod:`tabularnet.cli.after_fit`."""

from __future__ import annotations

import inspect
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import NoReturn, Optional

import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from tabularnet._quiet import quiet_lightning
from tabularnet.cli import after_fit
from tabularnet.cli.after_fit import LINKED
from tabularnet.cli.arguments import argument_error_line, error_line, one_line_error, option_value, user_errors
from tabularnet.data.checkpoint import load_model_checkpoint
from tabularnet.data.datamodule import TabularDataModule
from tabularnet.data.schema import DataError
from tabularnet.lightning_private import NoCheckpointHyperparametersMixin
from tabularnet.training import budget
from tabularnet.training.lightning_callbacks import (
    AtomicCheckpointIO,
    LastCheckpoint,
    PredictionWriter,
    RunLogger,
    default_progress_bar,
    empty_predictions,
    resume_target,
)
from tabularnet.training.lightning_modules import TabularModule

HARDWARE_OPTIONS = ("accelerator", "devices", "strategy", "precision", "num_nodes", "plugins")
EVAL_SUBCOMMANDS = ("validate", "test", "predict")
CHECKPOINT_DEFAULTS = {"checkpoint.monitor": "val_loss", "checkpoint.mode": "min", "checkpoint.save_last": True}
DESCRIPTION = (
    "Train and use tabular deep-learning models (fit, validate, test, predict). "
    "`tabularnet report RUN_DIR` writes a self-contained HTML report of a finished run; "
    "`tabularnet tune --config C --search_space S --n_trials N` searches hyperparameters (Optuna)."
)
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


class TabularCLI(NoCheckpointHyperparametersMixin, LightningCLI):
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

    def _section(self, config):
        """The part of ``config`` of the running subcommand (all of it without subcommands)."""
        return config[self.subcommand] if self.subcommand else config

    def instantiate_trainer(self, **kwargs):
        trainer_config = self._section(self.config_init).get("trainer") or {}
        root = trainer_config.get("default_root_dir") or os.getcwd()
        if self.subcommand != "fit":  # evaluating a checkpoint needs none of its training callbacks' states
            warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint need to be provided")
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
        checkpoint = self._section(self.config_init).get("checkpoint")
        keep_last = checkpointing and self.subcommand == "fit" and getattr(checkpoint, "save_last", None) is True
        if keep_last:
            checkpoint.save_last = False  # Lightning >= 2.6 would skip epochs without a better val_loss
        if not any(isinstance(c, EarlyStopping) for c in callbacks):
            callbacks += self._adaptive_budget(trainer_config, kwargs)
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

    def _adaptive_budget(self, trainer_config: dict, kwargs: dict) -> list:
        """``fit`` without ``trainer.max_epochs`` (nor max_steps or max_time): early stopping on ``val_loss`` and an
        epoch budget from the training table's size (:mod:`tabularnet.training.budget`); the callbacks to add."""
        if self.subcommand != "fit" or trainer_config.get("max_epochs") is not None:
            return []
        if trainer_config.get("max_steps") not in (None, -1) or trainer_config.get("max_time") is not None:
            return []
        data = self.datamodule
        streamed = "train" in data._streams()
        rows = None if streamed else len(data.split_tensors("train")["x_num"])
        kwargs["max_epochs"] = budget.MIN_EPOCHS if rows is None else budget.epoch_budget(rows, data.hparams.batch_size)
        if not data.has_split("val"):
            return []
        return [EarlyStopping(monitor="val_loss", mode="min", patience=budget.PATIENCE)]

    def _resume_version(self, root: str) -> int | None:
        """Resolve ``fit --ckpt_path last|PATH`` (see :func:`resume_target`) and return the resumed run's version."""
        config = self._section(self.config_init)
        dirpath = (self._section(self.config).get("checkpoint") or {}).get("dirpath")
        config["ckpt_path"], version = resume_target(config.get("ckpt_path"), root, dirpath)
        return version

    def before_predict(self) -> None:
        path = self.config[self.subcommand].get("predictions_path") or "predictions.csv"
        self.prediction_writer = PredictionWriter(path)
        self.trainer.callbacks.append(self.prediction_writer)

    def after_predict(self) -> None:
        # NOTE: Lightning runs no prediction epoch over a table with no rows, so nothing was written:
        # an empty table gets a predictions file with the header only.
        if not self.prediction_writer.written and self.trainer.is_global_zero:
            classes = self.datamodule.classes
            self.prediction_writer.write(empty_predictions(classes), classes)

    def after_fit(self) -> None:
        after_fit.finish_fit(self, self._fit_started)

    def after_test(self) -> None:
        after_fit.finish_test(self)

    def before_fit(self) -> None:
        # cross-fitted teacher logits are cached next to the runs, keyed by data + teacher config
        self.datamodule.default_teacher_cache_dir = str(Path(self.trainer.default_root_dir) / "teacher_cache")
        if self.model.hparams.get("calibrate") and not self.datamodule.has_split("val"):
            raise DataError("model.calibrate needs validation data: set data.val_path or data.val_fraction > 0")
        self._fit_started = time.perf_counter()


def _config_from_checkpoint(ckpt_path: str) -> dict:
    """The model and data configuration stored in a checkpoint (sizes come back through the links)."""
    checkpoint = load_model_checkpoint(ckpt_path)
    hparams = dict(checkpoint["hyper_parameters"])
    class_path = hparams.pop("_class_path")
    init_args = {k: v for k, v in hparams.items() if not k.startswith("_") and k not in LINKED}
    data_args = {k: v for k, v in checkpoint.get("datamodule_hyper_parameters", {}).items() if not k.startswith("_")}
    data_args["preprocessing_path"] = ckpt_path
    return {"model": {"class_path": class_path, "init_args": init_args}, "data": data_args}


def _with_checkpoint_config(args: list[str], folder: str) -> list[str]:
    """``validate|test|predict --ckpt_path X`` without ``--config``: configure model and data from the checkpoint
    (written as a config file in ``folder``)."""
    if not args or args[0] not in EVAL_SUBCOMMANDS:
        return args
    ckpt_path = option_value(args, "--ckpt_path")
    if ckpt_path is None or any(a in ("-c", "--config") or a.startswith("--config=") for a in args):
        return args
    config_path = Path(folder) / "checkpoint_config.yaml"
    config_path.write_text(yaml.safe_dump(_config_from_checkpoint(ckpt_path)))
    return [args[0], "--config", str(config_path), *args[1:]]


def make_cli(args: list[str], run: bool = True, *, cli_class: type[TabularCLI] = TabularCLI, **kwargs) -> TabularCLI:
    """``cli_class`` (TabularCLI or a subclass) built on ``args``; ``kwargs`` go to LightningCLI (e.g.
    ``trainer_defaults``) and ``parser_kwargs`` are added to ours. Errors propagate: :func:`build_cli` turns them
    into one line."""
    parser_kwargs = {"description": DESCRIPTION, **kwargs.pop("parser_kwargs", {})}
    return cli_class(
        TabularModule,
        TabularDataModule,
        subclass_mode_model=True,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_class=TabularArgumentParser,
        parser_kwargs=parser_kwargs,
        args=args,
        run=run,
        **kwargs,
    )


def build_cli(args: list[str] | None = None, run: bool = True) -> TabularCLI:
    """Parse ``args`` (default ``sys.argv[1:]``), build the CLI and, with ``run``, run its subcommand."""
    quiet_lightning()
    args = list(sys.argv[1:] if args is None else args)
    with user_errors(), tempfile.TemporaryDirectory(prefix="tabularnet-") as folder:
        return make_cli(_with_checkpoint_config(args, folder), run)
