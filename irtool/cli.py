"""The ``irtool`` command line: export a model to ONNX, print its summary, plot it, run it or inspect it.

    irtool export examples/mnist_mlp.py -o out/mnist.onnx --check
    irtool summary examples/mnist_mlp.py --show-trainable
    irtool plot examples/mnist_mlp.py -o mnist.png --show-shapes
    irtool plot out/mnist.onnx -o mnist_onnx.svg
    irtool run out/mnist.onnx --input digits=x.npy --output-dir preds/
    irtool run examples/mnist_mlp.py --random --benchmark 200 --batch-size 32
    irtool inspect out/mnist.onnx

The model source is a Python file that builds the model, a saved ``.keras`` model or (for
``plot``) an ONNX file; ``irtool.loading`` loads it (see there how a Python file's model is
picked, ``--object NAME`` first). This module parses arguments, calls ``loading``, ``checking``, ``onnx``,
``viz`` and ``runtime``, and prints. Errors print one line, ``irtool: error: ...``, and exit
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


class CLIError(Exception):
    """A failure reported as one ``irtool: error:`` line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors raise ``CLIError(code=2)`` instead of printing usage."""

    def error(self, message: str):  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')", code=2)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


# -- export ----------------------------------------------------------------------------------------
def _output_path(output: str | None, source: str) -> Path:
    stem = Path(source).stem
    if output is None:
        return Path(f"{stem}.onnx")
    out = Path(output)
    if out.is_dir() or output.endswith(("/", os.sep)):
        return out / f"{stem}.onnx"
    return out


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    created = []
    current = folder.absolute()
    while not current.exists():
        created.append(current)
        current = current.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"cannot create the folder {folder}: {describe(error)}") from error
    return created


def _where(report: dict) -> str:
    """Where a failed output differs most and what the float64 run says of it ("" when unknown)."""
    if "worst" not in report:
        return ""
    index = ", ".join(str(i) for i in report.get("worst_index", ()))
    text = (
        f"largest |diff| {report['max_abs_diff']:.2g} at {report['worst']}, element [{index}]: "
        f"ONNX Runtime {report['onnx_value']:.7g}, NumPy {report['reference_value']:.7g}"
    )
    if "verdict" in report:
        text += (
            f"; {report['verdict']} (against a float64 NumPy run: ONNX Runtime is off by "
            f"{report['onnx_error']:.2g}, float32 NumPy by {report['reference_error']:.2g})"
        )
    return text


def _parity_line(report: dict, sets: str) -> str:
    verdict = "ok" if report["ok"] else "FAILED"
    if "error" in report:
        return f"output {report['name']}: {verdict}: {report['error']}"
    line = (
        f"output {report['name']}: max |diff| {report['max_abs_diff']:.2g}, max rel {report['max_rel_diff']:.2g} "
        f"({report['dtype']}, {sets}): {verdict}"
    )
    where = _where(report)
    return f"{line}: {where}" if where else line


def _failure(report: dict) -> str:
    """One failed output for the error line: its name, the input set and the verdict."""
    if "error" in report:
        return report["name"]
    if "worst" not in report:
        return report["name"]
    verdict = f", {report['verdict']}" if "verdict" in report else ""
    return f"{report['name']} (largest |diff| {report['max_abs_diff']:.2g} at {report['worst']}{verdict})"


def _check(model, path: str, out: Path, args: argparse.Namespace) -> None:
    """``--check``: ONNX Runtime on the written file against the model's NumPy executor.

    The inputs come from what the model accepts (``irtool.checking``); a failure names the
    output, the input set and the largest difference, and a float64 NumPy run says whether it
    is float rounding or a real disagreement.
    """
    try:
        inputs = checking.input_sets(model, path)
        # an all-padding row may give 0/0 (a masked average): NaN in both runs is no disagreement
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            reports = ort.check_parity(
                path,
                loading.numpy_reference(model),
                atol=args.atol,
                rtol=args.rtol,
                reference_name="NumPy",
                input_sets=inputs.sets,
                exact_reference=checking.float64_reference(model),
            )
    except Exception as error:
        raise CLIError(f"ONNX Runtime could not run the export: {describe(error)}; {out} was not written") from error
    for report in reports:
        print(_parity_line(report, inputs.summary))
    failed = [r for r in reports if not r["ok"]]
    if failed:
        rounding = all(r.get("verdict") == ort.FLOAT_ROUNDING for r in failed)
        hint = "; only float rounding: loosen --atol/--rtol if that is expected" if rounding else ""
        raise CLIError(
            f"ONNX Runtime disagrees with NumPy on {', '.join(_failure(r) for r in failed)} "
            f"(atol {args.atol:g}, rtol {args.rtol:g}){hint}; {out} was not written"
        )
    n = len(reports)
    print(
        f"check: ONNX Runtime agrees with NumPy on {n} output{'s' * (n != 1)} (atol {args.atol:g}, rtol {args.rtol:g})"
    )


def cmd_export(args: argparse.Namespace) -> int:
    """``irtool export``: write the model as ONNX (atomically; nothing is left on failure)."""
    loaded = load(args.file, args.object, kinds=("python", "keras"), weights=args.weights)
    model = loaded.model
    loading.check_exportable(model)
    out = _output_path(args.output, args.file)
    if out.is_dir():
        raise CLIError(f"the output {out} is a directory")
    created = _make_folders(out.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".irtool-{out.stem}-", suffix=".onnx.tmp", dir=out.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    done = False
    try:
        try:
            proto = model.export(tmp, opset=args.opset)
        except ExportError as error:
            raise CLIError(f"export of model '{model.name}' failed: {_one_line(str(error))}") from error
        except Exception as error:
            raise CLIError(f"export of model '{model.name}' failed: {describe(error)}") from error
        if args.check:
            _check(model, tmp, out, args)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp files are private; the export gets the usual mode
        os.replace(tmp, out)
        done = True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not done:
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    print(
        f"exported {model.name} -> {out} (opset {opset}, {_count(len(proto.graph.node), 'node')}, "
        f"{model.count_params():,} params)"
    )
    note_fresh_weights(loaded)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """``irtool summary``: print ``model.summary()``."""
    model = load_model(args.file, args.object)
    try:
        model.summary(
            line_length=args.line_length,
            expand_nested=args.expand_nested,
            show_trainable=args.show_trainable,
        )
    except Exception as error:
        raise CLIError(f"summary of model '{model.name}' failed: {describe(error)}") from error
    return 0


# -- plot ------------------------------------------------------------------------------------------
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


def _model_dot(args: argparse.Namespace):
    """The layer view of the model in ``args.file`` (a Python file or a saved ``.keras`` model)."""
    model = load_model(args.file, args.object)
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
        dot, what = _onnx_dot(args) if loading.source_kind(args.file) == "onnx" else _model_dot(args)
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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


# -- run and inspect ------------------------------------------------------------------------------
WEIGHTS_HELP = (
    "a .weights.h5 file or a .keras archive whose weights are loaded into the model "
    "(a model.py's own weights are freshly initialised)"
)


def note_fresh_weights(loaded: loading.LoadedModel) -> None:
    """Say once, after a command succeeded, that a model.py model ran or was exported with the
    weights its initializers drew (a failure prints its one error line and nothing else)."""
    if loaded.fresh_weights:
        print(
            f"irtool: note: model '{loaded.model.name}' has freshly initialised weights ({loaded.path.name} "
            "holds no trained ones); pass --weights FILE to use a .weights.h5 or .keras file",
            file=sys.stderr,
        )


def _provider_list(text: str) -> list[str]:
    try:
        return [provider_name(name) for name in text.split(",") if name.strip()]
    except ProviderError as error:
        raise CLIError(f"--providers: {error}", code=2) from None


def _open_session(args: argparse.Namespace, loaded: loading.LoadedModel, providers: list[str]) -> Session:
    """A session on the loaded source: an ONNX file by path (its external data too), a model exported in memory."""
    if loaded.kind == "onnx":
        source = str(loaded.path)
    else:
        try:
            source = loaded.onnx_model()
        except LoadError:
            raise
        except ExportError as error:
            raise CLIError(f"export of model '{loaded.name}' failed: {_one_line(str(error))}") from error
        except Exception as error:
            raise CLIError(f"export of model '{loaded.name}' failed: {describe(error)}") from error
    try:
        return Session(source, providers=providers, threads=args.threads, warmup=False)
    except ProviderError as error:
        raise CLIError(str(error)) from error
    except Exception as error:
        raise CLIError(f"ONNX Runtime cannot load {args.file}: {describe(error)}") from error


def _run_inputs(args: argparse.Namespace, session: Session) -> dict:
    """The checked feeds: from --input files, or random (--random, or a --benchmark without --input)."""
    if args.input and args.random:
        raise CLIError("--input and --random exclude each other", code=2)
    if args.input and args.batch_size is not None:
        raise CLIError("--batch-size applies to --random inputs; with --input the files set the batch", code=2)
    if args.input:
        try:
            data = read_inputs(args.input, session.input_names)
        except DataFileError as error:
            raise CLIError(str(error), code=2) from None
    elif args.random or args.benchmark:
        try:
            arrays = ort.random_inputs(session.inputs, args.batch_size or 1)
        except ValueError as error:
            raise CLIError(f"cannot make random inputs: {error}") from None
        data = dict(zip(session.input_names, arrays))
    else:
        raise CLIError("no inputs: pass --input NAME=FILE (.npy, .npz or .json) or --random", code=2)
    try:
        return session.feeds(data)
    except InputError as error:
        raise CLIError(f"{args.file}: {error}") from None


def _preview(array: np.ndarray, count: int = 6) -> str:
    flat = array.reshape(-1)
    values = ", ".join(
        np.format_float_positional(v, precision=4, trim="-") if flat.dtype.kind == "f" else str(v)
        for v in flat[:count].tolist()
    )
    return f"[{values}{', ...' if flat.size > count else ''}]"


def _output_file(folder: Path, name: str) -> Path:
    """``folder/<name>.npy``, with characters that are not safe in a file name replaced by ``_``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "output"
    return folder / f"{safe}.npy"


