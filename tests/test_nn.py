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


def test_piecewise_linear_encoding_is_the_documented_formula():
    from tabularnet.nn.layers import PiecewiseLinearEmbeddings

    ple = PiecewiseLinearEmbeddings(1, 4, n_bins=4)
    x = torch.arange(101, dtype=torch.float32)[:, None]  # quantile edges 0, 25, 50, 75, 100
    ple.initialize_from_data(x)
    torch.testing.assert_close(ple.edges[0], torch.tensor([0.0, 25, 50, 75, 100]))
    encoded = ple.encode(torch.tensor([[-25.0], [0.0], [30.0], [100.0], [150.0]]))[:, 0]
    expected = torch.tensor(
        [
            [-1.0, 0, 0, 0],  # below the range: the first bin extrapolates
            [0.0, 0, 0, 0],
            [1.0, 0.2, 0, 0],
            [1.0, 1, 1, 1],
            [1.0, 1, 1, 3],  # above the range: the last bin extrapolates
        ]
    )
    torch.testing.assert_close(encoded, expected)


def test_piecewise_linear_encoding_handles_binary_and_constant_features():
    from tabularnet.nn.layers import PiecewiseLinearEmbeddings

    ple = PiecewiseLinearEmbeddings(2, 3, n_bins=8)
    x = torch.stack([torch.tensor([0.0, 1.0]).repeat(50), torch.full((100,), 3.0)], dim=1)
    ple.initialize_from_data(x)
    assert torch.all(ple.edges[:, 1:] > ple.edges[:, :-1])  # strictly increasing: no division by zero
    encoded = ple.encode(x[:2])
    assert torch.isfinite(encoded).all()
    assert encoded[0, 0].tolist() == [0.0] * 8 and encoded[1, 0].tolist() == [1.0] + [0.0] * 7  # one real bin
    out = ple(x[:5])
    assert out.shape == (5, 2, 3) and torch.isfinite(out).all()


def test_piecewise_linear_bins_are_not_lost_to_ties():
    from tabularnet.nn.layers import PiecewiseLinearEmbeddings

    # 90% zeros (capital-gain-like) beside 100 distinct positive values: quantiles of the rows would give ~3 real
    # bins; quantiles of the distinct values give all 8, spread over the positive values
    spike = torch.cat([torch.zeros(900), torch.arange(1.0, 101.0)])
    continuous = torch.linspace(0, 1, 1000)
    ple = PiecewiseLinearEmbeddings(2, 3, n_bins=8)
    ple.initialize_from_data(torch.stack([spike, continuous], dim=1))
    edges = ple.edges[0]
    assert edges[0] == 0 and edges[-1] == 100 and torch.all(edges[1:] > edges[:-1])
    assert (edges[1:-1] > 0).all()  # every inner edge among the rare positive values
    # a feature without ties keeps the quantiles of its rows
    q = torch.quantile(continuous.double(), torch.linspace(0, 1, 9, dtype=torch.float64), interpolation="lower")
    torch.testing.assert_close(ple.edges[1].double(), q)


def test_ple_edges_travel_in_the_state_dict():
    net = MLP(n_num_features=2, cat_cardinalities=[], d_out=2, hidden_dims=[4], num_embedding="ple", n_bins=4)
    from tabularnet.nn.layers import initialize_from_data

    assert initialize_from_data(net, torch.randn(200, 2))
    restored = MLP(n_num_features=2, cat_cardinalities=[], d_out=2, hidden_dims=[4], num_embedding="ple", n_bins=4)
    restored.load_state_dict(net.state_dict())
    x = torch.randn(7, 2)
    torch.testing.assert_close(
        restored(x, torch.zeros(7, 0, dtype=torch.long)), net(x, torch.zeros(7, 0, dtype=torch.long))
    )


@pytest.mark.parametrize(("norm", "layer"), [("layer", torch.nn.LayerNorm), ("batch", torch.nn.BatchNorm1d)])
def test_mlp_norm_normalises_each_hidden_layer(norm, layer):
    net = MLP(
        n_num_features=4, cat_cardinalities=[5, 5, 5], d_out=3, hidden_dims=[16, 8], norm=norm, activation="geglu"
    )
    norms = [m for m in net.modules() if isinstance(m, layer)]
    assert [m.normalized_shape[0] if norm == "layer" else m.num_features for m in norms] == [32, 16]  # GLU: 2x
    assert net(*inputs()).shape == (8, 3)
    assert not any(
        isinstance(m, (torch.nn.LayerNorm, torch.nn.BatchNorm1d))
        for m in MLP(n_num_features=4, cat_cardinalities=[], d_out=3, hidden_dims=[16]).modules()
    )
    with pytest.raises(ValueError, match="norm"):
        MLP(n_num_features=4, cat_cardinalities=[], d_out=3, hidden_dims=[16], norm="group")


def test_mlp_norm_from_the_estimator_and_the_command_line(table_files, tmp_path):
    """The option reaches the network from its declaration: estimator argument, CLI flag, checkpoint."""
    import pandas as pd

    from tabularnet.cli import main
    from tabularnet.models import MLPClassifier

    df = pd.read_csv(table_files["train"])
    model = MLPClassifier(hidden_dims=[8], norm="layer", training={"epochs": 1}).fit(
        df.drop(columns="target"), df["target"]
    )
    assert any(isinstance(m, torch.nn.LayerNorm) for m in model.net_.modules())
    flags = ["--model.norm=batch", "--model.hidden_dims=[8]", f"--data.train_path={table_files['train']}"]
    main(
        [
            "fit",
            *flags,
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    checkpoint = torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["norm"] == "batch"
    assert any("running_mean" in key for key in checkpoint["state_dict"])
