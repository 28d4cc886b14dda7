"""Streaming Parquet row groups: coverage, order, splits, shards, sample-fitted preprocessing, the CLI path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import make_table

import tabularnet.data.streaming as streaming
from tabularnet import TabularDataModule
from tabularnet.cli import main
from tabularnet.data.loader import TensorBatchLoader
from tabularnet.data.preprocessing import UNKNOWN_ID, Preprocessor
from tabularnet.data.schema import DataError, infer_schema, mark_missing
from tabularnet.data.streaming import ChunkTransform, StreamingParquetLoader
from tabularnet.data.streaming_fit import parquet_labels, sample_parquet
from tabularnet.data.streaming_plan import split_intervals

N_ROWS, ROW_GROUP = 600, 50  # 12 row groups


def write_parquet(df: pd.DataFrame, path, row_group_size: int = ROW_GROUP):
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=row_group_size)
    return path


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The synthetic table with a ``row`` column holding each row's position in the file."""
    return make_table(N_ROWS, seed=4).assign(row=np.arange(N_ROWS, dtype=np.float64))


@pytest.fixture(scope="module")
def parquet_path(frame, tmp_path_factory):
    return write_parquet(frame, tmp_path_factory.mktemp("stream") / "train.parquet")


@pytest.fixture(scope="module")
def preprocessor(frame) -> Preprocessor:
    # NOTE: no scaling, so the streamed ``row`` feature is the row's position and batches can be traced back
    return Preprocessor("none").fit(frame, infer_schema(frame, target="target"))


def make_loader(path, preprocessor, **kwargs) -> StreamingParquetLoader:
    kwargs = {"batch_size": 32, **kwargs}
    return StreamingParquetLoader(path, ChunkTransform(preprocessor, target="target", source=str(path)), **kwargs)


def epoch_rows(loader, preprocessor, epoch: int | None = None) -> list[int]:
    if epoch is not None:
        loader.set_epoch(epoch)
    column = preprocessor.schema.numeric.index("row")
    return [int(r) for batch in loader for r in batch["x_num"][:, column].tolist()]


