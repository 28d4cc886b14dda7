"""Per-epoch training speed on a GPU: host-side batches vs the device-resident loader, with and without compile.

Run on a CUDA machine: ``python bench/gpu_speed.py [--batch-sizes 256 1024] [--repeats 3]``; writes
``bench/results/gpu_speed.json``. Same data and network as bench/speed.py (Adult's official training split,
26,048 training / 6,513 validation rows; MLP 256-256, ReLU, dropout 0.1; AdamW lr 1e-3), s/epoch measured the
same way ((t(6 epochs) - t(2 epochs)) / 4, medians over interleaved rounds):

floor            a bare loop with the whole table already on the GPU: ``randperm`` on the GPU, index slicing,
                 forward, cross-entropy, backward, AdamW (fused) step; one no-grad pass over the validation split.
torch_host       TorchTrainer(device="cuda"), TensorBatchLoader batches sliced on the host, copied per batch.
torch_resident   TorchTrainer(device="cuda", device_resident=True): tables copied to the GPU once.
torch_compile    as torch_resident, training through torch.compile(net) (compilation in the fixed overhead).
lightning_host   the Trainer ``tabularnet fit`` builds (RunLogger, progress bar, best/last checkpoints),
                 accelerator="gpu", host batches.
lightning_resident  the same with TabularDataModule(device_resident=True).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.speed import LR, NET, bare_fit, slice_batches  # noqa: E402
from tabularnet import MLPLightningModule, TabularDataModule  # noqa: E402
from tabularnet._quiet import quiet_lightning  # noqa: E402
from tabularnet.nn import MLP  # noqa: E402
from tabularnet.training.torch_trainer import TorchTrainer  # noqa: E402

E1, E2 = 2, 6
RESULTS = ROOT / "bench" / "results" / "gpu_speed.json"
DEVICE = torch.device("cuda")  # --device cpu: a smoke test of this script without a GPU


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def module_for(dm, compile_: bool = False) -> MLPLightningModule:
    torch.manual_seed(0)
    return MLPLightningModule(
        dm.n_num_features, dm.cat_cardinalities, dm.n_classes, optimizer={"name": "AdamW", "lr": LR},
        compile=compile_, **NET,
    )  # fmt: skip


def run_floor(dm, epochs: int) -> float:
    torch.manual_seed(0)
    net = MLP(n_num_features=dm.n_num_features, cat_cardinalities=dm.cat_cardinalities, d_out=dm.n_classes, **NET)
    net.to(DEVICE)
    train = {k: v.to(DEVICE) for k, v in dm.split_tensors("train").items()}
    val = {k: v.to(DEVICE) for k, v in dm.split_tensors("val").items()}
    batch = dm.hparams.batch_size
    # the bare loop of bench/speed.py (fused AdamW, one no-grad validation pass), on tensors resident on the GPU
    return timed(lambda: bare_fit(net, lambda: slice_batches(train, batch), val, epochs))


def torch_runner(resident: bool, compile_: bool = False):
    def run(dm, epochs: int) -> float:
        module = module_for(dm)
        trainer = TorchTrainer(
            module.recipe, max_epochs=epochs, seed=0, device=DEVICE, device_resident=resident, compile=compile_
        )
        return timed(lambda: trainer.fit(module.net, dm.train_dataloader(), dm.val_dataloader()))

    return run


def lightning_runner(resident: bool):
    def run(dm, epochs: int) -> float:
        import lightning.pytorch as pl
        from lightning.pytorch.callbacks import ModelCheckpoint

        from tabularnet.training.lightning_callbacks import (
            AtomicCheckpointIO,
            LastCheckpoint,
            RunLogger,
            default_progress_bar,
        )

        dm.hparams.device_resident = resident
        module = module_for(dm)
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp, contextlib.redirect_stdout(io.StringIO()):

            def fit():
                trainer = pl.Trainer(
                    max_epochs=epochs, accelerator="gpu" if DEVICE.type == "cuda" else "cpu", devices=1,
                    logger=RunLogger(tmp),
                    callbacks=[
                        default_progress_bar(), ModelCheckpoint(monitor="val_loss", mode="min"), LastCheckpoint(),
                    ],
                    default_root_dir=tmp, enable_model_summary=False,
                )  # fmt: skip
                trainer.strategy.checkpoint_io = AtomicCheckpointIO()
                trainer.fit(module, datamodule=dm)

            try:
                return timed(fit)
            finally:
                dm.hparams.device_resident = False  # the torch runners choose residency themselves

    return run


RUNS = {
    "floor": run_floor,
    "torch_host": torch_runner(False),
    "torch_resident": torch_runner(True),
    "torch_compile": torch_runner(True, compile_=True),
    "lightning_host": lightning_runner(False),
    "lightning_resident": lightning_runner(True),
}


def measure(batch_size: int, repeats: int) -> dict:
    dm = TabularDataModule(dataset="adult", val_fraction=0.2, batch_size=batch_size)
    dm.setup("fit")
    for run in RUNS.values():  # warm-up: CUDA context, kernels, compilation caches
        run(dm, 1)
    raw = {name: [] for name in RUNS}
    for _ in range(repeats):
        for name, run in RUNS.items():
            raw[name].append((run(dm, E2) - run(dm, E1)) / (E2 - E1))
    floor = statistics.median(raw["floor"])
    return {
        name: {"s_per_epoch": statistics.median(v), "ratio_to_floor": statistics.median(v) / floor, "rounds": v}
        for name, v in raw.items()
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    quiet_lightning(False)
    global DEVICE
    DEVICE = torch.device(args.device)
    results = {str(b): measure(b, args.repeats) for b in args.batch_sizes}
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "repeats": args.repeats,
    }
    lines = ["| batch | " + " | ".join(RUNS) + " |", "|---" * (len(RUNS) + 1) + "|"]
    for batch, row in results.items():
        cells = [f"{r['s_per_epoch'] * 1000:.0f} ms ({r['ratio_to_floor']:.2f}x)" for r in row.values()]
        lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "results": results, "table": table}, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
