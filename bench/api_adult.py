"""The Python API on Adult (official split): XGBoost teacher, and the README's student with and without distillation.

Run: ``python bench/api_adult.py [--epochs 20]``; writes ``bench/results/api_adult.json``. The student is the
README snippet's ``MLPClassifier(hidden_dims=[128, 64, 32], dropout=0.2, training={'batch_size': 64, ...},
use_lightning=True)``, with ``distillation={'enabled': True, 'lambda': 0.7, 'temperature': 2.0}`` fed either the
teacher's in-sample log-probabilities (as the snippet does) or its out-of-fold logits
(``teacher.oof_logits``), and without distillation; same seed for all three.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tabularnet.data.sources import dataset_files, read_table  # noqa: E402
from tabularnet.models import MLPClassifier, XGBoostClassifier  # noqa: E402


def load_adult():
    files = dataset_files("adult")
    train, test = read_table(files["train"]), read_table(files["test"])
    return train.drop(columns="target"), train["target"], test.drop(columns="target"), test["target"]


def student(epochs: int, distill: bool) -> MLPClassifier:
    return MLPClassifier(
        hidden_dims=[128, 64, 32],
        dropout=0.2,
        training={"batch_size": 64, "epochs": epochs},
        distillation={"enabled": True, "lambda": 0.7, "temperature": 2.0} if distill else None,
        random_seed=42,
        use_lightning=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    X_train, y_train, X_test, y_test = load_adult()
    results = {}

    def record(name: str, model, started: float) -> None:
        results[name] = {
            "test_acc": float((model.predict(X_test) == y_test).mean()),
            "seconds": time.perf_counter() - started,
        }
        print(f"{name:40s} test_acc={results[name]['test_acc']:.4f}  ({results[name]['seconds']:.0f}s)", flush=True)

    t0 = time.perf_counter()
    teacher = XGBoostClassifier(n_estimators=300).train(X_train, y_train)
    record("XGBoostClassifier(n_estimators=300)", teacher, t0)
    in_sample = np.log(teacher.predict_proba(X_train) + 1e-10)
    t0 = time.perf_counter()
    out_of_fold = teacher.oof_logits(X_train, y_train, n_splits=5)
    results["oof_logits_seconds"] = time.perf_counter() - t0

    for name, logits in [
        ("student, no distillation", None),
        ("student, in-sample teacher", in_sample),
        ("student, out-of-fold teacher", out_of_fold),
    ]:
        t0 = time.perf_counter()
        model = student(args.epochs, distill=logits is not None).train(X_train, y_train, teacher_probs=logits)
        record(name, model, t0)
    out = ROOT / "bench" / "results" / "api_adult.json"
    out.write_text(json.dumps({"epochs": args.epochs, "results": results}, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
