"""Fast float32 convolution kernels for training, run by ONNX Runtime's CPU kernels.

The NumPy convolution (im2col + one BLAS matmul) is exact but 3-4x slower than the vectorized
convolution kernels of ONNX Runtime (MLAS) or PyTorch (oneDNN) on the same CPU. So when the data
is float32, the training kernels of ``conv`` and ``depthwise_conv`` (``conv_forward``, any number
of groups) and their gradient with respect to the input (``conv_input_grad``, a transposed
convolution; ungrouped convolutions only) run through tiny cached ONNX Runtime sessions: one
``Conv`` or ``ConvTranspose`` node between the ``Transpose`` nodes that move channels-last data
to ONNX's channels-first layout. The ungrouped kernel gradient is im2col copies in NumPy and
matmuls, ``im2col(x)^T @ gy`` a few images at a time, run by ONNX Runtime's ``Gemm``
(``matmul_tn``); those pieces and the input gradient are tasks two threads share, each with
half the cores (``in_parallel``). Everything else stays in NumPy: grouped and depthwise kernel gradients, ``conv_transpose``,
and every other dtype (float64, as in the finite-difference tests, and float16).

ONNX Runtime's fastest CPU convolutions (MLAS's NCHWc kernels: channels in blocks of 8 or 16,
a direct convolution with no im2col) are chosen only by its graph optimizer, and only for
constant weights, which it reorders once into the blocked layout. Training changes the weights
every step, so a 2-D ``Conv`` kernel is optimized once with stand-in constant weights, and the
optimized graph is kept with its reordered weights turned back into inputs, which NumPy fills in
the same layout on every call (``_blocked``). Which layout ONNX Runtime chose is read off its
reordering of the stand-ins, never assumed; when no candidate reproduces it exactly, the plain
``Conv`` runs. With unit strides the input gradient is such a convolution too (of the padded
``gy`` with the flipped kernel), 2-3x faster than ``ConvTranspose``.

A training step that uses these kernels runs NumPy's BLAS on one thread (``blas_limited``): BLAS
worker threads that spin after each call would otherwise take the cores from ONNX Runtime's
threads (measured: the toy ResNet step drops from ~117 ms to ~91 ms on 2 cores).

The reference executor (``predict``, ``model(x)``) never uses these kernels, so ONNX Runtime
parity tests still compare two independent implementations. ``IRTOOL_KERNELS=numpy`` in the
environment, or ``set_kernels("numpy")``, makes training use the NumPy kernels too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import ThreadpoolController

from irtool.ops.conv_arithmetic import conv_pads, input_grad_conv

_KINDS = ("onnxruntime", "numpy")
_state = {"kind": "numpy" if os.environ.get("IRTOOL_KERNELS", "").lower() == "numpy" else "onnxruntime"}
_sessions: dict = {}  # (op, shapes, attributes) -> _Kernel; past _MAX_SESSIONS the oldest is dropped
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


def eligible(x, kernel, bias=None) -> bool:
    """Float32 1-3-D convolutions with non-empty operands run through ONNX Runtime."""
    return (
        _state["kind"] == "onnxruntime"
        and 3 <= x.ndim <= 5
        and kernel.ndim == x.ndim
        and all(a is None or (a.dtype == np.float32 and a.size > 0) for a in (x, kernel, bias))
    )


def _run(key, build, feeds, constants=()):
    """Run the cached kernel for ``key`` (built from the model ``build()`` returns, on first use)
    on ``feeds``; None when ONNX Runtime cannot build or run it (the caller then uses NumPy, and
    so does every later call with this key). The first such failure is reported once as a
    warning. ``constants`` names the inputs (weights) that ``_blocked`` may reorder. The session
    uses this thread's share of the cores (``in_parallel``), which is part of the key."""
    threads = getattr(_local, "threads", None) or _cores()
    key += (threads,)
    kernel = _sessions.get(key)
    if kernel is None:
        with _lock:
            kernel = _sessions.get(key)
            if kernel is None:
                if len(_sessions) >= _MAX_SESSIONS:
                    del _sessions[next(iter(_sessions))]
                try:
                    kernel = _compile(build(), feeds, constants, threads)
                except Exception as error:  # an ONNX Runtime build without this kernel or attribute
                    kernel = _failed(key, error)
                _sessions[key] = kernel
    if kernel is _FAILED:
        return None
    try:
        return kernel.run(feeds)
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


