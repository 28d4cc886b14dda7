"""Weight decay goes on weight matrices only: never on biases, norms, the CLS token or any embedding parameter."""

from __future__ import annotations

import inspect
import io

import pytest
import torch
from torch import nn

from tabularnet.nn import layers
from tabularnet.nn.ft_transformer import FTTransformer
from tabularnet.nn.mlp import MLP
from tabularnet.training.config import Recipe
from tabularnet.training.optim import (
    decayed_parameter_names,
    lr_factor,
    make_optimizer,
    make_scheduler,
    parameter_groups,
)

NUM_EMBEDDING_PARAMETERS = {
    "none": [],
    "linear": ["weight", "bias"],
    "plr": ["frequencies", "weight", "bias"],
    "ple": ["weight", "bias"],
}
MLP_DECAYED = ["blocks.0.weight", "blocks.3.weight", "head.weight"]


@pytest.mark.parametrize("num_embedding", sorted(NUM_EMBEDDING_PARAMETERS))
def test_mlp_parameter_groups(num_embedding):
    net = MLP(
        n_num_features=3,
        cat_cardinalities=[4, 2],
        d_out=2,
        hidden_dims=[8, 8],
        num_embedding=num_embedding,
        d_num_embedding=4,
        n_bins=4,
    )
    decayed, not_decayed = decayed_parameter_names(net)
    assert decayed == MLP_DECAYED
    assert sorted(not_decayed) == sorted(
        [
            "cat_embeddings.embeddings.weight",
            *(f"num_embeddings.{name}" for name in NUM_EMBEDDING_PARAMETERS[num_embedding]),
            "blocks.0.bias",
            "blocks.3.bias",
            "head.bias",
        ]
    )


@pytest.mark.parametrize("num_embedding", ["linear", "plr", "ple"])
def test_ft_transformer_parameter_groups(num_embedding):
    net = FTTransformer(
        n_num_features=3,
        cat_cardinalities=[5],
        d_out=2,
        d_model=8,
        nhead=2,
        num_layers=1,
        num_embedding=num_embedding,
        n_bins=4,
    )
    decayed, not_decayed = decayed_parameter_names(net)
    assert decayed == [
        "blocks.0.attention.qkv.weight",
        "blocks.0.attention.out.weight",
        "blocks.0.ffn.0.weight",
        "blocks.0.ffn.3.weight",
        "head.2.weight",
    ]
    assert sorted(not_decayed) == sorted(
        [
            *(f"tokenizer.numeric.{name}" for name in NUM_EMBEDDING_PARAMETERS[num_embedding]),
            "tokenizer.categorical.embeddings.weight",
            "tokenizer.cls",
            "blocks.0.attention_norm.weight",
            "blocks.0.attention_norm.bias",
            "blocks.0.attention.qkv.bias",
            "blocks.0.attention.out.bias",
            "blocks.0.ffn_norm.weight",
            "blocks.0.ffn_norm.bias",
            "blocks.0.ffn.0.bias",
            "blocks.0.ffn.3.bias",
            "head.0.weight",
            "head.0.bias",
            "head.2.bias",
        ]
    )


def test_every_embedding_class_is_a_feature_embedding():
    """A new embedding in nn/layers.py must subclass FeatureEmbeddings, or the optimizer would decay it."""
    classes = [
        cls
        for name, cls in vars(layers).items()
        if inspect.isclass(cls) and issubclass(cls, nn.Module) and "Embedding" in name
    ]
    assert len(classes) >= 5  # the base, categorical, linear, PLR, PLE
    assert all(issubclass(cls, layers.FeatureEmbeddings) for cls in classes), classes


def test_optimizer_does_not_decay_plr_frequencies():
    """Through make_optimizer: after AdamW steps with zero gradients, only the decayed weights have shrunk."""
    torch.manual_seed(0)
    net = MLP(n_num_features=2, cat_cardinalities=[], d_out=2, hidden_dims=[4], num_embedding="plr", d_num_embedding=4)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer = make_optimizer(net, Recipe.from_options(weight_decay=0.5, optimizer={"name": "AdamW", "lr": 0.1}))
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.5, 0.0]
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    for _ in range(3):
        optimizer.step()
    changed = {name for name, p in net.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"blocks.0.weight", "head.weight"}


def test_groups_hold_every_trainable_parameter_once():
    net = FTTransformer(n_num_features=2, cat_cardinalities=[3], d_out=3, d_model=8, nhead=2, num_layers=2)
    groups = parameter_groups(net, 0.1)
    ids = [id(p) for group in groups for p in group["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters()) and len(set(ids)) == len(ids)


def test_schedule_follows_a_learning_rate_set_after_it_was_made():
    """Lightning's LearningRateFinder sets ``module.lr`` (the recipe's) once optimizer and scheduler exist: the
    following steps must use it, with the schedule's factor, and the scheduler's state stays plain data."""
    net = MLP(n_num_features=2, cat_cardinalities=[], d_out=2, hidden_dims=[4])
    recipe = Recipe.from_options(optimizer={"lr": 1e-3}, scheduler={"name": "cosine", "warmup_proportion": 0.0})
    optimizer = make_optimizer(net, recipe)
    scheduler = make_scheduler(optimizer, recipe, total_steps=11)
    recipe.optimizer.lr = 0.02
    for group in optimizer.param_groups:  # what the finder does to the live optimizer
        group["lr"] = 0.02
    for step in range(1, 6):
        optimizer.step()
        scheduler.step()
        expected = 0.02 * lr_factor(step, total_steps=11, config=recipe.scheduler)
        assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([expected] * 2)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["last_epoch"] == 5
