"""Fast float32 convolution kernels for training, run by ONNX Runtime's CPU kernels.

The NumPy convolution (im2col + one BLAS matmul) is exact but 3-4x slower than the vectorized
convolution kernels of ONNX Runtime (MLAS) or PyTorch (oneDNN) on the same CPU. So when the data
is float32, the training kernels of ``conv`` and ``depthwise_conv`` (``conv_forward``, any number
of groups) and their gradient with respect to the input (``conv_input_grad``, a transposed
convolution; ungrouped convolutions only) run through tiny cached ONNX Runtime sessions: one
``Conv`` or ``ConvTranspose`` node between the ``Transpose`` nodes that move channels-last data
to ONNX's channels-first layout. The ungrouped kernel gradient is an im2col copy in NumPy and
one large matmul, ``im2col(x)^T @ gy``, run by ONNX Runtime's ``Gemm`` (``matmul_tn``).
Everything else stays in NumPy: grouped and depthwise kernel gradients, ``conv_transpose``,
and every other dtype (float64, as in the finite-difference tests, and float16).

A training step that uses these kernels runs NumPy's BLAS on one thread (``blas_limited``): BLAS
worker threads that spin after each call would otherwise take the cores from ONNX Runtime's
threads (measured: the toy ResNet step drops from ~117 ms to ~91 ms on 2 cores).

The reference executor (``predict``, ``model(x)``) never uses these kernels, so ONNX Runtime
parity tests still compare two independent implementations. ``IRTOOL_KERNELS=numpy`` in the
environment, or ``set_kernels("numpy")``, makes training use the NumPy kernels too.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
from threadpoolctl import ThreadpoolController

from irtool.ops.conv_arithmetic import conv_pads

_KINDS = ("onnxruntime", "numpy")
_state = {"kind": "numpy" if os.environ.get("IRTOOL_KERNELS", "").lower() == "numpy" else "onnxruntime"}
_sessions: dict = {}  # (op, shapes, attributes) -> session; past _MAX_SESSIONS the oldest is dropped
_MAX_SESSIONS = 256
_lock = threading.Lock()


def blas_limited():
    """A context in which NumPy's BLAS uses one thread (a no-op where ``threadpoolctl`` cannot
    drive the BLAS, or with the NumPy kernels selected)."""
    controller = _state.get("threadpools", False)
    if controller is False:
        try:
            controller = ThreadpoolController()
        except Exception:  # an unusual BLAS that threadpoolctl cannot drive
            controller = None
        _state["threadpools"] = controller
    if controller is None or _state["kind"] != "onnxruntime":
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def set_kernels(kind: str) -> None:
    """Choose the training convolution kernels: ``"onnxruntime"`` (default) or ``"numpy"``."""
    if kind not in _KINDS:
        raise ValueError(f"Unknown kernels {kind!r}: expected one of {_KINDS}.")
    _state["kind"] = kind


def kernels() -> str:
    """The training convolution kernels in use: ``"onnxruntime"`` or ``"numpy"``."""
    return _state["kind"]


def _eligible(x, kernel, bias=None) -> bool:
    """Float32 1-3-D convolutions with non-empty operands run through ONNX Runtime."""
    return (
        _state["kind"] == "onnxruntime"
        and 3 <= x.ndim <= 5
        and kernel.ndim == x.ndim
        and all(a is None or (a.dtype == np.float32 and a.size > 0) for a in (x, kernel, bias))
    )


def _run(key, build, feeds):
    """Run the cached session for ``key`` (built by ``build()`` on first use) on ``feeds``; None
    when ONNX Runtime cannot build or run it (the caller then uses NumPy, and so does every later
    call with this key). The first such failure is reported once as a warning."""
    session = _sessions.get(key)
    if session is None:
        with _lock:
            session = _sessions.get(key)
            if session is None:
                if len(_sessions) >= _MAX_SESSIONS:
                    del _sessions[next(iter(_sessions))]
                try:
                    session = _make_session(build())
                except Exception as error:  # an ONNX Runtime build without this kernel or attribute
                    session = _failed(key, error)
                _sessions[key] = session
    if session is _FAILED:
        return None
    try:
        return session.run(None, feeds)[0]
    except Exception as error:
        _sessions[key] = _failed(key, error)
        return None


_FAILED = object()


def _failed(key, error):
    if not _state.get("warned"):
        _state["warned"] = True
        warnings.warn(
            f"irtool: ONNX Runtime could not run the training kernel {key[0]!r} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); using the NumPy kernels for it.",
            RuntimeWarning,
            stacklevel=3,
        )
    return _FAILED


def _make_session(model):
    # Not irtool.runtime.make_session: ops sit below the runtime layer, and these need their own thread options.
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    # Idle ORT threads must not spin: NumPy's BLAS threads run between the sessions' calls.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _graph(nodes, inputs, output, nd, channels_last):
    """A model around ``nodes`` (which read ``x_cf``/``w_onnx``, write ``y_cf``), with the layout moves."""

    pre, post = [], []
    if channels_last:
        pre.append(helper.make_node("Transpose", ["x"], ["x_cf"], perm=[0, nd + 1, *range(1, nd + 1)]))
        post.append(helper.make_node("Transpose", ["y_cf"], [output], perm=[0, *range(2, nd + 2), 1]))
    else:
        pre.append(helper.make_node("Identity", ["x"], ["x_cf"]))
        post.append(helper.make_node("Identity", ["y_cf"], [output]))
    # Keras kernel (k..., in/groups, out) -> ONNX (out, in/groups, k...)
    pre.append(helper.make_node("Transpose", ["w"], ["w_onnx"], perm=[nd + 1, nd, *range(nd)]))
    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in inputs]
    graph = helper.make_graph(
        pre + nodes + post, "irtool_kernel", values, [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def conv_forward(x, kernel, bias, strides, padding, data_format, dilation, groups):
    """``conv`` with a Keras-layout ``kernel`` (already grouped), or None when not eligible."""
    if not _eligible(x, kernel, bias):
        return None
    nd = kernel.ndim - 2
    last = data_format == "channels_last"
    spatial = x.shape[1:-1] if last else x.shape[2:]
    pads = [conv_pads(spatial[i], kernel.shape[i], strides[i], dilation[i], padding) for i in range(nd)]
    key = ("conv", x.shape, kernel.shape, bias is not None, tuple(strides), tuple(pads), tuple(dilation), groups, last)

    def build():

        ins = ["x_cf", "w_onnx"] + (["b"] if bias is not None else [])
        node = helper.make_node(
            "Conv",
            ins,
            ["y_cf"],
            strides=list(strides),
            dilations=list(dilation),
            pads=[p for p, _ in pads] + [q for _, q in pads],
            group=groups,
        )
        return _graph([node], ["x", "w"] + (["b"] if bias is not None else []), "y", nd, last)

    feeds = {"x": np.ascontiguousarray(x), "w": np.ascontiguousarray(kernel)}
    if bias is not None:
        feeds["b"] = np.ascontiguousarray(bias)
    return _run(key, build, feeds)


def conv_input_grad(gy, kernel, x_shape, strides, padding, data_format, dilation, groups):
    """The gradient of ``conv`` with respect to its input (a transposed convolution of ``gy``),
    or None when not eligible."""
    if not _eligible(gy, kernel):
        return None
    nd = kernel.ndim - 2
    last = data_format == "channels_last"
    spatial = tuple(x_shape[1:-1] if last else x_shape[2:])
    g_spatial = gy.shape[1:-1] if last else gy.shape[2:]
    pads = [conv_pads(spatial[i], kernel.shape[i], strides[i], dilation[i], padding) for i in range(nd)]
    extra = []
    for i in range(nd):
        eff = (kernel.shape[i] - 1) * dilation[i] + 1
        size = strides[i] * (g_spatial[i] - 1) + eff - pads[i][0] - pads[i][1]
        extra.append(spatial[i] - size)
    if any(e < 0 or e >= max(strides[i], dilation[i]) for i, e in enumerate(extra)):
        return None
    key = ("conv_dx", gy.shape, kernel.shape, spatial, tuple(strides), tuple(pads), tuple(dilation), groups, last)

    def build():

        node = helper.make_node(
            "ConvTranspose",
            ["x_cf", "w_onnx"],
            ["y_cf"],
            strides=list(strides),
            dilations=list(dilation),
            pads=[p for p, _ in pads] + [q for _, q in pads],
            output_padding=extra,
            group=groups,
        )
        return _graph([node], ["x", "w"], "y", nd, last)

    return _run(key, build, {"x": np.ascontiguousarray(gy), "w": np.ascontiguousarray(kernel)})


def matmul_tn(a, b):
    """``a.T @ b`` for 2-D float32 ``a (M, K)`` and ``b (M, N)`` (ONNX Runtime's Gemm), or None."""
    if _state["kind"] != "onnxruntime" or a.dtype != np.float32 or b.dtype != np.float32 or a.ndim != 2:
        return None

    def build():

        node = helper.make_node("Gemm", ["a", "b"], ["y"], transA=1)
        values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a", "b")]
        graph = helper.make_graph(
            [node], "irtool_kernel", values, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model

    return _run(("gemm_tn",), build, {"a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b)})
