"""Layers of parameter-efficient ensembles of k MLPs (TabM, Gorishniy et al., 2025, "TabM: Advancing Tabular Deep
Learning with Parameter-Efficient Ensembling").

Every layer maps ``(B, k, d_in) -> (B, k, d_out)``: member ``i`` of a batch row is row ``[:, i]``. The members share
the weight matrices; what is theirs alone is small (a scaling vector per member, a bias, an output head).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

ScalingInit = Literal["random-signs", "normal", "ones"]


def check_ensemble_size(k: int) -> int:
    """``k`` if it is a positive integer; otherwise a ValueError naming the option."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (ensemble members) must be a positive integer, however: k={k!r}")
    return k


@torch.no_grad()
def init_scaling_(weight: Tensor, init: ScalingInit, chunks: list[int] | None = None) -> Tensor:
    """Fill a ``(k, d)`` scaling in place: ``ones``, random signs (+-1) or N(0, 1). With ``chunks`` (the sizes of the
    features that make up ``d``, summing to ``d``) each member draws one value per feature, shared by the feature's
    columns (TabM's initialisation of the first adapter: a member rescales whole features)."""
    if init == "ones":
        return weight.fill_(1.0)
    sizes = chunks or [1] * weight.shape[1]
    if sum(sizes) != weight.shape[1]:
        raise ValueError(f"chunks must sum to the scaling's width {weight.shape[1]}, however: sum={sum(sizes)}")
    if init == "normal":
        draws = torch.randn(weight.shape[0], len(sizes))
    elif init == "random-signs":
        draws = torch.randint(0, 2, (weight.shape[0], len(sizes))).float() * 2 - 1
    else:
        raise ValueError(f"scaling init must be 'random-signs', 'normal' or 'ones', however: {init!r}")
    return weight.copy_(draws.repeat_interleave(torch.tensor(sizes), dim=1))


class ScaleEnsemble(nn.Module):
    """A per-member multiplicative adapter ``x * r_i`` (TabM-mini's only non-shared parameter besides the heads).

    Shapes: ``(B, k, d) -> (B, k, d)``.
    """

    no_weight_decay = ("weight",)  # an adapter around 1 (or +-1), not a weight matrix: decay would shrink it

    def __init__(self, k: int, d: int, *, init: ScalingInit, chunks: list[int] | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(init_scaling_(torch.empty(k, d), init, chunks))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


class LinearBatchEnsemble(nn.Module):
    """k linear layers sharing one weight matrix ``W`` (BatchEnsemble, Wen et al., 2020):
    member ``i`` computes ``((x * r_i) W^T) * s_i + b_i``.

    TabM's initialisation: ``W`` and the biases as ``nn.Linear`` (uniform in +-1/sqrt(d_in); every member starts
    from the same bias), ``s_i = 1`` and ``r_i`` as given (``ones`` except in the first layer).

    Shapes: ``(B, k, d_in) -> (B, k, d_out)``.
    """

    no_weight_decay = ("r", "s", "bias")  # per-member adapters around 1 and biases: decay only on the shared W

    def __init__(
        self, d_in: int, d_out: int, *, k: int, r_init: ScalingInit = "ones", r_chunks: list[int] | None = None
    ) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(d_out, d_in).uniform_(-bound, bound))
        self.r = nn.Parameter(init_scaling_(torch.empty(k, d_in), r_init, r_chunks))
        self.s = nn.Parameter(torch.ones(k, d_out))
        self.bias = nn.Parameter(torch.empty(d_out).uniform_(-bound, bound).repeat(k, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.r) @ self.weight.T * self.s + self.bias


class LinearEnsemble(nn.Module):
    """k independent linear layers (the k output heads): member ``i`` computes ``x_i W_i + b_i``.

    Shapes: ``(B, k, d_in) -> (B, k, d_out)``.
    """

    no_weight_decay = ("bias",)  # k biases, (k, d_out): a bias however many dimensions it has

    def __init__(self, d_in: int, d_out: int, *, k: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(k, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, d_out).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return (x.transpose(0, 1) @ self.weight).transpose(0, 1) + self.bias  # (k, B, d_in) @ (k, d_in, d_out)


class BatchNormEnsemble(nn.Module):
    """Batch normalisation with statistics and affine parameters of each member's own (``BatchNorm1d`` over the
    ``k * d`` member features).

    Shapes: ``(B, k, d) -> (B, k, d)``.
    """

    def __init__(self, d: int, *, k: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(k * d)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.flatten(1)).view(x.shape)
