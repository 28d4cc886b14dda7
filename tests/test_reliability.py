"""Reliability: atomic checkpoints under SIGKILL, kill-and-resume, reproducible runs, concurrent runs, 2-process DDP."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_table
from lightning.pytorch.loggers import TensorBoardLogger

from tabularnet.cli import main
from tabularnet.training.lightning_callbacks import AtomicCheckpointIO, RunLogger, last_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def big_table(tmp_path_factory) -> dict[str, Path]:
    """20,000 training rows: at batch 32 an epoch takes long enough to be killed in the middle of."""
    folder = tmp_path_factory.mktemp("big")
    df = make_table(22_000, seed=4)
    paths = {"train": folder / "train.csv", "test": folder / "test.csv"}
    df.iloc[:20_000].to_csv(paths["train"], index=False)
    df.iloc[20_000:].to_csv(paths["test"], index=False)
    return paths


def fit_args(table: dict[str, Path], root: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--model=tabularnet.MLPLightningModule",
        "--model.hidden_dims=[32, 32]",
        "--model.mixup={enabled: true, alpha: 0.4}",
        "--model.noise={enabled: true, std: 0.1}",
        "--model.scheduler={name: cosine, warmup_proportion: 0.1}",
        f"--data.train_path={table['train']}",
        f"--data.test_path={table['test']}",
        "--data.batch_size=32",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root}",
        "--seed_everything=7",
        *extra,
    ]


def spawn_fit(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tabularnet", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_fit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "tabularnet", *args], env=ENV, capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ------------------------------------------------------------------------------------------------ atomic saves
PAYLOAD = torch.arange(4_000_000, dtype=torch.float32)  # 16 MB, built before forking


def _save_forever(path: str, ready) -> None:
    # NOTE: no tensor math in the forked child: OpenMP's thread pool does not survive fork() and would hang
    io = AtomicCheckpointIO()
    step = 0
    while True:
        step += 1
        io.save_checkpoint({"step": step, "step_tensor": torch.tensor([step]), "weights": PAYLOAD}, path)
        ready.set()


def test_checkpoints_survive_sigkill_during_saves(tmp_path):
    """Kill a process that does nothing but save checkpoints, 25 times at random moments: the checkpoint always
    loads and is whole (the previous or the new one); the kills did land inside saves (they left temporaries)."""
    path = tmp_path / "last.ckpt"
    context = multiprocessing.get_context("fork")
    rng = random.Random(0)
    interrupted_saves, steps = 0, []
    for _ in range(25):
        ready = context.Event()
        process = context.Process(target=_save_forever, args=(str(path), ready), daemon=True)
        process.start()
        try:
            assert ready.wait(60), "the saving process did not start"
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["step_tensor"].item() == checkpoint["step"]
        assert torch.equal(checkpoint["weights"], PAYLOAD)
        steps.append(checkpoint["step"])
        interrupted_saves += bool(list(tmp_path.glob(".last.ckpt.*.tmp*")))
    assert interrupted_saves >= 3, "the kills never interrupted a save; the test proves nothing"
    AtomicCheckpointIO().save_checkpoint({"step": 0}, path)  # the next save clears the temporaries
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_cli_writes_checkpoints_atomically(table_files, tmp_path):
    from tabularnet.cli import build_cli

    cli = build_cli(fit_args(table_files, tmp_path, "--trainer.max_epochs=1")[1:], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert isinstance(cli.trainer.logger, RunLogger)


# ------------------------------------------------------------------------------------------- kill and resume
@pytest.mark.slow
def test_fit_killed_mid_epoch_resumes_to_the_uninterrupted_model(big_table, tmp_path):
    """SIGKILL a real ``tabularnet fit`` in its second epoch; ``--ckpt_path last`` finishes it; the final weights
    equal those of a run that was never interrupted (bitwise: same seed, loader order by epoch, RNG streams saved)."""
    epochs = "--trainer.max_epochs=4"
    killed_root, once_root = tmp_path / "killed", tmp_path / "once"
    process = spawn_fit(*fit_args(big_table, killed_root, epochs))
    last = killed_root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = torch.load(last, weights_only=True)["epoch"]
    assert stopped_at < 3

    resumed = run_fit(*fit_args(big_table, killed_root, epochs, "--ckpt_path=last"))
    assert f"resuming from {last}" in resumed.stdout
    run_fit(*fit_args(big_table, once_root, epochs))

    once_last = once_root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert_same_weights(weights(once_last), weights(last))
    assert not (killed_root / "lightning_logs" / "version_1").exists()  # the resumed run continued version_0
    metrics = [json.loads((root / "lightning_logs" / "version_0" / "metrics.json").read_text())
               for root in (killed_root, once_root)]  # fmt: skip
    assert metrics[0]["epochs"] == metrics[1]["epochs"] == 4
    assert metrics[0]["test_acc"] == metrics[1]["test_acc"]


def test_ckpt_path_last_without_a_checkpoint_starts_fresh(table_files, tmp_path, capsys):
    main(fit_args(table_files, tmp_path, "--trainer.max_epochs=1", "--ckpt_path=last"))
    assert "no last.ckpt under" in capsys.readouterr().out
    assert last_checkpoint(tmp_path) is not None


# --------------------------------------------------------------------------------------------- reproducibility
def test_same_seed_same_model_and_metrics_other_seed_differs(table_files, tmp_path):
    def run(name: str, seed: int, *extra: str) -> tuple[dict, dict]:
        root = tmp_path / name
        main(fit_args(table_files, root, "--trainer.max_epochs=3", f"--seed_everything={seed}", *extra))
        version = root / "lightning_logs" / "version_0"
        metrics = json.loads((version / "metrics.json").read_text())
        metrics.pop("best_checkpoint")  # a path inside the run's own directory
        return metrics, weights(version / "checkpoints" / "last.ckpt")

    metrics_a, weights_a = run("a", 1)
    metrics_b, weights_b = run("b", 1)
    metrics_c, weights_c = run("c", 2)
    metrics_d, weights_d = run("d", 1, "--trainer.deterministic=true")  # deterministic kernels: same numbers on CPU
    assert metrics_a == metrics_b == metrics_d
    assert_same_weights(weights_a, weights_b)
    assert_same_weights(weights_a, weights_d)
    assert metrics_a != metrics_c
    assert any(not torch.equal(weights_a[k], weights_c[k]) for k in weights_a)


# --------------------------------------------------------------------------------------------- concurrent runs
def test_run_logger_claims_a_version_before_writing(tmp_path):
    """Two loggers created at once in one directory: Lightning's takes version 0 twice, ours 0 and 1."""
    plain = [TensorBoardLogger(tmp_path / "plain").version for _ in range(2)]
    assert plain == [0, 0]  # the race RunLogger exists for
    ours = [RunLogger(tmp_path / "ours").version for _ in range(2)]
    assert ours == [0, 1]


