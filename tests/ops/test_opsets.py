"""Lowerings whose ONNX form depends on the opset: Gelu (a node from opset 20), Reduce* (``axes``
becomes an input at opset 18, ReduceSum at 13), Squeeze/Unsqueeze, exported at several opsets
and checked in ONNX Runtime against NumPy."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

import irtool as keras
from irtool import ops

from ..conftest import assert_onnx_parity
from ._util import check_op, rand

OPSETS = [13, 17, 18, 21]


def _gelu_ref(approximate):
    def ref(a):
        a = a.astype("float64")
        if approximate:
            return (0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))).astype("float32")
        return (0.5 * a * (1 + np.vectorize(math.erf)(a / math.sqrt(2)))).astype("float32")

    return ref


def _reduce_ref(fn, axis, keepdims):
    return lambda a: np.asarray(fn(a.astype("float64"), axis=axis, keepdims=keepdims)).astype("float32")


CASES = {
    "gelu_tanh": (lambda t: ops.gelu(t, approximate=True), _gelu_ref(True)),
    "gelu_erf": (lambda t: ops.gelu(t, approximate=False), _gelu_ref(False)),
    "sum": (lambda t: ops.sum(t, axis=1), _reduce_ref(np.sum, 1, False)),
    "mean_keepdims": (lambda t: ops.mean(t, axis=(1, 2), keepdims=True), _reduce_ref(np.mean, (1, 2), True)),
    "mean_all": (lambda t: ops.mean(t), _reduce_ref(np.mean, None, False)),
    "max": (lambda t: ops.max(t, axis=-1), _reduce_ref(np.max, -1, False)),
    "min_keepdims": (lambda t: ops.min(t, axis=0, keepdims=True), _reduce_ref(np.min, 0, True)),
    "prod": (lambda t: ops.prod(t, axis=2), _reduce_ref(np.prod, 2, False)),
    "squeeze": (lambda t: ops.squeeze(t[:, :1], 1), lambda a: a[:, 0]),
    "expand_dims": (lambda t: ops.expand_dims(t, (1, -1)), lambda a: a[:, None, ..., None]),
    "get_item": (lambda t: t[:, -1, None, ::-2], lambda a: a[:, -1, None, ::-2]),
    "softmax": (lambda t: ops.softmax(t, axis=1), None),
    "argmax": (
        lambda t: ops.argmax(t, axis=1, keepdims=True),
        lambda a: np.argmax(a, 1, keepdims=True).astype("int32"),
    ),
}


def _softmax_ref(a):
    e = np.exp(a.astype("float64"))
    return (e / e.sum(1, keepdims=True)).astype("float32")


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_at_opset(name, opset):
    fn, ref = CASES[name]
    x = rand(3, 4, 5, low=0.5, high=1.5) if name == "prod" else rand(3, 4, 5)
    check_op(fn, [x], ref or _softmax_ref, opset=opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_combined_model_at_opset(opset):
    x = keras.Input(shape=(4, 5))
    h = ops.gelu(x, approximate=False)
    h = ops.mean(h, axis=-1, keepdims=True) + ops.max(h, axis=(1, 2), keepdims=True)
    h = ops.squeeze(ops.expand_dims(h, 1), axis=(1, 3))
    h = ops.sum(h, axis=-1) * ops.min(ops.gelu(x), axis=(1, 2))
    model = keras.Model(x, h)
    proto = assert_onnx_parity(model, rand(3, 4, 5), opset=opset)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    types = [n.op_type for n in proto.graph.node]
    assert ("Gelu" in types) == (opset >= 20)
    for node in proto.graph.node:
        if node.op_type in ("ReduceMean", "ReduceMax", "ReduceMin"):
            attrs = {a.name for a in node.attribute}
            if opset >= 18:
                assert len(node.input) == 2 and "axes" not in attrs
            else:
                assert len(node.input) == 1 and "axes" in attrs
        if node.op_type in ("ReduceSum", "Squeeze", "Unsqueeze"):
            assert len(node.input) == 2  # axes is an input from opset 13


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_int_reductions_at_opset(opset, dtype):
    x = rand(3, 4, 5, low=-4, high=5, dtype=dtype)
    for fn, np_fn in [(ops.sum, np.sum), (ops.max, np.max), (ops.min, np.min)]:
        check_op(
            lambda t, fn=fn: fn(t, axis=(1, 2)), [x], lambda a, f=np_fn: f(a, axis=(1, 2)).astype(dtype), opset=opset
        )


def test_unsupported_opset_raises():
    x = keras.Input(shape=(3,))
    model = keras.Model(x, ops.relu(x))
    with pytest.raises(ValueError):
        keras.onnx.to_onnx(model, opset=12)
    with pytest.raises(ValueError):
        keras.onnx.to_onnx(model, opset=onnx.defs.onnx_opset_version() + 1)
