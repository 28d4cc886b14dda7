"""The figures of a finished run: computed from the model and its data, saved as PNG files in the run directory
(``figures/<name>.png``, which ``tabularnet report`` embeds) and logged as TensorBoard images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tabularnet import atomic
from tabularnet.data.task import unscale_target
from tabularnet.reporting.events import epoch_curves, read_scalars
from tabularnet.reporting.figures import (
    confusion_matrix_figure,
    figure_array,
    figure_png,
    learning_curves_figure,
    predicted_vs_actual_figure,
    reliability_figure,
    residuals_figure,
    roc_figure,
)
from tabularnet.training.calibration import calibrated_probabilities

FIGURES_DIR = "figures"
CURVE_TAGS = ("train_loss", "val_loss", "val_acc", "val_rmse")
SPLIT_NAMES = {"val": "validation", "test": "test"}


def split_probabilities(model, datamodule, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(y, calibrated probabilities, uncalibrated probabilities)`` of ``model`` on ``split``; ``None`` when the
    split has no data. Every rank sees the whole split (no sharding), so all ranks draw the same figures."""
    loader = datamodule.unsharded_loader(split)
    if loader is None:
        return None
    logits, y = model.split_logits(loader)
    calibrated = calibrated_probabilities(logits, float(model.temperature))
    return y.numpy(), calibrated.numpy(), calibrated_probabilities(logits).numpy()


def split_predictions(model, datamodule, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Regression: ``(targets, predictions)`` of ``model`` on ``split`` in original units; ``None`` without data."""
    loader = datamodule.unsharded_loader(split)
    if loader is None:
        return None
    outputs, y = model.split_logits(loader)
    scaling = model.target_scaling
    return unscale_target(y.double(), scaling).numpy(), model.task.outputs(outputs.double(), 1.0, scaling).numpy()


def regression_figures(model, datamodule, splits: tuple[str, ...]) -> dict[str, Figure]:
    """Predicted vs actual (with the identity line) and the residuals (against the prediction, and their
    histogram) of each split."""
    figures = {}
    for split in splits:
        result = split_predictions(model, datamodule, split)
        if result is not None:
            name = SPLIT_NAMES[split]
            figures[f"predicted_vs_actual_{split}"] = predicted_vs_actual_figure(
                *result, f"predicted vs actual, {name}"
            )
            figures[f"residuals_{split}"] = residuals_figure(*result, f"residuals, {name}")
    return figures


def evaluation_figures(model, datamodule, splits: tuple[str, ...] = ("val", "test")) -> dict[str, Figure]:
    """Confusion matrix, ROC and reliability diagram of each split; with a fitted temperature the reliability
    diagram shows the probabilities before and after temperature scaling. Regression: :func:`regression_figures`."""
    if model.task.name == "regression":
        return regression_figures(model, datamodule, splits)
    figures, classes = {}, [str(c) for c in datamodule.classes]
    temperature = float(model.temperature)
    for split in splits:
        result = split_probabilities(model, datamodule, split)
        if result is None:
            continue
        y, probs, uncalibrated = result
        name = SPLIT_NAMES[split]
        figures[f"confusion_matrix_{split}"] = confusion_matrix_figure(y, probs, classes, f"confusion matrix, {name}")
        figures[f"roc_{split}"] = roc_figure(y, probs, classes, f"ROC, {name}")
        curves = {"model": probs}
        if temperature != 1.0:
            curves = {"uncalibrated": uncalibrated, f"temperature T={temperature:.3f}": probs}
        figures[f"reliability_{split}"] = reliability_figure(y, curves, title=f"reliability, {name}")
    return figures


def learning_curves(log_dir: str | Path, teacher_metrics: dict | None = None) -> dict[str, Figure]:
    """The learning-curves figure from the run's event files (empty when they hold no curves)."""
    curves = epoch_curves(read_scalars(log_dir), CURVE_TAGS)
    if not any(curves.values()):
        return {}
    return {"learning_curves": learning_curves_figure(curves, teacher_metrics)}


def save_figures(figures: dict[str, Figure], log_dir: str | Path, experiment=None, step: int = 0) -> list[Path]:
    """Write ``log_dir/figures/<name>.png`` (atomically: each file is its old or its complete new version) and,
    given a TensorBoard ``SummaryWriter``, log ``figures/<name>``."""
    folder = Path(log_dir) / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        path = folder / f"{name}.png"
        atomic.write_bytes(path, figure_png(figure))
        paths.append(path)
        if experiment is not None:
            experiment.add_image(f"figures/{name}", figure_array(figure), step, dataformats="HWC")
    if experiment is not None:
        experiment.flush()
    return paths
