"""ONNX Runtime helpers: read an ONNX model's inputs and outputs, open a session on a chosen
provider, make random inputs for it, and check it against a reference implementation.

This module takes ONNX (a path, serialized bytes or an ``onnx.ModelProto``) and NumPy arrays,
and imports nothing of irtool outside ``irtool.runtime``: turning a model into ONNX is
``irtool.loading``'s job. ``check_parity`` feeds the same random inputs to ONNX Runtime and to
``reference`` (a function from the list of input arrays to the list of output arrays, e.g. an
irtool model's NumPy executor) and reports, per output, how far they differ:

>>> reports = check_parity("model.onnx", lambda xs: [model.predict(xs[0])])  # doctest: +SKIP
>>> [(r["name"], r["ok"]) for r in reports]  # doctest: +SKIP
[('dense_2', True)]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from irtool.memory import array_bytes, check_allocation
from irtool.runtime.providers import CPU, CUDA, TENSORRT, ProviderError, check_active
from irtool.runtime.providers import resolve as resolve_providers

#: Sizes given to dynamic non-batch dimensions, by axis position and run.
DYNAMIC_SIZES = (3, 5)

#: What the functions here accept as an ONNX model.
OnnxSource = str | os.PathLike | bytes | bytearray | onnx.ModelProto


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as the ONNX model declares it.

    ``dtype`` is the NumPy dtype (``None`` when the element type has none); ``shape`` holds an
    ``int`` per fixed dimension, the name of a symbolic one (``"batch"``) or ``None`` for an
    unnamed dynamic one, and is ``None`` itself when the rank is unknown.
    """

    name: str
    dtype: np.dtype | None
    shape: tuple[int | str | None, ...] | None


def load_onnx(source: OnnxSource, external_data: bool = False) -> onnx.ModelProto:
    """The ``onnx.ModelProto`` of ``source`` (a path, bytes or a proto, returned as is).

    A file is read without its external data unless ``external_data`` (inputs, outputs and
    shapes need none). Raises ``OSError`` for a missing file and ``ValueError`` naming the
    file when it is not a readable ONNX model.
    """
    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, (bytes, bytearray)):
        what = "the bytes given"
        read: Callable[[], onnx.ModelProto] = lambda: onnx.load_from_string(bytes(source))  # noqa: E731
    else:
        what = os.fspath(source)
        read = lambda: onnx.load(what, load_external_data=external_data)  # noqa: E731
    try:
        model = read()
    except OSError:
        raise
    except Exception as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"{what} is not a readable ONNX model ({type(error).__name__}: {reason})") from error
    # Protobuf parses an empty file, and many short byte strings, as a valid empty message.
    if not model.HasField("graph"):
        raise ValueError(f"{what} is not a readable ONNX model (it holds no graph)")
    return model


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    except (KeyError, TypeError, ValueError):
        dtype = None
    shape = None
    if tensor_type.HasField("shape"):
        shape = tuple(
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim
        )
    return TensorInfo(value.name, dtype, shape)


def graph_io(source: OnnxSource) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The model's graph inputs (initializers excluded) and outputs, in order."""
    graph = load_onnx(source).graph
    weights = {init.name for init in graph.initializer}
    inputs = [_tensor_info(v) for v in graph.input if v.name not in weights]
    return inputs, [_tensor_info(v) for v in graph.output]


#: ``optimization`` names for ONNX Runtime's graph optimization levels.
OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(threads: int | None = None, optimization: str = "all") -> ort.SessionOptions:
    """``SessionOptions`` with ``threads`` intra-op threads (``None``: ONNX Runtime's choice, one per
    physical core of the host, which oversubscribes a container) and an optimization level
    (``"disable"``, ``"basic"``, ``"extended"`` or ``"all"``)."""
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization: expected one of {', '.join(OPTIMIZATION_LEVELS)}, received {optimization!r}")
    options = ort.SessionOptions()
    # FATAL only: every run ONNX Runtime logs as an ERROR also raises to the caller with the same
    # message (which irtool reports once); the log line would repeat it on stderr for each failed
    # run, a line per bad request in a server.
    options.log_severity_level = 4
    options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads: expected a positive number of threads, received {threads!r}")
        options.intra_op_num_threads = int(threads)
    return options


