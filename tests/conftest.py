"""Shared fixtures: one tiny synthetic table with numeric, categorical and missing values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# scikit-learn's check_sample_weight_equivalence_on_dense_data, expected to fail for the neural estimators
WEIGHT_EQUIVALENCE = (
    "float32 training: a weighted fit equals the fit on repeated rows to ~1e-6, not the check's rtol 1e-7 "
    "(tests/test_sample_weights.py checks it at 1e-5 with full batches and no dropout)"
)


def make_table(n_rows: int = 300, seed: int = 0, n_classes: int = 2) -> pd.DataFrame:
    """Numeric (with NaN), string categorical (with missing), small-int categorical, and a learnable target."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n_rows)
    income = rng.lognormal(10, 1, n_rows)
    color = rng.choice(["red", "green", "blue"], n_rows)
    level = rng.integers(0, 4, n_rows)
    score = age / 12 + (color == "red") * 1.5 + level * 0.5 + rng.normal(0, 0.5, n_rows)
    edges = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    labels = np.array(["no", "yes"] if n_classes == 2 else [f"c{i}" for i in range(n_classes)])
    df = pd.DataFrame({"age": age, "income": income, "color": color, "level": level})
    df.loc[rng.random(n_rows) < 0.1, "income"] = np.nan
    df.loc[rng.random(n_rows) < 0.05, "color"] = np.nan
    df["target"] = labels[np.searchsorted(edges, score)]
    return df


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="session")
def table_files(tmp_path_factory) -> dict[str, Path]:
    """train/val/test/predict CSV files of the synthetic table (predict has no target column)."""
    folder = tmp_path_factory.mktemp("table")
    df = make_table(400, seed=1)
    paths = {"train": folder / "train.csv", "test": folder / "test.csv", "predict": folder / "predict.csv"}
    df.iloc[:300].to_csv(paths["train"], index=False)
    df.iloc[300:].to_csv(paths["test"], index=False)
    df.iloc[300:].drop(columns="target").to_csv(paths["predict"], index=False)
    return paths


def requires_shared_datasets():
    return pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets not present")


def fit_cli_checkpoint(train_path: Path, root: Path) -> Path:
    """One epoch of a tiny MLP through ``tabularnet fit`` (in this process); the run's last.ckpt."""
    from tabularnet.cli import main

    main(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.hidden_dims=[8]",
            f"--data.train_path={train_path}",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={root}",
        ]
    )
    return root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
