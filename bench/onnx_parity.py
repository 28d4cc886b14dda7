"""ONNX parity on Adult: ``python bench/onnx_parity.py``; writes ``bench/results/onnx_parity.json``.

For every model family and numeric embedding: a short calibrated ``tabularnet fit`` on Adult's training file
(``--trainer.max_epochs 2``, 20% validation), ``tabularnet export``, then the official test split (16,281 rows) with
5% of each categorical column replaced by an unseen category, 5% by the missing token ``?`` and 5% of each numeric
column blanked, predicted by ``tabularnet predict`` from the checkpoint (Parquet out) and by
``tabularnet.serving.Predictor`` at batch sizes 1, 7 and 16,281. Reports the max abs difference of the
probabilities, the export time and the file size.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tabularnet.cli import main
from tabularnet.data.sources import dataset_files
from tabularnet.serving import Predictor

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "onnx_parity.json"
MODELS = {
    "MLP": ["--model=tabularnet.MLPLightningModule"],
    "MLP-linear": ["--model=tabularnet.MLPLightningModule", "--model.num_embedding=linear"],
    "MLP-PLR": ["--model=tabularnet.MLPLightningModule", "--model.num_embedding=plr"],
    "MLP-PLE": ["--model=tabularnet.MLPLightningModule", "--model.num_embedding=ple"],
    "FT-Transformer": ["--model=tabularnet.TransformerLightningModule"],
    "FT-Transformer-PLR": ["--model=tabularnet.TransformerLightningModule", "--model.num_embedding=plr"],
    "FT-Transformer-PLE": ["--model=tabularnet.TransformerLightningModule", "--model.num_embedding=ple"],
}


def damage(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    df = df.copy()
    for column in df.columns:
        rows = rng.random(len(df))
        if pd.api.types.is_numeric_dtype(df[column]):
            df[column] = df[column].astype(float).mask(rows < 0.05)
        else:
            df[column] = df[column].astype(object).mask(rows < 0.05, "never-seen").mask(rows > 0.95, "?")
    return df


def run(flags: list[str], folder: Path, test: Path) -> dict:
    main(["fit", *flags, "--data.dataset=adult", "--data.val_fraction=0.2", "--model.calibrate=true",
          "--trainer.max_epochs=2", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={folder}",
          "--seed_everything=0"])  # fmt: skip
    ckpt = json.loads((folder / "lightning_logs/version_0/metrics.json").read_text())["best_checkpoint"]
    started = time.perf_counter()
    main(["export", f"--ckpt_path={ckpt}", f"--output={folder / 'model.onnx'}"])
    export_seconds = time.perf_counter() - started
    out = folder / "p.parquet"
    main(["predict", f"--ckpt_path={ckpt}", f"--data.predict_path={test}", f"--predictions_path={out}"])
    expected = pd.read_parquet(out).filter(like="proba_").to_numpy()
    table = pd.read_parquet(test)
    diffs = {}
    for batch in (1, 7, len(table)):
        probs = Predictor(folder / "model.onnx", batch_size=batch).predict_proba(table)
        diffs[str(batch)] = float(np.abs(probs - expected).max())
    return {"max_abs_diff": diffs, "export_seconds": round(export_seconds, 2),
            "onnx_kb": round((folder / "model.onnx").stat().st_size / 1024)}  # fmt: skip


def main_bench() -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        test = Path(tmp) / "test.parquet"
        raw = pd.read_csv(dataset_files("adult")["test"]).drop(columns="target")
        damage(raw, np.random.default_rng(0)).to_parquet(test)
        for name, flags in MODELS.items():
            folder = Path(tmp) / name
            results[name] = run(flags, folder, test)
            print(f"{name}: {results[name]}", file=sys.stderr)
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu_count": os.cpu_count()}
    lines = ["| model | max abs diff, batch 1 / 7 / 16,281 | export s | file KB |", "|---|---|---:|---:|"]
    for name, r in results.items():
        diffs = " / ".join(f"{v:.1e}" for v in r["max_abs_diff"].values())
        lines.append(f"| {name} | {diffs} | {r['export_seconds']:.1f} | {r['onnx_kb']} |")
    print("\n".join(lines))
    RESULTS.write_text(json.dumps({"meta": meta, "results": results, "definitions": __doc__}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main_bench()
