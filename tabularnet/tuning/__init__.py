"""``tabularnet tune``: hyperparameter search with Optuna over any config key (imports Optuna only when run).

- :mod:`tabularnet.tuning.tune`: the command (arguments, the study, resuming, workers).
- :mod:`tabularnet.tuning.space`: the search-space file, checked and sampled.
- :mod:`tabularnet.tuning.trial`: one trial, a ``tabularnet fit`` in this process; the up-front parse check.
- :mod:`tabularnet.tuning.storage`: the study's storage URL, masked passwords, trials of dead workers.
- :mod:`tabularnet.tuning.outputs`: ``trials.csv``, ``best.yaml``, TensorBoard HParams, the progress lines.
"""
