"""Accuracy benchmark (`make bench-accuracy`): XGBoost teacher vs tabularnet's neural models, through the CLI.

For each dataset and seed, every neural model is trained by ``tabularnet fit`` exactly as a user would run it
(the YAML configs in configs/bench/, with the dataset and seed given as flags) and its test accuracy is read
from the run's metrics.json. The ``no config`` column is ``tabularnet fit`` with only the dataset, the split and the
seed: the defaults a user's unseen table gets (the adaptive budget of tabularnet/training/budget.py). XGBoost
untuned and lightly tuned (bench/xgboost_baselines.py) run on the same splits; their time and the no-config fit's
are shown beside their accuracy. The XGBoost teacher's figures are those the distillation run records for it
(fitted on the same training split, measured on the same test split).

Splits: Adult uses the official UCI split; the other datasets a fixed stratified 80/20 train/test split
(``data.seed=0``), and 20% of the training part is held out for validation (early model selection by the best
``val_loss`` checkpoint). Seeds change initialisation, batch order and augmentations, never the split.

Epochs: the no-config run and every config that fixes no ``trainer.max_epochs`` (the MLP, TabM and the
FT-Transformer) train under the adaptive budget: early stopping on ``val_loss`` with patience 16, the best epoch
kept, at most ~20,000 steps. Their time is shown beside their accuracy. The hand-made configs (MLP-PLR, MLP-PLE,
distilled) keep their fixed epochs (30 on covertype, 60 on letter, the config's elsewhere).

``--jobs N`` runs N fits at once, each in its own process (a GPU machine: all share the GPU), the slow models' fits
first in the order of ``--datasets`` (put the large tables first); the results file is rewritten after every fit,
so a run stopped part-way keeps what it measured. ``--flags=FLAG`` (repeatable) adds a `tabularnet fit` flag to every
fit (``--flags=--data.device_resident=true`` on a GPU). Each result records the device it ran on.

Writes bench/results/accuracy.json and prints a markdown table (mean ± std test accuracy over the seeds).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.xgboost_baselines import xgboost_scores  # noqa: E402
from tabularnet.cli import main  # noqa: E402

SPLIT = ["--data.test_fraction=0.2"]
DATASETS = {  # name -> (split flags, the fixed-epoch configs' epoch flags, note for the table)
    "adult": ([], [], "official split; PLR frequency_scale 20"),
    "higgs": (SPLIT, [], "10,984-row subset"),
    "covertype": (SPLIT, ["--trainer.max_epochs=30"], "16% subsample; fixed-epoch configs: 30 epochs"),
    "bank-marketing": (SPLIT, [], ""),
    "letter": (SPLIT, ["--trainer.max_epochs=60"], "26 classes; fixed-epoch configs: 60 epochs"),
    "magic-telescope": (SPLIT, [], ""),
    "electricity": (SPLIT, [], ""),
    "credit-g": (SPLIT, [], "1,000 rows"),
    "titanic": (SPLIT, [], "891 rows"),
}
NO_CONFIG = "no config"  # `tabularnet fit` with only the dataset, the split and the seed: the adaptive defaults
XGBOOST = ("XGBoost", "XGBoost tuned")  # bench/xgboost_baselines.py, on the same splits
MODELS = {  # name -> config under configs/bench (None: no config)
    NO_CONFIG: None,
    "MLP": "mlp.yaml",
    "TabM": "tabm.yaml",
    "TabM-PLE": "tabm_ple.yaml",
    "MLP-PLR": "mlp_plr.yaml",
    "MLP-PLE": "mlp_ple.yaml",
    "FT-Transformer": "ft_transformer.yaml",
    "MLP-PLR distilled": "mlp_plr_distill.yaml",
}
# PLR's frequency scale is the embedding's most sensitive setting (Gorishniy et al. tune it per dataset). On Adult
# a sweep chose 20 by validation loss and accuracy (0.278 vs 0.295 at 0.5); elsewhere the configs' 0.5 stands.
MODEL_FLAGS = {
    ("adult", "MLP-PLR"): ["--model.init_args.frequency_scale=20"],
    ("adult", "MLP-PLR distilled"): ["--model.init_args.frequency_scale=20"],
}
TEACHER = "MLP-PLR distilled"  # the run whose metrics.json carries the teacher's figures
SLOW_MODELS = ("FT-Transformer", "TabM", "TabM-PLE")  # with --jobs, their fits start first, in the order of --datasets


@functools.cache  # read once per model: the table asks for every cell after every fit
def budgeted(name: str) -> bool:
    """Whether the model trains under the adaptive budget (early stopping): no config, or a config that fixes no
    ``trainer.max_epochs``. The others get their dataset's epoch flags."""
    config = MODELS[name]
    if config is None:
        return True
    trainer = (yaml.safe_load((ROOT / "configs" / "bench" / config).read_text()) or {}).get("trainer") or {}
    return trainer.get("max_epochs") is None


