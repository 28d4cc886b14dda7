"""`tabularnet tune` on the tiny Adult table (tests/data/datasets): the search space is checked up front with one-line
errors, a study writes trials.csv and a best.yaml that refits to the same validation score, a killed study resumes,
two workers share one storage file, and a storage password never shows."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from tabularnet.cli import main  # noqa: E402
from tabularnet.tuning.space import Param, canonical_key, corner_values, load_space, with_values  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_DATASETS = Path(__file__).resolve().parent / "data" / "datasets"
BASE = {
    "seed_everything": 0,
    "data": {"dataset": "adult", "batch_size": 64},
    "model": {
        "class_path": "tabularnet.MLPLightningModule",
        "init_args": {"hidden_dims": [8], "optimizer": {"name": "AdamW", "lr": 1.0e-3}},
    },
    "trainer": {"max_epochs": 2},
}
SPACE = {
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "model.init_args.optimizer.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
    "model.init_args.hidden_dims": {"type": "categorical", "choices": [[8], [16, 16]]},
}


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The base config and search space in ``tmp_path``; the tiny datasets as the data folder (subprocesses too)."""
    monkeypatch.setenv("TABULARNET_DATA_DIR", str(TINY_DATASETS))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path


def tune_args(folder: Path, n_trials: int, *extra: str) -> list[str]:
    return [
        "tune",
        f"--config={folder / 'base.yaml'}",
        f"--search_space={folder / 'space.yaml'}",
        f"--n_trials={n_trials}",
        f"--output_dir={folder / 'out'}",
        *extra,
    ]


def one_line_error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def stored_trials(folder: Path) -> list:
    storage = f"sqlite:///{folder / 'out' / 'study.db'}"
    return optuna.load_study(study_name="base-space", storage=storage).get_trials(deepcopy=False)


# ------------------------------------------------------------------------------------------ the search space
def test_space_keys_values_and_corners():
    params = [
        Param("model.init_args.hidden_dims", "categorical", choices=([8], [16, 16], [32])),
        Param("a", "int", 1, 4),
    ]
    assert canonical_key("model.dropout") == "model.init_args.dropout"
    assert canonical_key("model.class_path") == "model.class_path" and canonical_key("data.seed") == "data.seed"
    assert corner_values(params) == [
        {"model.init_args.hidden_dims": [8], "a": 1},
        {"model.init_args.hidden_dims": [16, 16], "a": 4},
        {"model.init_args.hidden_dims": [32], "a": 4},
    ]
    base = {"model": {"init_args": {"optimizer": None}}}
    assert with_values(base, {"model.init_args.optimizer.lr": 0.1}) == {
        "model": {"init_args": {"optimizer": {"lr": 0.1}}}
    }
    assert base == {"model": {"init_args": {"optimizer": None}}}  # a copy
    trial = optuna.create_study().ask()
    assert params[0].suggest(trial) in ([8], [16, 16], [32])  # a list choice comes back as the list


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"model.init_args.dropuot": {"type": "float", "low": 0, "high": 1}}, "has no option 'dropuot' (did you mean"),
        ({"model.dropout": {"type": "float", "low": 0.5, "high": 0.1}}, "low must be <= high"),
        ({"model.init_args.optimizer.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "needs low > 0"),
        ({"model.hidden_dims": {"type": "categorical"}}, "choices must be a non-empty list"),
        ({"model.dropout": {"type": "normal", "low": 0, "high": 1}}, "type must be one of float, int, categorical"),
        ({"model.activation": {"type": "categorical", "choices": ["relu", "sigmoid"]}}, "'sigmoid' does not parse"),
        ({"trainer.max_epoch": {"type": "int", "low": 1, "high": 3}}, "trainer has no option 'max_epoch'"),
    ],
)
def test_search_space_errors_are_one_line_naming_the_key(files, capsys, entry, message):
    (files / "space.yaml").write_text(yaml.safe_dump(entry))
    err = one_line_error(tune_args(files, 2), capsys)
    key = canonical_key(next(iter(entry)))
    assert err.startswith("tabularnet: error: ") and key in err and message in err, err
    assert not (files / "out").exists()  # nothing ran


def test_metric_must_be_a_validation_metric(files, capsys):
    err = one_line_error(tune_args(files, 2, "--metric=test_acc"), capsys)
    assert "--metric test_acc" in err and "val_" in err


def test_a_first_trial_that_fails_stops_the_study_with_its_error(files, capsys):
    (files / "base.yaml").write_text(yaml.safe_dump({**BASE, "data": {"train_path": "missing.csv"}}))
    err = one_line_error(tune_args(files, 3), capsys)
    assert "trial 0 failed" in err and "missing.csv" in err, err
    assert [t.state.name for t in stored_trials(files)] == ["FAIL"]


@pytest.mark.parametrize(
    "space, base", [("mlp", "tune_mlp_plr"), ("ft_transformer", "tune_ft_transformer"), ("tabm", "tune_mlp_plr")]
)
def test_shipped_search_spaces_fit_their_base_configs(space, base):
    from tabularnet.tuning.trial import check_space

    base_path = ROOT / "configs" / "adult" / f"{base}.yaml"
    params = load_space(ROOT / "configs" / "search" / f"{space}.yaml")
    full = check_space(base_path, yaml.safe_load(base_path.read_text()), params)
    assert full["checkpoint"]["monitor"] == "val_loss"