class _Kernel:
    """A session and how its feeds are made from the caller's arrays (``prepare``: input name ->
    function of the caller's feeds; the caller's arrays by name where it has none)."""

    def __init__(self, session, prepare=None):
        self.session = session
        self.prepare = prepare or {}
        self.names = [i.name for i in session.get_inputs()]

    def run(self, feeds):
        prepare = self.prepare
        own = {n: (prepare[n](feeds) if n in prepare else feeds[n]) for n in self.names}
        return self.session.run(None, own)[0]


def _compile(model, feeds, constants, threads):
    """A ``_Kernel`` for ``model``: ONNX Runtime's blocked form of it when ``constants`` are given
    and ``_blocked`` finds one, else the model as it is."""
    try:
        blocked = _blocked(model, feeds, constants) if constants else None
    except Exception:  # no temporary folder, an optimizer that fails: the plain model still runs
        blocked = None
    if blocked is not None:
        return _Kernel(_make_session(blocked[0], threads=threads), blocked[1])
    return _Kernel(_make_session(model, threads=threads))


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


_local = threading.local()  # .threads: this thread's share of the cores inside ``in_parallel``
_pool: list = []  # the one worker thread ``in_parallel`` shares its tasks with
if hasattr(os, "register_at_fork"):  # a forked child has no worker thread: it starts its own
    os.register_at_fork(after_in_child=_pool.clear)