def _write_outputs(folder: Path, results: dict[str, np.ndarray]) -> list[Path]:
    """Each output as ``.npy`` in ``folder``: all written to temp files first, then renamed, so a
    failure leaves none of them."""
    paths = {name: _output_file(folder, name) for name in results}
    if len(set(paths.values())) != len(paths):
        raise CLIError(f"the outputs {', '.join(results)} map to the same file names in {folder}")
    _make_folders(folder)
    temps: dict[str, str] = {}
    try:
        for name, path in paths.items():
            fd, temps[name] = tempfile.mkstemp(prefix=f".irtool-{path.stem}-", suffix=".npy.tmp", dir=folder)
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, results[name], allow_pickle=False)
        for name, path in paths.items():
            os.replace(temps.pop(name), path)
    except OSError as error:
        raise CLIError(f"cannot write the outputs to {folder}: {describe(error)}") from error
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
    return list(paths.values())


def _print_timing(loaded: loading.LoadedModel, provider: str, timing, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"model": loaded.name, "provider": provider, **timing.as_dict()}))
        return
    print(
        f"benchmark {loaded.name} on {provider}: {timing.runs} runs of batch {timing.batch_size}: "
        f"p50 {timing.p50_ms:.3f} ms, p90 {timing.p90_ms:.3f} ms, p99 {timing.p99_ms:.3f} ms, "
        f"{timing.throughput:,.0f} samples/s"
    )


