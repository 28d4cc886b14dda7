"""How the no-config defaults were chosen: candidate defaults on every shared classification dataset, by VALIDATION.

Each candidate is ``tabularnet fit`` with only the dataset, the split, the seed and the candidate's flags (the
adaptive budget of tabularnet/training/budget.py: early stopping on ``val_loss``), exactly as the ``no config``
column of bench/accuracy.py runs. Beside it, the untuned and the lightly tuned XGBoost on the same splits
(bench/xgboost_baselines.py). A candidate is judged by its validation accuracy against XGBoost's validation
accuracy, never by the test split: first the number of datasets where it is within 0.5 points of XGBoost or above,
then the worst gap, then the mean gap. The test accuracy is recorded (it is what bench/accuracy.py reports once a
default is chosen) but never read here.

    python bench/defaults.py --candidates standard quantile --out /tmp/a.json    # one stream
    python bench/defaults.py --report /tmp/a.json /tmp/b.json                   # the ranking of all streams

Writes bench/results/defaults.json (``--report``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import DATASETS, run  # noqa: E402
from bench.xgboost_baselines import xgboost_scores  # noqa: E402

# name -> flags added to the bare `tabularnet fit` (each names its scaling and embedding: the defaults move)
CANDIDATES = {
    "standard": ["--data.scaling=standard", "--model.num_embedding=none"],
    "quantile": ["--data.scaling=quantile", "--model.num_embedding=none"],
    "quantile+PLE": ["--data.scaling=quantile", "--model.num_embedding=ple"],
    "quantile+PLR 0.5": ["--data.scaling=quantile", "--model.num_embedding=plr", "--model.frequency_scale=0.5"],
    "quantile+PLR 2": ["--data.scaling=quantile", "--model.num_embedding=plr", "--model.frequency_scale=2"],
    "standard+PLE": ["--data.scaling=standard", "--model.num_embedding=ple"],
    "quantile+PLE, dropout 0.2, wd 1e-4": [
        "--data.scaling=quantile",
        "--model.num_embedding=ple",
        "--model.dropout=0.2",
        "--model.weight_decay=1e-4",
    ],
    "quantile+PLE, lr 3e-4": [
        "--data.scaling=quantile",
        "--model.num_embedding=ple",
        "--model.optimizer={name: AdamW, lr: 3.0e-4}",
    ],
    "quantile+PLR 20": ["--data.scaling=quantile", "--model.num_embedding=plr", "--model.frequency_scale=20"],
}
WITHIN = 0.005  # "within 0.5 accuracy points of XGBoost or above"


def study(candidates: list[str], datasets: list[str], seed: int, out: Path) -> None:
    results = json.loads(out.read_text()) if out.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="tabularnet-defaults-") as folder:
        for dataset in datasets:
            split = DATASETS[dataset][0]
            row = results.setdefault(dataset, {})
            if "XGBoost" not in row:
                # the untuned XGBoost is the yardstick (the tuned one takes ~20 min on covertype, one thread)
                row.update(xgboost_scores(dataset, 0.2 if split else None, tuned=False))
            for name in candidates:
                key = f"{name} seed {seed}"
                if key in row:
                    continue
                started = time.perf_counter()
                metrics = run(None, dataset, seed, [*split, *CANDIDATES[name]], Path(folder) / name.replace(" ", "_"))
                row[key] = {
                    "candidate": name,
                    "seed": seed,
                    "seconds": time.perf_counter() - started,
                    **{
                        k: metrics[k]
                        for k in ("val_acc", "val_loss", "test_acc", "epochs", "best_epoch")
                        if k in metrics
                    },
                    "stop_reason": metrics.get("stop_reason"),
                }
                print(
                    f"[{dataset}] {name} seed {seed}: val_acc={metrics['val_acc']:.4f} "
                    f"(XGBoost {row['XGBoost']['val_acc']:.4f}) epochs={metrics.get('epochs')} "
                    f"({row[key]['seconds']:.0f}s)",
                    flush=True,
                )
                out.write_text(json.dumps(results, indent=2) + "\n")
            out.write_text(json.dumps(results, indent=2) + "\n")


def merge(paths: list[Path]) -> dict:
    merged: dict = {}
    for path in paths:
        for dataset, row in json.loads(path.read_text()).items():
            merged.setdefault(dataset, {}).update(row)
    return merged


def ranking(results: dict) -> list[dict]:
    """Per candidate (over its seeds and the datasets it ran on): validation gaps to XGBoost, best first."""
    by_candidate: dict[str, dict[str, list]] = {}
    for dataset, row in results.items():
        for entry in row.values():
            if "candidate" in entry:
                by_candidate.setdefault(entry["candidate"], {}).setdefault(dataset, []).append(entry)
    rows = []
    for name, per_dataset in by_candidate.items():
        gaps = {
            d: statistics.fmean(e["val_acc"] for e in entries) - results[d]["XGBoost"]["val_acc"]
            for d, entries in per_dataset.items()
        }
        seconds = {d: statistics.fmean(e["seconds"] for e in entries) for d, entries in per_dataset.items()}
        rows.append(
            {
                "candidate": name,
                "datasets": len(gaps),
                "within": sum(gap >= -WITHIN for gap in gaps.values()),
                "worst": min(gaps.values()),
                "mean": statistics.fmean(gaps.values()),
                "gaps": gaps,
                "seconds": seconds,
            }
        )
    return sorted(rows, key=lambda r: (-r["datasets"], -r["within"], -r["worst"], -r["mean"]))


def table(results: dict) -> str:
    rows = ranking(results)
    datasets = list(results)
    lines = [
        "| candidate | within 0.5 pt | worst | mean | " + " | ".join(datasets) + " |",
        "|---" * (4 + len(datasets)) + "|",
    ]
    lines.append(
        "| XGBoost val acc | | | | " + " | ".join(f"{results[d]['XGBoost']['val_acc']:.4f}" for d in datasets) + " |"
    )
    for r in rows:
        cells = [f"{100 * r['gaps'][d]:+.2f} ({r['seconds'][d]:.0f} s)" if d in r["gaps"] else "—" for d in datasets]
        lines.append(
            f"| {r['candidate']} | {r['within']}/{r['datasets']} | {100 * r['worst']:+.2f} | {100 * r['mean']:+.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "defaults_stream.json"))
    parser.add_argument("--report", nargs="+", help="merge these stream files and print the ranking")
    args = parser.parse_args()
    if args.report:
        results = merge([Path(p) for p in args.report])
        markdown = table(results)
        output = {"results": results, "ranking": ranking(results), "table": markdown}
        (ROOT / "bench" / "results" / "defaults.json").write_text(json.dumps(output, indent=2) + "\n")
        print(markdown)
        return
    study(args.candidates, args.datasets, args.seed, Path(args.out))


if __name__ == "__main__":
    main()
