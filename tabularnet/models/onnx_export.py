"""ONNX export: a fitted network, its temperature and its preprocessing as one ``.onnx`` file.

The graph maps the preprocessed inputs ``x_num (batch, n_num) float32`` and ``x_cat (batch, n_cat) int64`` to
``probabilities (batch, n_classes)`` = softmax(logits / T) (an ensemble's members' softmax(logits_i / T) averaged, in
the graph), with a dynamic batch dimension. The preprocessing
(column roles and order, scaling statistics, category vocabularies, missing-value rules) and the class labels
travel as one JSON document in the file's metadata (key ``tabularnet``), so the file alone is the whole model;
:class:`tabularnet.serving.Predictor` reads it with onnxruntime, without torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from tabularnet import __version__, atomic
from tabularnet.data.schema import DataError
from tabularnet.training.tasks import make_task

METADATA_KEY = "tabularnet"
FORMAT_VERSION = 1
INPUTS = ("x_num", "x_cat")
OUTPUT = "probabilities"
OUTPUTS = {"classification": OUTPUT, "regression": "prediction"}  # the graph's output, by task
OPSET = 18


class _Outputs(nn.Module):
    """What ``predict_proba`` and ``tabularnet predict`` compute: ``softmax(net(x_num, x_cat) / T)``, or a
    regression's prediction in the target's original units (:meth:`tabularnet.training.tasks.Regression.outputs`)."""

    def __init__(self, net: nn.Module, temperature: float, preprocessing: dict) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.task, self.target_scaling = make_task(task_of(preprocessing)), preprocessing.get("target_scaling")

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.task.outputs(self.net(x_num, x_cat), self.temperature, self.target_scaling)


def task_of(preprocessing: dict) -> str:
    return preprocessing.get("task", "classification")


def model_document(*, preprocessing: dict, model: str, temperature: float) -> dict:
    """The JSON document stored in the file: everything prediction needs besides the graph."""
    schema = preprocessing["schema"]
    return {
        "format_version": FORMAT_VERSION,
        "tabularnet_version": __version__,
        "task": task_of(preprocessing),
        "model": model,
        "temperature": float(temperature),
        "inputs": list(INPUTS),
        "output": OUTPUTS[task_of(preprocessing)],
        "features": [*schema["numeric"], *schema["categorical"]],
        "classes": None if preprocessing["classes"] is None else list(preprocessing["classes"]),
        "preprocessing": preprocessing,
    }


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's progress lines and its notes about torchvision's operators are not the user's business."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(None):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _example_inputs(preprocessing: dict, batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeros shaped like a preprocessed batch (scaled numeric values and missing indicators; category ids)."""
    # NOTE: a batch of more than one row: torch.export specialises dimensions of size 0 and 1
    numeric = preprocessing["numeric"].values()
    n_num = len(numeric) + sum(bool(stats["indicator"]) for stats in numeric)
    n_cat = len(preprocessing["schema"]["categorical"])
    return torch.zeros(batch, n_num), torch.full((batch, n_cat), 2, dtype=torch.int64)


def export_network(
    net: nn.Module, path: str | Path, *, preprocessing: dict, model: str, temperature: float = 1.0
) -> Path:
    """Write ``net`` (in eval mode, on the CPU) with its temperature and preprocessing to ``path`` (``.onnx``).

    torch's current exporter (``torch.onnx.export(..., dynamo=True)``) is used; only if it fails is the
    TorchScript exporter tried, with a warning naming the reason.
    """
    try:
        import onnx
    except ImportError:
        raise DataError("ONNX export needs the onnx extra: pip install 'tabularnet[onnx]'") from None
    path = Path(path)
    if path.suffix != ".onnx":
        raise DataError(f"--output: an ONNX file name ends with .onnx, however: {path}")
    document = json.dumps(model_document(preprocessing=preprocessing, model=model, temperature=temperature))
    wrapper = _Outputs(net.cpu().eval(), temperature, preprocessing).eval()
    output = OUTPUTS[task_of(preprocessing)]
    inputs = _example_inputs(preprocessing)
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        try:
            program = torch.onnx.export(
                wrapper,
                inputs,
                input_names=list(INPUTS),
                output_names=[output],
                dynamic_shapes={"x_num": {0: batch}, "x_cat": {0: batch}},
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
            proto = program.model_proto
        except Exception as err:  # noqa: BLE001 (any exporter failure: try the older exporter, say why)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            warnings.warn(f"torch.onnx dynamo export failed ({reason}); using the TorchScript exporter", stacklevel=2)
            proto = _torchscript_export(wrapper, inputs, output)
    onnx.helper.set_model_props(proto, {METADATA_KEY: document})
    with atomic.atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return path


def _torchscript_export(wrapper: nn.Module, inputs, output: str) -> object:
    import io

    import onnx

    buffer = io.BytesIO()
    torch.onnx.export(
        wrapper,
        inputs,
        buffer,
        input_names=list(INPUTS),
        output_names=[output],
        dynamic_axes={"x_num": {0: "batch"}, "x_cat": {0: "batch"}, output: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    return onnx.load_from_string(buffer.getvalue())
