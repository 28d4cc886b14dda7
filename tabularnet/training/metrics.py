"""Classification metrics reported for validation and test: acc, auroc, f1_macro, logloss."""

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


def classification_metrics(n_classes: int, prefix: str) -> MetricCollection:
    """``{prefix}acc``, ``{prefix}auroc`` (binary, or macro one-vs-rest), ``{prefix}f1_macro``, ``{prefix}logloss``.

    All take ``(probabilities, y)``; with two classes the macro one-vs-rest AUROC equals the binary AUROC.
    """
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(n_classes, average="micro"),
            "auroc": MulticlassAUROC(n_classes, average="macro"),
            "f1_macro": MulticlassF1Score(n_classes, average="macro"),
            "logloss": LogLoss(),
        },
        prefix=prefix,
    )
