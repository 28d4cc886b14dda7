"""Activations and feature embeddings shared by the MLP and the FT-Transformer."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Activation = Literal["relu", "gelu", "geglu", "reglu"]
GLU_ACTIVATIONS = ("geglu", "reglu")


class GLU(nn.Module):
    """Gated linear unit: splits the last dimension in two halves ``a, b`` and returns ``a * act(b)``.

    Shapes: ``(*, 2 * d) -> (*, d)``. GEGLU uses GELU as the gate's activation, ReGLU uses ReLU
    (Shazeer, 2020, "GLU Variants Improve Transformer").
    """

    def __init__(self, gate: Literal["gelu", "relu"]) -> None:
        super().__init__()
        self.gate = F.gelu if gate == "gelu" else F.relu

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=-1)
        return a * self.gate(b)


def make_activation(name: Activation) -> nn.Module:
    """The activation module for ``name``; GLU variants halve the last dimension."""
    modules = {"relu": nn.ReLU, "gelu": nn.GELU, "geglu": lambda: GLU("gelu"), "reglu": lambda: GLU("relu")}
    if name not in modules:
        raise ValueError(f"activation must be one of {sorted(modules)}, however: activation={name!r}")
    return modules[name]()


def glu_factor(name: Activation) -> int:
    """How much wider a linear layer feeding ``name`` must be (2 for GLU variants, which halve it)."""
    return 2 if name in GLU_ACTIVATIONS else 1


class CategoricalEmbeddings(nn.Module):
    """One embedding table per categorical column, stored as a single table with per-column offsets.

    Shapes: ``x_cat (B, n_cat) int64 -> (B, n_cat, d_embedding)``.
    """

    def __init__(self, cardinalities: list[int], d_embedding: int) -> None:
        super().__init__()
        if any(c < 1 for c in cardinalities):
            raise ValueError(f"cardinalities must be positive, however: {cardinalities}")
        offsets = torch.tensor([0, *cardinalities[:-1]]).cumsum(0) if cardinalities else torch.zeros(0)
        self.register_buffer("offsets", offsets.long(), persistent=False)
        self.embeddings = nn.Embedding(max(sum(cardinalities), 1), d_embedding)
        nn.init.uniform_(self.embeddings.weight, -1 / math.sqrt(d_embedding), 1 / math.sqrt(d_embedding))

    def forward(self, x_cat: Tensor) -> Tensor:
        return self.embeddings(x_cat + self.offsets)


class NumericEmbeddings(nn.Module):
    """A linear embedding per numeric feature: ``x_i * w_i + b_i``.

    Shapes: ``x_num (B, n_num) -> (B, n_num, d_embedding)``.
    """

    def __init__(self, n_features: int, d_embedding: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_embedding)
        self.weight = nn.Parameter(torch.empty(n_features, d_embedding).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_embedding).uniform_(-bound, bound))

    def forward(self, x_num: Tensor) -> Tensor:
        return x_num.unsqueeze(-1) * self.weight + self.bias


class PeriodicEmbeddings(nn.Module):
    """PLR embeddings (Gorishniy et al., 2022, "On Embeddings for Numerical Features in Tabular Deep Learning"):
    ``ReLU(Linear([cos(2 pi c x), sin(2 pi c x)]))`` with ``n_frequencies`` trainable frequencies ``c`` per
    feature, initialised from ``N(0, frequency_scale^2)``, and a separate linear map per feature.

    Shapes: ``x_num (B, n_features) -> (B, n_features, d_embedding)``.
    """

    def __init__(
        self, n_features: int, d_embedding: int, *, n_frequencies: int = 48, frequency_scale: float = 0.1
    ) -> None:
        super().__init__()
        if frequency_scale <= 0:
            raise ValueError(f"frequency_scale must be positive, however: frequency_scale={frequency_scale}")
        self.frequencies = nn.Parameter(torch.randn(n_features, n_frequencies) * frequency_scale)
        bound = 1 / math.sqrt(2 * n_frequencies)
        self.weight = nn.Parameter(torch.empty(n_features, 2 * n_frequencies, d_embedding).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_embedding).uniform_(-bound, bound))

    def forward(self, x_num: Tensor) -> Tensor:
        z = 2 * math.pi * self.frequencies * x_num.unsqueeze(-1)  # (B, n, k)
        periodic = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)  # (B, n, 2k)
        return F.relu(torch.einsum("bnk,nkd->bnd", periodic, self.weight) + self.bias)


NumEmbedding = Literal["linear", "plr"]


def make_numeric_embeddings(kind: NumEmbedding, n_features: int, d_embedding: int, **plr) -> nn.Module:
    """``linear``: :class:`NumericEmbeddings`; ``plr``: :class:`PeriodicEmbeddings`."""
    if kind == "linear":
        return NumericEmbeddings(n_features, d_embedding)
    if kind == "plr":
        return PeriodicEmbeddings(n_features, d_embedding, **plr)
    raise ValueError(f"num_embedding must be 'linear' or 'plr', however: num_embedding={kind!r}")
