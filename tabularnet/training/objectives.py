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
import torch.nn.functional as F
from torch import Tensor

from tabularnet.training.config import Recipe
from tabularnet.training.ensemble import mean_log_probabilities, member_permutation, member_rows, n_members, repeat_rows

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


def mix(x: Tensor, lam: float, perm: Tensor) -> Tensor:
    """``lam * x + (1 - lam) * x[perm]``."""
    return x if lam == 1.0 else lam * x + (1.0 - lam) * x[perm.to(x.device)]


def weighted_mean(values: Tensor, sample_weight: Tensor | None = None) -> Tensor:
    """``values.mean()``, or ``sum(w * values) / sum(w)`` with per-row weights ``sample_weight`` (B,)."""
    if sample_weight is None:
        return values.mean()
    sample_weight = sample_weight.to(values)
    return (sample_weight * values).sum() / sample_weight.sum()


def batch_weight(batch: Batch) -> int | Tensor:
    """The batch's share of an epoch mean: its number of rows, or its total sample weight when it carries weights."""
    weight = batch.get("weight")
    return len(batch["y"]) if weight is None else weight.sum()


def cross_entropy(
    logits: Tensor,
    y: Tensor,
    *,
    label_smoothing: float = 0.0,
    weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
) -> Tensor:
    """PyTorch's (class-)weighted, smoothed cross-entropy; with per-row ``sample_weight`` (B,) the mean over rows
    becomes ``sum_b v_b l_b / sum_b v_b w_{y_b}`` (``w``: the class weights, 1 without): the loss of the table in
    which row ``b`` is repeated ``v_b`` times."""
    if sample_weight is None:
        return F.cross_entropy(logits, y, weight=weight, label_smoothing=label_smoothing)
    rows = F.cross_entropy(logits, y, weight=weight, reduction="none", label_smoothing=label_smoothing)
    sample_weight = sample_weight.to(rows)
    denominator = sample_weight if weight is None else sample_weight * weight[y]
    return (sample_weight * rows).sum() / denominator.sum()


def label_loss(
    logits: Tensor,
    y: Tensor,
    *,
    label_smoothing: float = 0.0,
    lam: float = 1.0,
    perm=None,
    weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
) -> Tensor:
    """Cross-entropy with label smoothing, optional per-class ``weight`` (K,) and per-row ``sample_weight`` (B,),
    MixUp-weighted over the two labels of each mixed row (both terms weighted by the mixed row's own weight)."""
    options = dict(weight=weight, label_smoothing=label_smoothing, sample_weight=sample_weight)
    loss = cross_entropy(logits, y, **options)
    if lam == 1.0 or perm is None:
        return loss
    mixed = cross_entropy(logits, y[perm.to(y.device)], **options)
    return lam * loss + (1.0 - lam) * mixed


def class_weight_tensor(recipe: Recipe, like: Tensor) -> Tensor | None:
    """The recipe's class weights as a tensor of ``like``'s dtype and device (``None`` without weights)."""
    if recipe.class_weight is None:
        return None
    return torch.tensor(recipe.class_weight, dtype=like.dtype, device=like.device)


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float, sample_weight: Tensor | None = None
) -> Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch (weighted by
    ``sample_weight`` when given)."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    if sample_weight is None:
        kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    else:
        rows = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="none").sum(-1)
        kl = weighted_mean(rows, sample_weight)
    return temperature**2 * kl


def consistency_loss(logits_a: Tensor, logits_b: Tensor, sample_weight: Tensor | None = None) -> Tensor:
    """Mean squared distance between the class probabilities of two views (weighted by ``sample_weight``)."""
    return weighted_mean((logits_a.softmax(-1) - logits_b.softmax(-1)).pow(2).sum(-1), sample_weight)


@dataclass
class StepOutput:
    loss: Tensor
    logits: Tensor


def training_loss(net: Network, batch: Batch, recipe: Recipe, rng: AugmentationRNG) -> StepOutput:
    """The full training objective for one batch (see the module docstring for the formulas)."""
    x_num, x_cat, y = batch["x_num"], batch["x_cat"], batch["y"]
    teacher, sample_weight = batch.get("teacher_logits"), batch.get("weight")
    distill = recipe.distillation
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
    weight = class_weight_tensor(recipe, rows)
    options = dict(label_smoothing=recipe.label_smoothing, weight=weight, sample_weight=sample_weight)
    loss = label_loss(rows, y, lam=lam, perm=member_permutation(perm, k), **options)
    if distill.enabled:
        kd = distillation_loss(rows, teacher, distill.temperature, sample_weight)
        loss = (1.0 - distill.lambda_) * loss + distill.lambda_ * kd
        if distill.consistency > 0:
            second_view = member_rows(net(add_noise(x_num, std, rng), x_cat))
            loss = loss + distill.consistency * consistency_loss(rows, second_view, sample_weight)
    return StepOutput(loss=loss, logits=logits)


def evaluation_sums(logits: Tensor, y: Tensor, sample_weight: Tensor | None = None) -> tuple[float, float, float]:
    """The plain driver's ``val_loss`` (log loss) and ``val_acc`` of one batch, as sums to accumulate:
    ``(sum of log losses, sum of correct predictions, sum of weights)``, each row counted with its
    sample weight (1 without): the epoch's log loss and accuracy are the first two over the third. An ensemble's
    ``(B, k, K)`` logits are scored by the members' mean probabilities."""
    if logits.ndim == 3:
        logits = mean_log_probabilities(logits.float())  # log-probabilities are logits of the same probabilities
    rows = F.cross_entropy(logits.float(), y, reduction="none")
    correct = (logits.argmax(-1) == y).to(rows)
    if sample_weight is None:
        return float(rows.sum()), float(correct.sum()), float(len(y))
    sample_weight = sample_weight.to(rows)
    return float((sample_weight * rows).sum()), float((sample_weight * correct).sum()), float(sample_weight.sum())
