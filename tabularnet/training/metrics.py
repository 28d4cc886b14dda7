"""Classification metrics reported for validation and test: acc, auroc, f1_macro, logloss, ece."""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score


class LogLoss(Metric):
    """Mean negative log-likelihood of the true class (cross-entropy without smoothing)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, y: torch.Tensor) -> None:
        p_true = probs.double().gather(1, y.unsqueeze(1)).clamp_min(1e-15)
        self.total -= p_true.log().sum()
        self.count += y.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


class ExpectedCalibrationError(Metric):
    """ECE of the top-label confidence over ``n_bins`` equal-width bins ``(lo, hi]``; the same numbers as
    :func:`tabularnet.training.calibration.expected_calibration_error`, from per-bin sums (constant memory)."""

    full_state_update = False

    def __init__(self, n_bins: int = 15) -> None:
        super().__init__()
        self.n_bins = n_bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, default=torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, y: torch.Tensor) -> None:
        confidence, predicted = probs.double().max(1)
        edges = torch.linspace(0, 1, self.n_bins + 1, dtype=torch.float64, device=probs.device)
        index = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, self.n_bins - 1)
        self.count += torch.bincount(index, minlength=self.n_bins)
        self.confidence += torch.bincount(index, confidence, minlength=self.n_bins)
        self.correct += torch.bincount(index, (predicted == y).double(), minlength=self.n_bins)

    def compute(self) -> torch.Tensor:
        gap = (self.correct - self.confidence).abs()  # per bin: count * |accuracy - confidence|
        return (gap.sum() / self.count.sum().clamp(min=1)).float()


def classification_metrics(n_classes: int, prefix: str) -> MetricCollection:
    """``{prefix}acc``, ``{prefix}auroc`` (binary, or macro one-vs-rest), ``{prefix}f1_macro``, ``{prefix}logloss``,
    ``{prefix}ece`` (expected calibration error, 15 bins).

    All take ``(probabilities, y)``; with two classes the macro one-vs-rest AUROC equals the binary AUROC.
    """
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(n_classes, average="micro"),
            "auroc": MulticlassAUROC(n_classes, average="macro"),
            "f1_macro": MulticlassF1Score(n_classes, average="macro"),
            "logloss": LogLoss(),
            "ece": ExpectedCalibrationError(),
        },
        prefix=prefix,
    )