def make_session(
    path_or_proto: OnnxSource,
    providers: Any = None,
    *,
    provider_options: Any = None,
    strict: bool = True,
    threads: int | None = None,
    optimization: str = "all",
    external_data_folder: str | os.PathLike | None = None,
) -> ort.InferenceSession:
    """An ``onnxruntime.InferenceSession`` on ``providers`` (default: the CPU provider).

    ``path_or_proto`` is a file path, an ``onnx.ModelProto`` or serialized bytes; ``providers``
    a provider or a list of them, each an alias (``"cuda"``), an ONNX Runtime name or a
    ``(name, options)`` pair, with irtool's defaults filled in (``providers.resolve``). When
    CUDA or TensorRT is asked for, the CUDA/cuDNN libraries shipped in pip wheels are preloaded
    (``onnxruntime.preload_dlls``, where it exists). After creation the session's active
    providers are compared with the requested ones: a provider that is not installed or did not
    start raises ``ProviderError`` (a ``RuntimeError``) naming what was asked for, what runs and
    the fix; with ``strict=False`` that sentence is one ``RuntimeWarning`` instead and the
    session runs on what did start. ``external_data_folder`` is where the external data of a
    model given as bytes or a proto lies (a file's own folder is used for a path).
    """
    requested = resolve_providers(providers, provider_options)
    if any(name in (CUDA, TENSORRT) for name, _ in requested) and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:  # a failed preload shows up as a provider that did not start, below
            pass
    available = ort.get_available_providers()
    if strict:
        problem = check_active(requested, available)
        if problem:
            raise ProviderError(problem)
    # ONNX Runtime warns on its own about unavailable providers; leave them out and warn once below
    usable = [(name, options) for name, options in requested if name in available] or [(CPU, {})]
    if isinstance(path_or_proto, onnx.ModelProto):
        source: Any = path_or_proto.SerializeToString()
    elif isinstance(path_or_proto, (bytes, bytearray)):
        source = bytes(path_or_proto)
    else:
        source = os.fspath(path_or_proto)
    options = session_options(threads, optimization)
    if external_data_folder is not None:
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", os.fspath(external_data_folder)
        )
    session = ort.InferenceSession(
        source,
        options,
        providers=[name for name, _ in usable],
        provider_options=[options for _, options in usable],
    )
    problem = check_active(requested, available, session.get_providers())
    if problem:
        if strict:
            raise ProviderError(problem)
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    return session


