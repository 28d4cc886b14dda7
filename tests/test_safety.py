"""Artifacts are read as data only: a checkpoint that would run code when unpickled is refused."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tabularnet.data.schema import DataError
from tabularnet.models import MLPClassifier


class Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"_class_path": "tabularnet.MLPLightningModule"}, "x": Exploit(str(marker))}, evil)

    with pytest.raises(DataError, match="not a loadable tabularnet checkpoint"):
        MLPClassifier.load(evil)
    result = subprocess.run(
        [sys.executable, "-m", "tabularnet", "predict", "--ckpt_path", str(evil), "--data.predict_path", "x.csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "not a loadable tabularnet checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
