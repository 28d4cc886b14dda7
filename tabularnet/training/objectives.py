r"""The training objective as pure PyTorch: augmentations and losses shared by both trainers.

For a batch with numeric inputs :math:`x`, categorical inputs :math:`c`, labels :math:`y` and (optionally)
teacher logits :math:`t`, one training step computes:

1. **Gaussian noise** (``noise.enabled``): :math:`x \leftarrow x + \sigma\,\varepsilon`,
   :math:`\varepsilon \sim N(0, I)`.
2. **MixUp** (``mixup.enabled``): :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)` once per batch, folded to
   :math:`\lambda \leftarrow \max(\lambda, 1-\lambda)` so that each mixed row stays closest to its own row; a
   permutation :math:`\pi` pairs rows; :math:`x \leftarrow \lambda x + (1-\lambda) x_\pi`,
   :math:`t \leftarrow \lambda t + (1-\lambda) t_\pi`. Categorical inputs are not interpolated: each row keeps
   its own categories (its dominant partner's). The label loss becomes
   :math:`\lambda\,\mathrm{CE}(s, y) + (1-\lambda)\,\mathrm{CE}(s, y_\pi)`.
3. **Label loss**: cross-entropy with label smoothing :math:`\epsilon` (targets :math:`(1-\epsilon)\,e_y + \epsilon/K`).
   With class weights :math:`w` (``class_weight``) it is PyTorch's weighted cross-entropy: each class term is
   weighted by :math:`w_c` and the batch mean divides by :math:`\sum_b w_{y_b}`; under MixUp each of the two
   terms is weighted that way.
4. **Distillation** (``distillation.enabled``), with weight :math:`\lambda_d` and temperature :math:`T`:
   :math:`L = (1-\lambda_d)\,L_{label} + \lambda_d\,T^2\,\mathrm{KL}(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T))`.
   The :math:`T^2` factor keeps the gradient's magnitude independent of :math:`T` (Hinton et al., 2015).
5. **Consistency** (``distillation.consistency`` = :math:`\gamma > 0`): a second forward pass on a second view of
   the batch (the same MixUp pairing, fresh noise, fresh dropout) gives :math:`s'`;
   :math:`L \leftarrow L + \gamma\,\frac{1}{B}\sum_b \lVert \mathrm{softmax}(s_b) - \mathrm{softmax}(s'_b) \rVert_2^2`.
6. **Sample weights** (a ``"weight"`` tensor in the batch, :math:`v_b \ge 0`): every batch mean above becomes a
   weighted mean, so a row of integer weight :math:`k` counts as :math:`k` copies of it. The label loss is
   :math:`\sum_b v_b\,\ell_b / \sum_b v_b\,w_{y_b}` (with class weights; :math:`w \equiv 1` without), under MixUp
   each of the two terms with the mixed row's own :math:`v_b`; the distillation and consistency terms are
   :math:`\sum_b v_b\,d_b / \sum_b v_b`. Without the key the formulas are the unweighted ones above, computed as
   before.
7. **Ensembles** (a network that returns ``(B, k, K)``, one row of logits per member): each of the :math:`k` members
   sees the whole batch (the same view: noise, MixUp pairing and :math:`\lambda`), and :math:`L` is the mean over
   members of each member's loss above (its label loss, distillation towards the same teacher targets,
   consistency between its two views), computed as the loss of the :math:`B k` member rows
   (:mod:`tabularnet.training.ensemble`).

Randomness comes only from the generators in :class:`AugmentationRNG` (and dropout's global RNG), so two
drivers that seed them alike compute identical losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tabularnet.training.config import Recipe
from tabularnet.training.ensemble import member_permutation, member_rows, n_members, repeat_rows
from tabularnet.training.tasks import (  # noqa: F401 (re-exported: the names predate the task objects)
    Classification,
    consistency_loss,
    cross_entropy,
    distillation_loss,
    label_loss,
    mix,
    weighted_mean,
)

Batch = dict[str, Tensor]
Network = Callable[[Tensor, Tensor], Tensor]


class AugmentationRNG:
    """The objective's own random streams: a torch generator (permutations, noise) and a numpy one (Beta)."""

    def __init__(self, seed: int) -> None:
        self.torch = torch.Generator().manual_seed(seed)
        self.numpy = np.random.default_rng(seed)

    def state_dict(self) -> dict:
        return {"torch": self.torch.get_state(), "numpy": self.numpy.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.torch.set_state(state["torch"])
        self.numpy.bit_generator.state = state["numpy"]


def seed_training(seed: int) -> AugmentationRNG:
    """Seed dropout's global stream and create the objective's streams: both drivers call this at train start."""
    torch.manual_seed(seed)
    return AugmentationRNG(seed)


def add_noise(x_num: Tensor, std: float, rng: AugmentationRNG) -> Tensor:
    """``x_num + std * N(0, 1)``; the identity when ``std == 0``."""
    if std == 0 or x_num.numel() == 0:
        return x_num
    return x_num + std * torch.randn(x_num.shape, generator=rng.torch).to(x_num)


def sample_mixup(batch_size: int, alpha: float, rng: AugmentationRNG) -> tuple[float, Tensor]:
    """Draw MixUp's folded ``lambda >= 0.5`` and the pairing permutation. ``alpha == 0`` gives ``lambda = 1``."""
    lam = float(rng.numpy.beta(alpha, alpha)) if alpha > 0 else 1.0
    return max(lam, 1.0 - lam), torch.randperm(batch_size, generator=rng.torch)


def batch_weight(batch: Batch) -> int | Tensor:
    """The batch's share of an epoch mean: its number of rows, or its total sample weight when it carries weights."""
    weight = batch.get("weight")
    return len(batch["y"]) if weight is None else weight.sum()


@dataclass
class StepOutput:
    loss: Tensor
    logits: Tensor


def training_loss(net: Network, batch: Batch, recipe: Recipe, rng: AugmentationRNG) -> StepOutput:
    """The full training objective for one batch (see the module docstring for the formulas); the task's terms
    (:mod:`tabularnet.training.tasks`) are cross-entropy and KL for classification, the pointwise loss for
    regression."""
    x_num, x_cat, y = batch["x_num"], batch["x_cat"], batch["y"]
    teacher, sample_weight = batch.get("teacher_logits"), batch.get("weight")
    distill, task = recipe.distillation, recipe.task
    if distill.enabled and teacher is None:
        raise ValueError("distillation is enabled but the batch has no teacher_logits (give teacher_probs)")
    lam, perm = 1.0, None
    if recipe.mixup.enabled:
        lam, perm = sample_mixup(len(y), recipe.mixup.alpha, rng)
        x_num = mix(x_num, lam, perm)
        teacher = mix(teacher, lam, perm) if teacher is not None else None
    std = recipe.noise.std if recipe.noise.enabled else 0.0
    logits = net(add_noise(x_num, std, rng), x_cat)  # (B, K), or (B, k, K) for k members
    # NOTE: members as extra rows: each per-row mean below becomes the mean of the members' losses
    k, rows = n_members(logits), member_rows(logits)  # (B k, K)
    y, teacher, sample_weight = (repeat_rows(values, k) for values in (y, teacher, sample_weight))
    loss = task.label_loss(rows, y, lam=lam, perm=member_permutation(perm, k), sample_weight=sample_weight)
    if distill.enabled:
        kd = task.teacher_loss(rows, teacher, distill.temperature, sample_weight)
        loss = (1.0 - distill.lambda_) * loss + distill.lambda_ * kd
        if distill.consistency > 0:
            second_view = member_rows(net(add_noise(x_num, std, rng), x_cat))
            loss = loss + distill.consistency * task.agreement(rows, second_view, sample_weight)
    return StepOutput(loss=loss, logits=logits)


def evaluation_sums(logits: Tensor, y: Tensor, sample_weight: Tensor | None = None) -> tuple[float, float, float]:
    """Classification's per-batch evaluation sums (:meth:`tabularnet.training.tasks.Classification.evaluation_sums`)."""
    return Classification().evaluation_sums(logits, y, sample_weight)
