"""Calibration: the expected calibration error and temperature scaling (Guo et al., 2017), as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tabularnet.training.ensemble import mean_log_probabilities, mean_probabilities
from tabularnet.training.metrics import ExpectedCalibrationError


@dataclass
class ReliabilityBins:
    """Top-label confidence histogram: per bin the mean confidence, the accuracy and the number of rows."""

    edges: np.ndarray  # (n_bins + 1,)
    confidence: np.ndarray  # (n_bins,), NaN where the bin is empty
    accuracy: np.ndarray  # (n_bins,), NaN where the bin is empty
    count: np.ndarray  # (n_bins,)


def reliability_bins(probs, y, n_bins: int = 15) -> ReliabilityBins:
    """Bin rows by their top-label confidence into ``n_bins`` equal-width bins of (0, 1].

    Args:
        probs: class probabilities, ``(n_rows, n_classes)``.
        y: true class indices, ``(n_rows,)``.
        n_bins: number of equal-width confidence bins.
    """
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    confidence, correct = probs.max(1), (probs.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins (lo, hi], as torchmetrics' MulticlassCalibrationError; confidence 0 falls in the first
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, correct, minlength=n_bins) / count
    return ReliabilityBins(edges, mean_confidence, accuracy, count)


def expected_calibration_error(probs, y, n_bins: int = 15) -> float:
    """ECE of the top-label confidence over ``n_bins`` equal-width bins (0 for a perfectly calibrated model): the
    validation/test metric (:class:`~tabularnet.training.metrics.ExpectedCalibrationError`) on one table."""
    metric = ExpectedCalibrationError(n_bins, sync_on_compute=False)  # one table, one process (figures: rank 0)
    metric.update(torch.as_tensor(np.asarray(probs)), torch.as_tensor(np.asarray(y)).long())
    return float(metric.compute())


def calibrated_probabilities(logits: torch.Tensor, temperature: float | torch.Tensor = 1.0) -> torch.Tensor:
    """``softmax(logits / T)`` in float32: every model's class probabilities (training, predict, export); for an
    ensemble's ``(n, k, n_classes)`` logits the members' ``softmax(s_i / T)`` averaged
    (:func:`~tabularnet.training.ensemble.mean_probabilities`)."""
    return mean_probabilities(logits, temperature)


def fit_temperature(logits: torch.Tensor, y: torch.Tensor, *, max_iter: int = 100) -> float:
    """The temperature T > 0 that minimises the negative log-likelihood of ``softmax(logits / T)``.

    Optimised over log T with L-BFGS, so T stays positive. ``logits``: ``(n_rows, n_classes)``, or an ensemble's
    ``(n_rows, k, n_classes)`` (the likelihood of the members' averaged ``softmax(s_i / T)``: one T for every
    member); ``y``: class indices. Returns 1.0 for empty inputs.
    """
    if len(y) == 0:
        return 1.0
    logits, y = logits.detach().double(), y.detach().long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        if logits.ndim == 3:
            loss = torch.nn.functional.nll_loss(mean_log_probabilities(logits, log_t.exp()), y)
        else:
            loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


@torch.no_grad()
def network_outputs(net: torch.nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits ``(n, n_classes)`` (``(n, k, n_classes)`` for an ensemble of k members; float, on the CPU) of ``net``
    over every batch of ``loader`` and the labels ``(n,)`` (``None`` when the batches have none), in eval mode (the
    network's mode is restored afterwards)."""
    was_training, device = net.training, next(net.parameters()).device
    net.eval()
    logits, labels = [], []
    for batch in loader:
        logits.append(net(batch["x_num"].to(device), batch["x_cat"].to(device)).float().cpu())
        if "y" in batch:
            labels.append(batch["y"])
    net.train(was_training)
    return torch.cat(logits), (torch.cat(labels) if labels else None)


def network_logits(net: torch.nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of a labeled ``loader`` (see :func:`network_outputs`)."""
    logits, labels = network_outputs(net, loader)
    if labels is None:
        raise ValueError("network_logits needs batches with labels (y)")
    return logits, labels


def temperature_scaling(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The fitted temperature and the ECE of ``logits`` before and after dividing by it (validation split)."""
    temperature = fit_temperature(logits, y)
    return {
        "temperature": temperature,
        "val_ece_uncalibrated": expected_calibration_error(calibrated_probabilities(logits), y),
        "val_ece_calibrated": expected_calibration_error(calibrated_probabilities(logits, temperature), y),
    }
