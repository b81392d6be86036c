"""``irtool export`` (with ``--check``) and ``irtool summary``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from irtool import checking, importer, loading
from irtool.cli.common import (
    CLIError,
    _count,
    _make_folders,
    _one_line,
    note_fresh_weights,
)
from irtool.loading import describe, load, load_model
from irtool.onnx import ExportError
from irtool.runtime import ort


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
