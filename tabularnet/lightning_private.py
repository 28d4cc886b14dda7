"""Every use of a private Lightning name, in one module; nowhere else in tabularnet.

Each is here because no public API does the job (the reason is beside it). ``tests/test_lightning_private.py``
checks that every name still exists in the installed Lightning and fails naming its version when one is gone, so
an upgrade that removes one is caught by the tests, not by users. This module imports no Lightning itself: the
mixins take effect in classes that also derive from Lightning's.
"""

from __future__ import annotations

# The private names used below, as (Lightning object, attribute): checked by tests/test_lightning_private.py.
PRIVATE_NAMES = (
    ("lightning.pytorch.LightningModule", "_current_fx_name"),
    ("lightning.pytorch.loggers.TensorBoardLogger", "_get_next_version"),
    ("lightning.pytorch.cli.LightningCLI", "_parse_ckpt_path"),
)

# The key a Lightning checkpoint records its writer's version under; Lightning reads it when it restores a
# checkpoint (upgrades old formats from it). The estimators write checkpoints without importing Lightning, so
# they spell it out. Checked against a checkpoint written by Lightning in the test.
CHECKPOINT_VERSION_KEY = "pytorch-lightning_version"


class CheapHookNameMixin:
    """For LightningModules: Lightning sets ``_current_fx_name`` around every hook call (~25 per training step);
    ``nn.Module.__setattr__`` (parameter, buffer and module bookkeeping) made that a measurable share of a small
    tabular step. Set it as a plain attribute. No public API: the attribute is Lightning's bookkeeping."""

    def __setattr__(self, name: str, value) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class ClaimedVersionMixin:
    """For TensorBoardLogger: ``claim_version(n)`` (defined by the subclass) turns Lightning's next version number
    into one claimed atomically. Lightning's logger decides the version lazily, after DDP has started the other
    ranks (which then receive rank 0's); the public ``version=`` argument would be decided before, separately in
    every rank. So the hook is Lightning's private ``_get_next_version``."""

    def _get_next_version(self) -> int:
        return self.claim_version(super()._get_next_version())

    def claim_version(self, version: int) -> int:
        raise NotImplementedError


class NoCheckpointHyperparametersMixin:
    """For LightningCLI: ``validate|test|predict --ckpt_path X`` is configured from the checkpoint by tabularnet
    (model *and* data, sizes through the links); Lightning's own pass (its private ``_parse_ckpt_path``, which has
    no public switch) would add the linked sizes a second time as extra arguments of the model."""

    def _parse_ckpt_path(self) -> None:
        return None
