"""bench/accuracy.py's bookkeeping: which models train under the adaptive budget, the flags each fit gets, and a
parallel run (--jobs) on a tiny table whose results file names every fit's device."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.accuracy import DATASETS, MODELS, NO_CONFIG, Results, budgeted, job_flags, parse_args, summarize, table

ROOT = Path(__file__).resolve().parents[1]
TINY_DATASETS = ROOT / "tests" / "data" / "datasets"


def test_budgeted_models_are_those_without_fixed_epochs():
    assert budgeted(NO_CONFIG)
    assert {name for name in MODELS if budgeted(name)} == {NO_CONFIG, "MLP", "TabM", "TabM-PLE", "FT-Transformer"}


def test_only_fixed_epoch_configs_get_the_dataset_epoch_flags():
    epochs = DATASETS["covertype"][1]
    assert epochs and all(flag not in job_flags("covertype", "TabM") for flag in epochs)
    assert all(flag in job_flags("covertype", "MLP-PLR") for flag in epochs)
    assert "--data.test_fraction=0.2" in job_flags("covertype", "FT-Transformer")


def test_table_says_when_a_cell_has_fewer_seeds():
    row = {"XGBoost": summarize([0.8]), "MLP": summarize([0.7, 0.72, 0.71]), "TabM": summarize([0.75], [90.0])}
    line = table({"titanic": row}, seeds=3).splitlines()[2]
    cells = dict(zip(["dataset", "XGBoost", "XGBoost tuned", "no config", "MLP", "TabM"], line.split(" | ")))
    assert cells["XGBoost"] == "0.8000 ± 0.0000" and cells["no config"] == "—"
    assert cells["MLP"] == "0.7100 ± 0.0100" and cells["TabM"] == "0.7500 ± 0.0000 (90 s) [1 of 3 seeds]"


def test_flags_repeat_and_each_reaches_the_fits():
    args = parse_args(["--flags=--model.init_args.optimizer.lr=3e-3", "--flags=--model.init_args.dropout=0.1"])
    assert args.flags == ["--model.init_args.optimizer.lr=3e-3", "--model.init_args.dropout=0.1"]


def test_merge_keeps_the_files_other_results(tmp_path):
    out = tmp_path / "accuracy.json"
    earlier = {"XGBoost": summarize([0.8]), "MLP": summarize([0.7])}
    out.write_text(json.dumps({"seconds": 1.0, "seeds": 3, "results": {"titanic": earlier}, "partial_runs": {"a": 1}}))
    fit = {"metrics": {"val_acc": 0.74, "test_acc": 0.75}, "seconds": 9.0, "device": "cpu"}
    Results(out, merge=True, seeds=3).add_fit("titanic", "TabM", 0, fit)
    written = json.loads(out.read_text())
    assert written["partial_runs"] == {"a": 1}
    assert set(written["results"]["titanic"]) == {"XGBoost", "MLP", "TabM"}
    Results(out, merge=False, seeds=3).add_fit("titanic", "TabM", 0, fit)  # a fresh run starts a fresh file
    assert "partial_runs" not in json.loads(out.read_text())


def test_parallel_jobs_write_every_fit(tmp_path):
    out = tmp_path / "accuracy.json"
    env = {**os.environ, "TABULARNET_DATA_DIR": str(TINY_DATASETS), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "bench" / "accuracy.py"), "--no-xgboost", "--datasets", "titanic"]
    command += ["--models", "MLP", "MLP-PLR", "--seeds", "2", "--jobs", "2", "--out", str(out)]
    command += ["--flags=--trainer.max_epochs=2"]
    subprocess.run(command, check=True, env=env, cwd=tmp_path, capture_output=True, timeout=600)
    row = json.loads(out.read_text())["results"]["titanic"]
    for name in ("MLP", "MLP-PLR"):
        assert len(row[name]["values"]) == 2 and len(row[name]["val"]) == 2
        assert row[name]["device"] == "cpu" and row[name]["seconds"] > 0
        assert row[name]["epochs"] == [2, 2] and all(e in (0, 1) for e in row[name]["best_epoch"])
