"""tabularnet beside pytorch_tabular on Adult: seconds per epoch, test accuracy, peak RSS.

Run: ``make bench-peers`` (creates ``bench/.peers-venv`` with torch 2.13.0 and pytorch_tabular 1.2.0), or by hand
``python bench/peers.py [--mlp-epochs N] [--ft-epochs N] [--peer-python bench/.peers-venv/bin/python]``;
writes ``bench/results/peers.json`` and prints a markdown table.

The driver (this file, any python with the standard library) starts one child process per (model, side):
ours      ``python -m tabularnet fit`` (the real CLI, this project's venv) with ``EpochTimer`` added as a callback;
          test accuracy from the run's ``metrics.json`` (best-val-loss checkpoint).
peer      ``bench/.peers-venv/bin/python bench/peers.py --side peer ...``: pytorch_tabular's ``TabularModel`` on the
          same split, with ``EpochTimer`` passed to ``fit(callbacks=...)``; test accuracy of its ``predict`` on the
          official test file (the best-val-loss checkpoint: pytorch_tabular's ``load_best`` default).
Data: Adult's official training file, 20% held out for validation (stratified, seed 0: the same
``train_test_split`` call as tabularnet's ``stratified_split``); test: the official test file.
s/epoch: median over the epochs after the first of the wall time between consecutive train-epoch starts (the last
epoch ends at ``on_train_end``): training steps, validation, checkpointing and progress reporting all count.
Peak RSS: ``ru_maxrss`` of the child process (``os.wait4``), i.e. the whole run including data loading and the
final evaluation. Both sides: ``OMP_NUM_THREADS=2`` and ``torch.set_num_threads(2)``.
Peer settings: batch 256, AdamW lr 1e-3 weight decay 0 (tabularnet's default optimizer), no early stopping (every
side runs all epochs), no progress bar, checkpointing of the best valid_loss kept (its default; tabularnet keeps a
best and a last checkpoint too), seed 0. pytorch_tabular otherwise at its defaults (its own preprocessing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "peers.json"
TIMES_ENV = "PEERS_EPOCH_TIMES"
THREADS, BATCH, LR, SEED = 2, 256, 1e-3, 0
# resolved: the child processes run in other directories
ADULT = Path(os.environ.get("TABULARNET_DATA_DIR", ROOT.parent / "shared" / "datasets")).resolve() / "adult"
OURS = {
    "mlp": [
        "--model=tabularnet.MLPLightningModule",
        "--model.hidden_dims=[256,256]",
        "--model.dropout=0.1",
    ],
    "ft_transformer": [
        "--model=tabularnet.TransformerLightningModule",
        "--model.d_model=64",
        "--model.num_layers=2",
    ],
}


def _timer_methods():
    """Callback hooks that record the start of every training epoch and the end of training."""

    def on_train_epoch_start(self, trainer, pl_module):
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module):
        self.end = time.perf_counter()
        path = os.environ.get(TIMES_ENV)
        if path:
            Path(path).write_text(json.dumps(self.epoch_seconds()))

    def epoch_seconds(self):
        marks = [*self.starts, self.end]
        return [b - a for a, b in zip(marks, marks[1:])]

    def __init__(self):
        self.starts, self.end = [], None

    return dict(
        __init__=__init__,
        on_train_epoch_start=on_train_epoch_start,
        on_train_end=on_train_end,
        epoch_seconds=epoch_seconds,
    )


try:  # tabularnet's venv: ``--trainer.callbacks+=bench.peers.EpochTimer``
    from lightning.pytorch.callbacks import Callback as _LightningCallback

    EpochTimer = type("EpochTimer", (_LightningCallback,), _timer_methods())
except ImportError:  # the peers venv has pytorch_lightning only
    EpochTimer = None


def run_peer(model: str, epochs: int, out: Path) -> None:
    """pytorch_tabular's side, in its own venv."""
    import pandas as pd
    import pytorch_lightning as pl
    import torch
    from pytorch_tabular import TabularModel
    from pytorch_tabular.config import DataConfig, OptimizerConfig, TrainerConfig
    from pytorch_tabular.models import CategoryEmbeddingModelConfig, FTTransformerConfig
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(THREADS)
    timer = type("EpochTimer", (pl.Callback,), _timer_methods())()
    read = dict(keep_default_na=False, na_values=[""], low_memory=False)  # as tabularnet's read_table
    train = pd.read_csv(ADULT / "train.csv.gz", **read)
    test = pd.read_csv(ADULT / "test.csv", **read)
    target = "target"
    train, val = train_test_split(train, test_size=0.2, random_state=SEED, stratify=train[target])
    features = [c for c in train.columns if c != target]
    categorical = [c for c in features if train[c].dtype == object]
    continuous = [c for c in features if c not in categorical]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data_config = DataConfig(target=[target], continuous_cols=continuous, categorical_cols=categorical)
        trainer_config = TrainerConfig(
            batch_size=BATCH,
            max_epochs=epochs,
            accelerator="cpu",
            early_stopping=None,
            progress_bar="none",
            checkpoints_path=str(Path(tmp) / "saved_models"),
            seed=SEED,
        )
        optimizer_config = OptimizerConfig(optimizer="AdamW", optimizer_params={"weight_decay": 0.0})
        if model == "mlp":
            model_config = CategoryEmbeddingModelConfig(
                task="classification", layers="256-256", activation="ReLU", dropout=0.1, learning_rate=LR
            )
        else:
            model_config = FTTransformerConfig(task="classification", learning_rate=LR)
        tabular_model = TabularModel(
            data_config=data_config,
            model_config=model_config,
            optimizer_config=optimizer_config,
            trainer_config=trainer_config,
            verbose=False,
        )
        tabular_model.fit(train=train, validation=val, seed=SEED, callbacks=[timer])
        fit_seconds = time.perf_counter() - started
        pred = tabular_model.predict(test)
    column = f"{target}_prediction" if f"{target}_prediction" in pred else "prediction"
    accuracy = float((pred[column].astype(str).values == test[target].astype(str).values).mean())
    import pytorch_tabular

    result = {
        "epoch_seconds": timer.epoch_seconds(),
        "fit_seconds": fit_seconds,
        "test_accuracy": accuracy,
        "versions": {"torch": torch.__version__, "pytorch_lightning": pl.__version__},
        "pytorch_tabular": _dist_version("pytorch_tabular") or pytorch_tabular.__version__,
        "n_params": sum(p.numel() for p in tabular_model.model.parameters()),
    }
    out.write_text(json.dumps(result))


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _child(cmd: list[str], env: dict, log: Path, cwd: Path) -> tuple[float, float]:
    """Run ``cmd`` in ``cwd``; (wall seconds, peak RSS MB of that process)."""
    started = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"peers: {' '.join(cmd[:4])} ... failed ({proc.returncode}); log:\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def measure(side: str, model: str, epochs: int, peer_python: str, tmp: Path) -> dict:
    times = tmp / f"{model}-{side}-epochs.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), TIMES_ENV: str(times), "PYTHONPATH": str(ROOT)}
    if side == "ours":
        root = tmp / f"{model}-runs"
        cmd = [
            sys.executable, "-m", "tabularnet", "fit", *OURS[model],
            "--data.dataset=adult", f"--data.batch_size={BATCH}", f"--trainer.max_epochs={epochs}",
            "--trainer.callbacks+=bench.peers.EpochTimer", f"--trainer.default_root_dir={root}",
            f"--seed_everything={SEED}",
        ]  # fmt: skip
    else:
        out = tmp / f"{model}-peer.json"
        cmd = [os.path.abspath(peer_python), str(Path(__file__).resolve()), "--side", "peer", "--model", model]
        cmd += ["--epochs", str(epochs), "--out", str(out)]
    print(f"peers: {model} / {side}: {epochs} epochs ...", flush=True)
    # NOTE: pytorch_tabular writes .pt_tmp/ and lightning_logs/ into its working directory: a scratch one
    wall, rss = _child(cmd, env, tmp / f"{model}-{side}.log", ROOT if side == "ours" else tmp)
    epoch_seconds = json.loads(times.read_text())
    if side == "ours":
        run_dir = next(root.glob("lightning_logs/version_*"))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        timings = json.loads((run_dir / "timings.json").read_text())
        extra = {"test_accuracy": metrics["test_acc"], "fit_seconds": timings["train_seconds"]}
    else:
        extra = json.loads(out.read_text())
        extra.pop("epoch_seconds")
    return {
        "epochs": epochs,
        "s_per_epoch": statistics.median(epoch_seconds[1:] or epoch_seconds),
        "first_epoch_s": epoch_seconds[0],
        "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "wall_seconds": wall,
        "peak_rss_mb": rss,
        **extra,
    }


