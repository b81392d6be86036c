"""``fuse_matmul_add`` leaves alone a matmul whose product is also a model output (or read
elsewhere): fusing it would drop an output."""

from __future__ import annotations

import numpy as np

import irtool
from irtool import ops

from ..harness import run_onnx


def test_a_matmul_that_is_also_an_output_is_not_fused_away():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype("float32")
    b = rng.normal(size=(3,)).astype("float32")
    x = irtool.Input((4,), name="x")
    product = ops.matmul(x, w)
    model = irtool.Model(x, [product, product + b])
    data = rng.normal(size=(2, 4)).astype("float32")
    got = model.predict(data, verbose=0)
    np.testing.assert_allclose(got[0], data @ w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], data @ w + b, rtol=1e-5, atol=1e-6)
    onnx_got = run_onnx(model.to_onnx(), {"x": data})
    np.testing.assert_allclose(onnx_got[0], data @ w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(onnx_got[1], data @ w + b, rtol=1e-5, atol=1e-6)
