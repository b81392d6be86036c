"""ONNX Runtime helpers: open a session on a chosen provider, and check an export's parity.

``check_parity(model, proto)`` feeds the same random inputs to ONNX Runtime and to the
model's NumPy executor (``model.predict``) and reports, per output, how far they differ:

>>> reports = check_parity(model, "model.onnx")  # doctest: +SKIP
>>> [(r["name"], r["ok"]) for r in reports]  # doctest: +SKIP
[('dense_2', True)]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

CPU = "CPUExecutionProvider"

#: Sizes given to dynamic (``None``) non-batch dimensions, by axis position and run.
DYNAMIC_SIZES = (3, 5)


def _provider_name(provider: Any) -> str:
    """A provider entry is a name or a ``(name, options)`` pair."""
    return provider[0] if isinstance(provider, (tuple, list)) else str(provider)


def make_session(path_or_proto: Any, providers: Any = None):
    """An ``onnxruntime.InferenceSession`` on ``providers`` (default: the CPU provider).

    ``path_or_proto`` is a file path, an ``onnx.ModelProto`` or serialized bytes;
    ``providers`` a provider name, or a list of names or ``(name, options)`` pairs. When
    CUDA is asked for, the CUDA/cuDNN libraries shipped in pip wheels are preloaded
    (``onnxruntime.preload_dlls``, where it exists). Raises ``RuntimeError`` when a requested
    provider is not available or the session silently fell back to another one.
    """
    import onnxruntime as ort

    if providers is None:
        providers = [CPU]
    elif isinstance(providers, (str, tuple)):
        providers = [providers]
    providers = list(providers)
    names = [_provider_name(p) for p in providers]
    if any("CUDA" in n or "Tensorrt" in n for n in names) and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:  # a failed preload shows up as a missing provider below
            pass
    available = ort.get_available_providers()
    missing = [n for n in names if n not in available]
    if missing:
        raise RuntimeError(
            f"ONNX Runtime {ort.__version__} has no {', '.join(missing)} (available: {', '.join(available)})."
            + (" Install onnxruntime-gpu for CUDA." if any("CUDA" in n for n in missing) else "")
        )
    if hasattr(path_or_proto, "SerializeToString"):
        source: Any = path_or_proto.SerializeToString()
    elif isinstance(path_or_proto, (bytes, bytearray)):
        source = bytes(path_or_proto)
    else:
        source = os.fspath(path_or_proto)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(source, options, providers=providers)
    active = session.get_providers()
    fell_back = [n for n in names if n not in active]
    if fell_back:
        raise RuntimeError(
            f"ONNX Runtime could not start {', '.join(fell_back)} (the session runs on {', '.join(active)}); "
            "check the CUDA/cuDNN installation that onnxruntime-gpu needs."
        )
    return session


def random_inputs(model, batch_size: int, run: int = 0, seed: int = 0) -> list[np.ndarray]:
    """Random arrays for the model's (flat) inputs, respecting their dtypes and shapes.

    Dynamic dimensions never get size 1: the batch axis gets ``batch_size``, other dynamic
    axes 3 or 5 (by axis position and ``run``, the same for every input). Floats are
    standard normal, integers in ``[0, 5)``, booleans fair coin flips.
    """
    rng = np.random.default_rng([seed, run, batch_size])
    arrays = []
    for t in model.inputs:
        shape = tuple(
            (batch_size if axis == 0 else DYNAMIC_SIZES[(axis + run) % len(DYNAMIC_SIZES)]) if dim is None else int(dim)
            for axis, dim in enumerate(t.shape)
        )
        dtype = np.dtype(t.dtype)
        if dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        elif np.issubdtype(dtype, np.integer):
            arrays.append(rng.integers(0, 5, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
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


def check_parity(
    model,
    proto_or_path: Any,
    batch_sizes: Sequence[int] = (2, 3),
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
    providers: Any = None,
) -> list[dict]:
    """Compare ONNX Runtime with ``model.predict`` on random inputs; one report per output.

    Each report has ``name`` (the ONNX output name), ``shape`` (the model's symbolic shape),
    ``dtype``, ``max_abs_diff`` and ``max_rel_diff`` (over all ``batch_sizes``), ``ok`` and,
    when not ok for another reason than the values, ``error``. Float outputs pass when
    ``|a - b| <= atol + rtol * |b|`` everywhere; integer and boolean outputs must be equal.
    """
    from irtool.ir import tree

    session = make_session(proto_or_path, providers)
    onnx_inputs = [i.name for i in session.get_inputs()]
    onnx_outputs = [o.name for o in session.get_outputs()]
    model_inputs = list(model.inputs)
    model_outputs = list(model.outputs)
    if len(onnx_inputs) != len(model_inputs) or len(onnx_outputs) != len(model_outputs):
        raise ValueError(
            f"The ONNX model has {len(onnx_inputs)} inputs and {len(onnx_outputs)} outputs, but model "
            f"'{model.name}' has {len(model_inputs)} and {len(model_outputs)}."
        )
    reports = [
        {
            "name": name,
            "shape": tuple(t.shape),
            "dtype": str(t.dtype),
            "max_abs_diff": 0.0,
            "max_rel_diff": 0.0,
            "ok": True,
        }
        for name, t in zip(onnx_outputs, model_outputs)
    ]
    for run, batch_size in enumerate(batch_sizes):
        feeds = random_inputs(model, int(batch_size), run=run, seed=seed)
        got = session.run(None, dict(zip(onnx_inputs, feeds)))
        want = model.predict(feeds if len(feeds) > 1 else feeds[0], batch_size=max(int(batch_size), 1), verbose=0)
        want = tree.flatten(want) if isinstance(want, (list, tuple, dict)) else [want]
        for report, g, w in zip(reports, got, want):
            g, w = np.asarray(g), np.asarray(w)
            if g.shape != w.shape or g.dtype != w.dtype:
                report["ok"] = False
                report["max_abs_diff"] = report["max_rel_diff"] = float("inf")
                report.setdefault(
                    "error",
                    f"batch {batch_size}: ONNX Runtime gave {g.dtype}{list(g.shape)}, NumPy {w.dtype}{list(w.shape)}",
                )
                continue
            if g.size == 0:
                continue
            diff, rel = _differences(g, w)
            report["max_abs_diff"] = max(report["max_abs_diff"], float(diff.max()))
            report["max_rel_diff"] = max(report["max_rel_diff"], float(rel.max()))
            if np.issubdtype(w.dtype, np.floating):
                ok = bool(np.all(diff <= atol + rtol * np.abs(np.nan_to_num(w.astype(np.float64)))))
            else:
                ok = bool(np.all(diff == 0))
            report["ok"] = report["ok"] and ok
    return reports


__all__ = ["CPU", "check_parity", "make_session", "random_inputs"]
