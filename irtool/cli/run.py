"""``irtool run`` and ``irtool inspect``: an ONNX file (or a model exported in memory) on ONNX Runtime."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from irtool import loading
from irtool.atomic import replacing
from irtool.cli.common import (
    WEIGHTS_HELP,
    CLIError,
    _count,
    _make_folders,
    _one_line,
    _positive_int,
    _provider_list,
    note_fresh_weights,
)
from irtool.loading import LoadError, describe, load
from irtool.onnx import ExportError
from irtool.runtime import InputError, ProviderError, Session, conflict_message, installed_runtimes, ort
from irtool.runtime.benchmark import benchmark
from irtool.runtime.data_files import DataFileError, read_inputs
from irtool.runtime.inspection import describe as describe_onnx


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
    try:
        with contextlib.ExitStack() as renames:  # the renames come once every file is written
            for name, path in paths.items():
                with open(renames.enter_context(replacing(path)), "wb") as handle:
                    array = results[name]
                    if array.dtype == object:  # a string output: a str_ array loads without pickle
                        array = array.astype(str)
                    np.save(handle, array, allow_pickle=False)
    except OSError as error:
        raise CLIError(f"cannot write the outputs to {folder}: {describe(error)}") from error
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
