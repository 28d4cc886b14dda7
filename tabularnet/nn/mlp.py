"""MLP over numeric features and categorical embeddings."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from tabularnet.nn.layers import (
    Activation,
    CategoricalEmbeddings,
    NumEmbedding,
    glu_factor,
    make_activation,
    make_numeric_embeddings,
)


class MLP(nn.Module):
    """``[x_num, flatten(embed(x_cat))] -> (Linear -> [norm] -> activation -> Dropout) x len(hidden_dims) -> Linear``.

    Args:
        n_num_features: numeric inputs (scaled features and missing indicators).
        cat_cardinalities: rows of each categorical column's embedding table (categories + reserved ids).
        d_out: outputs (classes).
        hidden_dims: width of each hidden layer.
        activation: ``relu``, ``gelu``, ``geglu`` or ``reglu``.
        dropout: dropout after each hidden layer.
        norm: ``none``, or ``layer`` (LayerNorm) / ``batch`` (BatchNorm1d) on each hidden layer's pre-activations.
        d_cat_embedding: size of each categorical embedding.
        num_embedding: ``none`` feeds scaled numeric values directly; ``linear``, ``plr`` (periodic) or ``ple``
            (piecewise-linear) embed each numeric feature into ``d_num_embedding`` values first (MLP-PLR and
            MLP-PLE of Gorishniy et al., 2022).
        d_num_embedding: size of each numeric embedding.
        frequency_scale: PLR's frequency initialisation scale (its most important hyperparameter).
        n_bins: PLE's bins per feature (quantile bins of the training data).

    Shapes: ``x_num (B, n_num_features)``, ``x_cat (B, n_cat) -> logits (B, d_out)``.
    """

    def __init__(
        self,
        *,
        n_num_features: int,
        cat_cardinalities: list[int],
        d_out: int,
        hidden_dims: list[int],
        activation: Activation = "relu",
        dropout: float = 0.0,
        norm: Literal["none", "layer", "batch"] = "none",
        d_cat_embedding: int = 8,
        num_embedding: NumEmbedding | Literal["none"] = "none",
        d_num_embedding: int = 24,
        frequency_scale: float = 0.1,
        n_bins: int = 32,
    ) -> None:
        super().__init__()
        if not hidden_dims or min(hidden_dims) < 1:
            raise ValueError(f"hidden_dims must be a non-empty list of positive sizes, however: {hidden_dims}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), however: dropout={dropout}")
        self.cat_embeddings = CategoricalEmbeddings(cat_cardinalities, d_cat_embedding) if cat_cardinalities else None
        self.num_embeddings = None
        if num_embedding != "none" and n_num_features:
            self.num_embeddings = make_numeric_embeddings(
                num_embedding, n_num_features, d_num_embedding, frequency_scale=frequency_scale, n_bins=n_bins
            )
        d_num = n_num_features * (d_num_embedding if self.num_embeddings is not None else 1)
        d_in = d_num + len(cat_cardinalities) * d_cat_embedding
        if d_in == 0:
            raise ValueError("the MLP needs at least one numeric or categorical feature")
        norms = {"none": None, "layer": nn.LayerNorm, "batch": nn.BatchNorm1d}
        if norm not in norms:
            raise ValueError(f"norm must be 'none', 'layer' or 'batch', however: norm={norm!r}")
        blocks = []
        for d_block in hidden_dims:
            d_hidden = d_block * glu_factor(activation)
            blocks += [nn.Linear(d_in, d_hidden), *([norms[norm](d_hidden)] if norms[norm] else [])]
            blocks += [make_activation(activation), nn.Dropout(dropout)]
            d_in = d_block
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(d_in, d_out)

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        x = x_num if self.num_embeddings is None else self.num_embeddings(x_num).flatten(1)
        if self.cat_embeddings is not None:
            x = torch.cat([x, self.cat_embeddings(x_cat).flatten(1)], dim=1)  # (B, d_in)
        return self.head(self.blocks(x))
