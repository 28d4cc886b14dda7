"""Shapes and options of the plain nn.Modules."""

from __future__ import annotations

import pytest
import torch

from tabularnet.nn import MLP, FTTransformer
from tabularnet.nn.layers import GLU, CategoricalEmbeddings


def inputs(n=8):
    return torch.randn(n, 4), torch.randint(0, 5, (n, 3))


@pytest.mark.parametrize("activation", ["relu", "gelu", "geglu", "reglu"])
def test_mlp_shapes(activation):
    net = MLP(n_num_features=4, cat_cardinalities=[5, 5, 5], d_out=3, hidden_dims=[16, 8], activation=activation)
    assert net(*inputs()).shape == (8, 3)


@pytest.mark.parametrize("activation", ["reglu", "geglu", "relu"])
def test_ft_transformer_shapes(activation):
    net = FTTransformer(
        n_num_features=4,
        cat_cardinalities=[5, 5, 5],
        d_out=2,
        d_model=16,
        nhead=4,
        num_layers=2,
        activation=activation,
    )
    assert net(*inputs()).shape == (8, 2)


def test_numeric_only_and_categorical_only():
    x_num, x_cat = inputs()
    assert MLP(n_num_features=4, cat_cardinalities=[], d_out=2, hidden_dims=[8])(x_num, x_cat[:, :0]).shape == (8, 2)
    ft = FTTransformer(n_num_features=0, cat_cardinalities=[5, 5, 5], d_out=2, d_model=8, nhead=2, num_layers=1)
    assert ft(x_num[:, :0], x_cat).shape == (8, 2)


def test_glu_halves_and_gates():
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    torch.testing.assert_close(GLU("relu")(x), torch.tensor([[3.0, -1.0]]))


def test_categorical_embeddings_use_separate_tables():
    emb = CategoricalEmbeddings([3, 3], d_embedding=4)
    out = emb(torch.tensor([[1, 1]]))
    assert not torch.equal(out[0, 0], out[0, 1])  # same id, different columns, different vectors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(hidden_dims=[]), "hidden_dims"),
        (dict(hidden_dims=[8], dropout=1.0), "dropout"),
        (dict(hidden_dims=[8], activation="tanh"), "activation"),
    ],
)
def test_mlp_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(n_num_features=4, cat_cardinalities=[], d_out=2, **kwargs)


def test_ft_transformer_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        FTTransformer(n_num_features=4, cat_cardinalities=[], d_out=2, d_model=10, nhead=3)
