r"""What differs between classification and regression, as two small objects the shared recipe calls.

The training step (:func:`tabularnet.training.objectives.training_loss`), both drivers' evaluation and the
predictions ask the recipe's task for:

- ``label_loss``: the loss against the labels, MixUp-aware. Classification: cross-entropy with label smoothing and
  class weights, :math:`\lambda\,\mathrm{CE}(s, y) + (1-\lambda)\,\mathrm{CE}(s, y_\pi)` under MixUp. Regression:
  the pointwise loss :math:`\ell` (``mse``: :math:`(s - y)^2`; ``huber``: Huber with :math:`\delta = 1`) against the
  *mixed* target :math:`\lambda y + (1-\lambda) y_\pi`, on the target's standard scale.
- ``teacher_loss``: the distillation term. Classification: :math:`T^2\,\mathrm{KL}(\mathrm{softmax}(t/T)\,\|\,
  \mathrm{softmax}(s/T))`. Regression: :math:`\ell(s, t)` against the teacher's prediction :math:`t` (standard
  scale; the temperature does not apply).
- ``agreement``: the consistency penalty between two views :math:`s, s'`: the squared distance of the class
  probabilities, or of the predictions.
- ``outputs``: what users get: class probabilities ``softmax(s / T)``, or the prediction in original units.

Every batch mean is weighted by the rows' sample weights when the batch carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tabularnet.data.task import unscale_target
from tabularnet.training.ensemble import mean_log_probabilities, mean_probabilities
from tabularnet.training.metrics import classification_metrics, regression_metrics, table_metrics

RegressionLoss = Literal["mse", "huber"]
LOSSES = {"classification": ("cross_entropy",), "regression": ("mse", "huber")}


def weighted_mean(values: Tensor, sample_weight: Tensor | None = None) -> Tensor:
    """``values.mean()``, or ``sum(w * values) / sum(w)`` with per-row weights ``sample_weight`` (B,)."""
    if sample_weight is None:
        return values.mean()
    sample_weight = sample_weight.to(values)
    return (sample_weight * values).sum() / sample_weight.sum()


def mix(x: Tensor, lam: float, perm) -> Tensor:
    """``lam * x + (1 - lam) * x[perm]`` (MixUp's interpolation); ``x`` itself when ``lam == 1``."""
    return x if lam == 1.0 or perm is None else lam * x + (1.0 - lam) * x[perm.to(x.device)]


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


def squared_distance(a: Tensor, b: Tensor, sample_weight: Tensor | None = None) -> Tensor:
    """Mean (weighted by ``sample_weight``) over rows of ``||a_b - b_b||^2``."""
    return weighted_mean((a - b).pow(2).sum(-1), sample_weight)


def consistency_loss(logits_a: Tensor, logits_b: Tensor, sample_weight: Tensor | None = None) -> Tensor:
    """Mean squared distance between the class probabilities of two views (weighted by ``sample_weight``)."""
    return squared_distance(logits_a.softmax(-1), logits_b.softmax(-1), sample_weight)


@dataclass(frozen=True)
class Classification:
    """Class indices as labels, logits as outputs; probabilities ``softmax(logits / T)`` for users."""

    label_smoothing: float = 0.0
    class_weight: tuple[float, ...] | None = None  # per class index
    name: ClassVar[str] = "classification"
    loss_metric: ClassVar[str] = "logloss"  # the validation metric logged as ``val_loss``
    score: ClassVar[str] = "acc"  # the plain driver's second per-epoch figure (higher is better)

    def label_loss(self, logits: Tensor, y: Tensor, *, lam=1.0, perm=None, sample_weight=None) -> Tensor:
        weight = None if self.class_weight is None else torch.tensor(self.class_weight).to(logits)
        options = dict(weight=weight, label_smoothing=self.label_smoothing, sample_weight=sample_weight)
        return label_loss(logits, y, lam=lam, perm=perm, **options)

    def teacher_loss(self, logits: Tensor, teacher: Tensor, temperature: float, sample_weight=None) -> Tensor:
        return distillation_loss(logits, teacher, temperature, sample_weight)

    def agreement(self, a: Tensor, b: Tensor, sample_weight=None) -> Tensor:
        return consistency_loss(a, b, sample_weight)

    def outputs(self, logits: Tensor, temperature=1.0, target_scaling=None) -> Tensor:
        """Class probabilities ``(B, n_classes)``, ``softmax(logits / T)`` in float32 (an ensemble's ``(B, k, K)``
        logits: the members' probabilities averaged)."""
        return mean_probabilities(logits, temperature)

    def evaluation_sums(self, logits: Tensor, y: Tensor, sample_weight=None) -> tuple[float, float, float]:
        """``(sum of log losses, sum of correct predictions, sum of weights)`` of one batch (the plain driver's
        ``val_loss`` and ``val_acc`` are the first two over the third); an ensemble is scored by the members'
        mean probabilities."""
        if logits.ndim == 3:
            logits = mean_log_probabilities(logits.float())  # log-probabilities are logits of the same probabilities
        rows = F.cross_entropy(logits.float(), y, reduction="none")
        correct = (logits.argmax(-1) == y).to(rows)
        return _sums(rows, correct, sample_weight)

    def metrics(self, n_classes: int, prefix: str, *, weighted: bool = False, target_scaling=None, **options):
        return classification_metrics(n_classes, prefix, weighted=weighted, **options)

    def table_metrics(self, probs, y, prefix: str, target_scaling=None) -> dict[str, float]:
        """The metrics of one table of probabilities ``(n, K)`` and class indices, in this process only."""
        return table_metrics(probs, y, prefix)


@dataclass(frozen=True)
class Regression:
    """One output on the target's standard scale; predictions in original units for users."""

    loss: RegressionLoss = "mse"
    name: ClassVar[str] = "regression"
    loss_metric: ClassVar[str] = "loss"
    score: ClassVar[str] = "mse"  # the plain driver's second figure: the mean squared error on the standard scale

    def pointwise(self, prediction: Tensor, target: Tensor) -> Tensor:
        """The loss of each row: ``(prediction - target)^2`` or Huber's (delta 1), both on the standard scale."""
        if self.loss == "huber":
            return F.huber_loss(prediction, target.to(prediction), reduction="none", delta=1.0)
        return (prediction - target.to(prediction)).pow(2)

    def label_loss(self, outputs: Tensor, y: Tensor, *, lam=1.0, perm=None, sample_weight=None) -> Tensor:
        return weighted_mean(self.pointwise(outputs[..., 0], mix(y, lam, perm)), sample_weight)

    def teacher_loss(self, outputs: Tensor, teacher: Tensor, temperature: float, sample_weight=None) -> Tensor:
        return weighted_mean(self.pointwise(outputs[..., 0], teacher[..., 0]), sample_weight)

    def agreement(self, a: Tensor, b: Tensor, sample_weight=None) -> Tensor:
        return squared_distance(a, b, sample_weight)

    def outputs(self, outputs: Tensor, temperature=1.0, target_scaling=None) -> Tensor:
        """Predictions ``(B,)`` in the target's original units (in the outputs' precision, float32 or 64); an
        ensemble's ``(B, k, 1)`` outputs: the members' mean (on the standard scale), then to original units."""
        z = mean_members(outputs)[..., 0]
        return z if target_scaling is None else unscale_target(z, target_scaling)

    def evaluation_sums(self, outputs: Tensor, y: Tensor, sample_weight=None) -> tuple[float, float, float]:
        """``(sum of losses, sum of squared errors, sum of weights)`` of one batch, on the standard scale (an
        ensemble: of the members' mean prediction)."""
        prediction = mean_members(outputs)[..., 0].float()
        return _sums(self.pointwise(prediction, y), (prediction - y.to(prediction)).pow(2), sample_weight)

    def metrics(self, n_classes: int, prefix: str, *, weighted: bool = False, target_scaling=None, **options):
        return regression_metrics(prefix, target_scaling, self.pointwise, weighted=weighted, **options)

    def table_metrics(self, predictions, y, prefix: str, target_scaling=None) -> dict[str, float]:
        """The metrics of one table of predictions and targets (original units), in this process only."""
        metrics = self.metrics(1, prefix, target_scaling=target_scaling, sync_on_compute=False)
        metrics.update(
            torch.as_tensor(np.asarray(predictions, dtype=np.float64)), torch.as_tensor(np.asarray(y, dtype=np.float64))
        )
        return {name: float(value) for name, value in metrics.compute().items()}


TaskObjective = Classification | Regression


def mean_members(outputs: Tensor) -> Tensor:
    """An ensemble's ``(B, k, C)`` outputs averaged over its members, ``(B, C)``; ``(B, C)`` unchanged."""
    return outputs.mean(1) if outputs.ndim == 3 else outputs


def _sums(losses: Tensor, scores: Tensor, sample_weight: Tensor | None) -> tuple[float, float, float]:
    if sample_weight is None:
        return float(losses.sum()), float(scores.sum()), float(len(losses))
    sample_weight = sample_weight.to(losses)
    return float((sample_weight * losses).sum()), float((sample_weight * scores).sum()), float(sample_weight.sum())


def make_task(task: str = "classification", *, loss: str | None = None, label_smoothing: float = 0.0,
              class_weight=None) -> TaskObjective:  # fmt: skip
    """The task's objective from the recipe's options; options that do not apply to it are one-line errors."""
    if task not in LOSSES:
        raise ValueError(f"task must be 'classification' or 'regression', however: task={task!r}")
    if loss is not None and loss not in LOSSES[task]:
        allowed = " or ".join(repr(name) for name in LOSSES[task])
        raise ValueError(f"loss={loss!r} is not a {task} loss (use {allowed})")
    if task == "classification":
        return Classification(label_smoothing=label_smoothing, class_weight=class_weight)
    if label_smoothing:
        raise ValueError(f"label_smoothing is for classification, however: label_smoothing={label_smoothing}")
    if class_weight is not None:
        raise ValueError("class_weight is for classification, however: it is set and the task is regression")
    return Regression(loss=loss or "mse")
