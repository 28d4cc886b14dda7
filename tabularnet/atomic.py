"""Atomic file writes: a file is either its previous version or its complete new version, never a torn one.

Every file tabularnet writes (checkpoints, ``save()`` files, metrics, cached teacher logits, predictions, the
figures' PNG files, ``report.html``) goes through :func:`atomic_path`: the content is written to a temporary file
in the destination's own directory, flushed to disk, and moved over the destination with one ``os.replace`` (a
rename, atomic on POSIX and Windows file systems). A process killed at any moment leaves at most a stray
``.<name>.*.tmp*`` file beside it. The content is fsynced before the rename, so after an operating-system crash the
file is also the old or the new version (the directory is not fsynced: which of the two survives such a crash is
not guaranteed). The exceptions are what Lightning and TensorBoard write themselves (a run's ``config.yaml``,
``hparams.yaml`` and event files).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # file systems without fsync: the rename is still atomic
        pass
    finally:
        os.close(fd)


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files an interrupted :func:`atomic_path` left beside ``path``."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp*"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it replaces ``path`` in one rename.

    The temporary name ends with ``path``'s own suffixes (``.tmp.parquet``, ``.tmp.csv.gz``), so writers that
    choose a format by extension write the right one. On an exception the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def torch_save(obj, path: str | os.PathLike) -> None:
    """Atomically ``torch.save`` ``obj`` to ``path``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
