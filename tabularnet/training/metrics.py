"""Metrics reported for validation and test. Classification: acc, auroc, f1_macro, logloss, ece. Regression:
rmse, mae, r2 (in the target's original units) and loss (the training loss on the standardised target).

With sample weights (a ``"weight"`` tensor in the batch) every one of them is weighted: a row of weight ``k``
counts as ``k`` copies of it (:func:`classification_metrics` with ``weighted=True``).
"""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score
from torchmetrics.utilities import dim_zero_cat


def _weights(y: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return torch.ones(y.shape, dtype=torch.float64, device=y.device) if weight is None else weight.double()


class LogLoss(Metric):
    """Mean negative log-likelihood of the true class (cross-entropy without smoothing), weighted by ``weight``."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        p_true = probs.double().gather(1, y.unsqueeze(1)).squeeze(1).clamp_min(1e-15)
        if weight is None:
            self.total -= p_true.log().sum()
            self.count += y.numel()
        else:
            self.total -= (weight.double() * p_true.log()).sum()
            self.count += weight.double().sum()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(0.0, device=self.count.device)


class WeightedAccuracy(MeanMetric):
    """Accuracy with per-row weights: torchmetrics' ``MeanMetric`` of the correct-prediction indicator."""

    def update(self, probs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        super().update((probs.argmax(1) == y).double(), _weights(y, weight))


class WeightedF1Macro(Metric):
    """Macro F1 from a weighted confusion matrix; classes absent from both labels and predictions are left out of
    the mean, as in torchmetrics' ``MulticlassF1Score(average="macro")``."""

    full_state_update = False

    def __init__(self, n_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_classes = n_classes
        self.add_state(
            "confusion", default=torch.zeros(n_classes * n_classes, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, probs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        cells = y * self.n_classes + probs.argmax(1)
        self.confusion += torch.bincount(cells, _weights(y, weight), minlength=self.n_classes**2)

    def compute(self) -> torch.Tensor:
        confusion = self.confusion.view(self.n_classes, self.n_classes)  # rows: true class, columns: predicted
        tp = confusion.diagonal()
        fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
        present = (tp + fp + fn) > 0
        f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1e-300)
        return (f1[present].mean() if present.any() else f1.sum()).float()


def weighted_auroc(probs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Macro one-vs-rest AUROC with per-row weights: for each class, the weighted share of (positive, negative)
    pairs ordered correctly (ties count half); classes without positive or negative weight are left out. With two
    classes it is the binary AUROC; with unit weights, the usual (Mann-Whitney) AUROC."""
    weight = weight.double()
    aucs = []
    for c in range(probs.shape[1]):
        order = torch.argsort(probs[:, c])
        scores, positive, w = probs[order, c], (y[order] == c).double(), weight[order]
        _, group = torch.unique_consecutive(scores, return_inverse=True)
        n_groups = int(group.max()) + 1 if len(group) else 0
        pos = torch.zeros(n_groups, dtype=torch.float64, device=w.device).index_add_(0, group, w * positive)
        neg = torch.zeros(n_groups, dtype=torch.float64, device=w.device).index_add_(0, group, w * (1 - positive))
        if pos.sum() > 0 and neg.sum() > 0:
            below = neg.cumsum(0) - neg  # negative weight scored strictly lower than each tie group
            aucs.append((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))
    return torch.stack(aucs).mean().float() if aucs else torch.tensor(0.0)


class WeightedAUROC(Metric):
    """:func:`weighted_auroc` over every row seen (rows are kept, as torchmetrics' exact AUROC keeps them)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("probs", "y", "weight"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        self.probs.append(probs.float())
        self.y.append(y)
        self.weight.append(_weights(y, weight))

    def compute(self) -> torch.Tensor:
        return weighted_auroc(dim_zero_cat(self.probs), dim_zero_cat(self.y), dim_zero_cat(self.weight))


class ExpectedCalibrationError(Metric):
    """ECE of the top-label confidence over ``n_bins`` equal-width bins ``(lo, hi]``, from per-bin sums (constant
    memory): the one ECE of tabularnet (:func:`tabularnet.training.calibration.expected_calibration_error` and the
    reliability diagrams use it)."""

    full_state_update = False

    def __init__(self, n_bins: int = 15, **kwargs) -> None:
        super().__init__(**kwargs)  # torchmetrics' options, e.g. sync_on_compute
        self.n_bins = n_bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, default=torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        confidence, predicted = probs.double().max(1)
        edges = torch.linspace(0, 1, self.n_bins + 1, dtype=torch.float64, device=probs.device)
        index = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, self.n_bins - 1)
        w = None if weight is None else weight.double()
        correct = (predicted == y).double()
        self.count += torch.bincount(index, w, minlength=self.n_bins)
        self.confidence += torch.bincount(index, confidence if w is None else w * confidence, minlength=self.n_bins)
        self.correct += torch.bincount(index, correct if w is None else w * correct, minlength=self.n_bins)

    def compute(self) -> torch.Tensor:
        gap = (self.correct - self.confidence).abs()  # per bin: count * |accuracy - confidence|
        return (gap.sum() / self.count.sum().clamp(min=1)).float()


def classification_metrics(n_classes: int, prefix: str, *, weighted: bool = False, **options) -> MetricCollection:
    """``{prefix}acc``, ``{prefix}auroc`` (binary, or macro one-vs-rest), ``{prefix}f1_macro``, ``{prefix}logloss``,
    ``{prefix}ece`` (expected calibration error, 15 bins).

    All take ``(probabilities, y)``; with two classes the macro one-vs-rest AUROC equals the binary AUROC.
    ``weighted``: the same five metrics with per-row sample weights, updated with ``(probabilities, y, weight=w)``.
    ``options``: torchmetrics' metric options (e.g. ``sync_on_compute=False``).
    """
    if weighted:
        return MetricCollection(
            {
                "acc": WeightedAccuracy(**options),
                "auroc": WeightedAUROC(**options),
                "f1_macro": WeightedF1Macro(n_classes, **options),
                "logloss": LogLoss(**options),
                "ece": ExpectedCalibrationError(**options),
            },
            prefix=prefix,
        )
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(n_classes, average="micro", **options),
            "auroc": MulticlassAUROC(n_classes, average="macro", **options),
            "f1_macro": MulticlassF1Score(n_classes, average="macro", **options),
            "logloss": LogLoss(**options),
            "ece": ExpectedCalibrationError(**options),
        },
        prefix=prefix,
    )


class StandardisedLoss(MeanMetric):
    """The regression loss on the standardised target (``val_loss``, what checkpoints monitor), from predictions
    and targets in original units, weighted by ``weight``."""

    def __init__(self, target_scaling: dict, pointwise, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_scaling, self.pointwise = target_scaling, pointwise

    def update(self, prediction: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        from tabularnet.data.task import scale_target

        z, target = (scale_target(v.double(), self.target_scaling) for v in (prediction, y))
        super().update(self.pointwise(z, target), _weights(y, weight))


class WeightedErrors(Metric):
    """Weighted sums of a regression's errors and targets: RMSE, MAE or R^2 (``kind``) with per-row weights (a
    row of weight ``k`` counts as ``k`` copies)."""

    full_state_update = False

    def __init__(self, kind: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        for name in ("weight", "squared", "absolute", "y", "y_squared"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        w, error, y = _weights(y, weight), prediction.double() - y.double(), y.double()
        self.weight += w.sum()
        self.squared += (w * error**2).sum()
        self.absolute += (w * error.abs()).sum()
        self.y += (w * y).sum()
        self.y_squared += (w * y**2).sum()

    def compute(self) -> torch.Tensor:
        total = self.weight.clamp(min=1e-300)
        if self.kind == "rmse":
            return (self.squared / total).sqrt().float()
        if self.kind == "mae":
            return (self.absolute / total).float()
        variance = self.y_squared - self.y**2 / total  # weighted total sum of squares
        return (1 - self.squared / variance.clamp(min=1e-300)).float()


def regression_metrics(prefix: str, target_scaling: dict, pointwise, *, weighted: bool = False, **options):
    """``{prefix}rmse``, ``{prefix}mae``, ``{prefix}r2`` (torchmetrics', in original units) and ``{prefix}loss``
    (``pointwise`` on the standardised target). All take ``(prediction, y)`` in original units; ``weighted``: with
    per-row sample weights, updated with ``(prediction, y, weight=w)``."""
    loss = StandardisedLoss(target_scaling, pointwise, **options)
    if weighted:
        kinds = ("rmse", "mae", "r2")
        return MetricCollection({**{k: WeightedErrors(k, **options) for k in kinds}, "loss": loss}, prefix=prefix)
    return MetricCollection(
        {
            "rmse": MeanSquaredError(squared=False, **options),
            "mae": MeanAbsoluteError(**options),
            "r2": R2Score(**options),
            "loss": loss,
        },
        prefix=prefix,
    )


def table_metrics(probs, y, prefix: str) -> dict[str, float]:
    """The validation/test metrics (:func:`classification_metrics`) of one table of class probabilities ``(n, K)``
    and labels (class indices), in this process only (the teacher's, measured on every rank alike)."""
    probs, y = torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
    metrics = classification_metrics(probs.shape[1], prefix, sync_on_compute=False)
    metrics.update(probs, y)
    return {name: float(value) for name, value in metrics.compute().items()}
