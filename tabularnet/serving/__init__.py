"""Prediction from an exported ``.onnx`` file without the training stack: numpy, pandas/pyarrow and onnxruntime.

``Predictor("model.onnx").predict_proba(X)`` gives what the estimator's ``predict_proba`` and ``tabularnet
predict`` give for the model the file was exported from. Importing this package imports no torch, Lightning or
scikit-learn (``tests/test_serving.py`` checks ``sys.modules``).
"""

from tabularnet.serving.predictor import Predictor

__all__ = ["Predictor"]