def in_parallel(tasks: list) -> list:
    """``[task() for task in tasks]``, the tasks taken in order by two threads (this one and a
    worker), the kernels each runs using half the cores. ONNX Runtime's convolutions gain only
    1.3-1.4x from a second thread on 2 cores, so a conv layer's input gradient and the pieces of
    its kernel gradient, each on one core, finish sooner than one after the other on two (toy
    ResNet's largest layer: 20 ms instead of 32); the pieces keep both threads busy to the end.
    In sequence with the NumPy kernels, on one core, and inside a task (the one worker is busy)."""
    cores = _cores()
    nested = getattr(_local, "threads", None) is not None
    if cores < 2 or len(tasks) < 2 or nested or _state["kind"] != "onnxruntime":
        return [task() for task in tasks]
    with _lock:
        if not _pool:
            _pool.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="irtool-kernels"))
    results = [None] * len(tasks)
    order = itertools.count()  # next() is atomic: each task runs once

    def work(threads):
        _local.threads = threads
        try:
            for i in iter(lambda: next(order), None):
                if i >= len(tasks):
                    return
                results[i] = tasks[i]()
        finally:
            _local.threads = None

    future = _pool[0].submit(work, cores - cores // 2)
    try:
        work(cores // 2)
    finally:
        future.result()  # waits for the worker even when a task here raised
    return results


# Elements below which splitting NumPy work in two costs more (the hand-off) than it saves.
SPLIT_SIZE = 1 << 18


def by_halves(task, n: int, size: int) -> None:
    """``task(0, h)`` and ``task(h, n)`` at the same time (``in_parallel``), or ``task(0, n)``
    when the ``size`` elements the work touches are fewer than ``SPLIT_SIZE``. For NumPy work
    on a batch whose samples are independent: NumPy's loops run on one core."""
    h = n // 2
    if h and size >= SPLIT_SIZE:
        in_parallel([lambda: task(0, h), lambda: task(h, n)])
    else:
        task(0, n)


def _make_session(model, optimized_path=None, threads=None):
    # Not irtool.runtime.make_session: ops sit below the runtime layer, and these need their own thread options.
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or _cores()
    # Idle ORT threads must not spin: NumPy's BLAS threads run between the sessions' calls.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path:  # the graph as ONNX Runtime's optimizer leaves it, written there
        options.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


_BLOCKS = (16, 8, 4, 32)  # MLAS's NCHWc block sizes: 16 with AVX-512, 8 with AVX2 and NEON


def nchwc_filter(w, block: int, blocked_inputs: bool):
    """An ONNX ``(O, I, k...)`` filter in MLAS's NCHWc layout: output channels padded to a multiple
    of ``block`` and split into blocks, the block innermost (``OIHWBo``); with ``blocked_inputs``
    the input channels too, within each output block (``OIHWBiBo``). Shaped ``(O', I', k...)``
    as ONNX Runtime stores it (the padded sizes)."""
    o, i, *ksize = w.shape
    op = -(-o // block) * block
    ip = -(-i // block) * block if blocked_inputs else i
    padded = np.zeros((op, ip, *ksize), w.dtype)
    padded[:o, :i] = w
    taps = list(range(len(ksize)))
    if blocked_inputs:  # (O/B, Bo, I/B, Bi, k...) -> (O/B, I/B, k..., Bi, Bo)
        r = padded.reshape(op // block, block, ip // block, block, *ksize).transpose(0, 2, *(t + 4 for t in taps), 3, 1)
    else:  # (O/B, Bo, I, k...) -> (O/B, I, k..., Bo)
        r = padded.reshape(op // block, block, i, *ksize).transpose(0, 2, *(t + 3 for t in taps), 1)
    return np.ascontiguousarray(r).reshape(op, ip, *ksize)


def _layouts(name, value, onnx_order):
    """Candidate ``(array, prepare)`` pairs for what the optimizer may have made of input ``name``
    whose stand-in is ``value``: unchanged, or (a filter, given in Keras' layout and moved to
    ONNX's by ``onnx_order``) reordered for NCHWc, or (a bias) padded to a block."""
    pick = (lambda f: f[name]) if onnx_order is None else (lambda f: np.transpose(f[name], onnx_order))
    base = pick({name: value})
    yield base, pick
    for block in _BLOCKS:
        if onnx_order is None and base.ndim == 1:
            size = -(-base.size // block) * block
            yield np.pad(base, (0, size - base.size)), lambda f, s=size: np.pad(f[name], (0, s - f[name].size))
        elif onnx_order is not None:
            for inner in (True, False):
                yield nchwc_filter(base, block, inner), lambda f, b=block, i=inner: nchwc_filter(pick(f), b, i)


def _blocked(model, feeds, constants):
    """``(model, prepare)``: ``model`` as ONNX Runtime's optimizer rewrites it when the inputs
    ``constants`` (name -> ONNX layout order for a Keras-layout filter, None for a bias) are
    constant weights, those weights made graph inputs again, and how to make each from the
    caller's feeds. None when the optimizer chose no NCHWc kernel or made a weight in a layout
    no candidate of ``_layouts`` reproduces exactly."""
    # Stand-ins with distinct values (exact in float32), so a reordering is identified, not guessed.
    stand_ins, start = {}, 1
    for name in constants:
        size = feeds[name].size
        if start + size > 2**24:
            return None
        stand_ins[name] = np.arange(start, start + size, dtype=np.float32).reshape(feeds[name].shape)
        start += size
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    kept = [v for v in probe.graph.input if v.name not in stand_ins]
    del probe.graph.input[:]
    probe.graph.input.extend(kept)
    probe.graph.initializer.extend(numpy_helper.from_array(a, n) for n, a in stand_ins.items())
    with tempfile.TemporaryDirectory(prefix="irtool-kernel-") as folder:
        path = os.path.join(folder, "optimized.onnx")
        _make_session(probe, optimized_path=path)
        optimized = onnx.load(path)
    if not any(node.domain == "com.microsoft.nchwc" for node in optimized.graph.node):
        return None
    prepare = {}
    for init in optimized.graph.initializer:
        made = numpy_helper.to_array(init)
        found = None
        for name, order in constants.items():
            for candidate, fn in _layouts(name, stand_ins[name], order):
                if candidate.shape == made.shape and np.array_equal(candidate, made):
                    found = fn
                    break
            if found:
                break
        if found is None:
            return None
        prepare[init.name] = found
        optimized.graph.input.append(helper.make_tensor_value_info(init.name, TensorProto.FLOAT, made.shape))
    del optimized.graph.initializer[:]
    return optimized, prepare


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


def conv_forward(x, kernel, bias, strides, padding, data_format, dilation, groups, activation=None):
    """``conv`` with a Keras-layout ``kernel`` (already grouped) and, with ``activation="relu"``,
    its ReLU (which the blocked kernels apply as they write), or None when not eligible."""
    if not eligible(x, kernel, bias):
        return None
    nd = kernel.ndim - 2
    spatial = x.shape[1:-1] if data_format == "channels_last" else x.shape[2:]
    pads = [conv_pads(spatial[i], kernel.shape[i], strides[i], dilation[i], padding) for i in range(nd)]
    return _conv(x, kernel, bias, strides, pads, data_format == "channels_last", dilation, groups, activation)


def _conv(x, kernel, bias, strides, pads, last, dilation, groups, activation=None):
    """An ONNX ``Conv`` (then ``Relu`` with ``activation="relu"``) with explicit ``(begin, end)``
    pads per spatial dim."""
    nd = kernel.ndim - 2
    key = ("conv", x.shape, kernel.shape, bias is not None, tuple(strides), tuple(pads), tuple(dilation), groups, last)
    key += (activation,)

    def build():

        ins = ["x_cf", "w_onnx"] + (["b"] if bias is not None else [])
        nodes = [
            helper.make_node(
                "Conv",
                ins,
                ["conv_cf" if activation else "y_cf"],
                strides=list(strides),
                dilations=list(dilation),
                pads=[p for p, _ in pads] + [q for _, q in pads],
                group=groups,
            )
        ]
        if activation == "relu":
            nodes.append(helper.make_node("Relu", ["conv_cf"], ["y_cf"]))
        return _graph(nodes, ["x", "w"] + (["b"] if bias is not None else []), "y", nd, last)

    feeds = {"x": np.ascontiguousarray(x), "w": np.ascontiguousarray(kernel)}
    constants = {"w": [nd + 1, nd, *range(nd)]}  # the filter, and the order that moves it to ONNX's layout
    if bias is not None:
        feeds["b"] = np.ascontiguousarray(bias)
        constants["b"] = None
    return _run(key, build, feeds, constants if nd == 2 else ())


def conv_input_grad(gy, kernel, x_shape, strides, padding, data_format, dilation, groups):
    """The gradient of ``conv`` with respect to its input (a transposed convolution of ``gy``),
    or None when not eligible. With unit strides it is a plain convolution of ``gy``, padded so
    that every input position sees each tap, with the spatially flipped kernel (input and output
    channels swapped within each group), which runs on the blocked kernels."""
    if not eligible(gy, kernel):
        return None
    nd = kernel.ndim - 2
    last = data_format == "channels_last"
    spatial = tuple(x_shape[1:-1] if last else x_shape[2:])
    g_spatial = gy.shape[1:-1] if last else gy.shape[2:]
    pads = [conv_pads(spatial[i], kernel.shape[i], strides[i], dilation[i], padding) for i in range(nd)]
    as_conv = input_grad_conv(kernel, groups, pads, dilation) if all(s == 1 for s in strides) else None
    if as_conv is not None:
        return _conv(gy, as_conv[0], None, strides, as_conv[1], last, dilation, groups)
    eff = [(kernel.shape[i] - 1) * dilation[i] + 1 for i in range(nd)]
    extra = []
    for i in range(nd):
        size = strides[i] * (g_spatial[i] - 1) + eff[i] - pads[i][0] - pads[i][1]
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
