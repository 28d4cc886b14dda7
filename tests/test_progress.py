"""The CLI's progress bar: throttled redraws, Rich's redraw thread at the same rate, one printed line per epoch."""

from __future__ import annotations

import pytest

import tabularnet.training.lightning_callbacks as progress
from tabularnet.cli import main
from tabularnet.training.lightning_callbacks import ThrottledRichProgressBar, _Throttled, default_progress_bar


class _Recorder:
    """Stands in for Lightning's bar: records which batches were drawn."""

    total_train_batches = 100

    def __init__(self) -> None:
        self.drawn = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.drawn.append(batch_idx)


class _Bar(_Throttled, _Recorder):
    def __init__(self, refresh_per_second: float) -> None:
        _Recorder.__init__(self)
        self._init_throttle(refresh_per_second)


def test_throttle_draws_at_most_n_times_a_second_and_always_the_last_batch(monkeypatch):
    clock = iter(i / 64 for i in range(1000))  # one batch every 1/64 s (exact in binary floating point)
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = _Bar(refresh_per_second=8)
    for batch_idx in range(100):
        bar.on_train_batch_end(None, None, None, None, batch_idx)
    assert bar.drawn == [*range(0, 100, 8), 99]


def test_refresh_rate_must_be_positive():
    with pytest.raises(ValueError, match="refresh_per_second"):
        _Bar(refresh_per_second=0)


def test_rich_redraw_thread_runs_at_the_throttled_rate():
    pytest.importorskip("rich")
    # Lightning's RichProgressBar redraws from a thread 100 times a second by default, competing with training
    assert default_progress_bar().refresh_rate == 10
    assert ThrottledRichProgressBar(refresh_per_second=2.5).refresh_rate == 3
    assert ThrottledRichProgressBar(refresh_rate=50).refresh_rate == 50  # an explicit choice is kept


def test_fit_prints_one_line_per_epoch(table_files, tmp_path, capsys):
    main(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.hidden_dims=[8]",
            f"--data.train_path={table_files['train']}",
            "--trainer.max_epochs=2",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["0/1", "1/1"]  # counted from 0, as checkpoint names are
    for line in lines:
        assert "train_loss" in line and "val_loss" in line and "val_acc" in line


def test_epoch_label_counts_from_zero_like_checkpoint_names():
    from tabularnet.training.progress import epoch_label

    assert epoch_label(0, 12) == "epoch 0/11"
    assert epoch_label(11, 12) == "epoch 11/11"
    assert epoch_label(3, -1) == "epoch 3"  # max_epochs=-1: no limit
    assert epoch_label(3, None) == "epoch 3"
