"""What Lightning runs for tabularnet besides the LightningModule: the progress bar, the run folders and
checkpoints, the predictions writer.

- The progress bar: Lightning's own (Rich when installed, else tqdm), redrawn at most N times a second.
  Lightning's bars redraw and re-collect the logged metrics (one ``.item()`` each) after every training batch. A
  tabular step takes about a millisecond, so that bookkeeping cost a third of the epoch; time-based throttling
  keeps the display live (10 redraws a second by default) at a negligible cost. The last batch of an epoch is
  always drawn. The bar shows only the numbers worth watching while training; all of them are in TensorBoard.
- :class:`RunLogger` claims its ``lightning_logs/version_N`` directory with an atomic ``mkdir``, so runs started
  at the same moment in the same directory get different versions (Lightning's own logger lists the folder and
  takes the next number, which two simultaneous runs both take).
- :class:`AtomicCheckpointIO` writes checkpoints through :func:`tabularnet.atomic.atomic_path`: a temporary file in
  the checkpoint's own directory, flushed and renamed over the old one.
- :class:`LastCheckpoint` writes ``last.ckpt`` at the end of every training epoch (see its note on Lightning 2.6).
- :func:`last_checkpoint` and :func:`resume_target` find the checkpoint ``--ckpt_path last`` resumes from, and its
  version, so the resumed run keeps logging and checkpointing into the directory of the run it continues.
- :class:`PredictionWriter` writes ``tabularnet predict``'s file.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import BasePredictionWriter, Checkpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from tabularnet.atomic import atomic_path, stale_temporaries
from tabularnet.data.schema import DataError
from tabularnet.data.sources import write_table
from tabularnet.data.transform import predictions_frame
from tabularnet.lightning_private import ClaimedVersionMixin
from tabularnet.reporting.summary import format_metric
from tabularnet.training.progress import epoch_label

SHOWN_METRICS = ("train_loss", "val_loss", "val_acc", "val_auroc", "val_rmse", "val_r2")


class _Throttled:
    """Forwards ``on_train_batch_end`` to the wrapped bar only when ``1 / refresh_per_second`` has passed."""

    def _init_throttle(self, refresh_per_second: float) -> None:
        if refresh_per_second <= 0:
            raise ValueError(f"refresh_per_second must be positive, however: {refresh_per_second}")
        self._interval = 1.0 / refresh_per_second
        self._last_draw = -math.inf

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        total = self.total_train_batches
        if now - self._last_draw >= self._interval or (isinstance(total, int) and batch_idx + 1 >= total):
            self._last_draw = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        return {k: v for k, v in metrics.items() if k in SHOWN_METRICS}

    # NOTE: one live bar for the whole run (leave=False) and one printed line per finished epoch: stopping and
    # restarting Rich's display for a finished bar per epoch cost ~10 ms an epoch, 3% of a small one. The line
    # is printed when the next epoch (or the run) starts: only then are the epoch's metrics all logged.
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            self._print_epoch_line(trainer)
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._print_epoch_line(trainer)
        super().on_train_end(trainer, pl_module)

    def _print_epoch_line(self, trainer) -> None:
        if self.is_disabled or trainer.current_epoch < 1:
            return
        metrics = trainer.callback_metrics
        values = "  ".join(f"{k} {format_metric(float(metrics[k]))}" for k in SHOWN_METRICS if k in metrics)
        self._print_line(f"{epoch_label(trainer.current_epoch - 1, trainer.max_epochs)}  {values}")


class ThrottledRichProgressBar(_Throttled, RichProgressBar):
    """Lightning's ``RichProgressBar``, training bar redrawn at most ``refresh_per_second`` times a second.

    NOTE: Rich redraws from a background thread, ``refresh_rate`` times a second (Lightning's default: 100), which
    competes with training for the interpreter lock; it now redraws as often as the bar is updated. (In a 7-round
    A/B on 2 cores the epoch-time difference was within the noise, +-3%.)
    """

    def __init__(self, refresh_per_second: float = 10.0, **kwargs) -> None:
        kwargs.setdefault("refresh_rate", max(1, math.ceil(refresh_per_second)))
        super().__init__(**kwargs)
        self._init_throttle(refresh_per_second)

    def _print_line(self, line: str) -> None:
        if self.progress is not None:  # above the live bar
            self.progress.console.print(line, highlight=False)
        else:
            print(line, flush=True)


class ThrottledTQDMProgressBar(_Throttled, TQDMProgressBar):
    """Lightning's ``TQDMProgressBar``, training bar redrawn at most ``refresh_per_second`` times a second."""

    def __init__(self, refresh_per_second: float = 10.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_throttle(refresh_per_second)

    def _print_line(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line)


def default_progress_bar(refresh_per_second: float = 10.0):
    """The bar Lightning would pick (Rich if installed), throttled."""
    cls = ThrottledRichProgressBar if importlib.util.find_spec("rich") is not None else ThrottledTQDMProgressBar
    return cls(refresh_per_second=refresh_per_second, leave=False)  # one bar; a printed line per epoch


LOG_NAME = "lightning_logs"
_VERSION = re.compile(r"version_(\d+)$")


class RunLogger(ClaimedVersionMixin, TensorBoardLogger):
    """TensorBoard logger (Lightning's default) whose new version directory is claimed atomically."""

    def claim_version(self, version: int) -> int:
        """The first free ``version_N`` from Lightning's next number on, claimed with an atomic ``mkdir``."""
        if rank_zero_only.rank != 0 or "://" in str(self.root_dir):
            return version  # other ranks receive rank 0's directory by broadcast; remote stores keep Lightning's rule
        root = Path(self.root_dir)
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                (root / f"version_{version}").mkdir()
                return version
            except FileExistsError:  # claimed by a run that started at the same time
                version += 1


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic for local paths (temporary file + rename in the same directory).

    Lightning's own writer moves a finished temporary file from the system's temp directory, which is a copy --
    and so not atomic -- when that directory is on another file system.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        for stale in stale_temporaries(path):  # left by a run killed while saving; one writer per run directory
            stale.unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class LastCheckpoint(Checkpoint):
    """Writes the full training state to ``<dirpath>/last.ckpt`` at the end of every training epoch.

    NOTE: since Lightning 2.6, ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only in the epochs where it
    also saves a top-k checkpoint. After epochs without a better ``val_loss``, "last" was then the *best* epoch's
    state, and ``--ckpt_path last`` silently trained the epochs after it again. The CLI turns ``save_last: true``
    into this callback, which restores the documented meaning: the state after the latest finished epoch.

    A ``Checkpoint`` subclass, so Lightning runs its ``on_train_epoch_end`` after the LightningModule's and after
    ``EarlyStopping``'s: the file holds their updated state. Put it after the ``ModelCheckpoint`` in the callbacks
    (``trainer.checkpoint_callback`` is the first checkpoint callback).

    Args:
        dirpath: the directory; default: the trainer's ``ModelCheckpoint`` directory (``version_N/checkpoints``).
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: Optional[str | os.PathLike] = None) -> None:
        self.dirpath = dirpath

    def path(self, trainer) -> str:
        """Where this run's ``last.ckpt`` goes."""
        if self.dirpath is not None:
            return os.path.join(self.dirpath, self.FILENAME)
        if trainer.checkpoint_callback is not None and getattr(trainer.checkpoint_callback, "dirpath", None):
            return os.path.join(trainer.checkpoint_callback.dirpath, self.FILENAME)
        return os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints", self.FILENAME)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:  # Lightning writes no checkpoints in these either
            return
        trainer.save_checkpoint(self.path(trainer), weights_only=False)  # every rank calls it; rank 0 writes


def last_checkpoint(root_dir: str | os.PathLike, name: str = LOG_NAME) -> tuple[int, Path] | None:
    """The newest ``<root_dir>/<name>/version_N/checkpoints/last.ckpt`` and its ``N``; None when there is none."""
    found = []
    for path in Path(root_dir, name).glob("version_*/checkpoints/last.ckpt"):
        match = _VERSION.match(path.parent.parent.name)
        if match and path.is_file():
            found.append((path.stat().st_mtime, int(match.group(1)), path))
    if not found:
        return None
    _, version, path = max(found)
    return version, path


def checkpoint_version(ckpt_path: str | os.PathLike, root_dir: str | os.PathLike, name: str = LOG_NAME) -> int | None:
    """``N`` when ``ckpt_path`` lies in ``<root_dir>/<name>/version_N/checkpoints/``, else None."""
    path = Path(ckpt_path).resolve()
    match = _VERSION.match(path.parent.parent.name)
    if path.parent.name == "checkpoints" and match and path.parent.parent.parent == Path(root_dir, name).resolve():
        return int(match.group(1))
    return None


def resume_target(ckpt_path: str | None, root: str | os.PathLike, dirpath: str | None) -> tuple[str | None, int | None]:
    """``fit --ckpt_path last|PATH``: the checkpoint to resume from (``last``: the newest run's last.ckpt under
    ``root``, or in ``checkpoint.dirpath``; ``None`` when there is none: a new run) and that run's version, so the
    resumed run logs into the same directory."""
    if ckpt_path is None:
        return None, None
    if ckpt_path == "last":
        if dirpath:
            found = (None, Path(dirpath, "last.ckpt")) if Path(dirpath, "last.ckpt").is_file() else None
        else:
            found = last_checkpoint(root)
        if found is None:
            print(f"tabularnet: no last.ckpt under {dirpath or root} to resume from; starting a new run")
            return None, None
        ckpt_path = str(found[1])
        print(f"tabularnet: resuming from {ckpt_path}")
    if not Path(ckpt_path).is_file():
        raise DataError(f"--ckpt_path: checkpoint not found: {ckpt_path}")
    return ckpt_path, checkpoint_version(ckpt_path, root)


def empty_predictions(classes: list | None) -> np.ndarray:
    """The predictions of a table with no rows: ``(0, n_classes)``, or ``(0,)`` for regression."""
    return np.zeros((0,) if classes is None else (0, len(classes)), dtype=np.float32)


class PredictionWriter(BasePredictionWriter):
    """Writes all predictions of ``trainer.predict`` to ``path`` (CSV or Parquet, by extension), in input order."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.path = Path(path)
        self.written = False

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module, predictions, batch_indices) -> None:
        if not trainer.is_global_zero:
            return  # under DDP every rank predicts every row (the predict loader is not sharded); rank 0 writes
        classes = trainer.datamodule.classes
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        probs = torch.cat(batches).cpu().numpy() if batches else empty_predictions(classes)
        self.write(probs, classes)

    def write(self, probs: np.ndarray, classes: list | None) -> None:
        write_table(predictions_frame(probs, classes), self.path)
        self.written = True
        print(f"wrote {len(probs)} predictions to {self.path}")
