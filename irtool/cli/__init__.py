"""The ``irtool`` command line: export a model to ONNX, print its summary, plot it, run, inspect or serve it.

    irtool export examples/mnist_mlp.py -o out/mnist.onnx --check
    irtool summary examples/mnist_mlp.py --show-trainable
    irtool extract resnet.onnx --outputs pool5 -o features.onnx --check
    irtool plot examples/mnist_mlp.py -o mnist.png --show-shapes
    irtool plot out/mnist.onnx -o mnist_onnx.svg
    irtool run out/mnist.onnx --input digits=x.npy --output-dir preds/
    irtool run examples/mnist_mlp.py --random --benchmark 200 --batch-size 32
    irtool inspect out/mnist.onnx
    irtool serve mnist=out/mnist.onnx --max-batch-size 32

The model source is a Python file that builds the model, a saved ``.keras`` model or (for
``plot``) an ONNX file; ``irtool.loading`` loads it (see there how a Python file's model is
picked, ``--object NAME`` first). This package parses arguments (one module per command:
``export`` (and ``summary``), ``extract``, ``plot``, ``run`` (and ``inspect``), ``serve``; ``common`` for
what they share), calls ``loading``, ``checking``, ``onnx``, ``viz``, ``runtime`` and
``serving``, and prints. Errors print one line, ``irtool: error: ...``, and exit
with 1 (2 for usage errors); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from irtool import __version__, checking, loading, serving
from irtool.cli.common import (
    WEIGHTS_HELP,
    CLIError,
    _count,
    _one_line,
    _Parser,
    _positive_int,
    _provider_list,
    _tolerance,
    note_fresh_weights,
)
from irtool.cli.export import add_triton_arguments, cmd_export, cmd_summary
from irtool.cli.extract import _add_extract_parser
from irtool.cli.plot import _add_plot_parser
from irtool.cli.run import _add_inspect_parser, _add_run_parser
from irtool.cli.serve import _add_serve_parser
from irtool.loading import LoadError, describe, load, load_model
from irtool.onnx import ExportError
from irtool.runtime import InputError, ProviderError, Session, conflict_message, installed_runtimes, ort
from irtool.runtime.benchmark import benchmark
from irtool.runtime.data_files import DataFileError, read_inputs
from irtool.runtime.inspection import describe as describe_onnx
from irtool.runtime.providers import provider_name
from irtool.viz import GraphvizUnavailableError, RenderError, model_to_dot, save_plot
from irtool.viz.onnx_view import onnx_to_dot
from irtool.viz.render import format_of


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="irtool",
        description="Export, summarize, plot, run and inspect irtool models (Python files or saved .keras models) "
        "and ONNX files.",
    )
    parser.add_argument("--version", action="version", version=f"irtool {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("file", help="a Python file that builds the model, or a saved .keras model")
    common.add_argument(
        "--object",
        metavar="NAME",
        help="the model to use: a global of the file holding a model, or a zero-argument function returning one",
    )
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(
        dest="command", metavar="{export,summary,extract,plot,run,inspect,serve}", parser_class=_Parser
    )
    commands.required = True

    export = commands.add_parser(
        "export", parents=[common], help="export the model to ONNX", description="Export the model to an ONNX file."
    )
    export.add_argument("-o", "--output", metavar="PATH", help="the ONNX file to write (default: ./<file stem>.onnx)")
    export.add_argument("--opset", type=int, metavar="N", help="the ONNX opset (default: 21, or the newest onnx knows)")
    export.add_argument(
        "--check",
        action="store_true",
        help="compare ONNX Runtime with the NumPy executor on inputs the model accepts (tokens within each "
        "Embedding's vocabulary, padded masks, batch sizes 1 and 3, sequence lengths 1 and 5)",
    )
    export.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
    export.add_argument("--atol", type=_tolerance, default=1e-5, help="absolute tolerance of --check (default 1e-5)")
    export.add_argument("--rtol", type=_tolerance, default=1e-5, help="relative tolerance of --check (default 1e-5)")
    add_triton_arguments(export)
    export.set_defaults(func=cmd_export)

    summary = commands.add_parser(
        "summary", parents=[common], help="print the model's summary", description="Print model.summary()."
    )
    summary.add_argument("--line-length", type=_positive_int, metavar="N", help="the table width")
    summary.add_argument("--expand-nested", action="store_true", help="expand nested models")
    summary.add_argument("--show-trainable", action="store_true", help="add a 'Trainable' column")
    summary.set_defaults(func=cmd_summary)
    _add_extract_parser(commands)
    _add_plot_parser(commands)
    _add_run_parser(commands)
    _add_inspect_parser(commands)
    _add_serve_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CLIError as error:
        print(f"irtool: error: {error}", file=sys.stderr)
        return error.code
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else 0
    try:
        with warnings.catch_warnings():  # restores Python's own display when the command returns
            warnings.showwarning = _show_warning
            return args.func(args)
    except KeyboardInterrupt:
        print("irtool: error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        expected = isinstance(error, (CLIError, LoadError))  # failures with a message meant for the user
        if args.debug:
            shown = error.__cause__ if expected and error.__cause__ is not None else error
            traceback.print_exception(shown)
        message = str(error) if expected else f"unexpected {describe(error)}"
        print(f"irtool: error: {_one_line(message)}", file=sys.stderr)
        return getattr(error, "code", 1) if expected else 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as the CLI's one line (``irtool: warning: ...``), without Python's source excerpt."""
    print(f"irtool: warning: {_one_line(str(message))}", file=sys.stderr)


__all__ = ["CLIError", "build_parser", "main"]
