"""FT-Transformer (Gorishniy et al., 2021, "Revisiting Deep Learning Models for Tabular Data")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tabularnet.nn.layers import (
    Activation,
    CategoricalEmbeddings,
    NumEmbedding,
    glu_factor,
    make_activation,
    make_numeric_embeddings,
)


class FeatureTokenizer(nn.Module):
    """Each numeric and categorical feature becomes a ``d_model`` token; a learned CLS token is appended.

    Shapes: ``x_num (B, n_num)``, ``x_cat (B, n_cat) -> (B, n_num + n_cat + 1, d_model)``.
    """

    def __init__(
        self,
        n_num_features: int,
        cat_cardinalities: list[int],
        d_model: int,
        num_embedding: NumEmbedding = "linear",
        n_bins: int = 32,
    ) -> None:
        super().__init__()
        self.numeric = None
        if n_num_features:
            self.numeric = make_numeric_embeddings(num_embedding, n_num_features, d_model, n_bins=n_bins)
        self.categorical = CategoricalEmbeddings(cat_cardinalities, d_model) if cat_cardinalities else None
        self.cls = nn.Parameter(torch.empty(1, 1, d_model).uniform_(-(d_model**-0.5), d_model**-0.5))

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        tokens = []
        if self.numeric is not None:
            tokens.append(self.numeric(x_num))
        if self.categorical is not None:
            tokens.append(self.categorical(x_cat))
        tokens.append(self.cls.expand(x_num.shape[0], -1, -1))  # shape, not len(): a dynamic batch in export
        return torch.cat(tokens, dim=1)


class SelfAttention(nn.Module):
    """Multi-head self-attention. Shapes: ``(B, T, d) -> (B, T, d)``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by nhead, however: d_model={d_model}, nhead={n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        batch, n_tokens, d = x.shape
        qkv = self.qkv(x).view(batch, n_tokens, 3, self.n_heads, d // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, d_head)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(batch, n_tokens, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, d_model: int, n_heads: int, d_ffn: int, dropout: float, activation: Activation) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, n_heads, dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, d_ffn * glu_factor(activation)),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(d_ffn, d_model),
        )
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.residual_dropout(self.attention(self.attention_norm(x)))
        return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))


class FTTransformer(nn.Module):
    """Feature tokenizer -> ``num_layers`` pre-norm blocks -> LayerNorm, activation, Linear on the CLS token.

    Args:
        n_num_features: numeric inputs (scaled features and missing indicators).
        cat_cardinalities: rows of each categorical column's embedding table.
        d_out: outputs (classes).
        d_model: token size.
        nhead: attention heads (must divide ``d_model``).
        num_layers: transformer blocks.
        dropout: dropout in attention, feed-forward and residual branches.
        activation: feed-forward activation; ``reglu`` is the paper's default.
        ffn_factor: feed-forward hidden size as a multiple of ``d_model`` (the paper uses 4/3 with GLU variants).
        num_embedding: numeric feature tokens: ``linear`` (the paper's), ``plr`` (periodic) or ``ple``
            (piecewise-linear; both from Gorishniy et al., 2022).
        n_bins: PLE's bins per feature.

    Shapes: ``x_num (B, n_num_features)``, ``x_cat (B, n_cat) -> logits (B, d_out)``.
    """

    def __init__(
        self,
        *,
        n_num_features: int,
        cat_cardinalities: list[int],
        d_out: int,
        d_model: int = 64,
        nhead: int = 8,
        num_layers: int = 3,
        dropout: float = 0.1,
        activation: Activation = "reglu",
        ffn_factor: float = 4 / 3,
        num_embedding: NumEmbedding = "linear",
        n_bins: int = 32,
    ) -> None:
        super().__init__()
        if n_num_features + len(cat_cardinalities) == 0:
            raise ValueError("the FT-Transformer needs at least one numeric or categorical feature")
        if num_layers < 1:
            raise ValueError(f"num_layers must be positive, however: num_layers={num_layers}")
        self.tokenizer = FeatureTokenizer(n_num_features, cat_cardinalities, d_model, num_embedding, n_bins)
        d_ffn = max(1, round(d_model * ffn_factor))
        self.blocks = nn.Sequential(*[Block(d_model, nhead, d_ffn, dropout, activation) for _ in range(num_layers)])
        self.head = nn.Sequential(
            nn.LayerNorm(d_model),
            make_activation("relu" if activation == "reglu" else "gelu"),
            nn.Linear(d_model, d_out),
        )

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        tokens = self.blocks(self.tokenizer(x_num, x_cat))  # (B, n_tokens, d_model)
        return self.head(tokens[:, -1])  # the CLS token
