"""One trial of ``tabularnet tune``: the base config with the trial's values, written as ``trial.yaml`` in the
trial's folder, fitted in this process by ``tabularnet fit``'s own CLI (no test split, no figures) with a pruning
callback; its score is a validation metric of the run's ``metrics.json``. Also the up-front check of a search space
against the parser of ``tabularnet fit``."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna_integration import PyTorchLightningPruningCallback

from tabularnet._quiet import quiet_lightning
from tabularnet.cli import after_fit
from tabularnet.cli.app import TabularCLI, make_cli
from tabularnet.cli.arguments import argument_error_line, error_line
from tabularnet.data.schema import DataError
from tabularnet.tuning.space import Param, corner_values, with_values
from tabularnet.tuning.storage import WORKER_ATTR, worker_id

TRIAL_CONFIG = "trial.yaml"
FIT_LOG = "fit.log"
# the config sections whose options the parser lists in full: a search-space key is checked against them up front
# (deeper keys, inside a dict option such as model.init_args.optimizer, by parsing the configs they make)
OPTION_DEPTH = {"model": 3, "data": 2, "trainer": 2, "checkpoint": 2}


class TrialFailed(Exception):
    """A trial's fit ended with an error (a combination of values the model refuses...): the trial is FAIL."""


class ParseOnlyCLI(TabularCLI):
    """``tabularnet fit``'s parser and nothing else: parsing a config builds no model, data or trainer."""

    def instantiate_classes(self) -> None:
        pass


class TrialCLI(TabularCLI):
    """``tabularnet fit`` for a trial: after training the best checkpoint is evaluated on validation only (the test
    split is never looked at while searching) and no figures are drawn."""

    def after_fit(self) -> None:
        after_fit.finish_fit(self, self._fit_started, test=False, figures=False)


def parse_config(path: Path) -> dict:
    """The complete config (every option, defaults filled in) that ``tabularnet fit --config path`` would run."""
    quiet_lightning()  # idempotent: no advice about LightningCLI's args parameter
    cli = make_cli(["--config", str(path)], run=False, cli_class=ParseOnlyCLI, parser_kwargs={"exit_on_error": False})
    return cli.config.as_dict()


def _check_key(key: str, full: dict) -> None:
    """``key`` names an option of the config ``full`` (as far as the parser lists options: ``OPTION_DEPTH``)."""
    parts = key.split(".")
    depth = OPTION_DEPTH.get(parts[0], 1)
    node: Any = full
    for i, part in enumerate(parts[:depth]):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[:i]) or "the config"
            options = sorted(k for k in node if not k.startswith("_")) if isinstance(node, dict) else []
            hint = difflib.get_close_matches(part, options, n=1)
            suggestion = f" (did you mean {'.'.join([*parts[:i], hint[0]])!r}?)" if hint else ""
            raise DataError(f"search space key {key!r}: {where} has no option {part!r}{suggestion}")
        node = node[part]
    if len(parts) > depth and node is not None and not isinstance(node, dict):
        raise DataError(f"search space key {key!r}: {'.'.join(parts[:depth])} is not a mapping ({node!r})")


def _parse_error(base: dict, values: dict[str, Any], folder: Path) -> str | None:
    """The one-line error of parsing ``base`` with ``values`` set, None when it parses."""
    path = folder / "check.yaml"
    path.write_text(yaml.safe_dump(with_values(base, values), sort_keys=False))
    try:
        parse_config(path)
    except Exception as err:  # jsonargparse's ArgumentError (exit_on_error=False), a bad class path...
        return argument_error_line(str(err))
    return None


def check_space(base_path: Path, base: dict, params: list[Param]) -> dict:
    """Check every key of the space against ``tabularnet fit``'s parser: it must name an option of the base config,
    and the base config with each end of each range (each choice) must parse. Returns the base's complete config."""
    try:
        full = parse_config(base_path)
    except Exception as err:
        raise DataError(f"--config {base_path}: {argument_error_line(str(err))}") from None
    for param in params:
        _check_key(param.key, full)
    with tempfile.TemporaryDirectory(prefix="tabularnet-tune-") as folder:
        for values in corner_values(params):
            if _parse_error(base, values, Path(folder)) is None:
                continue
            for key, value in values.items():  # find the key: each alone
                if (error := _parse_error(base, {key: value}, Path(folder))) is not None:
                    raise DataError(f"search space key {key!r}: the value {value!r} does not parse ({error})")
            raise DataError(f"search space: the values {values!r} do not parse together")
    return full


def run_fit(config_path: Path, folder: Path, callbacks: list) -> Path:
    """``tabularnet fit --config config_path`` in ``folder`` (the trial's run folder, under it ``lightning_logs``);
    its printed output (stdout, and stderr: the data notes, once per trial) goes to ``fit.log`` there. The run's log
    directory (with ``metrics.json``)."""
    args = [
        "fit",
        "--config",
        str(config_path),
        f"--trainer.default_root_dir={folder}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    with open(folder / FIT_LOG, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        cli = make_cli(args, cli_class=TrialCLI, trainer_defaults={"callbacks": callbacks})
    return Path(cli.trainer.log_dir or folder)


class Objective:
    """Optuna's objective: a trial's values -> its fit -> ``metric`` of the best checkpoint on validation."""

    def __init__(self, base: dict, params: list[Param], metric: str, seed: int, output_dir: Path) -> None:
        self.base, self.params, self.metric, self.seed, self.output_dir = base, params, metric, seed, output_dir
        self.interrupted = False  # set by tabularnet tune's SIGINT/SIGTERM handler

    def config(self, values: dict[str, Any]) -> dict:
        """The config a trial with ``values`` fits (base, values, the study's seed): what best.yaml holds."""
        return with_values(self.base, {**values, "seed_everything": self.seed})

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker_id())
        try:
            return self._run(trial)
        except TrialFailed as err:
            trial.set_user_attr("error", str(err))
            raise

    def _run(self, trial: optuna.Trial) -> float:
        values = {param.key: param.suggest(trial) for param in self.params}
        folder = self.output_dir / "trials" / f"{trial.number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("run_dir", str(folder))  # the run's log directory once it has one
        config_path = folder / TRIAL_CONFIG
        config_path.write_text(yaml.safe_dump(self.config(values), sort_keys=False))
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.metric)
        try:
            log_dir = run_fit(config_path, folder, [pruning])
        except optuna.TrialPruned:
            raise
        except SystemExit as err:  # the CLI ended itself: Lightning after Ctrl-C in training, an option refused
            if self.interrupted:
                raise KeyboardInterrupt from err
            raise TrialFailed(f"the fit exited with status {err.code} (see {folder / FIT_LOG})") from err
        except Exception as err:  # whatever ends one fit (a combination the model refuses, NaN...) fails the trial
            if os.environ.get("TABULARNET_DEBUG"):
                raise
            raise TrialFailed(error_line(err)) from err
        metrics = json.loads((log_dir / "metrics.json").read_text())
        trial.set_user_attr("run_dir", str(log_dir))
        for name, value in metrics.items():
            if name.startswith("val_") and isinstance(value, (int, float)):
                trial.set_user_attr(name, value)
        if self.metric not in metrics:
            logged = ", ".join(sorted(k for k in metrics if k.startswith("val_")))
            raise TrialFailed(f"--metric {self.metric}: the fit has no such metric (it has {logged})")
        return float(metrics[self.metric])
