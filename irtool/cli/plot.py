"""``irtool plot``: the layer view of a model, or an ONNX file node by node (or, with ``--layers``,
the layer view of its import)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from irtool import importer, loading
from irtool.cli.common import (
    CLIError,
    _make_folders,
    _one_line,
    _positive_int,
)
from irtool.loading import describe, load, load_model
from irtool.viz import GraphvizUnavailableError, RenderError, model_to_dot, save_plot
from irtool.viz.onnx_view import onnx_to_dot
from irtool.viz.render import format_of

#: ``plot`` options that only make sense for a layer view, not for an ONNX file's node view.
_LAYER_VIEW_ONLY = {
    "expand_nested": "--expand-nested",
    "show_layer_activations": "--show-layer-activations",
    "show_trainable": "--show-trainable",
}


def _plot_output_path(output: str | None, source: str) -> Path:
    stem = Path(source).stem
    if output is None:
        return Path(f"{stem}.png")
    out = Path(output)
    if out.is_dir() or output.endswith(("/", os.sep)):
        return out / f"{stem}.png"
    return out


def _onnx_dot(args: argparse.Namespace):
    """The node-level picture of the ONNX file ``args.file`` (any producer's, read without running anything)."""
    for option, flag in _LAYER_VIEW_ONLY.items():
        if getattr(args, option):
            raise CLIError(f"{flag} applies to models, not to ONNX files ({args.file} is drawn node by node)")
    loaded = load(args.file, args.object)
    try:
        return onnx_to_dot(loaded.onnx, show_dtype=args.show_dtype, rankdir=args.rankdir, dpi=args.dpi), loaded.name
    except Exception as error:
        raise CLIError(f"cannot plot {args.file}: {describe(error)}") from error


def _imported_model(args: argparse.Namespace):
    """The ONNX file ``args.file`` imported (``irtool.importer.load``), one layer per node."""
    load(args.file, args.object)  # the file's checks and one-line errors
    try:
        return importer.load(args.file)
    except importer.OnnxImportError as error:
        raise CLIError(
            f"--layers: {_one_line(str(error))} (without --layers the file is drawn node by node)"
        ) from error


def _model_dot(args: argparse.Namespace):
    """The layer view of the model in ``args.file`` (a Python file, a saved ``.keras`` model, or an
    ONNX file imported, with ``--layers``)."""
    model = _imported_model(args) if args.layers else load_model(args.file, args.object)
    try:
        dot = model_to_dot(
            model,
            show_shapes=args.show_shapes,
            show_dtype=args.show_dtype,
            rankdir=args.rankdir,
            expand_nested=args.expand_nested,
            dpi=args.dpi,
            show_layer_activations=args.show_layer_activations,
            show_trainable=args.show_trainable,
        )
    except Exception as error:
        raise CLIError(f"plot of model '{model.name}' failed: {describe(error)}") from error
    return dot, f"model '{model.name}'"


def cmd_plot(args: argparse.Namespace) -> int:
    """``irtool plot``: draw the model (or an ONNX file) to a png, svg, pdf or dot file, written atomically."""
    out = _plot_output_path(args.output, args.file)
    try:
        fmt = format_of(out)
    except ValueError as error:
        raise CLIError(str(error)) from None
    if out.is_dir():
        raise CLIError(f"the output {out} is a directory")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        is_onnx = loading.source_kind(args.file) == "onnx"
        if args.layers and not is_onnx:
            raise CLIError(f"--layers applies to ONNX files ({args.file} is always drawn layer by layer)")
        dot, what = _onnx_dot(args) if is_onnx and not args.layers else _model_dot(args)
        created = _make_folders(out.parent)
        try:
            plot = save_plot(dot, out, args.renderer)
        except GraphvizUnavailableError as error:  # the DOT text was written beside: keep its folder
            raise CLIError(str(error)) from error
        except (RenderError, OSError) as error:
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise CLIError(f"cannot write {out}: {describe(error)}") from error
    for warning in caught:
        print(f"irtool: warning: {_one_line(str(warning.message))}", file=sys.stderr)
    by = f", rendered by {plot.renderer}" if plot.renderer else ""
    print(f"plotted {what} -> {out} ({fmt}{by})")
    return 0


def _add_plot_parser(commands) -> None:
    plot = commands.add_parser(
        "plot",
        help="draw the model: png, svg, pdf or dot",
        description="Draw the model's layers (like keras.utils.plot_model), or an ONNX file node by node. Uses "
        "Graphviz's dot when installed, else the pip-installed graphviz-pure (png and svg).",
    )
    plot.add_argument("file", help="a Python file that builds the model, a saved .keras model, or an .onnx file")
    plot.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the picture to write; its extension picks the format: .png, .svg, .pdf or .dot (default: ./<stem>.png)",
    )
    plot.add_argument(
        "--object",
        metavar="NAME",
        help="the model to use: a global of the file holding a model, or a zero-argument function returning one",
    )
    plot.add_argument(
        "--show-shapes", action="store_true", help="show input and output shapes (an ONNX file always shows them)"
    )
    plot.add_argument("--show-dtype", action="store_true", help="show output dtypes")
    plot.add_argument(
        "--layers",
        action="store_true",
        help="draw an ONNX file's import (irtool.importer.load: one layer per node) like a model, instead of its "
        "nodes as the file holds them",
    )
    plot.add_argument("--show-layer-activations", action="store_true", help="show the activation of layers having one")
    plot.add_argument("--show-trainable", action="store_true", help="mark layers with weights as trainable or not")
    plot.add_argument("--expand-nested", action="store_true", help="draw nested models as clusters of their layers")
    plot.add_argument("--rankdir", choices=("TB", "LR", "BT", "RL"), default="TB", help="layout direction (default TB)")
    plot.add_argument("--dpi", type=_positive_int, default=200, metavar="N", help="PNG resolution (default 200)")
    plot.add_argument(
        "--renderer", metavar="NAME", help="dot, graphviz-pure or the path of a dot-compatible program (default: auto)"
    )
    plot.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    plot.set_defaults(func=cmd_plot)
