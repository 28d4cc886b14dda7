"""Prediction throughput and process start-up of the ``tabularnet`` command.

Run: ``python bench/startup.py [--rows N] [--repeats R]``; writes ``bench/results/startup.json``.

1. A checkpoint: ``tabularnet fit --config configs/demo.yaml --trainer.max_epochs 1`` (untimed).
2. A ``--rows`` (default 1,000,000) row Parquet file of Adult's feature columns (training rows drawn with
   replacement, seed 0), and a 1-row one.
3. ``tabularnet predict --ckpt_path CKPT --data.predict_path X.parquet --predictions_path out.parquet``, each run in
   a fresh process; rows/s = rows / (t(N rows) - t(1 row)), i.e. excluding process start, imports and the
   checkpoint load, which the 1-row run pays as well. Peak RSS of the N-row run (``ru_maxrss`` of the child).
4. Start-up: wall time of ``python -c "import tabularnet"``, ``tabularnet --help`` and the 1-row predict.
5. The same checkpoint exported (``tabularnet export``) and served without torch: ``python bench/serve_onnx.py
   MODEL.onnx X.parquet out.parquet`` (imports ``tabularnet.serving`` only, writes the same file as ``tabularnet
   predict``) and ``tabularnet predict --ckpt_path MODEL.onnx``, 1 and N rows each. Cold start = the 1-row run's
   wall time (process start, imports, model load, reading, predicting and writing one row).

Every command runs ``--repeats`` times (default 3), interleaved; medians are reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "startup.json"
BIN = Path(sys.executable).parent


def timed_child(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``cmd`` in a fresh process, measured by a fresh parent."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
        "w = time.perf_counter() - t; "
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
        "sys.exit(r.stderr[-2000:]) if r.returncode else print(w, rss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    wall, rss_kb = out.stdout.split()
    return float(wall), int(rss_kb) / 1024


def make_inputs(folder: Path, rows: int) -> tuple[Path, Path]:
    from tabularnet.data.sources import DATASETS, dataset_files, read_table

    features = read_table(dataset_files("adult")["train"]).drop(columns=DATASETS["adult"].target)
    rng = np.random.default_rng(0)
    big = features.iloc[rng.integers(0, len(features), rows)].reset_index(drop=True)
    paths = folder / f"predict_{rows}.parquet", folder / "predict_1.parquet"
    big.to_parquet(paths[0], index=False)
    big.iloc[:1].to_parquet(paths[1], index=False)
    return paths


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    tabularnet = str(BIN / "tabularnet")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        subprocess.run(
            [tabularnet, "fit", "--config", str(ROOT / "configs/demo.yaml"), "--trainer.max_epochs=1",
             f"--trainer.default_root_dir={folder}", "--trainer.enable_progress_bar=false"],
            check=True, capture_output=True, cwd=folder,
        )  # fmt: skip
        ckpt = str(folder / "lightning_logs/version_0/checkpoints/last.ckpt")
        onnx_path = str(folder / "model.onnx")
        subprocess.run(
            [tabularnet, "export", "--ckpt_path", ckpt, "--output", onnx_path], check=True, capture_output=True
        )
        big, one = make_inputs(folder, args.rows)

        def predict(path: Path) -> list[str]:
            out = folder / "out.parquet"
            return [tabularnet, "predict", "--ckpt_path", ckpt, f"--data.predict_path={path}",
                    f"--predictions_path={out}", "--trainer.enable_progress_bar=false"]  # fmt: skip

        def serve(path: Path) -> list[str]:
            return [
                sys.executable,
                str(ROOT / "bench" / "serve_onnx.py"),
                onnx_path,
                str(path),
                str(folder / "out.parquet"),
            ]

        def predict_onnx(path: Path) -> list[str]:
            return [tabularnet, "predict", "--ckpt_path", onnx_path, f"--data.predict_path={path}",
                    f"--predictions_path={folder / 'out.parquet'}"]  # fmt: skip

        commands = {
            "import tabularnet": [sys.executable, "-c", "import tabularnet"],
            "tabularnet --help": [tabularnet, "--help"],
            "predict 1 row": predict(one),
            f"predict {args.rows} rows": predict(big),
            "serving 1 row": serve(one),
            f"serving {args.rows} rows": serve(big),
            "predict onnx 1 row": predict_onnx(one),
            f"predict onnx {args.rows} rows": predict_onnx(big),
        }
        raw: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for r in range(args.repeats):
            for name, cmd in commands.items():
                raw[name].append(timed_child(cmd))
            print(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in raw.items()),
                  file=sys.stderr)  # fmt: skip
    seconds = {name: statistics.median(w for w, _ in runs) for name, runs in raw.items()}
    rss = {name: max(m for _, m in runs) for name, runs in raw.items()}
    rates = {}
    for kind in ("predict", "serving", "predict onnx"):
        rates[kind] = args.rows / (seconds[f"{kind} {args.rows} rows"] - seconds[f"{kind} 1 row"])
    rows_per_s = rates["predict"]
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "rows": args.rows,
        "repeats": args.repeats,
        "load_average": os.getloadavg()[0],
    }
    result = {"meta": meta, "seconds": seconds, "peak_rss_mb": rss, "predict_rows_per_s": rows_per_s,
              "rows_per_s": rates, "raw": raw, "definitions": __doc__}  # fmt: skip
    lines = ["| command | median wall s | peak RSS MB |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {seconds[name]:.2f} | {rss[name]:.0f} |" for name in commands]
    lines += ["", "throughput (excluding start-up): " + ", ".join(f"{k} {v:,.0f} rows/s" for k, v in rates.items()),
              f"serving / predict: cold start {seconds['serving 1 row'] / seconds['predict 1 row']:.2f}x the time, "
              f"throughput {rates['serving'] / rates['predict']:.2f}x; {meta['cpu_count']} cores, {meta['date']}, "
              f"load {meta['load_average']:.2f}"]  # fmt: skip
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