def table(results: dict) -> str:
    rows = [
        "| model | side | s/epoch | ratio peer/ours | test acc | peak RSS MB | epochs | fit s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"mlp": "MLP 256-256", "ft_transformer": "FT-Transformer"}
    for model, sides in results.items():
        ratio = sides["peer"]["s_per_epoch"] / sides["ours"]["s_per_epoch"]
        for side in ("ours", "peer"):
            r = sides[side]
            label = "tabularnet (Lightning CLI)" if side == "ours" else f"pytorch_tabular {r.get('pytorch_tabular')}"
            rows.append(
                f"| {names[model]} | {label} | {r['s_per_epoch']:.2f} | {ratio:.2f}x | {r['test_accuracy']:.4f} "
                f"| {r['peak_rss_mb']:.0f} | {r['epochs']} | {r['fit_seconds']:.1f} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["driver", "peer"], default="driver")
    parser.add_argument("--model", choices=list(OURS))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--mlp-epochs", type=int, default=10)
    parser.add_argument("--ft-epochs", type=int, default=5)
    parser.add_argument("--peer-python", default=str(ROOT / "bench" / ".peers-venv" / "bin" / "python"))
    args = parser.parse_args()
    if args.side == "peer":
        run_peer(args.model, args.epochs, args.out)
        return
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model, epochs in (("mlp", args.mlp_epochs), ("ft_transformer", args.ft_epochs)):
            results[model] = {
                side: measure(side, model, epochs, args.peer_python, Path(tmp)) for side in ("ours", "peer")
            }
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "threads": THREADS,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "batch_size": BATCH,
        "load_average": os.getloadavg(),
        "total_seconds": time.perf_counter() - started,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(table(results))
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
