"""Every YAML in configs/ runs `fit` -> `test` -> `predict` on tiny copies of its dataset (tests/data/datasets), so
the shipped configs are checked in CI without ../shared: their keys reach the model and the data module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tabularnet.cli import build_cli, main

ROOT = Path(__file__).resolve().parents[1]
# configs/search holds search spaces of `tabularnet tune`, not fit configs (tests/test_tune.py checks them)
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.parent.name != "search")
TINY_DATASETS = Path(__file__).resolve().parent / "data" / "datasets"
PREDICT_FILES = {
    "adult": TINY_DATASETS / "adult" / "test.csv",
    "titanic": TINY_DATASETS / "titanic" / "data.csv",
    "covertype": TINY_DATASETS / "covertype" / "data.csv.gz",
    "california": TINY_DATASETS / "california" / "data.csv",
    "diamonds": TINY_DATASETS / "diamonds" / "data.csv.gz",
}
CLASSES = {"covertype": 7}  # the other classification datasets are binary


def test_there_are_configs():
    assert len(CONFIGS) >= 10 and all(p.name.endswith(".yaml") for p in CONFIGS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_fits_tests_and_predicts(config, tmp_path, monkeypatch):
    monkeypatch.setenv("TABULARNET_DATA_DIR", str(TINY_DATASETS))
    spec = yaml.safe_load(config.read_text())
    common = ["--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}"]
    main(["fit", "--config", str(config), "--trainer.max_epochs=1", *common])

    run = tmp_path / "lightning_logs" / "version_0"
    metrics = json.loads((run / "metrics.json").read_text())
    regression = spec["data"].get("task") == "regression"
    score = "rmse" if regression else "acc"  # the split's headline metric
    if regression:
        assert metrics["val_rmse"] > 0 and metrics["test_rmse"] > 0
    else:
        assert 0 <= metrics["val_acc"] <= 1 and 0 <= metrics["test_acc"] <= 1
    best = Path(metrics["best_checkpoint"])
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    # the config's keys reached the model and the data module
    model_args = spec["model"].get("init_args", {})
    assert checkpoint["hyper_parameters"]["_class_path"] == spec["model"]["class_path"]
    for key, value in model_args.items():
        assert checkpoint["hyper_parameters"][key] == value, key
    for key, value in spec["data"].items():
        if key != "teacher":
            assert checkpoint["datamodule_hyper_parameters"][key] == value, key

    cli = build_cli(["test", f"--ckpt_path={best}", *common])
    tested = float(cli.trainer.callback_metrics[f"test_{score}"])
    assert tested == pytest.approx(metrics[f"test_{score}"], rel=1e-6, abs=1e-6)  # metrics.json: 6 decimals

    dataset = spec["data"]["dataset"]
    out = tmp_path / "predictions.parquet"
    main(
        ["predict", f"--ckpt_path={best}", f"--data.predict_path={PREDICT_FILES[dataset]}", f"--predictions_path={out}"]
    )
    predictions = pd.read_parquet(out)
    assert len(predictions) == len(pd.read_csv(PREDICT_FILES[dataset]))
    if regression:
        assert list(predictions.columns) == ["prediction"] and np.isfinite(predictions["prediction"]).all()
        return
    probs = predictions.filter(like="proba_").to_numpy()
    assert probs.shape[1] == CLASSES.get(dataset, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
