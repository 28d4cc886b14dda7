"""The figures of a run, as pure functions of labels and probabilities: matplotlib ``Figure`` objects.

No pyplot: figures are built on the Agg canvas directly, so importing tabularnet never changes the user's
matplotlib backend.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import auc, confusion_matrix, roc_curve

from tabularnet.training.calibration import expected_calibration_error, reliability_bins

MAX_ANNOTATED_CLASSES = 20  # beyond this the confusion matrix's cells are too small for numbers
MAX_ROC_CURVES = 12  # one-vs-rest curves drawn for many-class problems (the largest classes)


def _figure(width: float = 5.5, height: float = 4.5) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def confusion_matrix_figure(y, probs, classes: Sequence, title: str = "confusion matrix") -> Figure:
    """Counts of (true, predicted) classes, coloured by the share of each true class (row-normalised)."""
    n = len(classes)
    counts = confusion_matrix(np.asarray(y), np.asarray(probs).argmax(1), labels=range(n))
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = min(4.5 + 0.25 * n, 12)
    figure = _figure(size + 1, size)
    ax = figure.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="share of the true class")
    names = [str(c) for c in classes]
    ax.set_xticks(range(n), names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (n={int(counts.sum())})")
    if n <= MAX_ANNOTATED_CLASSES:
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    return figure


def roc_figure(y, probs, classes: Sequence, title: str = "ROC") -> Figure:
    """Binary: the ROC curve of the second class. More classes: one-vs-rest curves (the largest classes)."""
    y, probs = np.asarray(y), np.asarray(probs)
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    if len(classes) == 2:
        shown = [1]
    else:
        shown = list(np.argsort(-np.bincount(y, minlength=len(classes)))[:MAX_ROC_CURVES])
    for k in sorted(shown):
        positive = y == k
        if positive.all() or not positive.any():
            continue  # a class absent from (or alone in) this split has no ROC curve
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        label = f"AUC {auc(fpr, tpr):.3f}" if len(classes) == 2 else f"{classes[k]}: AUC {auc(fpr, tpr):.3f}"
        ax.plot(fpr, tpr, linewidth=1.5, label=label)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    suffix = f" (positive class: {classes[1]})" if len(classes) == 2 else " (one vs rest)"
    ax.set_title(title + suffix)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize="small")
    return figure


def reliability_figure(
    y, probs_by_name: Mapping[str, np.ndarray], n_bins: int = 15, title: str = "reliability"
) -> Figure:
    """Reliability diagram: accuracy against mean top-label confidence per bin, one line per set of
    probabilities (e.g. before and after temperature scaling), ECE in the legend; confidence histogram below."""
    figure = _figure(5.5, 6.0)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for name, probs in probs_by_name.items():
        bins = reliability_bins(probs, y, n_bins)
        filled, ece = bins.count > 0, expected_calibration_error(probs, y, n_bins)
        top.plot(bins.confidence[filled], bins.accuracy[filled], marker="o", label=f"{name}: ECE {ece:.4f}")
        centers = (bins.edges[:-1] + bins.edges[1:]) / 2
        bottom.step(centers, bins.count / max(bins.count.sum(), 1), where="mid", label=name)
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.01)
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("share of rows")
    return figure


MAX_SCATTER_POINTS = 20_000  # regression scatter plots draw a fixed random sample of larger splits


def _scatter_sample(n: int) -> np.ndarray:
    return np.arange(n) if n <= MAX_SCATTER_POINTS else np.sort(np.random.default_rng(0).choice(n, MAX_SCATTER_POINTS))


def predicted_vs_actual_figure(y, prediction, title: str = "predicted vs actual") -> Figure:
    """Regression: each row's prediction against its target, with the identity line (a perfect model)."""
    y, prediction = np.asarray(y, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    rows = _scatter_sample(len(y))
    figure = _figure()
    ax = figure.subplots()
    ax.scatter(y[rows], prediction[rows], s=4, alpha=0.3, linewidths=0)
    low, high = (float(min(y.min(), prediction.min())), float(max(y.max(), prediction.max()))) if len(y) else (0, 1)
    ax.plot([low, high], [low, high], color="black", linestyle="--", linewidth=1, label="identity")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return figure


def residuals_figure(y, prediction, title: str = "residuals") -> Figure:
    """Regression: residuals (actual - predicted) against the prediction (left) and their histogram (right)."""
    y, prediction = np.asarray(y, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    residual, rows = y - prediction, _scatter_sample(len(y))
    figure = _figure(10, 4)
    scatter_ax, histogram_ax = figure.subplots(1, 2)
    scatter_ax.scatter(prediction[rows], residual[rows], s=4, alpha=0.3, linewidths=0)
    scatter_ax.axhline(0.0, color="black", linestyle="--", linewidth=1)
    scatter_ax.set_xlabel("predicted")
    scatter_ax.set_ylabel("residual (actual - predicted)")
    scatter_ax.set_title(title)
    histogram_ax.hist(residual, bins=50)
    for ax in (scatter_ax, histogram_ax):  # residuals in dollars: long tick labels
        ax.tick_params(axis="x", labelrotation=30)
    histogram_ax.set_xlabel("residual (actual - predicted)")
    histogram_ax.set_ylabel("rows")
    histogram_ax.set_title(f"{title}: histogram")
    return figure


def learning_curves_figure(
    curves: Mapping[str, Sequence[tuple[float, float]]], teacher: Mapping[str, float] | None = None
) -> Figure:
    """Per-epoch losses (left) and validation accuracy -- regression: RMSE -- (right) from
    ``{tag: [(epoch, value), ...]}``; a teacher's ``teacher_val_logloss`` / ``teacher_val_acc`` (``_rmse``) are
    drawn as horizontal lines (student vs teacher)."""
    teacher = teacher or {}
    score = "rmse" if curves.get("val_rmse") else "acc"
    figure = _figure(10, 4)
    loss_ax, acc_ax = figure.subplots(1, 2)
    for tag in ("train_loss", "val_loss"):
        if curves.get(tag):
            epochs, values = zip(*curves[tag])
            loss_ax.plot(epochs, values, marker=".", label=tag)
    if "teacher_val_logloss" in teacher:
        loss_ax.axhline(teacher["teacher_val_logloss"], color="black", linestyle="--", label="teacher val_logloss")
    if curves.get(f"val_{score}"):
        epochs, values = zip(*curves[f"val_{score}"])
        label = f"student val_{score}" if f"teacher_val_{score}" in teacher else f"val_{score}"
        acc_ax.plot(epochs, values, marker=".", color="tab:green", label=label)
    if f"teacher_val_{score}" in teacher:
        acc_ax.axhline(teacher[f"teacher_val_{score}"], color="black", linestyle="--", label=f"teacher val_{score}")
    title = "validation RMSE" if score == "rmse" else "validation accuracy"
    for ax, name in ((loss_ax, "loss"), (acc_ax, title)):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: 0, 1, 2, never 0.5
        ax.set_title(name)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def figure_array(figure: Figure) -> np.ndarray:
    """The figure as an RGB ``uint8`` array ``(H, W, 3)`` (for TensorBoard's ``add_image``)."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
