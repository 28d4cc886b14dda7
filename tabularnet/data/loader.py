"""A batch loader over whole in-memory tensors: one index slice per batch, no per-row ``__getitem__``."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.distributed as dist

Batch = dict[str, torch.Tensor]


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the world size under ``torch.distributed``; ``(0, 1)`` without it."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TensorBatchLoader:
    """Iterates over dict-of-tensor batches sliced from ``tensors`` (all with the same first dimension).

    With ``shuffle``, epoch ``e`` uses the permutation drawn from a generator seeded with ``seed + e``, so
    the order depends only on the seed and the epoch (a resumed run sees the same batches). Under
    ``torch.distributed`` rank ``r`` of ``W`` takes rows ``r, r + W, r + 2W, ...`` of that permutation: disjoint
    shards. With ``pad`` (training) the shards are made equally long by wrapping around, like
    ``DistributedSampler``, so that every rank runs the same number of optimizer steps; without it (evaluation)
    every row is seen exactly once across the ranks and metrics are exact.

    Args:
        tensors: named tensors, e.g. ``{"x_num": (N, d), "x_cat": (N, k), "y": (N,)}``.
        batch_size: rows per batch.
        shuffle: draw a new permutation each epoch; otherwise rows come in order.
        drop_last: drop the last incomplete batch.
        seed: base seed of the permutation generator.
        shard: split rows across distributed ranks (turn off for prediction, where each rank needs all rows).
        pad: under ``torch.distributed``, repeat up to ``world_size - 1`` rows so all shards are equally long.
        device: keep the tensors on this device (copied once, here) and draw the permutation there with a
            generator of that device, so batches never cross the host-device boundary. ``None``: leave the
            tensors where they are, permutation on the CPU. A CUDA generator gives a different (equally
            seeded, equally reproducible) order than the CPU one.
    """

    def __init__(
        self,
        tensors: Batch,
        *,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        shard: bool = True,
        pad: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        sizes = {name: len(t) for name, t in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all tensors need the same number of rows, however: {sizes}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, however: batch_size={batch_size}")
        self.device = None if device is None else torch.device(device)
        if self.device is not None:
            tensors = {name: t.to(self.device) for name, t in tensors.items()}
        self.tensors = tensors
        self.n_rows = next(iter(sizes.values()))
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.shard, self.pad = seed, shard, pad
        self.epoch = 0

    def to(self, device: str | torch.device) -> TensorBatchLoader:
        """The same loader (batch size, order, sharding, epoch) with its tensors resident on ``device``."""
        loader = TensorBatchLoader(
            self.tensors, batch_size=self.batch_size, shuffle=self.shuffle, drop_last=self.drop_last,
            seed=self.seed, shard=self.shard, pad=self.pad, device=device,
        )  # fmt: skip
        loader.epoch = self.epoch
        return loader

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch whose permutation the next iteration uses."""
        self.epoch = epoch

    def _indices(self) -> torch.Tensor | None:
        rank, world_size = rank_and_world_size() if self.shard else (0, 1)
        device = self.device if self.device is not None else torch.device("cpu")
        if self.shuffle:
            generator = torch.Generator(device=device).manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.n_rows, generator=generator, device=device)
        elif world_size == 1:
            return None  # plain slices: no gather needed
        else:
            indices = torch.arange(self.n_rows, device=device)
        if world_size > 1:
            if self.pad:
                per_rank = math.ceil(self.n_rows / world_size)
                indices = indices.repeat(math.ceil(per_rank * world_size / max(self.n_rows, 1)))
                indices = indices[: per_rank * world_size]
            indices = indices[rank::world_size]
        return indices

    def _n_rows_per_rank(self) -> int:
        rank, world_size = rank_and_world_size() if self.shard else (0, 1)
        if self.pad:
            return math.ceil(self.n_rows / world_size)
        return len(range(rank, self.n_rows, world_size))

    def __len__(self) -> int:
        n = self._n_rows_per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        indices = self._indices()
        self.epoch += 1
        for i in range(len(self)):
            start, stop = i * self.batch_size, (i + 1) * self.batch_size
            if indices is None:
                yield {name: t[start:stop] for name, t in self.tensors.items()}
            else:
                index = indices[start:stop]
                yield {name: t[index] for name, t in self.tensors.items()}
