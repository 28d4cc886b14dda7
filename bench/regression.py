"""Regression benchmark (part of `make bench-accuracy`): XGBoost vs tabularnet's neural models, through the CLI.

For each dataset and seed, every neural model is trained by ``tabularnet fit`` exactly as a user would run it (the
YAML configs in configs/<dataset>/, with the seed given as a flag), and its test RMSE and R^2 (in the target's
original units) are read from the run's metrics.json. XGBoost (300 trees, learning rate 0.1, depth 6, no tuning)
is fitted on the same training split and measured on the same test split (bench/xgboost_baselines.py); the
distilled runs' teacher is set in their configs.

Splits: a fixed random 80/20 train/test split (``data.seed=0``, ``data.test_fraction=0.2`` in the configs), and
20% of the training part held out for validation (model selection: the best ``val_loss`` checkpoint). Seeds change
initialisation, batch order and augmentations, never the split.

Writes bench/results/regression.json and prints a markdown table (mean ± std over the seeds).
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

from bench.xgboost_baselines import regression_scores  # noqa: E402
from tabularnet.cli import main  # noqa: E402

DATASETS = ("california", "diamonds")
MODELS = {  # name -> config under configs/<dataset>/
    "MLP": "mlp.yaml",
    "MLP-PLR": "mlp_plr.yaml",
    "FT-Transformer": "ft_transformer.yaml",
    "MLP-PLR distilled": "mlp_plr_distill.yaml",
    "TabM-mini distilled": "tabm_mini_distill.yaml",  # california only (a dataset without the config skips it)
}
XGBOOST = "XGBoost"


def run(dataset: str, config: str, seed: int, root: Path) -> tuple[dict, float]:
    """One ``tabularnet fit``; returns its metrics.json and its wall time."""
    run_root = root / f"{dataset}-{Path(config).stem}-{seed}"
    started = time.perf_counter()
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs" / dataset / config),
            f"--seed_everything={seed}",
            f"--trainer.default_root_dir={run_root}",
            f"--data.teacher_cache_dir={root / 'teacher_cache'}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]
    )
    metrics = json.loads(next(run_root.glob("lightning_logs/version_*/metrics.json")).read_text())
    return metrics, time.perf_counter() - started


def summarize(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def table(results: dict) -> str:
    names = [XGBOOST, *MODELS]
    lines = ["| dataset | metric | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for dataset in [d for d in DATASETS if d in results]:
        for metric, digits in (("rmse", 1), ("r2", 4)):
            cells = []
            for name in names:
                cell = results[dataset].get(name, {}).get(metric)
                cells.append(f"{cell['mean']:,.{digits}f} ± {cell['std']:,.{digits}f}" if cell else "—")
            lines.append(
                f"| {dataset} | test {metric.upper() if metric == 'rmse' else 'R²'} | " + " | ".join(cells) + " |"
            )
        seconds = [results[dataset].get(name, {}).get("seconds") for name in names]
        lines.append(f"| {dataset} | seconds per fit | " + " | ".join(f"{s:.0f}" if s else "—" for s in seconds) + " |")
    return "\n".join(lines)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "regression.json"))
    parser.add_argument("--merge", action="store_true", help="update the datasets/models run here in --out")
    args = parser.parse_args()
    results, started = {}, time.perf_counter()
    if args.merge and Path(args.out).is_file():
        results = json.loads(Path(args.out).read_text())["results"]
    with tempfile.TemporaryDirectory(prefix="tabularnet-bench-") as folder:
        for dataset in args.datasets:
            row = results.setdefault(dataset, {})
            scores = regression_scores(dataset)
            row[XGBOOST] = {
                "rmse": summarize([scores["test_rmse"]]),
                "r2": summarize([scores["test_r2"]]),
                "val_rmse": summarize([scores["val_rmse"]]),
                "seconds": scores["seconds"],
            }
            for name in args.models:
                if not (ROOT / "configs" / dataset / MODELS[name]).is_file():
                    continue
                runs = [run(dataset, MODELS[name], seed, Path(folder)) for seed in range(args.seeds)]
                row[name] = {
                    "rmse": summarize([m["test_rmse"] for m, _ in runs]),
                    "r2": summarize([m["test_r2"] for m, _ in runs]),
                    "val_rmse": summarize([m["val_rmse"] for m, _ in runs]),
                    "seconds": statistics.fmean(seconds for _, seconds in runs),
                }
                print(f"{dataset} {name}: test RMSE {row[name]['rmse']['mean']:,.1f}", flush=True)
                # after every model: a stopped run keeps its rows
                write(args.out, args.seeds, started, results, args.merge)
    print(table(results))


def write(path: str, seeds: int, started: float, results: dict, merge: bool = False) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # --merge keeps what the file says about the earlier runs; this run is recorded as the latest
    meta = json.loads(out.read_text()).get("meta", {}) if merge and out.is_file() else {}
    meta["latest_run"] = {"seeds": seeds, "minutes": round((time.perf_counter() - started) / 60, 1)}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main_bench()
