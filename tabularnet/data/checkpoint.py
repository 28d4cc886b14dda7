"""Reading a tabularnet checkpoint (``tabularnet fit``'s or ``Estimator.save``'s) without unpickling code, and the
data module's state in it."""

from __future__ import annotations

from pathlib import Path

import torch

from tabularnet.data.schema import DataError

DATAMODULE_KEY = "TabularDataModule"  # where Lightning (and Estimator.save) put the data state in a checkpoint


def load_checkpoint(path: str | Path) -> dict:
    """Read a tabularnet checkpoint or saved model without unpickling code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a loadable tabularnet checkpoint ({first_line})") from None


def datamodule_state(path: str | Path) -> dict:
    """The data module's state (``{"preprocessing": ...}``) in the checkpoint at ``path``."""
    return _datamodule_state(load_checkpoint(path), path)


def _datamodule_state(checkpoint: dict, path) -> dict:
    if "preprocessing" in checkpoint.get(DATAMODULE_KEY, {}):
        return checkpoint[DATAMODULE_KEY]
    raise DataError(f"{path}: the checkpoint holds no tabularnet preprocessing state")


def load_model_checkpoint(path: str | Path) -> dict:
    """A checkpoint that holds a whole model, as ``tabularnet fit`` and ``save()`` write it: the model's class, the
    weights with the fitted temperature, the preprocessing. Anything less is a DataError naming what is missing."""
    checkpoint = load_checkpoint(path)
    parts = {
        "the model's class (_class_path)": "_class_path" in checkpoint.get("hyper_parameters", {}),
        "temperature in its state_dict": "temperature" in checkpoint.get("state_dict", {}),
        "preprocessing state": "preprocessing" in checkpoint.get(DATAMODULE_KEY, {}),
    }
    missing = [name for name, present in parts.items() if not present]
    if missing:
        raise DataError(f"{path}: not a tabularnet model checkpoint: it has no {', '.join(missing)}")
    return checkpoint
