"""``main``: the ``tabularnet`` command. What needs no Lightning (``report``, ``export``, ``predict`` from an ONNX
file) runs without importing it; ``tune`` is :mod:`tabularnet.tuning`; everything else is the LightningCLI of
:mod:`tabularnet.cli.app`."""

from __future__ import annotations

import sys

from tabularnet.cli.arguments import option_value, user_errors


def main(args: list[str] | None = None) -> None:
    """Entry point of ``tabularnet``; ``args`` defaults to ``sys.argv[1:]``."""
    args = list(sys.argv[1:] if args is None else args)
    command = args[0] if args else None
    if command == "report":
        from tabularnet.reporting.report import report_main as run
    elif command == "export":
        from tabularnet.cli.onnx import export_main as run
    elif command == "tune":
        from tabularnet.tuning import tune_main as run
    elif command == "predict" and str(option_value(args, "--ckpt_path") or "").endswith(".onnx"):
        from tabularnet.cli.onnx import onnx_predict_main as run
    else:
        from tabularnet.cli.app import build_cli

        build_cli(args)
        return
    with user_errors():
        status = run(args[1:])
    if isinstance(status, int) and status:  # tune interrupted: 130, as a shell reports Ctrl-C
        raise SystemExit(status)