def _print_results(loaded: loading.LoadedModel, provider: str, results: dict, written: list, as_json: bool) -> None:
    if as_json:
        outputs = []
        for k, (name, array) in enumerate(results.items()):
            entry = {"name": name, "shape": list(array.shape), "dtype": str(array.dtype)}
            entry.update({"file": str(written[k])} if written else {"data": array.tolist()})
            outputs.append(entry)
        print(json.dumps({"model": loaded.name, "provider": provider, "outputs": outputs}))
        return
    print(f"ran {loaded.name} on {provider}")
    for k, (name, array) in enumerate(results.items()):
        where = f" -> {written[k]}" if written else f" {_preview(array)}"
        print(f"{name}: {tuple(array.shape)} {array.dtype}{where}")


def cmd_run(args: argparse.Namespace) -> int:
    """``irtool run``: run the model on ONNX Runtime, print (or save) its outputs, or benchmark it."""
    providers = _provider_list(args.providers)
    if args.benchmark and args.output_dir:
        raise CLIError("--benchmark prints timings; it writes no outputs (leave out --output-dir)", code=2)
    if args.output_dir and Path(args.output_dir).is_file():
        raise CLIError(f"--output-dir {args.output_dir} is a file, not a folder", code=2)
    for spec in args.input:  # usage errors before the model is loaded
        file = spec.partition("=")[2] if "=" in spec else spec
        if not Path(file).is_file():
            raise CLIError(f"no such input file: {file}", code=2)
    loaded = load(args.file, args.object, weights=args.weights)
    conflict = conflict_message(installed_runtimes())
    if conflict:
        print(f"irtool: warning: {conflict}", file=sys.stderr)
    session = _open_session(args, loaded, providers)
    feeds = _run_inputs(args, session)
    provider = session.providers[0]
    try:
        if args.benchmark:
            batch = max((int(a.shape[0]) for a in feeds.values() if a.ndim), default=1)
            timing = benchmark(lambda: session.run_list(feeds), args.benchmark, batch)
        else:
            results = session.run(feeds)
    except Exception as error:
        raise CLIError(f"ONNX Runtime failed on {args.file}: {describe(error)}") from error
    if args.benchmark:
        _print_timing(loaded, provider, timing, args.json)
    else:
        written = _write_outputs(Path(args.output_dir), results) if args.output_dir else []
        _print_results(loaded, provider, results, written, args.json)
    note_fresh_weights(loaded)
    return 0