def random_inputs(
    source: OnnxSource | Sequence[TensorInfo], batch_size: int, run: int = 0, seed: int = 0
) -> list[np.ndarray]:
    """Random arrays for the ONNX model's inputs (or for ``TensorInfo``s), with their dtypes and shapes.

    Dynamic dimensions never get size 1: one at axis 0 gets ``batch_size``, others 3 or 5 (by
    axis position and ``run``); a symbolic dimension keeps the size it got where it first
    appeared, so inputs that share a dimension name agree. Floats are standard normal,
    integers in ``[0, 5)``, booleans fair coin flips.
    """
    infos = graph_io(source)[0] if isinstance(source, (str, os.PathLike, bytes, bytearray, onnx.ModelProto)) else source
    rng = np.random.default_rng([seed, run, batch_size])
    sizes: dict[str, int] = {}
    arrays = []
    for info in infos:
        if info.shape is None:
            raise ValueError(f"the ONNX input {info.name!r} has no declared shape; random inputs need its rank")
        if info.dtype is None or not (info.dtype == np.bool_ or info.dtype.kind in "iuf"):
            raise ValueError(f"the ONNX input {info.name!r} has element type {info.dtype}; random inputs need numbers")
        shape = []
        for axis, dim in enumerate(info.shape):
            if isinstance(dim, int):
                shape.append(dim)
                continue
            size = batch_size if axis == 0 else DYNAMIC_SIZES[(axis + run) % len(DYNAMIC_SIZES)]
            shape.append(sizes.setdefault(dim, size) if dim else size)
        check_allocation(
            array_bytes(shape, info.dtype.itemsize), f"the random input {info.name!r} of shape {tuple(shape)}"
        )
        if info.dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        elif info.dtype.kind in "iu":
            arrays.append(rng.integers(0, 5, size=shape).astype(info.dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(info.dtype))
    return arrays


def _differences(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise ``|a - b|`` and ``|a - b| / (|b| + 1e-7)``; NaNs at the same places count as equal."""
    a = got.astype(np.float64)
    b = want.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
    same = (np.isnan(a) & np.isnan(b)) | (a == b)  # also equal infinities
    diff = np.where(same, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    return diff, diff / (np.abs(np.nan_to_num(b)) + 1e-7)


#: ``InputSet``: a label for the user ("batch 3, length 5, left-padded") and one array per ONNX input.
InputSet = tuple[str, Sequence[np.ndarray]]

#: ``check_parity`` calls a difference float rounding when ONNX Runtime is at most this many times
#: as far from the exact reference as the reference itself is (plus ``ROUNDING_SLACK``).
ROUNDING_FACTOR = 2.0
#: ... plus this many float32 epsilons of the exact output's largest magnitude.
ROUNDING_SLACK = 4.0

FLOAT_ROUNDING = "float rounding"
REAL_DISAGREEMENT = "a real disagreement"


def _rounding_verdict(got: np.ndarray, want: np.ndarray, exact: np.ndarray) -> tuple[str, float, float]:
    """``(verdict, max |got - exact|, max |want - exact|)`` for one output on one input set."""
    exact = np.asarray(exact, dtype=np.float64)
    onnx_error = float(_differences(got, exact)[0].max())
    reference_error = float(_differences(want, exact)[0].max())
    scale = float(np.max(np.abs(np.nan_to_num(exact, posinf=0.0, neginf=0.0)), initial=0.0))
    slack = ROUNDING_SLACK * float(np.finfo(np.float32).eps) * scale
    verdict = FLOAT_ROUNDING if onnx_error <= ROUNDING_FACTOR * reference_error + slack else REAL_DISAGREEMENT
    return verdict, onnx_error, reference_error


def check_parity(
    proto_or_path: OnnxSource,
    reference: Callable[[list[np.ndarray]], Sequence[Any]],
    batch_sizes: Sequence[int] = (2, 3),
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
    providers: Any = None,
    reference_name: str = "the reference",
    input_sets: Sequence[InputSet] | None = None,
    exact_reference: Callable[[list[np.ndarray]], Sequence[Any]] | None = None,
) -> list[dict]:
    """Compare ONNX Runtime with ``reference`` on random inputs; one report per ONNX output.

    ``reference(arrays)`` gets the input arrays in the ONNX model's input order and returns
    the outputs in its output order. Both get the same inputs: ``input_sets``, labelled
    ``(label, arrays)`` pairs, when given, else ``random_inputs`` for each of ``batch_sizes``
    (labelled ``"batch N"``). Each report has ``name`` (the ONNX output name), ``shape`` (its
    declared ONNX shape, see ``TensorInfo``), ``dtype``, ``max_abs_diff`` and ``max_rel_diff``
    (over all sets), ``ok`` and, when not ok for another reason than the values, ``error``
    (prefixed with the set's label). Float outputs pass when ``|a - b| <= atol + rtol * |b|``
    everywhere; integer and boolean outputs must be equal; ``reference_name`` names the
    reference in ``error``.

    A report that failed on its values also says where the largest difference is: ``worst``
    (the set's label), ``worst_index`` (the element), ``onnx_value`` and ``reference_value``.
    With ``exact_reference`` (the same computation in higher precision, e.g. a float64 NumPy
    run), which is called only on the sets where a float output failed, a failed float output
    also gets ``verdict``: ``FLOAT_ROUNDING`` when, on every set where it failed, ONNX Runtime
    is within ``ROUNDING_FACTOR`` times the reference's own distance from the exact result
    (plus ``ROUNDING_SLACK`` float32 epsilons of that result's scale), else
    ``REAL_DISAGREEMENT``; ``onnx_error`` and ``reference_error`` are those distances (the
    largest over the failing sets). Raises ``ValueError`` when ``reference`` returns another
    number of outputs than the ONNX model has.
    """
    proto = load_onnx(proto_or_path)
    inputs, outputs = graph_io(proto)
    session = make_session(proto_or_path, providers)
    if input_sets is None:
        input_sets = [
            (f"batch {int(b)}", random_inputs(inputs, int(b), run=run, seed=seed)) for run, b in enumerate(batch_sizes)
        ]
    reports = [
        {
            "name": info.name,
            "shape": info.shape,
            "dtype": str(info.dtype),
            "max_abs_diff": 0.0,
            "max_rel_diff": 0.0,
            "ok": True,
        }
        for info in outputs
    ]
    worst_failure = [-1.0] * len(outputs)
    for label, feeds in input_sets:
        feeds = list(feeds)
        got = session.run(None, {info.name: array for info, array in zip(inputs, feeds)})
        want = list(reference(feeds))
        if len(want) != len(outputs):
            raise ValueError(
                f"{reference_name} gave {len(want)} outputs, but the ONNX model has {len(outputs)} "
                f"({', '.join(info.name for info in outputs)})."
            )
        failed_floats = []
        for k, (report, g, w) in enumerate(zip(reports, got, want)):
            g, w = np.asarray(g), np.asarray(w)
            if g.shape != w.shape or g.dtype != w.dtype:
                report["ok"] = False
                report["max_abs_diff"] = report["max_rel_diff"] = float("inf")
                report.setdefault(
                    "error",
                    f"{label}: ONNX Runtime gave {g.dtype}{list(g.shape)}, {reference_name} {w.dtype}{list(w.shape)}",
                )
                continue
            if g.size == 0:
                continue
            diff, rel = _differences(g, w)
            largest = float(diff.max())
            report["max_abs_diff"] = max(report["max_abs_diff"], largest)
            report["max_rel_diff"] = max(report["max_rel_diff"], float(rel.max()))
            floating = np.issubdtype(w.dtype, np.floating)
            if floating:
                ok = bool(np.all(diff <= atol + rtol * np.abs(np.nan_to_num(w.astype(np.float64)))))
            else:
                ok = bool(np.all(diff == 0))
            report["ok"] = report["ok"] and ok
            if ok:
                continue
            if largest > worst_failure[k]:
                worst_failure[k] = largest
                index = np.unravel_index(int(np.argmax(diff)), diff.shape)
                report["worst"] = label
                report["worst_index"] = tuple(int(i) for i in index)
                report["onnx_value"] = g[index].item()
                report["reference_value"] = w[index].item()
            if floating and exact_reference is not None:
                failed_floats.append((k, g, w))
        if failed_floats:
            exact = list(exact_reference(feeds))
            for k, g, w in failed_floats:
                verdict, onnx_error, reference_error = _rounding_verdict(g, w, exact[k])
                report = reports[k]
                if report.get("verdict") != REAL_DISAGREEMENT:
                    report["verdict"] = verdict
                report["onnx_error"] = max(report.get("onnx_error", 0.0), onnx_error)
                report["reference_error"] = max(report.get("reference_error", 0.0), reference_error)
    return reports


__all__ = [
    "CPU",
    "DYNAMIC_SIZES",
    "FLOAT_ROUNDING",
    "OPTIMIZATION_LEVELS",
    "REAL_DISAGREEMENT",
    "ROUNDING_FACTOR",
    "ROUNDING_SLACK",
    "InputSet",
    "TensorInfo",
    "check_parity",
    "graph_io",
    "load_onnx",
    "make_session",
    "random_inputs",
    "session_options",
]
