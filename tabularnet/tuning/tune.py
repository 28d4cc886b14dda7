"""``tabularnet tune --config base.yaml --search_space space.yaml --n_trials N``: an Optuna study whose trials are
``tabularnet fit`` runs of the base config with sampled values, scored by a validation metric, pruned epoch by epoch.
The study lives in a storage (default ``sqlite:///DIR/study.db``): the same command resumes it, several workers
(processes, machines with a server URL) share it."""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path

import yaml

from tabularnet.cli.arguments import OneLineParser
from tabularnet.data.schema import DataError
from tabularnet.tuning.outputs import (
    BEST_YAML,
    FINISHED,
    TENSORBOARD_DIR,
    TRIALS_CSV,
    Progress,
    TensorBoardTrials,
    trial_values,
    write_best_yaml,
    write_trials_csv,
)
from tabularnet.tuning.space import load_space

DESCRIPTION = (
    "Search hyperparameters with Optuna: each trial is `tabularnet fit` of the base config with values from the "
    "search space, scored on validation (never test). Rerun the same command to resume; run it in several "
    "processes to search in parallel. Writes DIR/best.yaml, DIR/trials.csv and DIR/tensorboard."
)


def make_parser() -> OneLineParser:
    parser = OneLineParser(prog="tabularnet tune", description=DESCRIPTION)
    add = parser.add_argument
    add("--config", "-c", required=True, help="the base config (a `tabularnet fit` YAML)")
    add("--search_space", required=True, help="YAML: config key -> {type: float|int|categorical, ...}")
    add("--n_trials", type=int, required=True, help="finished trials the study should have (resumed: counted)")
    add("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    add("--storage", default=None, help="SQLAlchemy URL of the study (default: sqlite:///OUTPUT_DIR/study.db)")
    add("--study_name", default=None, help="default: <config stem>-<search space stem>")
    add("--output_dir", default=None, help="trials' runs, best.yaml, trials.csv (default: runs/tune/STUDY_NAME)")
    add("--metric", default=None, help="validation metric to optimize (default: the checkpoint's monitor)")
    add("--direction", choices=("minimize", "maximize"), default=None, help="default: from the metric")
    add("--seed", type=int, default=None, help="every trial's seed_everything (default: the base config's, or 0)")
    add("--sampler_seed", type=int, default=None, help="seed of the TPE sampler (default: random; one per worker)")
    add("--pruner", choices=("median", "none"), default="median", help="stop unpromising trials (default: median)")
    return parser


def load_base(path: str) -> dict:
    try:
        base = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise DataError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise DataError(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(base, dict):
        raise DataError(f"--config {path}: expected a mapping of config keys")
    return base


def resolve_metric(options, full: dict) -> tuple[str, str]:
    """``--metric`` (default: the metric the fit's checkpoint monitors) and its direction."""
    checkpoint = full.get("checkpoint") or {}
    monitor = checkpoint.get("monitor") or "val_loss"
    metric = options.metric or monitor
    if not metric.startswith("val_"):
        raise DataError(f"--metric {metric}: tune scores trials on validation: give a val_* metric (e.g. val_loss)")
    if options.direction:
        return metric, options.direction
    if metric == monitor:
        return metric, "maximize" if checkpoint.get("mode") == "max" else "minimize"
    return metric, "minimize" if metric.endswith(("loss", "ece")) else "maximize"


def study_setting(study, name: str, value, given) -> object:
    """A setting every worker of the study shares (stored with it): the stored one, unless ``given`` differs."""
    stored = study.user_attrs.get(name)
    if stored is None:
        study.set_user_attr(name, value)
        return value
    if given is not None and given != stored:
        raise DataError(f"--{name} {given}: study {study.study_name!r} was started with --{name} {stored}")
    return stored


def open_study(options, storage, metric: str, direction: str):
    import optuna

    from tabularnet.tuning.storage import masked, scrub

    # NOTE: constant_liar: a worker's sampler treats the trials other workers are running as bad, so that parallel
    # workers do not all sample the same promising spot
    sampler = optuna.samplers.TPESampler(seed=options.sampler_seed, constant_liar=True)
    # NOTE: the first 5 trials always finish; later ones stop when, from epoch 2 on, they are worse than the median
    # of the earlier trials at the same epoch
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if options.pruner == "none":
        pruner = optuna.pruners.NopPruner()
    try:
        study = optuna.create_study(
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            study_name=options.study_name,
            direction=direction,
            load_if_exists=True,
        )
    except Exception as err:
        reason = scrub(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, options.storage)
        raise DataError(f"--storage {masked(options.storage)}: {reason}") from None
    if study.direction.name.lower() != direction:
        raise DataError(f"--direction {direction}: study {study.study_name!r} is to {study.direction.name.lower()}")
    if options.sampler_seed is not None and study.trials:  # resumed: not the draws of the first run again
        study.sampler = optuna.samplers.TPESampler(seed=options.sampler_seed + len(study.trials), constant_liar=True)
    return study


def quiet() -> None:
    """Our own line per trial says what Optuna and Lightning would: their info lines and the heartbeat's
    ExperimentalWarning are hidden (a trial's own output goes to its fit.log)."""
    import optuna

    from tabularnet._quiet import quiet_lightning

    quiet_lightning(verbose=False)
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)  # "Seed set to 0" per parse
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def tune_main(args: list[str]) -> int:
    options = make_parser().parse_args(args)
    if options.n_trials < 1:
        raise DataError(f"--n_trials must be >= 1, however: {options.n_trials}")
    params = load_space(options.search_space)
    base = load_base(options.config)
    quiet()
    from tabularnet.tuning.trial import check_space

    full = check_space(Path(options.config), base, params)
    options.study_name = options.study_name or f"{Path(options.config).stem}-{Path(options.search_space).stem}"
    options.output_dir = Path(options.output_dir or Path("runs") / "tune" / options.study_name)
    options.output_dir.mkdir(parents=True, exist_ok=True)
    options.storage = options.storage or f"sqlite:///{options.output_dir / 'study.db'}"
    return Tuning(options, base, params, *resolve_metric(options, full)).run()


class Tuning:
    """One worker of a study: opens it, runs the trials it still needs, writes the outputs after each."""

    def __init__(self, options, base: dict, params: list, metric: str, direction: str) -> None:
        from tabularnet.tuning.storage import open_storage
        from tabularnet.tuning.trial import Objective

        self.options, self.params, self.metric, self.output_dir = options, params, metric, options.output_dir
        self.storage = open_storage(options.storage)
        self.study = open_study(options, self.storage, metric, direction)
        study_setting(self.study, "metric", metric, options.metric)
        base_seed = base.get("seed_everything")
        default = base_seed if isinstance(base_seed, int) and not isinstance(base_seed, bool) else 0
        seed = study_setting(self.study, "seed", default if options.seed is None else options.seed, options.seed)
        self.objective = Objective(base, params, metric, seed, self.output_dir)
        self.progress = Progress(options.n_trials, metric, options.timeout)
        self.board = TensorBoardTrials(self.output_dir / TENSORBOARD_DIR, params, metric)

    def start(self, states: tuple) -> int:
        """Fail the trials of dead workers, say where the study stands; the trials still to run."""
        from tabularnet.tuning.storage import fail_dead_trials, masked

        dead = fail_dead_trials(self.study, self.storage)
        counted = len(self.study.get_trials(deepcopy=False, states=states))
        failed = f", trials {dead} of dead workers marked FAIL" if dead else ""
        print(
            f"tune: study {self.study.study_name!r} in {masked(self.options.storage)}: {counted} of "
            f"{self.options.n_trials} trials done or running{failed}; {self.study.direction.name.lower()} "
            f"{self.metric}; runs in {self.output_dir / 'trials'}",
            flush=True,
        )
        return self.options.n_trials - counted

    def run(self) -> int:
        """Run the remaining trials; 0 when done, 130 when interrupted (Ctrl-C, SIGTERM: the study resumes)."""
        import optuna

        from tabularnet.tuning.trial import TrialFailed

        states = (*FINISHED, optuna.trial.TrialState.RUNNING)
        remaining = self.start(states)
        handlers = {signum: signal.signal(signum, self.interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            if remaining > 0:
                # NOTE: running trials count too: workers stop when the study has n_trials, not each after its own
                stop = optuna.study.MaxTrialsCallback(self.options.n_trials, states=states)
                self.study.optimize(
                    self.objective,
                    n_trials=remaining,
                    timeout=self.options.timeout,
                    catch=(TrialFailed,),
                    callbacks=[stop, self.after_trial],
                )
        except KeyboardInterrupt:
            self.write_outputs()
            print("tune: interrupted; the same command resumes the study", file=sys.stderr)
            return 130
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        self.write_outputs()
        print_summary(self.study, self.output_dir, self.metric)
        return 0

    def interrupt(self, signum, frame) -> None:
        self.objective.interrupted = True
        raise KeyboardInterrupt

    def after_trial(self, study, trial) -> None:
        from optuna.trial import TrialState

        print(self.progress.line(study, trial), flush=True)
        if trial.state in FINISHED:
            self.board.log(trial)
        self.write_outputs()
        if trial.state == TrialState.FAIL and not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            # the first trials failing: most likely the base config's fault, not the values'
            raise DataError(f"trial {trial.number} failed: {trial.user_attrs.get('error', 'see above')}")

    def write_outputs(self) -> None:
        """trials.csv of every trial; best.yaml of the best complete trial (when there is one)."""
        from optuna.trial import TrialState

        write_trials_csv(self.study, self.params, self.metric, self.output_dir / TRIALS_CSV)
        if self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            best = self.study.best_trial
            config = self.objective.config(trial_values(best, self.params))
            base = Path(self.options.config)
            write_best_yaml(config, best, self.metric, self.study.study_name, base, self.output_dir / BEST_YAML)


def print_summary(study, output_dir: Path, metric: str) -> None:
    from optuna.trial import TrialState

    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    print("tune: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    if counts["complete"]:
        best = study.best_trial
        print(f"tune: best trial {best.number}: {metric} {best.value:.6g}")
        for key, value in best.params.items():
            print(f"  {key}: {value}")
        print(f"best config: {output_dir / BEST_YAML} (tabularnet fit --config {output_dir / BEST_YAML})")
    print(f"trials: {output_dir / TRIALS_CSV}; HParams: tensorboard --logdir {output_dir / TENSORBOARD_DIR}")
