"""The command line's arguments and errors: every error users cause ends the command with one line on stderr
naming the option, file or column, and exit status 2 (``TABULARNET_DEBUG=1`` shows the traceback instead).
Imports no Lightning: ``report``, ``export`` and ONNX ``predict`` use it too."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from typing import NoReturn

from tabularnet.data.schema import DataError, DataNote, DataWarning


def option_value(args: list[str], name: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in ``args``; None when it is not there."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def option_values(args: list[str], allowed: tuple[str, ...], command: str) -> dict[str, str]:
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
    if issubclass(category, DataNote):
        print(f"tabularnet: {message}", file=sys.stderr)
    elif issubclass(category, DataWarning):
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