def run(config: str | None, dataset: str, seed: int, extra: list[str], root: Path) -> dict:
    """One ``tabularnet fit`` (``config`` None: without a config); returns its metrics.json."""
    run_root = root / f"{dataset}-{Path(config).stem if config else 'no-config'}-{seed}"
    main(
        [
            "fit",
            *(["--config", str(ROOT / "configs" / "bench" / config)] if config else []),
            f"--data.dataset={dataset}",
            f"--seed_everything={seed}",
            f"--trainer.default_root_dir={run_root}",
            f"--data.teacher_cache_dir={root / 'teacher_cache'}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            *extra,
        ]
    )
    return json.loads(next(run_root.glob("lightning_logs/version_*/metrics.json")).read_text())


def fit_job(job: tuple[str, str, int], flags: list[str], root: str) -> dict:
    """One (dataset, model, seed) fit, timed; in a worker process with ``--jobs``."""
    import torch

    dataset, name, seed = job
    started = time.perf_counter()
    metrics = run(MODELS[name], dataset, seed, job_flags(dataset, name) + flags, Path(root))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"metrics": metrics, "seconds": time.perf_counter() - started, "device": device}


def job_flags(dataset: str, name: str) -> list[str]:
    split, epoch_flags, _ = DATASETS[dataset]
    return split + ([] if budgeted(name) else epoch_flags) + MODEL_FLAGS.get((dataset, name), [])


