"""The ``tabularnet`` command (:func:`main`); importing this package imports no Lightning.

- :mod:`tabularnet.cli.main`: the entry point, a dispatcher of a few lines.
- :mod:`tabularnet.cli.arguments`: one-line errors and argument helpers shared by every subcommand.
- :mod:`tabularnet.cli.app`: the LightningCLI of ``fit``, ``validate``, ``test`` and ``predict``.
- :mod:`tabularnet.cli.after_fit`: what ``fit`` does after training (evaluation, calibration, figures, summary).
- :mod:`tabularnet.cli.onnx`: ``export`` and ``predict`` from an ONNX file, without Lightning.
"""

from __future__ import annotations

from tabularnet.cli.main import main

__all__ = ["build_cli", "main"]


def build_cli(args: list[str] | None = None, run: bool = True):
    """Parse ``args``, build the LightningCLI and, with ``run``, run its subcommand (imports Lightning)."""
    from tabularnet.cli.app import build_cli as build

    return build(args, run)
