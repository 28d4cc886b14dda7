"""The ``tabularnet`` command: LightningCLI over TabularDataModule and the tabular LightningModules."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from tabularnet import atomic
from tabularnet._quiet import quiet_lightning
from tabularnet.callbacks import PredictionWriter
from tabularnet.data.datamodule import load_checkpoint
from tabularnet.data.lightning_datamodule import TabularDataModule
from tabularnet.data.schema import DataError, DataWarning
from tabularnet.progress import default_progress_bar
from tabularnet.runs import AtomicCheckpointIO, RunLogger, checkpoint_version, last_checkpoint
from tabularnet.training.lightning_modules import TrainingMixin

LINKED = ("n_num_features", "cat_cardinalities", "n_classes", "classes", "class_counts")
EVAL_SUBCOMMANDS = ("validate", "test", "predict")


class TabularCLI(LightningCLI):
    """LightningCLI with data-derived model sizes linked in, a best/last checkpoint, metrics.json and predictions."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in LINKED:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val_loss", "checkpoint.mode": "min", "checkpoint.save_last": True})
        # `tabularnet fit --data.dataset NAME` alone trains the MLP with its defaults
        parser.set_defaults({"model": {"class_path": "tabularnet.MLPLightningModule"}})
        parser.add_argument(
            "--predictions_path",
            type=Optional[str],
            default=None,
            help="predict: where to write predictions (.csv or .parquet); default predictions.csv",
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
            kwargs["logger"] = RunLogger(save_dir=root, version=version)
        if trainer_config.get("enable_progress_bar") is not False:
            callbacks = trainer_config.get("callbacks") or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            if not any(isinstance(c, ProgressBar) for c in callbacks):
                kwargs["callbacks"] = [*callbacks, default_progress_bar()]
        trainer = super().instantiate_trainer(**kwargs)
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

    def after_fit(self) -> None:
        """Evaluate the best checkpoint on validation (and test) data and write ``metrics.json``."""
        trainer = self.trainer
        if trainer.interrupted:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        ckpt_path = best or None
        metrics = {"best_checkpoint": best, "epochs": trainer.current_epoch}
        for result in trainer.validate(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path, verbose=False):
            metrics.update(result)
        if self.datamodule.has_split("test"):
            for result in trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path, verbose=False):
                metrics.update(result)
        metrics.update(self.datamodule.teacher_metrics)
        metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
        log_dir = trainer.log_dir  # NOTE: a collective under DDP: every rank must ask
        if trainer.is_global_zero:
            out = Path(log_dir or trainer.default_root_dir) / "metrics.json"
            atomic.write_text(out, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
            keys = ("val_acc", "test_acc", "test_auroc", "teacher_val_acc", "teacher_test_acc")
            summary = "  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
            print(f"{summary}\nmetrics: {out}\nbest checkpoint: {best or '(none)'}")
            print(f"curves: tensorboard --logdir {out.parent.parent}")


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


def _error_line(err: Exception) -> str:
    """The one line that says what is wrong. jsonargparse wraps an error raised while instantiating the model in a
    "Does not validate against any of the Union subtypes" report whose "- " lines hold the original messages."""
    lines = [line.strip() for line in str(err).strip().splitlines()]
    if not lines or not lines[0]:
        return type(err).__name__
    if lines[0].startswith("Does not validate against any of the Union subtypes"):
        reasons = [line[2:] for line in lines if line.startswith("- ") and not line.startswith("- Expected a")]
        return reasons[0] if reasons else lines[0]
    return lines[0]


_default_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Data warnings as one line, like the errors; anything else as Python shows it."""
    if issubclass(category, DataWarning):
        print(f"tabularnet: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``tabularnet``; ``args`` defaults to ``sys.argv[1:]``."""
    build_cli(args)


def build_cli(args: list[str] | None = None, run: bool = True) -> TabularCLI:
    """Parse ``args`` (default ``sys.argv[1:]``), build the CLI and, with ``run``, run its subcommand."""
    quiet_lightning()
    args = list(sys.argv[1:] if args is None else args)
    try:
        with tempfile.TemporaryDirectory(prefix="tabularnet-") as folder, warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return TabularCLI(
                TrainingMixin,
                TabularDataModule,
                subclass_mode_model=True,
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
                args=_with_checkpoint_config(args, folder),
                run=run,
            )
    except (DataError, ValueError) as err:
        if os.environ.get("TABULARNET_DEBUG"):
            raise
        print(f"tabularnet: error: {_error_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