def _dims(info: ort.TensorInfo) -> str:
    if info.shape is None:
        return "unknown rank"
    return "[" + ", ".join("?" if d is None else str(d) for d in info.shape) + "]"


def cmd_inspect(args: argparse.Namespace) -> int:
    """``irtool inspect``: what the ONNX file (or the model's export) declares, without running it."""
    loaded = load(args.file, args.object)
    try:
        proto = loaded.onnx if loaded.kind == "onnx" else loaded.onnx_model()
    except LoadError:
        raise
    except Exception as error:
        raise CLIError(f"export of model '{loaded.name}' failed: {describe(error)}") from error
    report = describe_onnx(proto)
    if args.json:
        fields = {key: value for key, value in vars(report).items() if key not in ("inputs", "outputs")}
        io = {
            side: [{"name": i.name, "dtype": str(i.dtype), "shape": i.shape} for i in getattr(report, side)]
            for side in ("inputs", "outputs")
        }
        print(json.dumps({"model": loaded.name, **io, **fields}))
        return 0
    opsets = ", ".join(f"{domain} {version}" for domain, version in report.opsets.items())
    producer = f"{report.producer} {report.producer_version}".strip() or "(not recorded)"
    print(f"model: {loaded.name} (graph '{report.graph_name}')")
    print(f"producer: {producer}; IR version {report.ir_version}; opset {opsets}")
    for side in ("inputs", "outputs"):
        print(f"{side}:")
        for info in getattr(report, side):
            print(f"  {info.name}: {info.dtype} {_dims(info)}")
    if report.metadata:
        print("metadata:")
        for key, value in report.metadata.items():
            print(f"  {key}: {_one_line(value)}")
    nodes = sum(report.op_counts.values())
    print(f"ops ({_count(nodes, 'node')}): " + ", ".join(f"{op} {n}" for op, n in report.op_counts.items()))
    print(f"parameters: {report.parameters:,} in {_count(report.initializers, 'initializer')}")
    return 0


def _add_run_parser(commands) -> None:
    run = commands.add_parser(
        "run",
        help="run the model on ONNX Runtime",
        description="Run an ONNX file, a model.py or a .keras model (exported in memory) on ONNX Runtime: "
        "print the outputs, write them as .npy files, or benchmark.",
    )
    run.add_argument("file", help="an .onnx file, a Python file that builds the model, or a saved .keras model")
    run.add_argument(
        "--object",
        metavar="NAME",
        help="the model to use: a global of the file holding a model, or a zero-argument function returning one",
    )
    run.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    run.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="input data: NAME=FILE (.npy, .npz or .json), or an .npz / JSON object keyed by input name; repeatable",
    )
    run.add_argument("--random", action="store_true", help="random inputs of the declared shapes and dtypes")
    run.add_argument("--batch-size", type=_positive_int, metavar="B", help="batch size of --random inputs (default 1)")
    run.add_argument(
        "--providers",
        default="cpu",
        metavar="LIST",
        help="execution providers in priority order, e.g. cuda,cpu (default cpu); one that does not start is an error",
    )
    run.add_argument("--threads", type=_positive_int, metavar="N", help="ONNX Runtime intra-op threads")
    run.add_argument("--output-dir", metavar="DIR", help="write each output as DIR/<name>.npy")
    run.add_argument(
        "--benchmark",
        type=_positive_int,
        metavar="N",
        help="time N runs (random inputs unless --input): p50/p90/p99 latency and throughput",
    )
    run.add_argument("--json", action="store_true", help="print JSON instead of text")
    run.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
    run.set_defaults(func=cmd_run)


