"""The ONNX Runtime convolution kernels used in training agree with the NumPy ones (forward and
input gradient) for every convolution configuration; float64 and the ``numpy`` switch skip them."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import layers
from irtool.ops import fast_kernels
from irtool.ops.conv import Conv, DepthwiseConv
from irtool.train.autodiff import GradientProgram

CASES = [
    # nd, spatial, kernel size, strides, padding, dilation, groups, data_format
    (2, (9, 8), (3, 3), (1, 1), "valid", (1, 1), 1, "channels_last"),
    (2, (9, 8), (3, 3), (1, 1), "same", (1, 1), 1, "channels_last"),
    (2, (9, 8), (3, 2), (2, 2), "same", (1, 1), 1, "channels_last"),
    (2, (10, 9), (3, 3), (2, 3), "valid", (1, 1), 1, "channels_last"),
    (2, (9, 9), (3, 3), (1, 1), "same", (2, 2), 1, "channels_last"),
    (2, (9, 8), (3, 3), (1, 1), "same", (1, 1), 2, "channels_last"),
    (2, (9, 8), (3, 3), (2, 1), "same", (1, 1), 1, "channels_first"),
    (1, (11,), (3,), (1,), "causal", (2,), 1, "channels_last"),
    (1, (11,), (4,), (3,), "valid", (1,), 1, "channels_last"),
    (3, (5, 6, 4), (2, 3, 2), (1, 2, 1), "same", (1, 1, 1), 1, "channels_last"),
]


def _operands(nd, spatial, ksize, groups, data_format, rng):
    channels, out = 4, 6
    shape = (3, *spatial, channels) if data_format == "channels_last" else (3, channels, *spatial)
    x = rng.standard_normal(shape).astype("float32")
    kernel = rng.standard_normal((*ksize, channels // groups, out)).astype("float32")
    bias = rng.standard_normal(out).astype("float32")
    return x, kernel, bias


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}d-{c[4]}-s{c[3]}-d{c[5]}-g{c[6]}-{c[7][9:]}" for c in CASES])
def test_conv_forward_and_input_gradient_match_numpy(case):
    nd, spatial, ksize, strides, padding, dilation, groups, data_format = case
    rng = np.random.default_rng(0)
    x, kernel, bias = _operands(nd, spatial, ksize, groups, data_format, rng)
    attrs = dict(strides=strides, padding=padding, data_format=data_format, dilation_rate=dilation, groups=groups)
    prim = Conv()
    want = prim.forward(x, kernel, bias, **attrs)
    got = fast_kernels.conv_forward(x, kernel, bias, strides, padding, data_format, dilation, groups)
    assert got is not None and got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(prim.training_kernel(attrs, None)(x, kernel, bias), want, rtol=1e-4, atol=1e-4)

    gy = rng.standard_normal(want.shape).astype("float32")
    fast = prim.vjp([gy], [x, kernel, bias], [want], **attrs)
    fast_kernels.set_kernels("numpy")
    try:
        slow = prim.vjp([gy], [x, kernel, bias], [want], **attrs)
        assert fast_kernels.conv_forward(x, kernel, bias, strides, padding, data_format, dilation, groups) is None
    finally:
        fast_kernels.set_kernels("onnxruntime")
    for a, b in zip(fast, slow):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    if groups == 1:
        gx = fast_kernels.conv_input_grad(gy, kernel, x.shape, strides, padding, data_format, dilation, 1)
        np.testing.assert_allclose(gx, slow[0], rtol=1e-4, atol=1e-4)


def test_depthwise_forward_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6, 3)).astype("float32")
    kernel = rng.standard_normal((3, 3, 3, 2)).astype("float32")
    attrs = dict(strides=(1, 1), padding="same", data_format="channels_last", dilation_rate=(1, 1))
    prim = DepthwiseConv()
    want = prim.forward(x, kernel, None, **attrs)
    np.testing.assert_allclose(prim.training_kernel(attrs, None)(x, kernel), want, rtol=1e-5, atol=1e-5)


def test_float64_and_unsupported_operands_use_numpy():
    x = np.zeros((1, 5, 5, 2))
    kernel = np.zeros((3, 3, 2, 4))
    assert fast_kernels.conv_forward(x, kernel, None, (1, 1), "valid", "channels_last", (1, 1), 1) is None
    assert fast_kernels.conv_forward(x[:0].astype("float32"), kernel.astype("float32"), None, (1, 1), "valid",
                                     "channels_last", (1, 1), 1) is None  # fmt: skip
    with pytest.raises(ValueError, match="Unknown kernels"):
        fast_kernels.set_kernels("cuda")


def test_training_step_is_the_same_with_either_kernels():
    rng = np.random.default_rng(2)
    inputs = keras.Input((12, 12, 3))
    h = layers.Conv2D(8, 3, activation="relu")(inputs)
    h = layers.Conv2D(8, 3, strides=2, padding="same")(h)
    h = layers.DepthwiseConv2D(3)(h)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(h)))
    x = rng.standard_normal((4, 12, 12, 3)).astype("float32")
    program = GradientProgram(model.graph, model.trainable_weights, training=True)
    (y_fast,), g_fast = program.run([x])
    fast_kernels.set_kernels("numpy")
    try:
        (y_ref,), g_ref = GradientProgram(model.graph, model.trainable_weights, training=True).run([x])
    finally:
        fast_kernels.set_kernels("onnxruntime")
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_fast, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_matmul_tn_and_the_blas_limit():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((50, 7)).astype("float32"), rng.standard_normal((50, 4)).astype("float32")
    np.testing.assert_allclose(fast_kernels.matmul_tn(a, b), a.T @ b, rtol=1e-5, atol=1e-5)
    assert fast_kernels.matmul_tn(a.astype("float64"), b.astype("float64")) is None
    with fast_kernels.blas_limited():  # enters and leaves cleanly whether or not threadpoolctl is there
        np.testing.assert_allclose(np.ones((3, 3)) @ np.ones((3, 3)), np.full((3, 3), 3.0))


def test_only_float32_conv_training_programs_limit_blas():
    conv_in = keras.Input((6, 6, 2))
    conv = keras.Model(conv_in, layers.Conv2D(3, 3)(conv_in))
    dense_in = keras.Input((4,))
    dense = keras.Model(dense_in, layers.Dense(3)(dense_in))
    conv64_in = keras.Input((6, 6, 2), dtype="float64")
    conv64 = keras.Model(conv64_in, layers.Conv2D(3, 3, dtype="float64")(conv64_in))
    assert GradientProgram(conv.graph, [], training=True).limit_blas
    assert not GradientProgram(conv.graph, [], training=False).limit_blas
    assert not GradientProgram(dense.graph, [], training=True).limit_blas
    assert not GradientProgram(conv64.graph, [], training=True).limit_blas


def test_a_kernel_onnx_runtime_cannot_build_falls_back_to_numpy(monkeypatch):
    def broken(model):
        raise RuntimeError("no such kernel in this build")

    monkeypatch.setattr(fast_kernels, "_make_session", broken)
    monkeypatch.setattr(fast_kernels, "_sessions", {})
    monkeypatch.setitem(fast_kernels._state, "warned", False)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 3)).astype("float32")
    kernel = rng.standard_normal((3, 3, 3, 4)).astype("float32")
    with pytest.warns(RuntimeWarning, match="using the NumPy kernels"):
        assert fast_kernels.conv_forward(x, kernel, None, (1, 1), "valid", "channels_last", (1, 1), 1) is None
    attrs = dict(strides=(1, 1), padding="valid", data_format="channels_last", dilation_rate=(1, 1), groups=1)
    y = Conv().training_kernel(attrs, None)(x, kernel)  # still right, through NumPy
    np.testing.assert_allclose(y, Conv().forward(x, kernel, **attrs), rtol=1e-6)


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " avx2" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="ONNX Runtime's NCHWc kernels are chosen on x86 CPUs with AVX2 or AVX-512")
def test_2d_convolutions_and_their_unit_stride_input_gradients_run_blocked(monkeypatch):
    # On x86 with AVX2, ONNX Runtime's optimizer rewrites a constant-weight Conv into NCHWc kernels;
    # the training kernel must find that rewrite and feed the reordered weights itself.
    monkeypatch.setattr(fast_kernels, "_sessions", {})
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 9, 20)).astype("float32")
    kernel = rng.standard_normal((3, 3, 20, 24)).astype("float32")
    bias = rng.standard_normal(24).astype("float32")
    attrs = dict(strides=(1, 1), padding="same", data_format="channels_last", dilation_rate=(1, 1), groups=1)
    y = fast_kernels.conv_forward(x, kernel, bias, (1, 1), "same", "channels_last", (1, 1), 1)
    np.testing.assert_allclose(y, Conv().forward(x, kernel, bias, **attrs), rtol=1e-4, atol=1e-4)
    gy = rng.standard_normal(y.shape).astype("float32")
    gx = fast_kernels.conv_input_grad(gy, kernel, x.shape, (1, 1), "same", "channels_last", (1, 1), 1)
    fast_kernels.set_kernels("numpy")
    try:
        want_gx = Conv().vjp([gy], [x, kernel, bias], [y], **attrs)[0]
    finally:
        fast_kernels.set_kernels("onnxruntime")
    np.testing.assert_allclose(gx, want_gx, rtol=1e-4, atol=1e-4)
    kernels = list(fast_kernels._sessions.items())
    assert [key[0] for key, _ in kernels] == ["conv", "conv"]  # the gradient is a Conv, not a ConvTranspose
    for _, kernel_run in kernels:
        assert kernel_run.prepare, "the Conv was not rewritten to NCHWc: its weights are fed as they are"


@pytest.mark.skipif(not _has_avx2(), reason="ONNX Runtime's NCHWc kernels are chosen on x86 CPUs with AVX2 or AVX-512")
@pytest.mark.parametrize("channels", [20, 3])
def test_nchwc_filter_is_onnx_runtimes_own_reordering(channels, tmp_path):
    # ONNX Runtime reorders a constant Conv weight when it optimizes; nchwc_filter must give the same bytes.
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(1, 24 * channels * 9 + 1, dtype=np.float32).reshape(24, channels, 3, 3)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = str(tmp_path / "optimized.onnx")
    fast_kernels._make_session(model, optimized_path=path)
    (made,) = [numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer]
    matches = [
        (block, inner)
        for block in fast_kernels._BLOCKS
        for inner in (True, False)
        if (c := fast_kernels.nchwc_filter(w, block, inner)).shape == made.shape and np.array_equal(c, made)
    ]
    assert matches, f"no layout reproduces ONNX Runtime's reordered filter of shape {made.shape}"
    # 20 input channels are blocked too (padded to a block); 3, fewer than any block, stay as they are
    assert matches[0][1] is (channels == 20)


def test_in_parallel_runs_every_task_once_in_order_and_nests():
    import threading

    seen = []

    def task(i):
        def run():
            seen.append((i, threading.current_thread().name))
            if i == 0:  # a task that itself asks for parallel tasks runs them in sequence, no deadlock
                return fast_kernels.in_parallel([lambda: "a", lambda: "b"])
            return i * i

        return run

    results = fast_kernels.in_parallel([task(i) for i in range(9)])
    assert results == [["a", "b"], 1, 4, 9, 16, 25, 36, 49, 64]
    assert sorted(i for i, _ in seen) == list(range(9))
    with pytest.raises(ZeroDivisionError):
        fast_kernels.in_parallel([lambda: 1, lambda: 1 / 0, lambda: 2])


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_in_parallel_works_in_a_forked_child():
    # The worker thread does not survive fork(): a child must start its own, not wait on the parent's.
    import multiprocessing

    fast_kernels.in_parallel([lambda: 1, lambda: 2])  # the parent's worker exists
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_parallel_squares)
        assert result.get(timeout=60) == [0, 1, 4, 9]


def _parallel_squares():
    return fast_kernels.in_parallel([lambda i=i: i * i for i in range(4)])


def test_by_halves_covers_the_batch_once_split_or_not():
    for n, size in ((9, fast_kernels.SPLIT_SIZE), (9, 10), (1, fast_kernels.SPLIT_SIZE)):
        spans = []
        fast_kernels.by_halves(lambda a, b, spans=spans: spans.append((a, b)), n, size)
        assert sorted(spans) == ([(0, 4), (4, 9)] if n > 1 and size >= fast_kernels.SPLIT_SIZE else [(0, n)])
    # a max-pool gradient split in halves is the one computed whole
    from irtool.ops.pooling import MAX_POOL

    rng = np.random.default_rng(6)
    x = np.maximum(rng.standard_normal((4, 48, 48, 32)).astype("float32"), 0)  # ReLU zeros: ties
    attrs = dict(pool_size=(2, 2), strides=(2, 2), padding="valid", data_format="channels_last")
    y = MAX_POOL.forward(x, **attrs)
    g = rng.standard_normal(y.shape).astype("float32")
    assert x.size >= fast_kernels.SPLIT_SIZE
    split = MAX_POOL.vjp([g], [x], [y], **attrs)[0]
    whole = np.zeros_like(x)
    MAX_POOL._vjp(g, x, y, whole, **attrs)
    np.testing.assert_array_equal(split, whole)
