"""``tabularnet export`` (checkpoint -> ONNX file) and ``tabularnet predict --ckpt_path model.onnx`` (the
torch-free predictor): neither imports Lightning."""

from __future__ import annotations

from pathlib import Path

from tabularnet.cli.arguments import OneLineParser, option_values
from tabularnet.data.schema import DataError

ONNX_PREDICT_OPTIONS = ("--ckpt_path", "--data.predict_path", "--predictions_path")
DEFAULT_PREDICTIONS_PATH = "predictions.csv"


def export_main(args: list[str]) -> Path:
    """``tabularnet export --ckpt_path X --output model.onnx``."""
    parser = OneLineParser(
        prog="tabularnet export",
        description="Export a checkpoint (of `tabularnet fit` or an estimator's save()) as one ONNX file: the "
        "network with its temperature, the preprocessing and the class labels. Needs the onnx extra.",
    )
    parser.add_argument("--ckpt_path", required=True, help="a .ckpt of `tabularnet fit` or a file of save()")
    parser.add_argument("--output", "-o", required=True, help="the ONNX file to write (.onnx)")
    options = parser.parse_args(args)
    from tabularnet.models.classifiers import load_estimator

    estimator = load_estimator(options.ckpt_path)
    path = estimator.export_onnx(options.output)
    what = f"{len(estimator.classes_)} classes" if hasattr(estimator, "classes_") else "regression"
    print(f"exported {type(estimator).__name__} ({what}) to {path}")
    return path


def onnx_predict_main(args: list[str]) -> Path:
    """``tabularnet predict --ckpt_path model.onnx --data.predict_path new.csv [--predictions_path out.csv]``:
    the same predictions file as from a checkpoint, computed by :class:`tabularnet.serving.Predictor`."""
    command = "tabularnet predict (ONNX)"
    values = option_values(args, ONNX_PREDICT_OPTIONS, command)
    if "--data.predict_path" not in values:
        raise DataError(f"{command}: --data.predict_path (the table to predict) is required")
    from tabularnet.data.sources import write_table
    from tabularnet.serving import Predictor

    frame = Predictor(values["--ckpt_path"]).predict_frame(values["--data.predict_path"])
    path = Path(values.get("--predictions_path") or DEFAULT_PREDICTIONS_PATH)
    write_table(frame, path)
    print(f"wrote {len(frame)} predictions to {path}")
    return path
