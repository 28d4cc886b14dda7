"""MLP over numeric features and categorical embeddings, and its parameter-efficient ensembles (TabM)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from tabularnet.nn.ensemble import (
    BatchNormEnsemble,
    LinearBatchEnsemble,
    LinearEnsemble,
    ScaleEnsemble,
    check_ensemble_size,
)
from tabularnet.nn.layers import (
    Activation,
    CategoricalEmbeddings,
    NumEmbedding,
    glu_factor,
    make_activation,
    make_numeric_embeddings,
)

Ensemble = Literal["tabm", "mini"]
ENSEMBLES = ("tabm", "mini")


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
        k: ensemble members. 1: the plain MLP. More: k MLPs trained at once, sharing the weights as ``ensemble``
            says, each with an output head of its own (TabM, Gorishniy et al., 2025).
        ensemble: how the k members share the MLP (``k > 1``): ``tabm``, every linear layer a BatchEnsemble layer
            (shared weight, per-member input and output scalings and bias; only the first layer's input scalings
            start random, +-1 per feature, N(0, 1) with numeric embeddings, the rest at 1); ``mini`` (TabM-mini),
            the layers fully shared and one per-member scaling of the backbone's input. Embeddings are shared.

    Shapes: ``x_num (B, n_num_features)``, ``x_cat (B, n_cat) -> logits (B, d_out)``, or ``(B, k, d_out)`` (one
    row of logits per member) when ``k > 1``.
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
        k: int = 1,
        ensemble: Ensemble = "tabm",
    ) -> None:
        super().__init__()
        self.k = check_ensemble_size(k)
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be 'tabm' or 'mini', however: ensemble={ensemble!r}")
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
        d_feature = d_num_embedding if self.num_embeddings is not None else 1
        feature_sizes = [d_feature] * n_num_features + [d_cat_embedding] * len(cat_cardinalities)
        d_in = sum(feature_sizes)
        if d_in == 0:
            raise ValueError("the MLP needs at least one numeric or categorical feature")
        norms = {"none": None, "layer": nn.LayerNorm, "batch": nn.BatchNorm1d if k == 1 else _member_batch_norm(k)}
        if norm not in norms:
            raise ValueError(f"norm must be 'none', 'layer' or 'batch', however: norm={norm!r}")
        # NOTE: TabM starts the first adapter random (a member rescales whole features), every other scaling at 1
        first_init = "random-signs" if self.num_embeddings is None else "normal"
        self.adapter = None
        if k > 1 and ensemble == "mini":
            self.adapter = ScaleEnsemble(k, d_in, init=first_init, chunks=feature_sizes)
        blocks = []
        for i, d_block in enumerate(hidden_dims):
            d_hidden = d_block * glu_factor(activation)
            if k == 1 or ensemble == "mini":
                linear = nn.Linear(d_in, d_hidden)
            else:
                init, chunks = (first_init, feature_sizes) if i == 0 else ("ones", None)
                linear = LinearBatchEnsemble(d_in, d_hidden, k=k, r_init=init, r_chunks=chunks)
            blocks += [linear, *([norms[norm](d_hidden)] if norms[norm] else [])]
            blocks += [make_activation(activation), nn.Dropout(dropout)]
            d_in = d_block
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(d_in, d_out) if k == 1 else LinearEnsemble(d_in, d_out, k=k)

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        x = x_num if self.num_embeddings is None else self.num_embeddings(x_num).flatten(1)
        if self.cat_embeddings is not None:
            x = torch.cat([x, self.cat_embeddings(x_cat).flatten(1)], dim=1)  # (B, d_in)
        if self.k > 1:
            x = x.unsqueeze(1).expand(-1, self.k, -1)  # (B, k, d_in): every member sees the same rows
            if self.adapter is not None:
                x = self.adapter(x)
        return self.head(self.blocks(x))  # (B, d_out) or (B, k, d_out)


def _member_batch_norm(k: int):
    return lambda d: BatchNormEnsemble(d, k=k)