# ------------------------------------------------------------------------------------------------- a study
def test_study_writes_trials_and_a_best_config_that_refits_to_its_score(files, capsys):
    main(tune_args(files, 3, "--sampler_seed=0"))
    out = files / "out"
    captured = capsys.readouterr()
    printed = captured.out
    assert printed.count("tune: trial ") == 3 and "3/3 trials, done" in printed
    # the fit's data notes go to the trial's fit.log, not once per trial to the tune's stderr
    assert "so the task is" not in captured.err and "so the task is" in (out / "trials/0000/fit.log").read_text()
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == [0, 1, 2] and {r["state"] for r in rows} == {"COMPLETE"}
    assert {"val_loss", "seconds", "model.init_args.dropout", "model.init_args.hidden_dims", "val_acc"} <= set(rows[0])
    best = min(rows, key=lambda r: float(r["val_loss"]))
    # trials never look at the test split
    trial_metrics = json.loads((Path(best["run_dir"]) / "metrics.json").read_text())
    assert not any(k.startswith("test_") for k in trial_metrics)
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == ["trial_0000", "trial_0001", "trial_0002"]

    config = yaml.safe_load((out / "best.yaml").read_text())
    assert config["seed_everything"] == 0 and config["data"] == BASE["data"]
    assert config["model"]["init_args"]["dropout"] == pytest.approx(float(best["model.init_args.dropout"]))
    main(
        [
            "fit",
            f"--config={out / 'best.yaml'}",
            "--trainer.enable_progress_bar=false",
            "--trainer.default_root_dir=refit",
        ]
    )
    refit = json.loads((files / "refit" / "lightning_logs" / "version_0" / "metrics.json").read_text())
    assert refit["val_loss"] == pytest.approx(float(best["val_loss"]), abs=1e-6)
    assert "test_acc" in refit  # a plain fit tests

    # the same command again: the study is complete, nothing runs
    main(tune_args(files, 3))
    assert "tune: trial " not in capsys.readouterr().out
    assert len(stored_trials(files)) == 3


def run_worker(folder: Path, n_trials: int, log: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(folder / log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tabularnet", *tune_args(folder, n_trials)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_study_resumes(files, signum, capsys):
    (files / "base.yaml").write_text(yaml.safe_dump({**BASE, "trainer": {"max_epochs": 4}}))  # trials of ~2 s
    worker = run_worker(files, 3, "first.log")

    def one_complete_one_running() -> bool:
        """A complete trial, and a running one that its worker has claimed (a kill in the milliseconds before it
        does leaves a trial that counts as running for 2 minutes: storage.UNCLAIMED_SECONDS)."""
        assert worker.poll() is None, (files / "first.log").read_text()[-2000:]
        if not (files / "out" / "study.db").exists():
            return False
        try:
            trials = stored_trials(files)
        except Exception:  # the study is not created yet
            return False
        running = [t for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs]
        return any(t.state.name == "COMPLETE" for t in trials) and bool(running)

    wait_for(one_complete_one_running)
    worker.send_signal(signum)
    # Ctrl-C: the running trial fails, the files are written, exit status 130 as a shell reports it
    assert worker.wait(timeout=60) == (130 if signum == signal.SIGINT else -signal.SIGKILL)
    before = {t.number: t for t in stored_trials(files)}
    kept = {n: t.params for n, t in before.items() if t.state.name == "COMPLETE"}
    assert 1 <= len(kept) < 3

    main(tune_args(files, 3))  # the same command again (in this process: no second start-up)
    printed = capsys.readouterr().out
    trials = stored_trials(files)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    assert {n: t.params for n, t in enumerate(trials) if n in kept} == kept  # the first run's trials are kept
    # a trial the kill left RUNNING was failed, not counted
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in trials)
    if signum == signal.SIGKILL:
        assert "marked FAIL" in printed


def test_two_workers_share_one_study(files):
    workers = [run_worker(files, 5, f"worker{i}.log") for i in range(2)]
    for i, worker in enumerate(workers):
        assert worker.wait(timeout=300) == 0, (files / f"worker{i}.log").read_text()[-2000:]
    trials = stored_trials(files)
    assert [t.number for t in trials] == list(range(len(trials)))  # every trial recorded once
    # NOTE: both workers may start a trial at the same moment near the end: one extra trial at most
    # (the 6th may be pruned: the median pruner starts after 5 trials)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == len(trials) in (5, 6)
    workers_seen = {t.user_attrs["worker"] for t in trials}
    assert len(workers_seen) == 2  # both worked
    assert sorted(p.name for p in (files / "out" / "trials").iterdir()) == [f"{t.number:04d}" for t in trials]
    run_dirs = [t.user_attrs["run_dir"] for t in trials if t.state.name == "COMPLETE"]
    assert len(set(run_dirs)) == len(run_dirs) and all((Path(d) / "metrics.json").exists() for d in run_dirs)
    rows = list(csv.DictReader((files / "out" / "trials.csv").open()))
    assert sorted(int(r["number"]) for r in rows) == list(range(len(trials)))


def test_storage_password_is_masked(files, capsys):
    url = "postgresql+psycopg://u:secret@127.0.0.1:1/db"
    err = one_line_error(tune_args(files, 2, f"--storage={url}"), capsys)
    assert "--storage postgresql+psycopg://u:***@127.0.0.1:1/db" in err and "secret" not in err
