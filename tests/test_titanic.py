"""Titanic as it comes (missing ages, cabins and ports; free-text names and tickets) trains with no preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import requires_shared_datasets

from tabularnet.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "titanic" / "mlp.yaml"


@pytest.mark.slow
@requires_shared_datasets()
@pytest.mark.parametrize(
    "args",
    [
        [f"--config={CONFIG}", "--trainer.max_epochs=8"],
        # the bare command: the default model (MLP) and a held-out test split, nothing else
        ["--data.dataset=titanic", "--data.test_fraction=0.2", "--trainer.max_epochs=10", "--seed_everything=0"],
    ],
    ids=["config", "bare"],
)
def test_titanic_trains_from_the_raw_file(args, tmp_path, capsys):
    main(["fit", *args, "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}"])
    stderr = capsys.readouterr().err
    assert "column 'Name' has" in stderr and "column 'Ticket' has" in stderr  # dropped, with a warning each
    metrics = json.loads((tmp_path / "lightning_logs" / "version_0" / "metrics.json").read_text())
    assert metrics["test_acc"] > 0.7  # 179 held-out passengers; the majority class alone scores 0.61
