"""Shared checks for the spatial layer and op tests (pooling, reshaping, preprocessing).

``check(model, arrays, reference)`` exports ``model`` once (onnx.checker full_check), then for
every array (e.g. two spatial sizes of a dynamic input) compares the symbolic output shape,
``model.predict`` against the independent NumPy ``reference`` and ONNX Runtime against
``predict`` (float32, 1e-5).
"""

from __future__ import annotations

import numpy as np
import onnx

import irtool as keras

from ..conftest import assert_onnx_parity, run_onnx


def check(model, arrays, reference, atol=1e-5, rtol=1e-5, opset=None):
    arrays = list(arrays)
    proto = assert_onnx_parity(model, arrays[0], opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    name = proto.graph.input[0].name
    for x in arrays:
        want = np.asarray(reference(x))
        got = model.predict(x, verbose=0)
        assert got.shape == want.shape, (got.shape, want.shape)
        assert got.dtype == want.dtype or want.dtype == np.float64, (got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)
        out = model.outputs[0] if isinstance(model.outputs, list) else model.outputs
        for d, w in zip(out.shape, want.shape):
            assert d is None or d == w, (out.shape, want.shape)
        (ort_out,) = run_onnx(proto, {name: x})
        np.testing.assert_allclose(ort_out, got, atol=1e-5, rtol=1e-5)
    return proto


def model_of(layer_or_fn, shape, dtype="float32"):
    inputs = keras.Input(shape, dtype=dtype)
    return keras.Model(inputs, layer_or_fn(inputs))


def op_types(proto) -> list:
    return [n.op_type for n in proto.graph.node]
