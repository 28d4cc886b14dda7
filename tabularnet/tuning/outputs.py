"""What ``tabularnet tune`` writes and shows: ``trials.csv``, ``best.yaml``, the trials in TensorBoard's HParams
tab (``DIR/tensorboard``) and one progress line per finished trial."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from tabularnet import atomic
from tabularnet.tuning.space import Param, decode

TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
TENSORBOARD_DIR = "tensorboard"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def trial_values(trial: FrozenTrial, params: list[Param]) -> dict:
    """The trial's value of each searched key (decoded: a list choice is the list)."""
    return {p.key: decode(trial.params[p.key]) for p in params if p.key in trial.params}


def score(trial: FrozenTrial) -> float | None:
    """A complete trial's value; a pruned one's last reported epoch's."""
    if trial.state == TrialState.COMPLETE:
        return trial.value
    return trial.intermediate_values.get(trial.last_step) if trial.last_step is not None else None


def seconds(trial: FrozenTrial) -> float | None:
    return round(trial.duration.total_seconds(), 1) if trial.duration is not None else None


def write_trials_csv(study: optuna.Study, params: list[Param], metric: str, path: Path) -> None:
    """One row per trial of the study: number, state, score, seconds, the searched values, its validation metrics
    (a pruned trial's score is its last reported epoch's)."""
    trials = study.get_trials(deepcopy=False)
    extra = sorted({k for t in trials for k in t.user_attrs if k.startswith("val_") and k != metric})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "state", metric, "seconds", *(p.key for p in params), *extra, "run_dir"])
    for t in trials:
        values = trial_values(t, params)
        row = [t.number, t.state.name, score(t), seconds(t), *(values.get(p.key) for p in params)]
        writer.writerow([*row, *(t.user_attrs.get(k) for k in extra), t.user_attrs.get("run_dir", "")])
    atomic.write_text(path, out.getvalue())


def write_best_yaml(config: dict, trial: FrozenTrial, metric: str, study_name: str, base: Path, path: Path) -> None:
    """``config`` (the best trial's: base + values + seed) with a header saying where it comes from."""
    header = (
        f"# tabularnet tune: the best trial ({trial.number}, {metric} {trial.value:.6g}) of study {study_name!r},\n"
        f"# the base config {base} with the trial's values. Train it: tabularnet fit --config {path}\n"
    )
    atomic.write_text(path, header + yaml.safe_dump(config, sort_keys=False))


class TensorBoardTrials:
    """Each finished trial as a session of TensorBoard's HParams tab: its searched values, state, score, seconds
    and validation metrics (``tensorboard --logdir DIR/tensorboard``)."""

    def __init__(self, folder: Path, params: list[Param], metric: str) -> None:
        self.folder, self.params, self.metric = folder, params, metric

    def log(self, trial: FrozenTrial) -> None:
        from torch.utils.tensorboard import SummaryWriter

        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in trial.params.items()}
        hparams = {**hparams, "state": trial.state.name}
        metrics = {f"hp/{k}": v for k, v in trial.user_attrs.items() if k.startswith("val_")}
        metrics = {**metrics, f"hp/{self.metric}": score(trial), "hp/seconds": seconds(trial)}
        metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        with SummaryWriter(self.folder / f"trial_{trial.number:04d}") as writer:
            writer.add_hparams(hparams, metrics, run_name=".")


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


class Progress:
    """One line per finished trial: its state and score, the best so far, trials done and time left."""

    def __init__(self, n_trials: int, metric: str, timeout: float | None) -> None:
        self.n_trials, self.metric, self.timeout = n_trials, metric, timeout
        self.started, self.run_here = time.monotonic(), 0

    def line(self, study: optuna.Study, trial: FrozenTrial) -> str:
        self.run_here += 1
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in FINISHED for t in trials)
        elapsed = time.monotonic() - self.started
        left = max(self.n_trials - done, 0) * elapsed / self.run_here
        if self.timeout is not None:
            left = min(left, max(self.timeout - elapsed, 0))
        outcome = f"{self.metric} {trial.value:.6g}" if trial.value is not None else trial.state.name.lower()
        if trial.state == TrialState.PRUNED:
            outcome = f"pruned at epoch {trial.last_step}"
        elif trial.state == TrialState.FAIL:
            outcome = f"FAILED: {trial.user_attrs.get('error', 'see above')}"
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = f"best {study.best_value:.6g} (trial {study.best_trial.number})" if complete else "no best yet"
        when = "done" if done >= self.n_trials else f"~{_duration(left)} left"
        return (
            f"tune: trial {trial.number} {outcome} in {_duration(seconds(trial) or 0)} | {best} | "
            f"{done}/{self.n_trials} trials, {when}"
        )
