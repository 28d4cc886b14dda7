"""The adaptive training budget: early stopping on val_loss and an epoch bound from the table's size, when the user
sets no budget (``tabularnet fit`` without ``trainer.max_epochs``, estimators without ``training['epochs']``)."""

from __future__ import annotations

import json

import pytest
from conftest import make_table

from tabularnet.cli import main
from tabularnet.models import MLPClassifier
from tabularnet.training import budget

QUIET = ["--trainer.enable_progress_bar=false", "--model.hidden_dims=[8]"]


def test_epoch_budget_bounds():
    assert budget.epoch_budget(100, 64) == budget.MAX_EPOCHS  # tiny table: many cheap epochs, capped
    assert budget.epoch_budget(10_000_000, 256) == budget.MIN_EPOCHS  # huge table: the floor
    assert budget.epoch_budget(26_000, 256) == 197  # Adult at batch 256: ~20,000 steps
    assert budget.PATIENCE == 16


def test_fit_without_max_epochs_stops_early_and_says_why(table_files, tmp_path, capsys, recwarn):
    overfits = ["--model.hidden_dims=[128, 128]", "--model.optimizer={name: AdamW, lr: 0.01}"]  # stops soon
    main(["fit", f"--data.train_path={table_files['train']}", "--trainer.enable_progress_bar=false", *overfits,
          f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    metrics = json.loads((tmp_path / "lightning_logs/version_0/metrics.json").read_text())
    assert metrics["stop_reason"] == "early stopping: val_loss did not improve for 16 epochs"
    assert metrics["epochs"] == metrics["best_epoch"] + 1 + budget.PATIENCE  # then the best checkpoint is evaluated
    assert "stopped: early stopping: val_loss did not improve for 16 epochs" in capsys.readouterr().out
    # validating the checkpoint needs no EarlyStopping: Lightning's advice to provide it is not shown
    main(["validate", f"--ckpt_path={metrics['best_checkpoint']}", "--trainer.enable_progress_bar=false"])
    assert not [w for w in recwarn if "callbacks used to create the checkpoint" in str(w.message)]


def test_fit_with_max_epochs_trains_exactly_that_many(table_files, tmp_path):
    main(["fit", f"--data.train_path={table_files['train']}", "--trainer.max_epochs=3", *QUIET,
          f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    metrics = json.loads((tmp_path / "lightning_logs/version_0/metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["stop_reason"] == "max_epochs=3 reached"


@pytest.mark.parametrize("use_lightning", [False, True])
def test_estimators_without_epochs_stop_early_and_with_epochs_do_what_they_say(use_lightning):
    df = make_table(600, seed=9)
    X, y = df.drop(columns="target"), df["target"]
    adaptive = MLPClassifier(hidden_dims=[8], use_lightning=use_lightning).fit(X, y)
    assert adaptive.predict_proba(X).shape == (600, 2)
    explicit = MLPClassifier(hidden_dims=[8], training={"epochs": 3}, use_lightning=False).fit(X, y)
    assert len(explicit.history_.train_loss) == 3 and not explicit.history_.val_loss  # no split, no stopping
    if not use_lightning:
        history = adaptive.history_
        assert history.best_epoch is not None
        assert len(history.train_loss) in (history.best_epoch + 1 + budget.PATIENCE, budget.epoch_budget(540, 64))
