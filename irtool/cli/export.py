"""``irtool export`` (with ``--check``) and ``irtool summary``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from irtool import checking, importer, loading
from irtool.atomic import move_into, replacing, staging
from irtool.cli.common import (
    CLIError,
    _count,
    _make_folders,
    _non_negative_int,
    _one_line,
    _positive_int,
    note_fresh_weights,
)
from irtool.loading import describe, load, load_model
from irtool.onnx import ExportError
from irtool.runtime import ort
from irtool.serving import kserve, triton

#: options that only mean something with --triton-repo (their dest, as argparse names it)
_REPOSITORY_OPTIONS = (
    "name",
    "version",
    "max_batch_size",
    "max_queue_delay_us",
    "instances",
    "kserve_yaml",
    "storage_uri",
)


def _output_path(output: str | None, source: str) -> Path:
    stem = Path(source).stem
    if output is None:
        return Path(f"{stem}.onnx")
    out = Path(output)
    if out.is_dir() or output.endswith(("/", os.sep)):
        return out / f"{stem}.onnx"
    return out


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


def _check_repository_options(args: argparse.Namespace) -> None:
    if args.triton_repo is None:
        given = [name for name in _REPOSITORY_OPTIONS if getattr(args, name) is not None]
        given += [flag for flag in ("dynamic_batching", "gpu") if getattr(args, flag)]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise CLIError(f"{flags} describe a Triton model repository: add --triton-repo DIR", code=2)
        return
    if args.output is not None:
        raise CLIError(
            "-o/--output and --triton-repo exclude each other (the repository decides the file name)", code=2
        )
    if args.dynamic_batching and not args.max_batch_size:
        raise CLIError(
            "--dynamic-batching needs --max-batch-size > 0 (Triton batches only models that declare one)", code=2
        )
    if args.max_queue_delay_us is not None and not args.dynamic_batching:
        raise CLIError("--max-queue-delay-us is the delay of --dynamic-batching: add --dynamic-batching", code=2)
    if (args.kserve_yaml is None) != (args.storage_uri is None):
        raise CLIError(
            "--kserve-yaml FILE and --storage-uri URI go together (the URI the repository is copied to)", code=2
        )


def _write_text(path: Path, text: str) -> None:
    """``text`` to ``path`` atomically (temp file next to it, then rename)."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _export_repository(args: argparse.Namespace, loaded) -> int:
    """``--triton-repo DIR``: ``DIR/<name>/config.pbtxt`` and ``DIR/<name>/<version>/model.onnx``."""
    model = loaded.model
    name = args.name or Path(args.file).stem
    service = None
    if args.kserve_yaml is not None:
        try:
            service = kserve.inference_service(name, args.storage_uri, gpu=args.gpu)
        except ValueError as error:
            raise CLIError(str(error), code=2) from error
    try:
        proto = model.to_onnx(opset=args.opset)
    except ExportError as error:
        raise CLIError(f"export of model '{model.name}' failed: {_one_line(str(error))}") from error
    except Exception as error:
        raise CLIError(f"export of model '{model.name}' failed: {describe(error)}") from error
    folder = Path(args.triton_repo) / name
    try:
        written = triton.write_model(
            proto,
            args.triton_repo,
            name,
            args.version or 1,
            max_batch_size=args.max_batch_size or 0,
            dynamic_batching=args.dynamic_batching,
            max_queue_delay_us=args.max_queue_delay_us or 0,
            instances=args.instances or 1,
            gpu=args.gpu,
            before_commit=(lambda path: _check(model, str(path), folder, args)) if args.check else None,
        )
    except (triton.TritonError, OSError) as error:
        raise CLIError(str(error) if isinstance(error, triton.TritonError) else describe(error)) from error
    weights = " (weights as external data: over protobuf's 2 GiB)" if written.external_data else ""
    print(f"exported {model.name} -> {written.model}{weights}, config {written.config}")
    if service is not None:
        _write_text(Path(args.kserve_yaml), kserve.to_yaml(service))
        print(f"KServe InferenceService '{service['metadata']['name']}' -> {args.kserve_yaml}")
    note_fresh_weights(loaded)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``irtool export``: write the model as ONNX (atomically; nothing is left on failure)."""
    _check_repository_options(args)
    loaded = load(args.file, args.object, kinds=("python", "keras"), weights=args.weights)
    model = loaded.model
    loading.check_exportable(model)
    if args.triton_repo is not None:
        return _export_repository(args, loaded)
    out = _output_path(args.output, args.file)
    if out.is_dir():
        raise CLIError(f"the output {out} is a directory")
    created = _make_folders(out.parent)
    done = False
    try:
        # Staged under the final name: a model too large for one file gets its weights in
        # "<name>.data", which the graph file names; both move into place, the data first.
        with staging(out.parent, out.name) as stage:
            tmp = stage / out.name
            try:
                proto = model.export(tmp, opset=args.opset)
            except ExportError as error:
                raise CLIError(f"export of model '{model.name}' failed: {_one_line(str(error))}") from error
            except OSError as error:  # the write itself (a full disk): name the output, not the temp file
                raise CLIError(f"cannot write {out}: {error.strerror or describe(error)}") from error
            except Exception as error:
                raise CLIError(f"export of model '{model.name}' failed: {describe(error)}") from error
            if args.check:
                _check(model, tmp, out, args)
            move_into(stage, out.parent, last=out.name)
        done = True
    finally:
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


def add_triton_arguments(export: argparse.ArgumentParser) -> None:
    """``export``'s options for a Triton model repository (and a KServe InferenceService for it)."""
    group = export.add_argument_group(
        "Triton model repository",
        "write DIR/<name>/config.pbtxt and DIR/<name>/<version>/model.onnx for Triton (or KServe) instead of -o",
    )
    group.add_argument("--triton-repo", metavar="DIR", help="the model repository to write into (created if missing)")
    group.add_argument("--name", metavar="N", help="the model's folder and served name (default: the file's stem)")
    group.add_argument("--version", type=_positive_int, metavar="V", help="the version folder (default 1)")
    group.add_argument(
        "--max-batch-size",
        type=_non_negative_int,
        metavar="B",
        help="Triton's max_batch_size: > 0 leaves the (dynamic) first dim out of the config's dims (default 0)",
    )
    group.add_argument(
        "--dynamic-batching", action="store_true", help="let Triton stack requests (needs --max-batch-size > 0)"
    )
    group.add_argument(
        "--max-queue-delay-us",
        type=_non_negative_int,
        metavar="T",
        help="dynamic batching's max_queue_delay_microseconds (default 0)",
    )
    group.add_argument("--instances", type=_positive_int, metavar="K", help="instance_group count (default 1)")
    group.add_argument("--gpu", action="store_true", help="instance_group kind KIND_GPU (default KIND_CPU)")
    group.add_argument(
        "--kserve-yaml", metavar="FILE", help="also write a KServe InferenceService serving the repository"
    )
    group.add_argument(
        "--storage-uri", metavar="URI", help="where KServe finds the repository (s3://, gs://, pvc://...)"
    )


