"""Scripts that train with ``use_lightning=False`` or only predict never import Lightning (issue: start-up)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import fit_cli_checkpoint


def run_python(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_tabularnet_imports_nothing_heavy():
    loaded = run_python(
        """
        import json, sys
        import tabularnet
        print(json.dumps(sorted(m for m in ("torch", "lightning", "pandas", "sklearn", "xgboost") if m in sys.modules)))
        """
    )
    assert loaded == []


def test_plain_pytorch_training_and_prediction_never_import_lightning(table_files, tmp_path):
    # a checkpoint written by `tabularnet fit` (in this process, which has Lightning) ...
    ckpt = fit_cli_checkpoint(table_files["train"], tmp_path)
    # ... and a fresh process that trains, saves, loads and predicts without it
    report = run_python(
        f"""
        import json, sys
        import pandas as pd
        from tabularnet import MLPClassifier, TransformerClassifier

        train = pd.read_csv({str(table_files["train"])!r})
        X, y = train.drop(columns="target"), train["target"]
        for cls in (MLPClassifier, TransformerClassifier):
            model = cls(training={{"epochs": 1, "batch_size": 64}}).fit(X, y)
            model.save({str(tmp_path / "model.ckpt")!r})
            again = cls.load({str(tmp_path / "model.ckpt")!r})
            assert (again.predict_proba(X) == model.predict_proba(X)).all()
        from_cli = MLPClassifier.load({str(ckpt)!r})
        lightning = [m for m in sys.modules if "lightning" in m]
        xgboost = "xgboost" in sys.modules
        print(json.dumps({{"rows": len(from_cli.predict(X)), "lightning": lightning, "xgboost": xgboost}}))
        """
    )
    assert report == {"rows": 300, "lightning": [], "xgboost": False}
