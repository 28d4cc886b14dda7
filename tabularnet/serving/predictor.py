"""The torch-free predictor of exported models (see :func:`tabularnet.models.onnx_export.export_network`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tabularnet.data.schema import DataError
from tabularnet.data.sources import read_table
from tabularnet.data.transform import predictions_frame, transform_table

METADATA_KEY = "tabularnet"  # the same key as tabularnet.models.onnx_export (which imports torch)
FORMAT_VERSIONS = (1,)


class Predictor:
    """An exported model: the ONNX graph run by onnxruntime, the preprocessing applied as in training.

    Args:
        path: a file written by ``tabularnet export`` or an estimator's ``export_onnx``.
        batch_size: rows per onnxruntime call (bounds the memory of the network's activations).
        threads: onnxruntime's intra-op threads (``None``: its default, one per core).

    Attributes:
        classes_: the class labels, in the order of :meth:`predict_proba`'s columns (``None`` for regression).
        task: ``classification`` or ``regression``.
        features: the feature columns the model reads (by name; column order and extra columns do not matter).
        metadata: the whole document stored in the file (model, temperature, preprocessing, versions).
    """

    def __init__(self, path: str | Path, *, batch_size: int = 65_536, threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise DataError("tabularnet.serving needs onnxruntime: pip install 'tabularnet[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise DataError(f"exported model not found: {path}")
        if batch_size < 1:
            raise DataError(f"batch_size must be positive, however: batch_size={batch_size}")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"{path}: not a loadable ONNX model ({first})") from None
        document = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if document is None:
            raise DataError(f"{path}: an ONNX model, but not exported by tabularnet (no {METADATA_KEY!r} metadata)")
        self.metadata = json.loads(document)
        if self.metadata.get("format_version") not in FORMAT_VERSIONS:
            raise DataError(
                f"{path}: export format {self.metadata.get('format_version')!r} is not one this version reads "
                f"({', '.join(map(str, FORMAT_VERSIONS))}); upgrade tabularnet"
            )
        self.path, self.batch_size = path, batch_size
        self.task = self.metadata.get("task", "classification")
        self.classes_ = None if self.task == "regression" else np.asarray(self.metadata["classes"])
        self.features = list(self.metadata["features"])
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._output = self.metadata["output"]

    def __repr__(self) -> str:
        labels = "task='regression'" if self.classes_ is None else f"classes={self.classes_.tolist()!r}"
        return f"Predictor({str(self.path)!r}, model={self.metadata['model']!r}, {labels})"

    def _frame(self, X) -> pd.DataFrame:
        if isinstance(X, np.ndarray):
            if X.ndim != 2 or X.shape[1] != len(self.features):
                raise DataError(
                    f"X has shape {X.shape}; an array needs {len(self.features)} columns in the order {self.features}"
                )
            return pd.DataFrame(X, columns=self.features).infer_objects()
        return read_table(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n_rows, n_classes)`` float32, columns in the order of ``classes_``.

        ``X``: a pandas DataFrame, a pyarrow Table, a CSV or Parquet path, or a 2-D array with the feature columns
        in training order.
        """
        if self.classes_ is None:
            raise DataError(f"{self.path}: a regression model has no class probabilities; use predict")
        return self._outputs(X)

    def _outputs(self, X) -> np.ndarray:
        """The graph's output over the rows of ``X``: probabilities, or a regression's predictions ``(n_rows,)``."""
        source = str(X) if isinstance(X, (str, Path)) else "X"
        x_num, x_cat = transform_table(self.metadata["preprocessing"], self._frame(X), source=source)
        inputs = {"x_num": x_num, "x_cat": x_cat}
        if len(x_num) == 0:
            return np.zeros((0,) if self.classes_ is None else (0, len(self.classes_)), dtype=np.float32)
        chunks = [
            self.session.run(
                [self._output], {name: inputs[name][start : start + self.batch_size] for name in self._inputs}
            )[0]
            for start in range(0, len(x_num), self.batch_size)
        ]
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]

    def predict(self, X) -> np.ndarray:
        """Predicted labels, in the type of the training labels; regression: predictions in the target's units."""
        if self.classes_ is None:
            return self._outputs(X)
        return self.classes_[self.predict_proba(X).argmax(1)]

    def predict_frame(self, X) -> pd.DataFrame:
        """What ``tabularnet predict`` writes: ``prediction`` and one ``proba_<label>`` column per class (regression:
        ``prediction`` only)."""
        if self.classes_ is None:
            return predictions_frame(self._outputs(X), None)
        return predictions_frame(self.predict_proba(X), self.classes_.tolist())
