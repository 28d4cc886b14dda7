"""The ``tabularnet`` command's front: subcommands that need no Lightning run here without importing it.

``report`` (HTML page of a run), ``export`` (checkpoint -> ONNX) and ``predict --ckpt_path model.onnx`` (the
torch-free predictor) are handled here; everything else goes to the LightningCLI in :mod:`tabularnet.cli`.
Errors users cause end every subcommand the same way: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from tabularnet.data.schema import DataError, DataWarning

ONNX_PREDICT_OPTIONS = ("--ckpt_path", "--data.predict_path", "--predictions_path")
DEFAULT_PREDICTIONS_PATH = "predictions.csv"


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as one line (``tabularnet export: error: ...``) like every other error."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def error_line(err: Exception) -> str:
    """The one line that says what is wrong. jsonargparse wraps an error raised while instantiating the model in a
    "Does not validate against any of the Union subtypes" report whose "- " lines hold the original messages."""
    lines = [line.strip() for line in str(err).strip().splitlines()]
    if not lines or not lines[0]:
        return type(err).__name__
    if lines[0].startswith("Parser key "):
        return argument_error_line(str(err))
    if lines[0].startswith("Does not validate against any of the Union subtypes"):
        reasons = [line[2:] for line in lines if line.startswith("- ") and not line.startswith("- Expected a")]
        return reasons[0] if reasons else lines[0]
    return lines[0]


_PARSER_KEY = re.compile(r'Parser key "([^"]+)":?\s*(.*)')
_EXPECTED = re.compile(r"Expected a (.+?)\. Got value: (.*)")
_STRUCTURE = ("Does not validate against", "Subtypes:", "Errors:", "Given value", "Problem with given class_path")


def _type_name(text: str) -> str:
    """``<class 'int'>`` -> ``int``; ``typing.Literal['a', 'b']`` -> ``one of 'a', 'b'``."""
    text = text.strip()
    if match := re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", text):
        return "null" if match.group(1) == "NoneType" else match.group(1)
    if match := re.fullmatch(r"typing\.Literal\[(.*)\]", text):
        return f"one of {match.group(1)}"
    return text


def argument_error_line(message: str) -> str:
    """jsonargparse's report of an option it could not parse (several lines, nested for the model's and data's
    options) as one line: ``model.dropout: expected float, got 'foo'``; messages without a ``Parser key`` (e.g.
    ``unrecognized arguments: --trainer.acelerator gpu``) name the option already and stay as they are."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    keys, reasons, alternatives, given = [], [], [], None
    for line in lines:
        line = line.removeprefix("- ").strip()
        if match := _PARSER_KEY.match(line):
            if not keys or len(keys) == 1:  # the option, and the nested one of a class (model.dropout)
                keys.append(match.group(1))
            line = match.group(2).strip()
            if not line:
                continue
        if match := _EXPECTED.match(line):
            reasons.append(f"expected {_type_name(match.group(1))}, got {match.group(2)!r}")
        elif line.startswith("Given value:"):
            given = line.removeprefix("Given value:").strip()
        elif line.startswith("Expected a "):
            alternatives.append(_type_name(line.removeprefix("Expected a ")))
        elif not line.startswith(_STRUCTURE):
            reasons.append(line)
    if not keys:
        return lines[0]
    option = ".".join(keys)
    if reasons:
        reason = reasons[0]
    elif alternatives:
        literals = [a.removeprefix("one of ") for a in alternatives if a.startswith("one of ")]
        types = [a for a in alternatives if not a.startswith("one of ")]
        expected = ([f"one of {', '.join(literals)}"] if literals else []) + types
        reason = f"expected {' or '.join(expected)}" + (f", got {given!r}" if given is not None else "")
    else:
        reason = "invalid value" + (f" {given!r}" if given is not None else "")
    return f"{option}: {reason}"


def one_line_error(line: str) -> NoReturn:
    """Print ``tabularnet: error: <line>`` on stderr and exit with status 2."""
    print(f"tabularnet: error: {line}", file=sys.stderr)
    raise SystemExit(2)


def _user_error_types() -> tuple[type[BaseException], ...]:
    """What users cause: our DataError, ValueError and, once Lightning is loaded, its MisconfigurationException
    (looked up, not imported: report, export and ONNX predict run without Lightning)."""
    types: tuple[type[BaseException], ...] = (DataError, ValueError)
    lightning_exceptions = sys.modules.get("lightning.fabric.utilities.exceptions")
    if lightning_exceptions is not None:
        types += (lightning_exceptions.MisconfigurationException,)
    return types


_default_showwarning = warnings.showwarning


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Data warnings as one line, like the errors; anything else as Python shows it."""
    if issubclass(category, DataWarning):
        print(f"tabularnet: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


@contextlib.contextmanager
def user_errors():
    """Errors users cause (bad files, columns, options; Lightning's MisconfigurationException) end the command with
    one line and exit status 2; ``TABULARNET_DEBUG=1`` shows the traceback instead."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            yield
    except _user_error_types() as err:
        if os.environ.get("TABULARNET_DEBUG"):
            raise
        one_line_error(error_line(err))


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
    print(f"exported {type(estimator).__name__} ({len(estimator.classes_)} classes) to {path}")
    return path


def _option_values(args: list[str], allowed: tuple[str, ...], command: str) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs; anything else is a one-line error naming it."""
    values, i = {}, 0
    while i < len(args):
        name, _, value = args[i].partition("=")
        if name not in allowed:
            raise DataError(f"{command} does not take {args[i]!r} (it takes {', '.join(allowed)})")
        if not value:
            if i + 1 >= len(args):
                raise DataError(f"{command}: {name} needs a value")
            i, value = i + 1, args[i + 1]
        values[name] = value
        i += 1
    return values


def onnx_predict_main(args: list[str]) -> Path:
    """``tabularnet predict --ckpt_path model.onnx --data.predict_path new.csv [--predictions_path out.csv]``:
    the same predictions file as from a checkpoint, computed by :class:`tabularnet.serving.Predictor`."""
    command = "tabularnet predict (ONNX)"
    values = _option_values(args, ONNX_PREDICT_OPTIONS, command)
    if "--data.predict_path" not in values:
        raise DataError(f"{command}: --data.predict_path (the table to predict) is required")
    from tabularnet.data.sources import write_table
    from tabularnet.serving import Predictor

    frame = Predictor(values["--ckpt_path"]).predict_frame(values["--data.predict_path"])
    path = Path(values.get("--predictions_path") or DEFAULT_PREDICTIONS_PATH)
    write_table(frame, path)
    print(f"wrote {len(frame)} predictions to {path}")
    return path


def _ckpt_path(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--ckpt_path" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
    return None


def main(args: list[str] | None = None) -> None:
    """Entry point of ``tabularnet``; ``args`` defaults to ``sys.argv[1:]``."""
    args = list(sys.argv[1:] if args is None else args)
    command = args[0] if args else None
    if command == "report":  # not a Lightning subcommand: no model, data or trainer
        from tabularnet.reporting.report import report_main

        with user_errors():
            report_main(args[1:])
        return
    if command == "export":
        with user_errors():
            export_main(args[1:])
        return
    if command == "predict" and str(_ckpt_path(args) or "").endswith(".onnx"):
        with user_errors():
            onnx_predict_main(args[1:])
        return
    from tabularnet.cli import build_cli

    build_cli(args)


if __name__ == "__main__":
    main()
