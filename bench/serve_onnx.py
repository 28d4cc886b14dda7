"""What a prediction service on the torch-free predictor runs: ``python bench/serve_onnx.py MODEL.onnx IN OUT``.

It imports ``tabularnet.serving`` only (numpy, pandas/pyarrow, onnxruntime) and writes the same predictions file
as ``tabularnet predict``; ``bench/startup.py`` times it beside ``tabularnet predict``.
"""

import sys

from tabularnet.data.sources import write_table
from tabularnet.serving import Predictor

if __name__ == "__main__":
    model, table, out = sys.argv[1:4]
    write_table(Predictor(model).predict_frame(table), out)
