"""Optimizer and learning-rate schedule, shared by the Lightning and plain-PyTorch drivers."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from tabularnet.nn.layers import FeatureEmbeddings
from tabularnet.training.config import Recipe, SchedulerConfig

# every parameter of these modules goes without weight decay; FeatureEmbeddings covers each feature embedding of
# tabularnet.nn.layers (categorical, linear, PLR, PLE) and any future one that subclasses it
NO_DECAY_MODULES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.Embedding, FeatureEmbeddings)


def decayed_parameter_names(net: nn.Module) -> tuple[list[str], list[str]]:
    """``(decayed, not decayed)``: the names of ``net``'s trainable parameters in each of the two groups.

    Weight decay goes on weight matrices only: none on biases, norms, embeddings (every parameter of a module in
    :data:`NO_DECAY_MODULES`), the parameters a module names in its ``no_weight_decay`` attribute (an ensemble's
    per-member scalings and biases, :mod:`tabularnet.nn.ensemble`), the CLS token or any other parameter of fewer
    than 2 dimensions.

    NOTE: decaying embeddings and norm scales pulls them towards zero, which hurts tabular models
    (Gorishniy et al., 2021); only linear maps benefit from the shrinkage.
    """
    no_decay: set[int] = set()
    for module in net.modules():
        if isinstance(module, NO_DECAY_MODULES):
            no_decay.update(id(p) for p in module.parameters())
        no_decay.update(id(getattr(module, name)) for name in getattr(module, "no_weight_decay", ()))
    decay, rest = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (rest if id(p) in no_decay or p.ndim < 2 or name.endswith("cls") else decay).append(name)
    return decay, rest


def parameter_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: ``weight_decay`` on the weight matrices, none on the rest (see
    :func:`decayed_parameter_names`)."""
    parameters = dict(net.named_parameters())
    decay, rest = decayed_parameter_names(net)
    return [
        {"params": [parameters[n] for n in decay], "weight_decay": weight_decay},
        {"params": [parameters[n] for n in rest], "weight_decay": 0.0},
    ]


FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")


def fused_supported(net: nn.Module) -> bool:
    """Whether torch's fused Adam kernel can update every parameter of ``net`` (floating, on a supported device)."""
    params = list(net.parameters())
    return bool(params) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)


def make_optimizer(net: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Adam or AdamW over :func:`parameter_groups`.

    NOTE: the fused kernel updates all parameters in one call per group; the default per-tensor loop costs
    ~0.2 ms per step for a 256-256 MLP on CPU, a tenth of the whole step. ``fused: null`` picks it where the
    parameters allow it, and falls back when this torch build has no fused kernel for their device.
    """
    config = recipe.optimizer
    cls = torch.optim.AdamW if config.name.lower() == "adamw" else torch.optim.Adam
    groups = parameter_groups(net, recipe.effective_weight_decay)
    fused = fused_supported(net) if config.fused is None else config.fused
    if fused:
        try:
            return cls(groups, lr=config.lr, betas=config.betas, fused=True)
        except RuntimeError:
            if config.fused:  # asked for explicitly: say why it cannot be had
                raise
    return cls(groups, lr=config.lr, betas=config.betas)


def lr_factor(step: int, *, total_steps: int, config: SchedulerConfig) -> float:
    """The multiplier of the base learning rate at optimizer step ``step`` (0-based).

    ``constant``: 1 after the warmup. ``cosine``: linear warmup from ``1/warmup_steps`` to 1 over the first
    ``warmup_proportion`` of ``total_steps``, then ``0.5 * (1 + cos(pi * progress))`` down to 0 at the last step.
    """
    warmup_steps = int(config.warmup_proportion * total_steps)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if config.name == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int):
    """A per-step ``LambdaLR``: ``recipe.optimizer.lr`` times :func:`lr_factor`.

    NOTE: the base rate is read from the recipe at every step, not fixed when the scheduler is made. Lightning's
    ``LearningRateFinder`` runs after the optimizer and this scheduler exist, and sets its suggestion on the module
    (``lr``, i.e. ``recipe.optimizer.lr``) and on the optimizer's groups; a plain ``LambdaLR`` would put its own
    base rate back at the next step, and training would go on at the old rate.
    """
    schedule = partial(lr_factor, total_steps=max(1, total_steps), config=recipe.scheduler)
    initial_lr = recipe.optimizer.lr

    def factor(step: int) -> float:  # a function, not an object: LambdaLR's state_dict leaves it out
        scale = recipe.optimizer.lr / initial_lr if initial_lr else 1.0
        return scale * schedule(step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
