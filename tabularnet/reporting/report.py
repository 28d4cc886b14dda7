"""``tabularnet report RUN_DIR``: one self-contained HTML page of a run (metrics, figures, config)."""

from __future__ import annotations

import argparse
import base64
import html
import json
import struct
from pathlib import Path

from tabularnet import atomic
from tabularnet.data.schema import DataError
from tabularnet.reporting.summary import metrics_grid, run_facts

FIGURE_ORDER = (
    "learning_curves",
    "reliability_val",
    "reliability_test",
    "roc_val",
    "roc_test",
    "confusion_matrix_val",
    "confusion_matrix_test",
    "predicted_vs_actual_val",
    "predicted_vs_actual_test",
    "residuals_val",
    "residuals_test",
)
FIGURE_CAPTIONS = {
    "learning_curves": "Learning curves: training and validation loss, validation accuracy or RMSE (teacher dashed)",
    "reliability_val": "Reliability diagram, validation split (expected calibration error in the legend)",
    "reliability_test": "Reliability diagram, test split",
    "roc_val": "ROC, validation split",
    "roc_test": "ROC, test split",
    "confusion_matrix_val": "Confusion matrix, validation split",
    "confusion_matrix_test": "Confusion matrix, test split",
    "predicted_vs_actual_val": "Predicted against actual, validation split (dashed: the identity line)",
    "predicted_vs_actual_test": "Predicted against actual, test split (dashed: the identity line)",
    "residuals_val": "Residuals against the prediction, and their histogram, validation split",
    "residuals_test": "Residuals against the prediction, and their histogram, test split",
}
STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 10px; }
td.num { text-align: right; font-family: monospace; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { font-size: 13px; color: #555; max-width: 560px; }
pre { background: #f6f6f6; padding: 12px; font-size: 12px; overflow-x: auto; }
"""


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def run_figures(run_dir: Path) -> dict[str, bytes]:
    """PNG bytes of the run's figures, in report order; the learning curves are drawn from the event files when
    the run saved no PNG of them."""
    pngs = {path.stem: path.read_bytes() for path in sorted((run_dir / "figures").glob("*.png"))}
    if "learning_curves" not in pngs and any(run_dir.glob("events.out.tfevents.*")):
        from tabularnet.reporting.figures import figure_png
        from tabularnet.reporting.run import learning_curves

        pngs.update({name: figure_png(fig) for name, fig in learning_curves(run_dir).items()})
    order = {name: i for i, name in enumerate(FIGURE_ORDER)}
    return dict(sorted(pngs.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def _metrics_table(metrics: dict) -> str:
    """:func:`~tabularnet.reporting.summary.metrics_grid` as HTML."""
    titles, rows = metrics_grid(metrics)
    head = "".join(f"<th>{html.escape(title)}</th>" for title in titles)
    body = "".join(
        f"<tr><th>{name}</th>" + "".join(f'<td class="num">{cell}</td>' for cell in cells) + "</tr>"
        for name, cells in rows
    )
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>"


def _all_metrics(metrics: dict) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(k)}</td><td class="num">{html.escape(str(v))}</td></tr>'
        for k, v in sorted(metrics.items())
    )
    return f"<table>{rows}</table>"


def _figure_html(name: str, png: bytes) -> str:
    width, height = png_size(png)
    caption = html.escape(FIGURE_CAPTIONS.get(name, name.replace("_", " ")))
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="figure-{name}"><img class="figure" alt="{html.escape(name)}" width="{width}" '
        f'height="{height}" src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>'
    )


def render_report(run_dir: str | Path) -> str:
    """The HTML page of the run in ``run_dir`` (a ``lightning_logs/version_N`` folder)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"report: run directory not found: {run_dir}")
    metrics_path, config_path = run_dir / "metrics.json", run_dir / "config.yaml"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    timings_path = run_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    figures = run_figures(run_dir)
    if not metrics and not figures and not config_path.is_file():
        raise DataError(f"report: {run_dir} is not a tabularnet run (no metrics.json, config.yaml or figures/)")
    parts = [
        f"<h1>tabularnet run {html.escape(run_dir.name)}</h1>",
        f"<p><code>{html.escape(str(run_dir.resolve()))}</code></p>",
    ]
    if metrics:
        facts = "".join(f"<li>{html.escape(line)}</li>" for line in run_facts({**metrics, **timings}))
        checkpoint = html.escape(str(metrics.get("best_checkpoint") or "(none)"))
        parts += ["<h2>Metrics</h2>", _metrics_table(metrics), f"<ul>{facts}<li>checkpoint: {checkpoint}</li></ul>"]
    if figures:
        parts += [
            "<h2>Figures</h2>",
            '<div class="figures">',
            *(_figure_html(n, p) for n, p in figures.items()),
            "</div>",
        ]
    if config_path.is_file():
        parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(config_path.read_text())}</pre>"]
    if metrics:
        parts += ["<h2>All metrics (metrics.json)</h2>", _all_metrics(metrics)]
    title = html.escape(f"tabularnet run {run_dir.name}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write :func:`render_report` to ``output`` (default ``RUN_DIR/report.html``, atomically) and return its path."""
    page = render_report(run_dir)
    output = Path(output) if output else Path(run_dir) / "report.html"
    atomic.write_text(output, page)
    return output


def report_main(args: list[str]) -> Path:
    """``tabularnet report RUN_DIR [--output PATH]``."""
    parser = argparse.ArgumentParser(
        prog="tabularnet report",
        description="Write one self-contained HTML page of a run: metrics, figures (embedded PNG) and config.",
    )
    parser.add_argument("run_dir", help="a run's log directory, e.g. lightning_logs/version_0")
    parser.add_argument("--output", "-o", default=None, help="where to write the page (default RUN_DIR/report.html)")
    options = parser.parse_args(args)
    path = write_report(options.run_dir, options.output)
    print(f"report: {path}")
    return path