def _add_inspect_parser(commands) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="print what an ONNX file declares",
        description="Print an ONNX file's (or a model's export's) inputs and outputs with symbolic dims, opset, "
        "IR version, producer, metadata, op histogram and parameter count.",
    )
    inspect.add_argument("file", help="an .onnx file, a Python file that builds the model, or a saved .keras model")
    inspect.add_argument(
        "--object",
        metavar="NAME",
        help="the model to use: a global of the file holding a model, or a zero-argument function returning one",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    inspect.set_defaults(func=cmd_inspect)


# -- serve -----------------------------------------------------------------------------------------
def _check_port(host: str, port: int) -> None:
    """Fail now, in one line, if the address cannot be listened on (uvicorn would log and exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CLIError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    missing = serving.missing_extra()
    if missing:
        raise CLIError(f"irtool serve needs {', '.join(missing)} (the serve extra): {serving.INSTALL}")
    # import here: the serve extra is optional, and every other command works without it
    from irtool.serving import server, sources

    token = None
    if args.auth_token_env:
        token = os.environ.get(args.auth_token_env)
        if not token:
            raise CLIError(f"--auth-token-env: the environment variable {args.auth_token_env} is not set", code=2)
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port: expected 0-65535, received {args.port}", code=2)
    providers = _provider_list(args.providers)
    _check_port(args.host, args.port)
    try:
        models = sources.served_models(
            args.models,
            providers=providers,
            instances=args.instances,
            max_batch_size=args.max_batch_size,
            max_queue_delay_us=args.max_queue_delay_us,
            threads=args.threads,
            weights=args.weights,
            object_name=args.object,
        )
    except ProviderError as error:
        raise CLIError(str(error)) from error
    for model in models:
        batching = (
            f"batching up to {model.max_batch_size} rows, {model.max_queue_delay_us} us delay"
            if model.max_batch_size > 1 and model.batchable
            else "no batching"
        )
        print(
            f"irtool: model '{model.name}' version {model.version}: {len(model.sessions)} instance(s) on "
            f"{', '.join(model.session.providers)}, {batching}"
        )

    def started(url: str) -> None:
        print(f"irtool: serving on {url} (KServe v2: {url}/v2/models/<name>/infer; metrics: {url}/metrics)", flush=True)

    server.run(
        models,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        on_start=started,
        max_request_bytes=args.max_request_bytes,
        auth_token=token,
    )
    print("irtool: stopped", flush=True)
    return 0


def _add_serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve models over the KServe v2 inference protocol",
        description="Serve ONNX files, model.py or .keras models (exported in memory) or a Triton-style model "
        "repository over HTTP with the KServe v2 / Open Inference Protocol (the tritonclient and KServe "
        "clients work), with dynamic batching and Prometheus metrics. Stops cleanly on SIGTERM.",
    )
    serve.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="name=PATH or PATH (named by its stem): .onnx, .keras, a model.py, or a model repository directory "
        "(<name>/<version>/model.onnx)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1, loopback only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    serve.add_argument(
        "--providers", default="cpu", metavar="LIST", help="execution providers, e.g. cuda,cpu (default cpu)"
    )
    serve.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=1,
        metavar="N",
        help="batch concurrent requests up to N rows per ONNX Runtime call (models with a dynamic first dim; default 1: off)",
    )
    serve.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=0,
        metavar="T",
        help="wait up to T microseconds for a batch to fill (default 0: batch only what is already waiting)",
    )
    serve.add_argument(
        "--instances",
        type=_positive_int,
        default=1,
        metavar="K",
        help="sessions per model run concurrently (default 1)",
    )
    serve.add_argument("--threads", type=_positive_int, metavar="N", help="ONNX Runtime intra-op threads per instance")
    serve.add_argument(
        "--max-request-bytes",
        type=_positive_int,
        default=64 * 2**20,
        metavar="B",
        help="the largest request body accepted, larger ones get 413 (default 64 MiB)",
    )
    serve.add_argument(
        "--auth-token-env", metavar="VAR", help="require 'Authorization: Bearer <token>', the token read from VAR"
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request as a JSON line on stderr (time, client, method, path, status, ms)",
    )
    serve.add_argument("--weights", metavar="FILE", help=WEIGHTS_HELP)
    serve.add_argument("--object", metavar="NAME", help="the model to use in a model.py (as for export)")
    serve.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    serve.set_defaults(func=cmd_serve)


# -- the parser ------------------------------------------------------------------------------------
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
        dest="command", metavar="{export,summary,plot,run,inspect,serve}", parser_class=_Parser
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
    export.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance of --check (default 1e-5)")
    export.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance of --check (default 1e-5)")
    export.set_defaults(func=cmd_export)

    summary = commands.add_parser(
        "summary", parents=[common], help="print the model's summary", description="Print model.summary()."
    )
    summary.add_argument("--line-length", type=int, metavar="N", help="the table width")
    summary.add_argument("--expand-nested", action="store_true", help="expand nested models")
    summary.add_argument("--show-trainable", action="store_true", help="add a 'Trainable' column")
    summary.set_defaults(func=cmd_summary)
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


__all__ = ["CLIError", "build_parser", "main"]
