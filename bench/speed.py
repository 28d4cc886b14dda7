"""Per-epoch training speed on Adult: what do TorchTrainer and Lightning add to a bare PyTorch loop?

Run: ``python bench/speed.py [--quick] [--repeats N]``; writes ``bench/results/speed.json``.

Fixed setup, excluded from every number: reading and preprocessing Adult's official training file once
(``TabularDataModule(dataset="adult", val_fraction=0.2, batch_size=256)``: 26048 training rows, i.e. 102 steps
of 256, and 6513 validation rows), and building the network before the timer starts. Network: ``tabularnet.nn.MLP``,
hidden_dims [256, 256], ReLU, dropout 0.1; AdamW lr 1e-3 (no weight decay); ``torch.set_num_threads(2)``.
``--batch-size N`` changes the 256 (and writes speed-batchN.json). ``--model ft`` measures the FT-Transformer instead
(``tabularnet.nn.FTTransformer`` with its defaults: d_model 64, 8 heads, 3 blocks, ReGLU, dropout 0.1, linear numeric
tokens) through the same floor, TorchTrainer and Lightning runs, and writes speed-ft.json; its epoch is ~20x the
MLP's, so it runs epochs 1 and 3 and 3 rounds by default.

Every training measurement times whole runs of E1=2 and E2=6 epochs (wall clock) and, per round, reports
    s/epoch = (t(E2) - t(E1)) / (E2 - E1)        fixed overhead = t(E1) - E1 * s/epoch
so one-time costs (Trainer start-up, sanity check, optimizer creation) land in the overhead, not in s/epoch.
The tables show medians over rounds; rounds interleave all measurements (A B C D E F, A B C D E F, ...).
"ratio" is s/epoch over the floor's s/epoch; "per-round ratio" is the median over rounds of each round's s/epoch
over that round's floor (robust to the machine's speed drifting during the run, as shared VMs' does).

floor         a bare loop in this file: ``randperm`` index slicing of the preprocessed tensors, forward,
              cross-entropy, backward, AdamW step (``fused=True``: the update tabularnet's drivers use, so the
              ratios measure their overhead, not a choice of kernel); per epoch one no-grad forward (+ loss) over
              the validation split in 4096-row chunks.
floor_loop_adamw  the same loop with torch's default (per-tensor) AdamW: what the fused update saves.
torchtrainer  ``TorchTrainer(recipe, max_epochs=E, seed=0).fit(net, dm.train_dataloader(), dm.val_dataloader())``:
              TensorBatchLoader batches, the shared training objective, a LambdaLR step per batch, a running
              loss sum, per-epoch validation loss and accuracy.
lightning     the Trainer ``tabularnet fit`` builds: ``Trainer(max_epochs=E, accelerator="cpu", logger=RunLogger(tmp),
              callbacks=[throttled progress bar, ModelCheckpoint(monitor="val_loss"), LastCheckpoint()],
              enable_model_summary=False)`` with atomic checkpoint writes, ``.fit(module, datamodule=dm)``; the timer
              includes building the Trainer. Per epoch this adds Lightning's per-step hooks, progress-bar redraws
              (at most 10 a second), validation metrics (acc, AUROC, F1, log loss), TensorBoard writes and
              checkpoint files (last.ckpt, and the best one when val_loss improved). The progress bar (Rich when
              installed, else tqdm) draws into a non-tty sink (stdout is captured during these runs).
naive         the floor's loop fed by ``DataLoader(TensorDataset(x_num, x_cat, y), batch_size=256, shuffle=True)``
              (per-row ``__getitem__`` plus ``default_collate``); validation as in the floor.
loader_*      one full training epoch of batches, no model: TensorBatchLoader (``dm.train_dataloader()``) vs the
              naive DataLoader above; reported as batches/s and s/epoch.

The project promise: lightning / torchtrainer <= 1.10. An untimed warm-up round of 1-epoch runs comes first.
"CPU s/epoch" is process CPU time (both threads). Other busy processes inflate the wall times a lot: check the load.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning
import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from tabularnet import MLPLightningModule, TabularDataModule, TransformerLightningModule
from tabularnet._quiet import quiet_lightning
from tabularnet.nn import MLP, FTTransformer
from tabularnet.training.lightning_callbacks import AtomicCheckpointIO, LastCheckpoint, RunLogger, default_progress_bar
from tabularnet.training.torch_trainer import TorchTrainer

E1, E2 = 2, 6
BATCH, EVAL_BATCH, LR, THREADS = 256, 4096, 1e-3, 2
NET = dict(hidden_dims=[256, 256], activation="relu", dropout=0.1)
FT_NET = dict(d_model=64, nhead=8, num_layers=3, dropout=0.1, activation="reglu")  # FTTransformer's defaults
MODEL = "mlp"  # --model: which network every measurement trains
RESULTS = Path(__file__).resolve().parent / "results" / "speed.json"


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


# ------------------------------------------------------------------ bare loops (floor and naive)
def make_net(dm: TabularDataModule) -> MLP | FTTransformer:
    """The network of ``--model``."""
    torch.manual_seed(0)
    network, options = (FTTransformer, FT_NET) if MODEL == "ft" else (MLP, NET)
    return network(
        n_num_features=dm.n_num_features, cat_cardinalities=dm.cat_cardinalities, d_out=dm.n_classes, **options
    )


def slice_batches(t: dict, batch: int | None = None):
    """One epoch of shuffled batches by ``randperm`` index slicing of whole tensors (on their device)."""
    batch = batch or BATCH
    order = torch.randperm(len(t["y"]), device=t["y"].device)
    for start in range(0, len(order), batch):
        index = order[start : start + batch]
        yield t["x_num"][index], t["x_cat"][index], t["y"][index]


def bare_fit(net: MLP, epoch_batches, val: dict, epochs: int, fused: bool = True) -> None:
    """Train ``net`` with AdamW over ``epoch_batches()`` for each epoch, then a no-grad pass over ``val``."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=0.0, fused=fused)
    for _ in range(epochs):
        net.train()
        for x_num, x_cat, y in epoch_batches():
            loss = F.cross_entropy(net(x_num, x_cat), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for s in range(0, len(val["y"]), EVAL_BATCH):
                chunk = slice(s, s + EVAL_BATCH)
                F.cross_entropy(net(val["x_num"][chunk], val["x_cat"][chunk]), val["y"][chunk])


def naive_loader(dm: TabularDataModule) -> DataLoader:
    t = dm.split_tensors("train")
    return DataLoader(TensorDataset(t["x_num"], t["x_cat"], t["y"]), batch_size=BATCH, shuffle=True)


# ------------------------------------------------------------------ the measurements
def make_module(dm: TabularDataModule) -> MLPLightningModule | TransformerLightningModule:
    torch.manual_seed(0)
    module, options = (TransformerLightningModule, FT_NET) if MODEL == "ft" else (MLPLightningModule, NET)
    return module(
        dm.n_num_features, dm.cat_cardinalities, dm.n_classes, optimizer={"name": "AdamW", "lr": LR}, **options
    )


def run_floor(dm, epochs, fused: bool = True):
    net, train, val = make_net(dm), dm.split_tensors("train"), dm.split_tensors("val")
    return timed(lambda: bare_fit(net, lambda: slice_batches(train), val, epochs, fused=fused))


def run_floor_loop_adamw(dm, epochs):
    return run_floor(dm, epochs, fused=False)


def run_torchtrainer(dm, epochs):
    module = make_module(dm)
    trainer = TorchTrainer(module.recipe, max_epochs=epochs, seed=0)
    return timed(lambda: trainer.fit(module.net, dm.train_dataloader(), dm.val_dataloader()))


def run_lightning(dm, epochs):
    module = make_module(dm)
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp, contextlib.redirect_stdout(io.StringIO()):

        def fit():  # the pieces TabularCLI.instantiate_trainer adds for `tabularnet fit`
            trainer = pl.Trainer(
                max_epochs=epochs,
                accelerator="cpu",
                logger=RunLogger(tmp),
                callbacks=[default_progress_bar(), ModelCheckpoint(monitor="val_loss", mode="min"), LastCheckpoint()],
                default_root_dir=tmp,
                enable_model_summary=False,
            )
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
            trainer.fit(module, datamodule=dm)

        return timed(fit)


def run_naive(dm, epochs):
    net, loader, val = make_net(dm), naive_loader(dm), dm.split_tensors("val")
    return timed(lambda: bare_fit(net, lambda: iter(loader), val, epochs))


def run_loader(loader) -> tuple[float, int]:
    """(wall seconds, batches) of one full epoch over ``loader``."""
    batches = []
    return timed(lambda: batches.extend(1 for _ in loader))[0], len(batches)


TRAINING = {
    "floor": run_floor,
    "floor_loop_adamw": run_floor_loop_adamw,
    "torchtrainer": run_torchtrainer,
    "lightning": run_lightning,
    "naive": run_naive,
}
LOADERS = {"loader_tensorbatch": lambda dm: dm.train_dataloader(), "loader_naive": naive_loader}


# ------------------------------------------------------------------ driver, summary, report
def measure(dm: TabularDataModule, repeats: int) -> tuple[dict, dict, list]:
    """Interleaved rounds: every training measurement at E1 and E2 epochs, then every loader epoch."""
    for run in TRAINING.values():  # warm-up round (imports, allocator, first Trainer): not recorded
        run(dm, 1)
    training = {name: {"t_E1": [], "t_E2": [], "cpu_E1": [], "cpu_E2": []} for name in TRAINING}
    loaders = {name: {"seconds": [], "batches": 0} for name in LOADERS}
    load = []
    for r in range(repeats):
        round_start = time.perf_counter()
        for name, run in TRAINING.items():
            for epochs, key in ((E1, "E1"), (E2, "E2")):
                wall, cpu = run(dm, epochs)
                training[name][f"t_{key}"].append(wall)
                training[name][f"cpu_{key}"].append(cpu)
        for name, make in LOADERS.items():
            seconds, batches = run_loader(make(dm))
            loaders[name]["seconds"].append(seconds)
            loaders[name]["batches"] = batches
        load.append(os.getloadavg()[0])
        seconds = time.perf_counter() - round_start
        print(f"round {r + 1}/{repeats}: {seconds:.0f}s, load {load[-1]:.2f}", file=sys.stderr)
    return training, loaders, load


def paired_ratio(rounds_a: list[float], rounds_b: list[float]) -> float:
    """Median over rounds of a / b within each round: robust to the machine's speed drifting between rounds."""
    return statistics.median(a / b for a, b in zip(rounds_a, rounds_b))


def summarize(training: dict, loaders: dict) -> dict:
    out = {}
    for name, raw in training.items():
        per_epoch = [(b - a) / (E2 - E1) for a, b in zip(raw["t_E1"], raw["t_E2"])]
        cpu_per_epoch = [(b - a) / (E2 - E1) for a, b in zip(raw["cpu_E1"], raw["cpu_E2"])]
        overhead = [a - E1 * p for a, p in zip(raw["t_E1"], per_epoch)]
        out[name] = {
            "s_per_epoch": statistics.median(per_epoch),
            "fixed_overhead_s": statistics.median(overhead),
            "cpu_s_per_epoch": statistics.median(cpu_per_epoch),
            "per_round_s_per_epoch": per_epoch,
            **raw,
        }
    floor = out["floor"]["s_per_epoch"]
    floor_rounds = out["floor"]["per_round_s_per_epoch"]
    for row in out.values():
        row["ratio_to_floor"] = row["s_per_epoch"] / floor
        row["paired_ratio_to_floor"] = paired_ratio(row["per_round_s_per_epoch"], floor_rounds)
    for name, raw in loaders.items():
        seconds = statistics.median(raw["seconds"])
        out[name] = {
            "s_per_epoch": seconds,
            "batches_per_s": raw["batches"] / seconds,
            "ratio_to_floor": seconds / floor,
            **raw,
        }
    return out


def report(results: dict, meta: dict) -> str:
    lines = [
        "| measurement | median s/epoch | ratio to floor | per-round ratio | fixed overhead s | CPU s/epoch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in TRAINING:
        r = results[name]
        lines.append(
            f"| {name} | {r['s_per_epoch']:.3f} | {r['ratio_to_floor']:.2f} | {r['paired_ratio_to_floor']:.2f} "
            f"| {r['fixed_overhead_s']:.2f} "
            f"| {r['cpu_s_per_epoch']:.3f} |"
        )
    lines += ["", "| loader (1 epoch, no model) | batches/s | s/epoch | ratio to floor |", "|---|---:|---:|---:|"]
    for name in LOADERS:
        r = results[name]
        lines.append(f"| {name} | {r['batches_per_s']:.0f} | {r['s_per_epoch']:.4f} | {r['ratio_to_floor']:.3f} |")
    key = meta["lightning_over_torchtrainer"]
    verdict = "within" if key <= 1.10 else "NOT within"
    lines += [
        "",
        f"Lightning / TorchTrainer: {key:.2f} (per-round median {meta['lightning_over_torchtrainer_paired']:.2f}); "
        f"{verdict} the 10% promise",
        f"TensorBatchLoader / naive DataLoader speed-up: {meta['loader_speedup']:.1f}x",
        f"cores: {meta['cpu_count']}, torch threads: {THREADS}, torch {meta['torch']}, lightning {meta['lightning']}, "
        f"python {meta['python']}, {meta['date']}",
        f"rounds: {meta['repeats']} (epochs {E1} and {E2} each), 1-min load average per round: "
        + ", ".join(f"{x:.2f}" for x in meta["load_average"]),
    ]
    if meta["busy"]:
        lines.append("WARNING: load average above cores + 1: other processes used the CPU; wall times are noisy")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 11 (~1 min when quiet)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 11, --quick 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per step (results: speed-batch<N>.json)")
    parser.add_argument("--model", choices=["mlp", "ft"], default="mlp", help="ft: the FT-Transformer (speed-ft.json)")
    args = parser.parse_args(argv)
    global BATCH, RESULTS, MODEL, E1, E2
    BATCH, MODEL = args.batch_size, args.model
    if BATCH != 256:
        RESULTS = RESULTS.with_name(f"speed-batch{BATCH}.json")
    if MODEL == "ft":
        RESULTS, (E1, E2) = RESULTS.with_name(RESULTS.stem + "-ft.json"), (1, 3)
        for name in ("floor_loop_adamw", "naive"):  # the MLP's questions (update kernel, loader), not the FT's
            TRAINING.pop(name)
    repeats = args.repeats or (3 if MODEL == "ft" else 5 if args.quick else 11)
    torch.set_num_threads(THREADS)
    quiet_lightning(verbose=False)

    started = time.perf_counter()
    dm = TabularDataModule(dataset="adult", val_fraction=0.2, batch_size=BATCH)
    for split in ("train", "val"):  # one-time setup (read, split, preprocess), outside every timer
        dm.split_tensors(split)
    training, loaders, load = measure(dm, repeats)
    results = summarize(training, loaders)

    paired = paired_ratio(*(results[k]["per_round_s_per_epoch"] for k in ("lightning", "torchtrainer")))
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": THREADS,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "model": MODEL,
        "repeats": repeats,
        "epochs": [E1, E2],
        "n_train": len(dm.split_tensors("train")["y"]),
        "n_val": len(dm.split_tensors("val")["y"]),
        "batch_size": BATCH,
        "steps_per_epoch": len(dm.train_dataloader()),
        "load_average": load,
        "lightning_over_torchtrainer": results["lightning"]["s_per_epoch"] / results["torchtrainer"]["s_per_epoch"],
        "lightning_over_torchtrainer_paired": paired,
        "loader_speedup": results["loader_tensorbatch"]["batches_per_s"] / results["loader_naive"]["batches_per_s"],
        "total_seconds": time.perf_counter() - started,
    }
    meta["within_10_percent"] = meta["lightning_over_torchtrainer"] <= 1.10
    meta["busy"] = max(load) > (os.cpu_count() or 1) + 1  # this process alone keeps the load near its 2 threads
    print(report(results, meta))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "results": results, "definitions": __doc__}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return results


if __name__ == "__main__":
    main()
