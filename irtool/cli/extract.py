"""``irtool extract``: cut a model at named tensors (or layers) into a smaller ONNX file, ``--list`` the
names, and ``--check`` the cut against the whole model in ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from irtool import loading
from irtool import onnx as irtool_onnx  # its cutting names load onnx-ir on first use: see there
from irtool.cli.common import WEIGHTS_HELP, CLIError, _count, _tolerance, note_fresh_weights
from irtool.loading import describe, load, source_kind
from irtool.onnx import ExportError
from irtool.runtime import graph_io, make_session, random_inputs
from irtool.runtime.data_files import DataFileError, read_inputs
from irtool.runtime.feeds import InputCheck, InputError

#: Batch size of the random inputs ``--check`` draws (a dynamic batch axis gets it).
CHECK_BATCH = 2


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _source(args: argparse.Namespace):
    """The ONNX path itself (onnx-ir maps it lazily), or the loaded irtool model."""
    if source_kind(args.file) == "onnx":
        if args.weights is not None or args.object is not None:
            flag = "--weights" if args.weights is not None else "--object"
            raise CLIError(f"{flag} applies to model.py and .keras sources; {args.file} is ONNX", code=2)
        return args.file, None
    loaded = load(args.file, args.object, kinds=("python", "keras"), weights=args.weights)
    loading.check_exportable(loaded.model)
    return loaded.model, loaded


def _print_list(source, name: str) -> None:
    points = irtool_onnx.cut_points(source)
    rows = [(p.name, p.producer or "input", p.dtype or "?", p.shape_text) for p in points]
    header = ("NAME", "LAYER" if not isinstance(source, str) else "OP", "DTYPE", "SHAPE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    print(f"{_count(len(points), 'name')} to cut at in {name}")


def _output_path(output: str | None, source: str) -> Path:
    if output is None:
        return Path(f"{Path(source).stem}_cut.onnx")
    out = Path(output)
    return out / f"{Path(source).stem}_cut.onnx" if out.is_dir() else out


def _feeds(args: argparse.Namespace, infos) -> dict[str, np.ndarray]:
    names = [info.name for info in infos]
    if args.input:
        try:
            data = read_inputs(args.input, names)
        except DataFileError as error:
            raise CLIError(str(error), code=2) from None
        missing = [n for n in names if n not in data]
        if missing:
            raise CLIError(f"--check: no --input for {', '.join(missing)} (the model's inputs: {', '.join(names)})")
        try:  # the checks and lossless casts of `irtool run`
            return {i.name: InputCheck(i)(data[i.name]) for i in infos}
        except InputError as error:
            raise CLIError(f"--check: {error}") from None
    try:
        return dict(zip(names, random_inputs(infos, CHECK_BATCH)))
    except ValueError as error:
        raise CLIError(f"--check cannot make random inputs: {error}; pass --input NAME=FILE") from None


def check_cut(cut: irtool_onnx.Cut, cut_path: Path, args: argparse.Namespace) -> list[dict]:
    """Run the whole model with the cut points exposed and the cut on the values it computes there;
    one report per cut output: ``name``, ``max_abs_diff``, ``ok``."""
    proto, folder = cut.exposed_proto()
    feeds = _feeds(args, graph_io(proto)[0])
    try:
        session = make_session(proto, external_data_folder=folder)
        values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    except Exception as error:
        raise CLIError(f"--check: ONNX Runtime could not run {cut.source}: {describe(error)}") from error
    values.update(feeds)
    try:
        session = make_session(str(cut_path))
        cut_feeds = {i.name: values[i.name] for i in session.get_inputs()}
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, cut_feeds)))
    except Exception as error:
        raise CLIError(f"--check: ONNX Runtime could not run the cut: {describe(error)}") from error
    reports = []
    for name, value in got.items():
        want = values[name]
        if value.shape != want.shape:
            reports.append({"name": name, "ok": False, "max_abs_diff": float("inf"), "shape": value.shape})
            continue
        if value.dtype.kind not in "biuf" or want.dtype.kind not in "biuf":  # strings: equal or not
            ok = value.dtype.kind == want.dtype.kind and bool(np.all(value == want))
            reports.append({"name": name, "ok": ok, "max_abs_diff": 0.0 if ok else float("inf"), "shape": value.shape})
            continue
        diff = np.abs(value.astype(np.float64) - want.astype(np.float64))
        bound = args.atol + args.rtol * np.abs(want.astype(np.float64))
        same_nan = np.isnan(diff) & np.isnan(want.astype(np.float64))
        ok = bool(np.all((diff <= bound) | same_nan))
        worst = float(np.nanmax(diff)) if diff.size else 0.0
        reports.append({"name": name, "ok": ok, "max_abs_diff": worst, "shape": value.shape})
    return reports


def cmd_extract(args: argparse.Namespace) -> int:
    """``irtool extract``: write the cut atomically (checked, and with ``--check`` compared first)."""
    if args.list:
        if args.outputs or args.inputs or args.check or args.output:
            raise CLIError("--list prints the names; it takes no --outputs, --inputs, -o or --check", code=2)
    elif not args.outputs:
        raise CLIError("--outputs NAME[,NAME...] is required (or --list to see the names)", code=2)
    source, loaded = _source(args)
    if args.list:
        try:
            _print_list(source, Path(args.file).name)
        except irtool_onnx.ExtractError as error:
            raise CLIError(str(error)) from None
        return 0
    out = _output_path(args.output, args.file)
    inputs = _names(args.inputs) if args.inputs else None
    try:
        cut = irtool_onnx.extract_cut(source, _names(args.outputs), inputs, source=Path(args.file).name)
    except (irtool_onnx.ExtractError, ExportError) as error:
        raise CLIError(str(error)) from None
    reports: list[dict] = []

    def verify(path: Path) -> None:
        reports.extend(check_cut(cut, path, args))
        for r in reports:
            verdict = "ok" if r["ok"] else "FAILED"
            print(f"output {r['name']}: max |diff| {r['max_abs_diff']:.3g} {tuple(r['shape'])}: {verdict}")
        failed = [r["name"] for r in reports if not r["ok"]]
        if failed:
            raise CLIError(
                f"the cut disagrees with the whole model on {', '.join(failed)} (atol {args.atol:g}, "
                f"rtol {args.rtol:g}); {out} was not written"
            )

    try:
        data = irtool_onnx.save_cut(cut, out, verify=verify if args.check else None)
    except irtool_onnx.ExtractError as error:
        raise CLIError(f"{error}; {out} was not written") from None
    graph = cut.model.graph
    extra = f", weights in {data.name}" if data is not None else ""
    print(
        f"extracted {', '.join(cut.output_names)} from {Path(args.file).name} -> {out} "
        f"(inputs {', '.join(cut.input_names)}; {_count(len(list(graph)), 'node')}, "
        f"{_count(len(graph.initializers), 'initializer')}{extra})"
    )
    if args.check:
        print(f"check: the cut agrees with the whole model on {_count(len(reports), 'output')}")
    if loaded is not None:
        note_fresh_weights(loaded)
    return 0


def _add_extract_parser(commands) -> None:
    extract = commands.add_parser(
        "extract",
        help="cut a model at named tensors into a smaller ONNX file",
        description="Cut an ONNX file (at tensor or node names) or a model.py / .keras model (at layer names) "
        "into the ONNX model that computes --outputs from --inputs, keeping opsets, metadata, doc strings, "
        "symbolic dims and external data.",
    )
    extract.add_argument("file", help="an .onnx file, a Python file that builds the model, or a saved .keras model")
    extract.add_argument("--outputs", metavar="NAME[,NAME...]", help="where the cut ends: tensor, node or layer names")
    extract.add_argument(
        "--inputs", metavar="NAME[,NAME...]", help="where the cut starts (default: the model inputs the outputs need)"
    )
    extract.add_argument("-o", "--output", metavar="PATH", help="the ONNX file to write (default: ./<stem>_cut.onnx)")
    extract.add_argument("--list", action="store_true", help="print the names one may cut at, with dtypes and shapes")
    extract.add_argument(
        "--check",
        action="store_true",
        help="run the whole model with the cut points exposed and the cut on its values there; print the max "
        "abs diff per output, fail (writing nothing) over --atol/--rtol",
    )
    extract.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="--check inputs for the whole model (.npy, .npz or .json; default: random); repeatable",
    )
    extract.add_argument("--atol", type=_tolerance, default=1e-5, help="absolute tolerance of --check (default 1e-5)")
    extract.add_argument("--rtol", type=_tolerance, default=1e-5, help="relative tolerance of --check (default 1e-5)")
    extract.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
    extract.add_argument(
        "--object",
        metavar="NAME",
        help="the model to use: a global of the file holding a model, or a zero-argument function returning one",
    )
    extract.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    extract.set_defaults(func=cmd_extract)
