"""The table printed at the end of ``tabularnet fit``: metrics of the best checkpoint (or, without checkpoints, of the
last epoch's weights), the teacher's, the time."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

# metrics.json's "evaluated_weights" when the run wrote no checkpoints (`--trainer.enable_checkpointing false`)
LAST_EPOCH = "last_epoch"
METRIC_NAMES = ("acc", "auroc", "logloss", "f1_macro", "ece", "rmse", "mae", "r2")
COLUMNS = (
    ("val_", "validation"),
    ("test_", "test"),
    ("teacher_val_", "teacher val"),
    ("teacher_test_", "teacher test"),
)


def format_metric(value: float) -> str:
    """A metric for people: 4 decimals, or 1 with thousands separators from 1000 on (an RMSE in dollars)."""
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"


def metrics_grid(metrics: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The one metrics table of a run, for the terminal and the HTML report: column titles (validation, test and,
    when distilling, the teacher's) and one row per metric, ``(name, cells)``, cells formatted, ``""`` if absent."""
    columns = [(prefix, title) for prefix, title in COLUMNS if any(prefix + m in metrics for m in METRIC_NAMES)]
    rows = [
        (name, [format_metric(metrics[prefix + name]) if prefix + name in metrics else "" for prefix, _ in columns])
        for name in METRIC_NAMES
        if any(prefix + name in metrics for prefix, _ in columns)
    ]
    return [title for _, title in columns], rows


def summary_table(metrics: dict) -> Table:
    """:func:`metrics_grid` as a Rich table, titled by the weights it evaluated."""
    titles, rows = metrics_grid(metrics)
    title = "last epoch's weights" if metrics.get("evaluated_weights") == LAST_EPOCH else "best checkpoint"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for column in titles:
        table.add_column(column, justify="right")
    for name, cells in rows:
        table.add_row(name, *cells)
    return table


def run_facts(metrics: dict) -> list[str]:
    """One line per fact about the run: which weights were evaluated, best epoch, calibration, training time."""
    facts = []
    if metrics.get("evaluated_weights") == LAST_EPOCH:
        facts.append("no checkpoints (trainer.enable_checkpointing false): evaluated the last epoch's weights")
    if "best_epoch" in metrics:
        facts.append(f"best epoch: {metrics['best_epoch']} (of {metrics.get('epochs', '?')} trained, from 0)")
    if "stop_reason" in metrics:
        facts.append(f"stopped: {metrics['stop_reason']}")
    if "temperature" in metrics:
        facts.append(
            f"calibration: temperature {metrics['temperature']:.4f}, validation ECE "
            f"{metrics['val_ece_uncalibrated']:.4f} -> {metrics['val_ece_calibrated']:.4f}"
            + (
                f", test ECE {metrics['test_ece_uncalibrated']:.4f} -> {metrics['test_ece']:.4f}"
                if "test_ece_uncalibrated" in metrics and "test_ece" in metrics
                else ""
            )
        )
    if "fit_seconds" in metrics:
        facts.append(f"time: {metrics['fit_seconds']:.1f} s (training {metrics.get('train_seconds', 0):.1f} s)")
    return facts


def print_summary(metrics: dict, console: Console | None = None) -> None:
    """Print :func:`summary_table` and :func:`run_facts`."""
    console = console or Console(highlight=False)
    console.print(summary_table(metrics))
    for line in run_facts(metrics):
        console.print(line)
