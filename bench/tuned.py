"""The best trial of a finished `tabularnet tune` study, scored on the test split the search never saw.

``python bench/tuned.py DIR [DIR ...]``: for each study folder (``--output_dir`` of ``tabularnet tune``), reads
``trials.csv``, takes the best complete trial by the study's metric, runs ``tabularnet test --ckpt_path`` on that
trial's best checkpoint (the checkpoint holds the data config, so the split is the trial's own) and prints one JSON
line: trials by state, the trials' total and mean seconds, the best trial's values, its validation and test
accuracy.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tabularnet.cli import main  # noqa: E402


def best_checkpoint(run_dir: Path) -> Path:
    """The trial's best checkpoint, as its fit's ``metrics.json`` names it."""
    return Path(json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"])


def test_accuracy(checkpoint: Path) -> float:
    printed = io.StringIO()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(printed):
        main(
            [
                "test",
                f"--ckpt_path={checkpoint}",
                "--trainer.enable_progress_bar=false",
                f"--trainer.default_root_dir={folder}",
            ]
        )
    match = re.search(r"test_acc\s*│\s*([0-9.]+)", printed.getvalue())
    if not match:
        raise SystemExit(f"{checkpoint}: no test_acc in the output of tabularnet test")
    return float(match.group(1))


def report(folder: Path) -> dict:
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    metric = list(rows[0])[2]  # number, state, <metric>, seconds, ...
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    minimize = metric.endswith(("loss", "ece"))
    best = (min if minimize else max)(complete, key=lambda r: float(r[metric]))
    seconds = [float(r["seconds"]) for r in rows if r["seconds"]]
    states = {s: sum(r["state"] == s for r in rows) for s in sorted({r["state"] for r in rows})}
    values = {k: v for k, v in best.items() if k.startswith(("model.", "data.", "trainer."))}
    return {
        "study": str(folder),
        "trials": states,
        "seconds_total": sum(seconds),
        "seconds_mean": sum(seconds) / max(1, len(seconds)),
        "best_trial": int(best["number"]),
        metric: float(best[metric]),
        "val_acc": float(best["val_acc"]),
        "test_acc": test_accuracy(best_checkpoint(Path(best["run_dir"]))),
        "values": values,
    }


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps(report(Path(arg))), flush=True)