def summarize(values: list[float], seconds: list[float] | None = None) -> dict:
    return {
        **({"seconds": statistics.fmean(seconds)} if seconds else {}),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def table(results: dict, seeds: int = 3) -> str:
    """The markdown table; a model's cell with fewer than ``seeds`` fits says how many it has."""
    names = [*XGBOOST, *MODELS]
    lines = ["| dataset | " + " | ".join(names) + " | note |", "|---" * (len(names) + 2) + "|"]
    for dataset in [d for d in DATASETS if d in results]:
        row = results[dataset]
        cells = []
        for name in names:
            cell = row.get(name)
            text = f"{cell['mean']:.4f} ± {cell['std']:.4f}" if cell else "—"
            if cell and (name in XGBOOST or budgeted(name)) and "seconds" in cell:
                text += f" ({cell['seconds']:.0f} s)"
            if cell and name not in XGBOOST and len(cell["values"]) < seeds:
                text += f" [{len(cell['values'])} of {seeds} seeds]"
            cells.append(text)
        lines.append(f"| {dataset} | " + " | ".join(cells) + f" | {DATASETS[dataset][2]} |")
    return "\n".join(lines)


RUN_KEYS = ("seconds", "seeds", "results", "table")  # what a run writes; a merge keeps the file's other keys


class Results:
    """The results file, rewritten after every fit: a run stopped part-way keeps what it measured."""

    def __init__(self, out: Path, merge: bool, seeds: int) -> None:
        self.out, self.seeds, self.started = out, seeds, time.perf_counter()
        earlier = json.loads(out.read_text()) if merge and out.is_file() else {}
        self.results = earlier.get("results", {})
        # the file's other sections (earlier studies, partial runs) stay as they were
        self.kept = {key: value for key, value in earlier.items() if key not in RUN_KEYS}
        self.fits: dict[tuple[str, str], dict[int, dict]] = {}

    def add_fit(self, dataset: str, name: str, seed: int, fit: dict) -> None:
        metrics = fit["metrics"]
        print(
            f"[{dataset}] {name} seed {seed}: val_acc={metrics['val_acc']:.4f} test_acc={metrics['test_acc']:.4f} "
            f"({fit['seconds']:.0f}s, {fit['device']})",
            flush=True,
        )
        fits = self.fits.setdefault((dataset, name), {})
        fits[seed] = fit
        ordered = [fits[s] for s in sorted(fits)]
        row = self.results.setdefault(dataset, {})
        row[name] = {
            **summarize([f["metrics"]["test_acc"] for f in ordered], [f["seconds"] for f in ordered]),
            "val": [f["metrics"]["val_acc"] for f in ordered],
            # how each fit ended: the epochs trained and the best one (the adaptive budget's early stopping)
            "epochs": [f["metrics"].get("epochs") for f in ordered],
            "best_epoch": [f["metrics"].get("best_epoch") for f in ordered],
            "device": ordered[0]["device"],
        }
        teacher = [f["metrics"]["teacher_test_acc"] for f in ordered if "teacher_test_acc" in f["metrics"]]
        if teacher and name == TEACHER:
            row["XGBoost (teacher)"] = summarize(teacher)
        self.write()

    def write(self) -> str:
        markdown = table(self.results, self.seeds)
        seconds = time.perf_counter() - self.started
        output = {"seconds": seconds, "seeds": self.seeds, "results": self.results, "table": markdown, **self.kept}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(output, indent=2) + "\n")
        return markdown


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "accuracy.json"))
    parser.add_argument("--merge", action="store_true", help="update the datasets/models run here in --out")
    parser.add_argument("--no-xgboost", action="store_true", help="skip the XGBoost baselines")
    parser.add_argument(
        "--jobs", type=int, default=1, help="fits at once, each in its own process (a GPU machine: several)"
    )
    parser.add_argument(
        "--flags",
        nargs="*",
        action="extend",
        default=[],
        help="`tabularnet fit` flags for every fit, one per --flags=...: --flags=--data.device_resident=true",
    )
    return parser.parse_args(argv)


def main_bench() -> None:
    args = parse_args()
    results = Results(Path(args.out), args.merge, args.seeds)
    if not args.no_xgboost:
        for dataset in args.datasets:
            fraction = 0.2 if DATASETS[dataset][0] else None
            row = results.results.setdefault(dataset, {})
            for name, scores in xgboost_scores(dataset, fraction).items():
                row[name] = {**summarize([scores["test_acc"]], [scores["seconds"]]), **scores}
                print(f"[{dataset}] {name}: test_acc={scores['test_acc']:.4f} ({scores['seconds']:.0f}s)", flush=True)
            results.write()
    jobs = [(d, name, seed) for d in args.datasets for name in args.models for seed in range(args.seeds)]
    jobs.sort(key=lambda job: (job[1] not in SLOW_MODELS, args.datasets.index(job[0])))
    with tempfile.TemporaryDirectory(prefix="tabularnet-bench-") as folder:
        if args.jobs <= 1:
            for job in jobs:
                results.add_fit(*job, fit_job(job, args.flags, folder))
        else:
            # NOTE: spawned workers (not forked): CUDA cannot be initialised again in a forked child
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
                futures = {pool.submit(fit_job, job, args.flags, folder): job for job in jobs}
                for future in as_completed(futures):
                    results.add_fit(*futures[future], future.result())
    markdown = results.write()
    print(markdown)
    print(f"total {(time.perf_counter() - results.started) / 60:.1f} min; written to {args.out}")


if __name__ == "__main__":
    main_bench()