@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_shuffled_epoch_yields_every_row_once(parquet_path, preprocessor, epoch):
    loader = make_loader(parquet_path, preprocessor, shuffle=True, shuffle_buffer=128, seed=1)
    rows = epoch_rows(loader, preprocessor, epoch)
    assert sorted(rows) == list(range(N_ROWS))
    assert rows != list(range(N_ROWS))
    assert len(loader) == sum(1 for _ in loader) == -(-N_ROWS // 32)


def test_order_depends_only_on_seed_and_epoch(parquet_path, preprocessor):
    first = make_loader(parquet_path, preprocessor, shuffle=True, shuffle_buffer=128, seed=2)
    second = make_loader(parquet_path, preprocessor, shuffle=True, shuffle_buffer=128, seed=2)
    epoch_rows(second, preprocessor)
    epoch_rows(second, preprocessor)  # a loader that already ran two epochs...
    assert epoch_rows(second, preprocessor, 3) == epoch_rows(first, preprocessor, 3)  # ...repeats epoch 3
    assert epoch_rows(first, preprocessor, 0) != epoch_rows(first, preprocessor, 1)
    other_seed = make_loader(parquet_path, preprocessor, shuffle=True, shuffle_buffer=128, seed=3)
    assert epoch_rows(other_seed, preprocessor, 3) != epoch_rows(first, preprocessor, 3)


def test_shuffle_buffer_mixes_row_groups(parquet_path, preprocessor):
    loader = make_loader(parquet_path, preprocessor, shuffle=True, shuffle_buffer=200, seed=0)
    first_batch = epoch_rows(loader, preprocessor, 0)[:32]
    assert len({row // ROW_GROUP for row in first_batch}) > 1  # rows of several row groups in one batch


def test_no_shuffle_is_file_order_in_full_batches(parquet_path, preprocessor):
    loader = make_loader(parquet_path, preprocessor, batch_size=64)
    assert epoch_rows(loader, preprocessor) == list(range(N_ROWS))
    assert [len(batch["y"]) for batch in loader] == [64] * 9 + [24]  # full batches across row-group boundaries


@pytest.mark.parametrize("shuffle", [False, True])
def test_drop_last(parquet_path, preprocessor, shuffle):
    loader = make_loader(parquet_path, preprocessor, batch_size=64, shuffle=shuffle, drop_last=True)
    assert [len(batch["y"]) for batch in loader] == [64] * 9
    assert len(loader) == 9


def test_batches_equal_the_in_memory_loader(frame, parquet_path, preprocessor):
    tensors = preprocessor.transform(frame)
    tensors["y"] = preprocessor.encode_labels(frame["target"])
    reference = next(iter(TensorBatchLoader(tensors, batch_size=32)))
    streamed = next(iter(make_loader(parquet_path, preprocessor)))
    assert streamed.keys() == reference.keys()
    for name in reference:
        assert streamed[name].dtype == reference[name].dtype
        assert torch.equal(streamed[name], reference[name]), name


def test_quantile_scaling_matches_in_memory_transform(frame, parquet_path):
    prep = Preprocessor("quantile").fit(frame, infer_schema(frame, target="target"))
    streamed = list(make_loader(parquet_path, prep, batch_size=1000))[0]
    reference = prep.transform(frame)
    torch.testing.assert_close(streamed["x_num"], reference["x_num"])
    assert torch.equal(streamed["x_cat"], reference["x_cat"])


def test_missing_tokens_hashed_and_rare_categories_match_in_memory(frame, tmp_path):
    rng = np.random.default_rng(0)
    messy = frame.assign(
        color=frame["color"].where(rng.random(N_ROWS) > 0.1, "?"),  # a missing-value token
        ticket=[f"T{i}" for i in rng.integers(0, 300, N_ROWS)],  # high-cardinality: hashed
        shade=rng.choice(["a", "b", "c", "rare"], N_ROWS, p=[0.4, 0.3, 0.29, 0.01]),  # "rare" below min_frequency
    )
    prep = Preprocessor(high_cardinality="hash", max_categories=20, min_frequency=10)
    prep.fit(messy, infer_schema(mark_missing(messy, prep.na_values), target="target"))
    assert "ticket" in prep.state_dict()["hashed"] and "rare" not in prep.state_dict()["categorical"]["shade"]
    streamed = list(make_loader(write_parquet(messy, tmp_path / "messy.parquet"), prep, batch_size=N_ROWS))[0]
    reference = prep.transform(messy)
    torch.testing.assert_close(streamed["x_num"], reference["x_num"])
    assert torch.equal(streamed["x_cat"], reference["x_cat"])


def test_unknown_category_and_unseen_label(frame, preprocessor, tmp_path):
    new = frame.head(40).assign(color="purple")
    loader = make_loader(write_parquet(new, tmp_path / "new.parquet"), preprocessor)
    column = preprocessor.schema.categorical.index("color")
    assert (next(iter(loader))["x_cat"][:, column] == UNKNOWN_ID).all()
    path = write_parquet(frame.head(40).assign(target="maybe"), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="bad.parquet: label 'maybe' was not seen in training"):
        next(iter(make_loader(path, preprocessor)))


def test_missing_column_is_an_error(frame, preprocessor, tmp_path):
    path = write_parquet(frame.drop(columns="income"), tmp_path / "short.parquet")
    with pytest.raises(DataError, match="short.parquet: column 'income' not found"):
        make_loader(path, preprocessor)


def test_row_splits_partition_the_file(parquet_path, preprocessor):
    splits = split_intervals(7, val_fraction=0.2, test_fraction=0.1)
    rows = {name: epoch_rows(make_loader(parquet_path, preprocessor, rows=split), preprocessor)
            for name, split in splits.items()}  # fmt: skip
    assert sum(map(len, rows.values())) == N_ROWS
    assert set().union(*rows.values()) == set(range(N_ROWS))
    # binomial(600, 0.2) is within 60..180 with overwhelming probability; an inverted interval would not be
    assert 60 < len(rows["val"]) < 180 and 20 < len(rows["test"]) < 120
    assert epoch_rows(make_loader(parquet_path, preprocessor, rows=splits["val"]), preprocessor) == rows["val"]


def test_split_fractions_checked():
    with pytest.raises(DataError, match="val_fraction \\+ data.test_fraction"):
        split_intervals(0, val_fraction=0.6, test_fraction=0.5)


def fake_world(monkeypatch, rank: int, world_size: int) -> None:
    monkeypatch.setattr(streaming, "rank_and_world_size", lambda: (rank, world_size))


def test_ddp_shards_are_disjoint_equal_and_cover(monkeypatch, parquet_path, preprocessor):
    shards, lengths = [], []
    for rank in (0, 1):
        fake_world(monkeypatch, rank, 2)
        loader = make_loader(parquet_path, preprocessor, shuffle=True, shuffle_buffer=64, seed=5)
        loader.set_epoch(2)
        lengths.append(len(loader))
        shards.append(epoch_rows(loader, preprocessor))
    assert lengths[0] == lengths[1] == -(-N_ROWS // 2 // 32)
    assert not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) == set(range(N_ROWS))  # 6 equal row groups each
    for shard in shards:  # whole row groups per rank
        assert len({row // ROW_GROUP for row in shard}) == N_ROWS // ROW_GROUP // 2


def test_ddp_unequal_shards_take_equal_steps(monkeypatch, frame, preprocessor, tmp_path):
    path = write_parquet(frame.head(130), tmp_path / "uneven.parquet")  # row groups of 50, 50, 30
    steps = []
    for rank in (0, 1):
        fake_world(monkeypatch, rank, 2)
        loader = make_loader(path, preprocessor, batch_size=16, shuffle=True, seed=0)
        steps.append((len(loader), sum(1 for _ in loader)))
    assert steps[0] == steps[1] and steps[0][0] == steps[0][1]


def test_ddp_needs_a_row_group_per_rank(monkeypatch, frame, preprocessor, tmp_path):
    fake_world(monkeypatch, 0, 2)
    loader = make_loader(write_parquet(frame.head(40), tmp_path / "one_group.parquet"), preprocessor, shuffle=True)
    with pytest.raises(DataError, match="1 row groups cannot be shared by 2 devices"):
        len(loader)


def test_sample_is_bounded_distinct_and_spread(parquet_path):
    sample = sample_parquet(parquet_path, 120, seed=0)
    assert len(sample) == 120 and sample["row"].is_unique
    assert len(set(sample["row"] // ROW_GROUP)) >= 8  # drawn from most of the 12 row groups
    assert len(sample_parquet(parquet_path, 10_000)) == N_ROWS
    train = split_intervals(0, val_fraction=0.5, test_fraction=0.0)["train"]
    sampled = set(sample_parquet(parquet_path, 200, rows=train)["row"].astype(int))
    column_rows = set(int(r) for r in pd.read_parquet(parquet_path)["row"])
    mask = np.concatenate([train.mask(g, ROW_GROUP) for g in range(N_ROWS // ROW_GROUP)])
    assert sampled <= {r for r in column_rows if mask[r]}


def test_parquet_labels(parquet_path, frame, tmp_path):
    classes, counts = parquet_labels(parquet_path, "target")
    assert list(classes) == ["no", "yes"] and counts == frame["target"].value_counts().sort_index().tolist()
    train = split_intervals(0, val_fraction=0.5, test_fraction=0.0)["train"]
    train_rows = [r for r in range(N_ROWS) if train.mask(r // ROW_GROUP, ROW_GROUP)[r % ROW_GROUP]]
    expected = frame["target"].iloc[train_rows].value_counts().sort_index().tolist()
    assert parquet_labels(parquet_path, "target", train)[1] == expected
    missing = frame.head(120).astype({"target": object})
    missing.loc[77, "target"] = None
    with pytest.raises(DataError, match="missing labels \\(first at row 77\\)"):
        parquet_labels(write_parquet(missing, tmp_path / "m.parquet"), "target")
    with pytest.raises(DataError, match="only one class"):
        parquet_labels(write_parquet(frame.head(50).assign(target="no"), tmp_path / "one.parquet"), "target")
    with pytest.raises(DataError, match="target column 'label' not found"):
        parquet_labels(parquet_path, "label")


# ---------------------------------------------------------------------------------------------- data module
def test_datamodule_streams_above_the_threshold(parquet_path):
    streamed = TabularDataModule(train_path=str(parquet_path), streaming_threshold_rows=N_ROWS - 1)
    assert isinstance(streamed.train_dataloader(), StreamingParquetLoader)
    in_memory = TabularDataModule(train_path=str(parquet_path), streaming_threshold_rows=N_ROWS)
    assert isinstance(in_memory.train_dataloader(), TensorBatchLoader)


def test_datamodule_fits_preprocessing_on_a_sample(parquet_path):
    dm = TabularDataModule(train_path=str(parquet_path), streaming=True, sample_rows=100, seed=3)
    dm.train_dataloader()
    rows = split_intervals(3, val_fraction=0.2, test_fraction=0.0)["train"]
    sample = sample_parquet(parquet_path, 100, rows=rows, seed=3)
    expected = Preprocessor().fit(sample, infer_schema(sample, target="target"), classes=["no", "yes"])
    state = dm.preprocessor.state_dict()
    assert state["class_counts"] == parquet_labels(parquet_path, "target", rows)[1]  # the whole split's counts
    assert sum(state["class_counts"]) == sum(len(b["y"]) for b in dm.train_dataloader())
    assert {**state, "class_counts": None} == {**expected.state_dict(), "class_counts": None}
    assert len(sample) < 100  # the val rows of the drawn sample are dropped


def test_datamodule_streamed_splits_are_disjoint(parquet_path):
    dm = TabularDataModule(train_path=str(parquet_path), streaming=True, val_fraction=0.2, test_fraction=0.1)
    assert dm.has_split("test") and dm.has_split("val")
    sizes = {
        split: sum(len(b["y"]) for b in getattr(dm, f"{split}_dataloader")()) for split in ("train", "val", "test")
    }
    assert sum(sizes.values()) == N_ROWS
    assert not TabularDataModule(train_path=str(parquet_path), streaming=True).has_split("test")


def test_training_numeric_inputs_are_a_sample_of_training_rows(parquet_path):
    dm = TabularDataModule(train_path=str(parquet_path), streaming=True, scaling="none", val_fraction=0.5)
    x_num = dm.training_numeric_inputs(max_streamed_rows=100)
    assert x_num.shape == (len(x_num), dm.n_num_features) and 30 < len(x_num) <= 100  # about half are val rows
    train_rows = {
        int(r) for b in dm.train_dataloader() for r in b["x_num"][:, dm.preprocessor.schema.numeric.index("row")]
    }
    assert {int(r) for r in x_num[:, dm.preprocessor.schema.numeric.index("row")]} <= train_rows


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"streaming": True, "teacher_logits_path": "t.npy"}, "data.streaming does not support distillation"),
        ({"streaming": True, "shuffle_buffer": 0}, "data.shuffle_buffer must be positive"),
        ({"streaming": True, "sample_rows": 0}, "data.sample_rows must be positive"),
    ],
)
def test_bad_streaming_options(kwargs, message):
    with pytest.raises(DataError, match=message):
        TabularDataModule(train_path="train.parquet", **kwargs)


def test_streaming_needs_parquet(table_files):
    dm = TabularDataModule(train_path=str(table_files["train"]), streaming=True)
    with pytest.raises(DataError, match="data.streaming needs a Parquet data.train_path, however: .*train.csv"):
        dm.train_dataloader()


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_fit_streaming_then_predict_from_checkpoint(frame, parquet_path, tmp_path):
    main(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.hidden_dims=[16]",
            f"--data.train_path={parquet_path}",
            "--data.streaming=true",
            "--data.test_fraction=0.1",
            "--data.shuffle_buffer=128",
            "--data.batch_size=32",
            "--model.calibrate=true",  # the temperature is fitted on the streamed validation rows
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--seed_everything=0",
        ]
    )
    run = tmp_path / "lightning_logs" / "version_0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["val_acc"] <= 1 and 0 <= metrics["test_acc"] <= 1 and metrics["temperature"] > 0
    assert (run / "figures").is_dir()  # confusion matrix, ROC, reliability of the streamed splits
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["datamodule_hyper_parameters"]["streaming"] is True

    csv_source = tmp_path / "new.csv"
    frame.drop(columns="target").to_csv(csv_source, index=False)
    outputs = {}
    for source in (parquet_path, csv_source):  # streamed Parquet and in-memory CSV give the same predictions
        outputs[source.suffix] = tmp_path / f"preds{source.suffix}.csv"
        main(
            [
                "predict",
                "--ckpt_path",
                str(run / "checkpoints" / "last.ckpt"),
                f"--data.predict_path={source}",
                f"--predictions_path={outputs[source.suffix]}",
            ]
        )
    streamed, in_memory = (pd.read_csv(outputs[suffix]) for suffix in (".parquet", ".csv"))
    assert len(streamed) == N_ROWS
    pd.testing.assert_frame_equal(streamed, in_memory, atol=1e-6)


def test_cli_streaming_with_data_initialised_embeddings(parquet_path, tmp_path):
    from tabularnet.cli import build_cli
    from tabularnet.nn.layers import PiecewiseLinearEmbeddings

    cli = build_cli(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.num_embedding=ple",
            "--model.n_bins=8",
            f"--data.train_path={parquet_path}",
            "--data.streaming=true",
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    assert cli.trainer.global_step == 1  # the streamed batch was trained on
    ple = cli.model.net.num_embeddings
    assert isinstance(ple, PiecewiseLinearEmbeddings)
    # the bin edges are the quantiles of the streamed file's training sample, not the [-2, 2] placeholder
    x_num = cli.datamodule.training_numeric_inputs()
    expected = PiecewiseLinearEmbeddings(x_num.shape[1], 4, n_bins=8)
    expected.initialize_from_data(x_num)
    assert torch.equal(ple.edges, expected.edges)
    assert not torch.allclose(ple.edges, torch.linspace(-2, 2, 9).expand_as(ple.edges))
    assert torch.equal(ple.edges[:, 0], x_num.min(0).values)  # the lowest edge is each feature's smallest value
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


def test_cli_streaming_with_csv_is_one_line_error(table_files):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tabularnet",
            "fit",
            "--model=tabularnet.MLPLightningModule",
            f"--data.train_path={table_files['train']}",
            "--data.streaming=true",
            "--trainer.fast_dev_run=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "tabularnet: error: data.streaming needs a Parquet data.train_path" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_two_process_ddp_streaming_fit(tmp_path):
    """``--trainer.devices 2`` on CPU (gloo) with unequal row groups: the ranks take the same number of steps
    (no hang), and rank 0 writes one set of metrics."""
    path = write_parquet(make_table(3000, seed=5), tmp_path / "train.parquet", row_group_size=400)  # 7 x 400 + 200
    args = [
        "fit",
        "--model=tabularnet.MLPLightningModule",
        "--model.hidden_dims=[16]",
        f"--data.train_path={path}",
        "--data.streaming=true",
        "--data.shuffle_buffer=256",
        "--data.batch_size=64",
        "--trainer.max_epochs=2",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
        "--seed_everything=0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "tabularnet", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("metrics:") == 1
    metrics = json.loads(next(tmp_path.rglob("metrics.json")).read_text())
    assert metrics["val_acc"] > 0.6
