"""``tabularnet tune``: hyperparameter search with Optuna over any config key (imports Optuna only when run).

- :mod:`tabularnet.tuning.tune`: the command (arguments, the study, resuming, workers).
- :mod:`tabularnet.tuning.space`: the search-space file, checked and sampled.
- :mod:`tabularnet.tuning.trial`: one trial, a ``tabularnet fit`` in this process; the up-front parse check.
- :mod:`tabularnet.tuning.storage`: the study's storage URL, masked passwords, trials of dead workers.
- :mod:`tabularnet.tuning.outputs`: ``trials.csv``, ``best.yaml``, TensorBoard HParams, the progress lines.
"""

from __future__ import annotations

import importlib.util
import sys

EXTRA = ("optuna", "optuna_integration", "sqlalchemy")  # the `tune` extra's modules


def tune_main(args: list[str]) -> int:
    """``tabularnet tune``; without the ``tune`` extra, a one-line error saying how to install it."""
    from tabularnet.data.schema import DataError

    missing = [name for name in EXTRA if name not in sys.modules and importlib.util.find_spec(name) is None]
    if missing:
        raise DataError(f"tabularnet tune needs {', '.join(missing)}: pip install 'tabularnet[tune]'")
    from tabularnet.tuning.tune import tune_main as run

    return run(args)