def _onnx_node_table(proto) -> str:
    """The read-only view of an ONNX graph the importer cannot map: one line per node."""
    rows = [("node", "op type", "inputs -> outputs")]
    for i, node in enumerate(proto.graph.node):
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        rows.append((node.name or f"#{i}", op, f"{', '.join(node.input)} -> {', '.join(node.output)}"))
    widths = [max(len(r[c]) for r in rows) for c in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    return "\n".join([f'ONNX graph "{proto.graph.name}" ({len(proto.graph.node)} nodes, read-only)', *lines])


def _summary_model(args: argparse.Namespace):
    """The model to summarize: a Python or .keras model, or an ONNX file imported (``None`` if it cannot be)."""
    if loading.source_kind(args.file) != "onnx":
        return load_model(args.file, args.object)
    loaded = load(args.file, args.object)  # the file's checks and one-line errors
    try:
        return importer.load(args.file)
    except importer.OnnxImportError as error:
        print(f"irtool: note: {_one_line(str(error))} Showing the ONNX graph read-only.", file=sys.stderr)
        print(_onnx_node_table(loaded.onnx))
        return None


def cmd_summary(args: argparse.Namespace) -> int:
    """``irtool summary``: print ``model.summary()`` (of an ONNX file: of its import, or its node list)."""
    model = _summary_model(args)
    if model is None:
        return 0
    try:
        model.summary(
            line_length=args.line_length,
            expand_nested=args.expand_nested,
            show_trainable=args.show_trainable,
        )
    except Exception as error:
        raise CLIError(f"summary of model '{model.name}' failed: {describe(error)}") from error
    return 0
