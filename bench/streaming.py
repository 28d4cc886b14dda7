"""Training on a Parquet table larger than memory: loader throughput and peak memory of ``data.streaming``.

Run: ``python bench/streaming.py [--rows N] [--folder DIR] [--limit-train-batches N] [--keep]``;
writes ``bench/results/streaming.json``.

The table (generated once in row-group chunks, never whole in memory; re-used from ``--folder`` if present):
N rows (default 20,000,000) x 30 feature columns + target, written with pyarrow in row groups of 1,048,576 rows
(pyarrow's default), snappy compression. ``num_0 .. num_19`` are float32 N(0, 1) (``num_0`` 1% missing);
``cat_0 .. cat_9`` are strings with 3, 5, 8, 12, 20, 30, 50, 100, 200 and 1000 levels (``cat_0`` 1% missing);
``target`` is ``"yes"`` when ``num_0 + 0.5 num_1 - 0.5 num_2 + effect(cat_0) + effect(cat_1) + N(0, 1) > 0``,
else ``"no"``.

Each measurement runs in its own process, which reports its own peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``),
so the figures do not include the generator's memory. The stages run with ``--threads`` torch threads
(``OMP_NUM_THREADS``, default 1: on a 2-core machine shared with other work, two OpenMP threads that spin while
Arrow's decoding threads run were 14x slower than one).



loader  ``TabularDataModule(train_path=..., streaming=True, val_fraction=V, batch_size=B)``: fitting the
        preprocessing (sample of ``sample_rows`` rows + one scan of the target column), then one full pass over
        ``dm.train_dataloader()`` (read, filter the training rows, preprocess, shuffle buffer, batches), no model.
fit     ``tabularnet fit`` (``tabularnet.cli.main``, the real CLI path) with an MLP on the file and
        ``--data.streaming true``, one epoch (or ``--limit-train-batches``); a callback added to the Trainer times
        the training batches and the validation pass. The whole run (fit, then validation of the best
        checkpoint) is inside the peak-RSS figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

RESULTS = Path(__file__).resolve().parent / "results" / "streaming.json"
ROW_GROUP_ROWS = 1 << 20
N_NUMERIC, CARDINALITIES = 20, (3, 5, 8, 12, 20, 30, 50, 100, 200, 1000)
BATCH, VAL_FRACTION = 1024, 0.05
NET = "[256, 256]"


# -------------------------------------------------------------------------------------------- the table
def make_chunk(n_rows: int, rng: np.random.Generator) -> pa.Table:
    """``n_rows`` rows of the synthetic table (see the module docstring)."""
    columns = {f"num_{i}": rng.standard_normal(n_rows, dtype=np.float32) for i in range(N_NUMERIC)}
    score = columns["num_0"] + 0.5 * columns["num_1"] - 0.5 * columns["num_2"] + rng.standard_normal(n_rows)
    arrays = {}
    for i, cardinality in enumerate(CARDINALITIES):
        codes = rng.integers(0, cardinality, n_rows)
        if i < 2:  # effects of the first two categorical columns on the target
            score += np.linspace(-1, 1, cardinality)[codes]
        levels = pa.array([f"c{i}_{level}" for level in range(cardinality)])
        arrays[f"cat_{i}"] = pc.take(levels, pa.array(codes))
    missing = rng.random(n_rows) < 0.01
    columns["num_0"][missing] = np.nan
    arrays["cat_0"] = pc.if_else(pa.array(rng.random(n_rows) < 0.01), pa.nulls(n_rows, pa.string()), arrays["cat_0"])
    table = {name: pa.array(values, from_pandas=True) for name, values in columns.items()}
    table.update(arrays)
    table["target"] = pc.take(pa.array(["no", "yes"]), pa.array((score > 0).astype(np.int64)))
    return pa.table(table)


def generate(path: Path, n_rows: int, seed: int = 0) -> float:
    """Write the table to ``path`` one row group at a time; returns the seconds it took."""
    started, rng = time.perf_counter(), np.random.default_rng(seed)
    partial = path.with_suffix(".partial")
    writer = None
    for start in range(0, n_rows, ROW_GROUP_ROWS):
        chunk = make_chunk(min(ROW_GROUP_ROWS, n_rows - start), rng)
        writer = writer or pq.ParquetWriter(partial, chunk.schema, compression="snappy")
        writer.write_table(chunk, row_group_size=ROW_GROUP_ROWS)
    writer.close()
    partial.rename(path)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------- measurements
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_loader(path: str) -> dict:
    from tabularnet import TabularDataModule

    started = time.perf_counter()
    dm = TabularDataModule(train_path=path, streaming=True, val_fraction=VAL_FRACTION, batch_size=BATCH)
    n_features = dm.n_num_features
    fit_s = time.perf_counter() - started
    loader = dm.train_dataloader()
    started, rows, batches = time.perf_counter(), 0, 0
    for batch in loader:
        rows += len(batch["y"])
        batches += 1
    seconds = time.perf_counter() - started
    return {
        "preprocessing_fit_s": fit_s,
        "n_num_features": n_features,
        "train_rows": rows,
        "batches": batches,
        "len_loader": len(loader),
        "epoch_s": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_fit(path: str, root: str, limit_train_batches: int | None) -> dict:
    import lightning.pytorch as pl

    from tabularnet.cli import main
    from tabularnet.cli.app import TabularCLI

    class EpochTimer(pl.Callback):
        """Seconds and rows of the training batches, and seconds of the validation pass, of epoch 0."""

        def __init__(self) -> None:
            self.times: dict[str, float] = {"rows": 0}

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.times["train_start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.times["rows"] += len(batch["y"])
            self.times["train_end"] = time.perf_counter()

        def on_validation_epoch_start(self, trainer, pl_module) -> None:
            if trainer.state.fn == "fit" and not trainer.sanity_checking:
                self.times["val_start"] = time.perf_counter()

        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            if trainer.state.fn == "fit" and not trainer.sanity_checking:
                self.times["val_end"] = time.perf_counter()

    timer = EpochTimer()
    before_fit = TabularCLI.before_fit

    def before_fit_with_timer(cli) -> None:
        before_fit(cli)
        cli.trainer.callbacks.append(timer)

    TabularCLI.before_fit = before_fit_with_timer
    args = [
        "fit",
        "--model=tabularnet.MLPLightningModule",
        f"--model.hidden_dims={NET}",
        f"--data.train_path={path}",
        "--data.streaming=true",
        f"--data.val_fraction={VAL_FRACTION}",
        f"--data.batch_size={BATCH}",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root}",
        "--seed_everything=0",
    ]
    if limit_train_batches:
        args.append(f"--trainer.limit_train_batches={limit_train_batches}")
    started = time.perf_counter()
    main(args)
    t = timer.times
    metrics = json.loads(next(Path(root).rglob("metrics.json")).read_text())
    return {
        "command": "tabularnet " + " ".join(args),
        "total_s": time.perf_counter() - started,
        "train_rows": t["rows"],
        "train_s": t["train_end"] - t["train_start"],
        "train_rows_per_s": t["rows"] / (t["train_end"] - t["train_start"]),
        "val_s": t.get("val_end", float("nan")) - t.get("val_start", float("nan")),
        "val_acc": metrics.get("val_acc"),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_stage(stage: str, *args: str, threads: int) -> dict:
    """Run ``stage`` of this script in a fresh process with ``threads`` torch threads; return the JSON it prints."""
    command = [sys.executable, __file__, "--stage", stage, *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"stage {stage} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "tabularnet-bench"))
    parser.add_argument("--limit-train-batches", type=int, default=None, help="cap the training epoch (2 cores)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file for the next run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) of the stages")
    parser.add_argument("--stage", choices=["loader", "fit"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage == "loader":
        print(json.dumps(measure_loader(args.path)))
        return {}
    if args.stage == "fit":
        print(json.dumps(measure_fit(args.path, args.root, args.limit_train_batches)))
        return {}

    path = Path(args.folder) / f"synthetic_{args.rows}x30.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    generation_s = None if path.is_file() else generate(path, args.rows)
    made = "re-used" if generation_s is None else f"generated in {generation_s:.0f} s"
    print(f"table: {path} ({path.stat().st_size / 2**30:.2f} GiB; {made})")
    loader = run_stage("loader", "--path", str(path), threads=args.threads)
    print(f"loader: {loader['rows_per_s']:,.0f} rows/s, peak RSS {loader['peak_rss_mb']:,.0f} MB")
    with tempfile.TemporaryDirectory(dir=args.folder) as root:
        extra = ["--limit-train-batches", str(args.limit_train_batches)] if args.limit_train_batches else []
        fit = run_stage("fit", "--path", str(path), "--root", root, *extra, threads=args.threads)
    print(f"fit: {fit['train_rows_per_s']:,.0f} training rows/s, peak RSS {fit['peak_rss_mb']:,.0f} MB")
    metadata = pq.ParquetFile(path).metadata
    results = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.platform()}, python {platform.python_version()}",
        "load_average_1min_after": os.getloadavg()[0],
        "torch_threads": args.threads,
        "table": {
            "rows": metadata.num_rows,
            "columns": metadata.num_columns,
            "row_groups": metadata.num_row_groups,
            "file_gib": path.stat().st_size / 2**30,
            "generation_s": generation_s,
        },
        "batch_size": BATCH,
        "val_fraction": VAL_FRACTION,
        "loader": loader,
        "fit": fit,
        "definitions": __doc__,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        path.unlink()
    return results


if __name__ == "__main__":
    main()
