"""The training budget when the user sets none: early stopping on the validation loss, bounded by a step budget.

What ``tabularnet fit`` without ``trainer.max_epochs`` (no config) and the estimators without ``training['epochs']``
do: train until ``val_loss`` has not improved for :data:`PATIENCE` epochs (TabM's recipe uses 16), keep the best
epoch's weights, and stop in any case after :func:`epoch_budget` epochs: about :data:`MAX_STEPS` optimizer steps,
never fewer than :data:`MIN_EPOCHS` nor more than :data:`MAX_EPOCHS` epochs. The learning-rate schedule stays the
default constant one: a cosine schedule needs the number of epochs up front, which early stopping does not know.
"""

from __future__ import annotations

import math

PATIENCE = 16
MAX_STEPS = 20_000
MIN_EPOCHS = 2 * PATIENCE
MAX_EPOCHS = 200
MIN_VALIDATION_ROWS = 20  # fewer held-out rows make the validation loss too noisy to stop on


def epoch_budget(n_train_rows: int, batch_size: int) -> int:
    """The most epochs an adaptive run trains: ~``MAX_STEPS`` steps, within ``[MIN_EPOCHS, MAX_EPOCHS]``."""
    steps_per_epoch = max(1, math.ceil(n_train_rows / max(1, batch_size)))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MAX_STEPS / steps_per_epoch))))


def stop_reason(stopped_early: bool, epochs: int, max_epochs: int, patience: int | None) -> str:
    """One line for the run summary: why training ended."""
    if stopped_early:
        return f"early stopping: val_loss did not improve for {patience} epochs"
    return f"max_epochs={max_epochs} reached" if epochs >= max_epochs else f"stopped after {epochs} epochs"


def adaptive_training(training: dict, stop, n_rows: int, has_val: bool):
    """An estimator's ``training`` dict without ``epochs``: :func:`epoch_budget` epochs and, unless
    ``early_stopping`` is given, early stopping on ``val_loss`` with :data:`PATIENCE` when the validation rows
    (``X_val``, else ``validation_split`` of the ``n_rows``) are enough to stop on. Returns (training, stop)."""
    from tabularnet.training.torch_trainer import EarlyStopping

    held_out = 0.0 if has_val else training["validation_split"]
    n_train = n_rows - int(round(n_rows * held_out))
    training = {**training, "epochs": epoch_budget(n_train, training["batch_size"])}
    if training["early_stopping"] is None and (has_val or n_rows * held_out >= MIN_VALIDATION_ROWS):
        stop = EarlyStopping(enabled=True, monitor="val_loss", patience=PATIENCE)
    return training, stop
