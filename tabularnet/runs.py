"""Where a ``tabularnet fit`` run keeps its files, and how they survive crashes and neighbours.

- :class:`RunLogger` claims its ``lightning_logs/version_N`` directory with an atomic ``mkdir``, so runs started
  at the same moment in the same directory get different versions (Lightning's own logger lists the folder and
  takes the next number, which two simultaneous runs both take).
- :class:`AtomicCheckpointIO` writes checkpoints through :func:`tabularnet.atomic.atomic_path`: a temporary file in
  the checkpoint's own directory, flushed and renamed over the old one.
- :class:`LastCheckpoint` writes ``last.ckpt`` at the end of every training epoch (see its note on Lightning 2.6).
- :func:`last_checkpoint` finds the checkpoint ``--ckpt_path last`` resumes from, and its version, so the resumed
  run keeps logging and checkpointing into the directory of the run it continues.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from tabularnet.atomic import atomic_path, stale_temporaries

LOG_NAME = "lightning_logs"
_VERSION = re.compile(r"version_(\d+)$")


class RunLogger(TensorBoardLogger):
    """TensorBoard logger (Lightning's default) whose new version directory is claimed atomically."""

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
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
