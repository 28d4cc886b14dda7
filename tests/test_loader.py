"""TensorBatchLoader: coverage, deterministic per-epoch order, drop_last, length and DDP sharding."""

from __future__ import annotations

import math

import pytest
import torch

import tabularnet.data.loader as loader_module
from tabularnet.data.loader import TensorBatchLoader


def make_tensors(n_rows: int = 103) -> dict[str, torch.Tensor]:
    """Row ``i`` carries ``i`` in every tensor, so batches can be traced back to rows."""
    rows = torch.arange(n_rows)
    return {"x_num": rows[:, None].float().repeat(1, 3), "x_cat": rows[:, None].repeat(1, 2), "y": rows}


def epoch_rows(loader: TensorBatchLoader, epoch: int | None = None) -> list[int]:
    if epoch is not None:
        loader.set_epoch(epoch)
    rows = []
    for batch in loader:
        assert torch.equal(batch["x_num"][:, 0].long(), batch["y"])  # tensors sliced consistently
        assert torch.equal(batch["x_cat"][:, 1], batch["y"])
        rows += batch["y"].tolist()
    return rows


def fake_world(monkeypatch, rank: int, world_size: int) -> None:
    monkeypatch.setattr(loader_module, "rank_and_world_size", lambda: (rank, world_size))


def test_no_shuffle_yields_rows_in_order():
    loader = TensorBatchLoader(make_tensors(), batch_size=10)
    assert epoch_rows(loader) == list(range(103))
    sizes = [len(batch["y"]) for batch in loader]
    assert sizes == [10] * 10 + [3]


@pytest.mark.parametrize("epoch", [0, 1, 7])
def test_shuffle_covers_every_row_once(epoch):
    rows = epoch_rows(TensorBatchLoader(make_tensors(), batch_size=16, shuffle=True, seed=3), epoch)
    assert sorted(rows) == list(range(103))
    assert rows != list(range(103))


def test_order_depends_only_on_seed_and_epoch():
    first = TensorBatchLoader(make_tensors(), batch_size=16, shuffle=True, seed=5)
    second = TensorBatchLoader(make_tensors(), batch_size=16, shuffle=True, seed=5)
    epoch_rows(second)
    epoch_rows(second)  # a loader that already ran two epochs...
    assert epoch_rows(second, 4) == epoch_rows(first, 4)  # ...gives the same order once set to the epoch
    assert epoch_rows(first, 2) == epoch_rows(second, 2)
    other_seed = TensorBatchLoader(make_tensors(), batch_size=16, shuffle=True, seed=6)
    assert epoch_rows(other_seed, 4) != epoch_rows(first, 4)


def test_different_epochs_differ_and_iteration_advances_epoch():
    loader = TensorBatchLoader(make_tensors(), batch_size=16, shuffle=True, seed=0)
    loader.set_epoch(0)
    epoch0, epoch1 = epoch_rows(loader), epoch_rows(loader)  # no set_epoch in between
    assert epoch0 != epoch1
    assert loader.epoch == 2
    assert epoch_rows(loader, 1) == epoch1


@pytest.mark.parametrize("shuffle", [False, True])
def test_drop_last(shuffle):
    loader = TensorBatchLoader(make_tensors(), batch_size=10, shuffle=shuffle, drop_last=True)
    sizes = [len(batch["y"]) for batch in loader]
    assert sizes == [10] * 10
    assert len(loader) == 10
    rows = epoch_rows(loader)
    assert len(set(rows)) == 100