@pytest.mark.slow
def test_concurrent_runs_in_one_directory_keep_their_own_files(table_files, tmp_path):
    processes = [
        spawn_fit(*fit_args(table_files, tmp_path, "--trainer.max_epochs=2", f"--seed_everything={seed}"))
        for seed in (11, 12)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    versions = sorted((tmp_path / "lightning_logs").iterdir())
    assert [v.name for v in versions] == ["version_0", "version_1"]
    seeds = set()
    for version in versions:
        seeds.add(yaml.safe_load((version / "config.yaml").read_text())["seed_everything"])
        metrics = json.loads((version / "metrics.json").read_text())
        assert Path(metrics["best_checkpoint"]).parent == version / "checkpoints"
        assert (version / "checkpoints" / "last.ckpt").is_file()
    assert seeds == {11, 12}


# ------------------------------------------------------------------------------------------------ DDP, 2 CPUs
@pytest.mark.slow
def test_two_process_ddp_fit_matches_single_process(big_table, tmp_path):
    """``--trainer.devices 2 --trainer.strategy ddp`` on CPU (gloo): one run directory, one set of checkpoints,
    metrics computed over all validation/test rows across the ranks, accuracy in line with one process."""
    common = ("--trainer.max_epochs=2", "--trainer.accelerator=cpu", "--model.mixup={enabled: false}")
    run_fit(*fit_args(big_table, tmp_path / "one", *common, "--trainer.devices=1"))
    ddp = run_fit(*fit_args(big_table, tmp_path / "ddp", *common, "--trainer.devices=2", "--trainer.strategy=ddp"))
    assert ddp.stdout.count("metrics:") == 1  # rank 0 reports
    runs = list((tmp_path / "ddp" / "lightning_logs").iterdir())
    assert [r.name for r in runs] == ["version_0"]
    checkpoints = sorted(p.name for p in (runs[0] / "checkpoints").iterdir())
    assert checkpoints[-1] == "last.ckpt" and len(checkpoints) == 2
    single = json.loads((tmp_path / "one" / "lightning_logs" / "version_0" / "metrics.json").read_text())
    multi = json.loads((runs[0] / "metrics.json").read_text())
    assert multi["test_acc"] == pytest.approx(single["test_acc"], abs=0.03)
    assert multi["test_acc"] > 0.75
