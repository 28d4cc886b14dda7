"""The private Lightning names tabularnet uses (all in tabularnet/lightning_private.py) still exist; a Lightning
upgrade that removes one fails here, naming the version, and nowhere else in tabularnet is a private name used."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from pathlib import Path

import pytest
import torch

from tabularnet.lightning_private import CHECKPOINT_VERSION_KEY, PRIVATE_NAMES

PACKAGE = Path(__file__).resolve().parents[1] / "tabularnet"
LIGHTNING = importlib.metadata.version("lightning")


@pytest.mark.parametrize(("owner", "name"), PRIVATE_NAMES)
def test_private_name_exists(owner, name):
    module_name, _, class_name = owner.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if name == "_current_fx_name":  # an instance attribute, set in __init__
        exists = hasattr(cls(), name)
    else:
        exists = callable(getattr(cls, name, None))
    assert exists, f"Lightning {LIGHTNING} has no {owner}.{name}: update tabularnet/lightning_private.py"


def test_checkpoint_version_key_is_what_lightning_writes(tmp_path):
    import lightning.pytorch as pl

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

    trainer = pl.Trainer(max_epochs=0, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.strategy.connect(Tiny())
    trainer.save_checkpoint(tmp_path / "tiny.ckpt")
    checkpoint = torch.load(tmp_path / "tiny.ckpt", weights_only=True)
    assert checkpoint.get(CHECKPOINT_VERSION_KEY) == LIGHTNING, f"Lightning {LIGHTNING} changed its version key"


def test_no_private_lightning_name_outside_the_isolating_module():
    names = "|".join(re.escape(name) for _, name in PRIVATE_NAMES)
    pattern = re.compile(
        rf"\b({names}|_RICH_AVAILABLE)\b|from lightning[\w.]* import _|lightning[\w.]*\._\w|self\._get\("
    )
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "lightning_private.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) or "pytorch-lightning_version" in line
    ]
    assert not offenders, offenders