@pytest.mark.parametrize(("n_rows", "batch_size", "drop_last", "expected"), [
    (103, 10, False, 11), (103, 10, True, 10), (100, 10, False, 10), (100, 10, True, 10), (5, 10, True, 0),
    (5, 10, False, 1),
])  # fmt: skip
def test_len_matches_iteration(n_rows, batch_size, drop_last, expected):
    loader = TensorBatchLoader(make_tensors(n_rows), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == expected
    assert sum(1 for _ in loader) == expected


def test_invalid_arguments():
    with pytest.raises(ValueError, match="same number of rows"):
        TensorBatchLoader({"a": torch.zeros(3), "b": torch.zeros(4)}, batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        TensorBatchLoader(make_tensors(), batch_size=0)


@pytest.mark.parametrize("n_rows", [100, 103])
@pytest.mark.parametrize("shuffle", [False, True])
def test_ddp_shards_cover_all_rows_with_equal_length(monkeypatch, n_rows, shuffle):
    shards, lengths = [], []
    for rank in (0, 1):
        fake_world(monkeypatch, rank, 2)
        loader = TensorBatchLoader(make_tensors(n_rows), batch_size=8, shuffle=shuffle, seed=11)
        loader.set_epoch(3)
        shards.append(epoch_rows(loader))
        lengths.append(len(loader))
    per_rank = math.ceil(n_rows / 2)
    assert len(shards[0]) == len(shards[1]) == per_rank
    assert lengths[0] == lengths[1] == math.ceil(per_rank / 8)
    assert set(shards[0]) | set(shards[1]) == set(range(n_rows))
    overlap = set(shards[0]) & set(shards[1])
    assert len(overlap) == 2 * per_rank - n_rows  # only the wrap-around padding repeats
    for shard in shards:
        assert len(set(shard)) == len(shard)


def test_ddp_shards_follow_the_shared_permutation(monkeypatch):
    fake_world(monkeypatch, 0, 1)
    full = epoch_rows(TensorBatchLoader(make_tensors(100), batch_size=8, shuffle=True, seed=2), 1)
    for rank in (0, 1):
        fake_world(monkeypatch, rank, 2)
        shard = epoch_rows(TensorBatchLoader(make_tensors(100), batch_size=8, shuffle=True, seed=2), 1)
        assert shard == full[rank::2]


def test_ddp_drop_last_lengths_equal(monkeypatch):
    lengths = []
    for rank in (0, 1):
        fake_world(monkeypatch, rank, 2)
        loader = TensorBatchLoader(make_tensors(103), batch_size=10, shuffle=True, drop_last=True)
        assert sum(1 for _ in loader) == len(loader)
        lengths.append(len(loader))
    assert lengths == [5, 5]  # 52 rows per rank -> 5 full batches


def test_shard_false_gives_every_rank_all_rows(monkeypatch):
    fake_world(monkeypatch, 1, 2)
    loader = TensorBatchLoader(make_tensors(), batch_size=10, shard=False)
    assert len(loader) == 11
    assert epoch_rows(loader) == list(range(103))


def test_more_ranks_than_rows(monkeypatch):
    shards = []
    for rank in range(4):
        fake_world(monkeypatch, rank, 4)
        shards.append(epoch_rows(TensorBatchLoader(make_tensors(3), batch_size=2)))
    assert [len(s) for s in shards] == [1, 1, 1, 1]
    assert set(sum(shards, [])) == {0, 1, 2}


@pytest.mark.parametrize("shuffle", [False, True])
def test_unpadded_eval_shards_see_every_row_once(monkeypatch, shuffle):
    shards = []
    for rank in (0, 1, 2):
        fake_world(monkeypatch, rank, 3)
        loader = TensorBatchLoader(make_tensors(103), batch_size=8, shuffle=shuffle, pad=False)
        rows = epoch_rows(loader)
        assert len(loader) == math.ceil(len(rows) / 8)
        shards.append(rows)
    assert [len(s) for s in shards] == [35, 34, 34]
    assert sorted(sum(shards, [])) == list(range(103))


def _shard_worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        loader = TensorBatchLoader(make_tensors(101), batch_size=8, shuffle=True, seed=5)
        loader.set_epoch(2)
        rows = torch.tensor(epoch_rows(loader))
        gathered = [torch.zeros_like(rows) for _ in range(world_size)]
        dist.all_gather(gathered, rows)  # equal lengths on every rank, or this collective would fail
        if rank == 0:
            torch.save(torch.stack(gathered), out)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_get_disjoint_shards_of_one_permutation(tmp_path):
    """Real torch.distributed (two CPU processes, gloo): the ranks' shards are the shared permutation's
    interleaved halves, equally long, and cover every row."""
    import torch.multiprocessing as mp

    out = tmp_path / "shards.pt"
    mp.spawn(_shard_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    shards = torch.load(out)
    full = epoch_rows(TensorBatchLoader(make_tensors(101), batch_size=8, shuffle=True, seed=5), 2)
    padded = full + full[:1]  # 101 rows -> 51 per rank, the first row repeated
    assert shards[0].tolist() == padded[0::2] and shards[1].tolist() == padded[1::2]
    assert set(shards.flatten().tolist()) == set(range(101))
