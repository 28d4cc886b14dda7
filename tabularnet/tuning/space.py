"""The search space of ``tabularnet tune``: a YAML mapping from config keys to distributions,

.. code-block:: yaml

    model.init_args.frequency_scale: {type: float, low: 0.1, high: 100, log: true}
    model.init_args.d_num_embedding: {type: int, low: 8, high: 64, step: 8}
    model.init_args.hidden_dims: {type: categorical, choices: [[256, 256], [512, 512]]}

checked up front (one line naming the key), sampled through an Optuna trial and written into a copy of the base
config. ``model.X`` is short for ``model.init_args.X`` as on the command line. Choices that are lists or mappings
are handed to Optuna as their JSON text (Optuna's categorical values are scalars) and decoded when applied.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tabularnet.data.schema import DataError

TYPES = ("float", "int", "categorical")
FIELDS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One searched key: ``type`` float/int with ``low``, ``high``, ``log``, ``step``, or categorical ``choices``."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """The trial's value of this key (decoded: a list choice comes back as the list)."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return decode(trial.suggest_categorical(self.key, [encode(c) for c in self.choices]))

    def corners(self) -> list[Any]:
        """The values the up-front check tries: both ends of a range, every choice."""
        if self.type == "categorical":
            return list(self.choices)
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


def encode(choice: Any) -> Any:
    """A categorical choice as Optuna stores it: scalars as they are, lists and mappings as JSON text."""
    return choice if isinstance(choice, SCALARS) else json.dumps(choice)


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (JSON text of a list or mapping back to it)."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def canonical_key(key: str) -> str:
    """``model.dropout`` -> ``model.init_args.dropout`` (the command line's shorthand for the model's options)."""
    parts = key.split(".")
    if len(parts) > 1 and parts[0] == "model" and parts[1] not in ("class_path", "init_args"):
        parts.insert(1, "init_args")
    return ".".join(parts)


def _number(key: str, spec: dict, name: str) -> float:
    value = spec.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"search space key {key!r}: {name} must be a number, however: {name}={value!r}")
    return float(value)


def parse_param(key: str, spec: Any) -> Param:
    """One entry of the space file, checked: every message names the key and shows the offending value."""
    if not isinstance(spec, dict):
        raise DataError(f"search space key {key!r}: expected a mapping with a type, however: {spec!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise DataError(f"search space key {key!r}: type must be one of {', '.join(TYPES)}, however: type={kind!r}")
    unknown = sorted(set(spec) - FIELDS[kind] - {"type"})
    if unknown:
        raise DataError(f"search space key {key!r}: a {kind} takes {', '.join(sorted(FIELDS[kind]))}, not {unknown[0]}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise DataError(f"search space key {key!r}: choices must be a non-empty list, however: {choices!r}")
        return Param(key, kind, choices=tuple(choices))
    low, high = _number(key, spec, "low"), _number(key, spec, "high")
    log, step = spec.get("log", False), spec.get("step")
    if low > high:
        raise DataError(f"search space key {key!r}: low must be <= high, however: low={low:g}, high={high:g}")
    if not isinstance(log, bool):
        raise DataError(f"search space key {key!r}: log must be true or false, however: log={log!r}")
    if log and low <= 0:
        raise DataError(f"search space key {key!r}: a log range needs low > 0, however: low={low:g}")
    if step is not None and _number(key, spec, "step") <= 0:
        raise DataError(f"search space key {key!r}: step must be > 0, however: step={step!r}")
    if step is not None and log:
        raise DataError(f"search space key {key!r}: step and log cannot both be set, however: step={step!r}")
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise DataError(f"search space key {key!r}: an int range needs integer ends, however: low={low}, high={high}")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise DataError(f"search space key {key!r}: the range must be finite, however: low={low}, high={high}")
    return Param(key, kind, low=low, high=high, log=log, step=None if step is None else float(step))


def load_space(path: str | Path) -> list[Param]:
    """The search space in ``path`` (``--search_space``), every entry checked."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except OSError as err:
        raise DataError(f"--search_space {path}: cannot read it ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise DataError(f"--search_space {path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(spec, dict) or not spec:
        raise DataError(f"--search_space {path}: expected a mapping of config keys to distributions")
    params = [parse_param(canonical_key(str(key)), value) for key, value in spec.items()]
    keys = [p.key for p in params]
    if len(set(keys)) < len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise DataError(f"--search_space {path}: key {twice!r} is given twice")
    return params


def set_key(config: dict, key: str, value: Any) -> None:
    """``config[a][b][c] = value`` for ``key`` ``a.b.c`` (missing or null mappings on the way are created)."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def with_values(base: dict, values: dict[str, Any]) -> dict:
    """A copy of the config ``base`` with each ``key: value`` of ``values`` set."""
    config = copy.deepcopy(base)
    for key, value in values.items():
        set_key(config, key, value)
    return config


def corner_values(params: list[Param]) -> list[dict[str, Any]]:
    """A few assignments that together try every corner of every key (the i-th tries each key's i-th corner)."""
    corners = {p.key: p.corners() for p in params}
    n = max(len(c) for c in corners.values())
    return [{key: c[min(i, len(c) - 1)] for key, c in corners.items()} for i in range(n)]
