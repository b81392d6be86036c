"""softmax and log_softmax on several axes, and the ``ops.nn`` namespace."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ._util import assert_same, check_op, rand


def _softmax_ref(axis):
    def ref(a):
        e = np.exp(a.astype("float64"))
        return (e / e.sum(axis=axis, keepdims=True)).astype("float32")

    return ref


def _log_softmax_ref(axis):
    def ref(a):
        a64 = a.astype("float64")
        return (a64 - np.log(np.exp(a64).sum(axis=axis, keepdims=True))).astype("float32")

    return ref


AXES = [-1, -2, 0, 1, 2, -3]


@pytest.mark.parametrize("axis", AXES)
def test_softmax(axis):
    check_op(lambda t: ops.softmax(t, axis=axis), [rand(3, 4, 5, low=-4, high=4)], _softmax_ref(axis))


@pytest.mark.parametrize("axis", AXES)
def test_log_softmax(axis):
    check_op(lambda t: ops.log_softmax(t, axis=axis), [rand(3, 4, 5, low=-4, high=4)], _log_softmax_ref(axis))


@pytest.mark.parametrize("fn, ref", [(ops.softmax, _softmax_ref), (ops.log_softmax, _log_softmax_ref)])
def test_softmax_default_axis_and_static(fn, ref):
    x = rand(2, 6, low=-4, high=4)
    check_op(fn, [x], ref(-1), dynamic=False)
    check_op(fn, [rand(3, 6)], ref(-1))


def test_softmax_is_stable_for_large_logits():
    x = np.array([[1000.0, 999.0, -1000.0], [-50.0, 50.0, 0.0], [0.0, 0.0, 0.0]], "float32")

    def ref(a):
        s = a.astype("float64") - a.max(-1, keepdims=True)
        return (np.exp(s) / np.exp(s).sum(-1, keepdims=True)).astype("float32")

    def log_ref(a):
        s = a.astype("float64") - a.max(-1, keepdims=True)
        return (s - np.log(np.exp(s).sum(-1, keepdims=True))).astype("float32")

    check_op(ops.softmax, [x], ref)
    check_op(ops.log_softmax, [x], log_ref)


def test_softmax_rejects_int_and_bad_axis():
    x = keras.Input(shape=(4,), dtype="int32")
    with pytest.raises(ValueError):
        ops.softmax(x)
    y = keras.Input(shape=(4,))
    with pytest.raises(ValueError):
        ops.softmax(y, axis=2)


def test_nn_namespace_reexports_activations():
    x = rand(3, 4)
    for name in ["relu", "relu6", "sigmoid", "softplus", "softsign", "selu", "elu", "silu", "swish", "hard_sigmoid"]:
        assert getattr(ops.nn, name) is getattr(ops, name)
    assert_same(ops.nn.gelu(x, approximate=True), ops.gelu(x))
    assert_same(ops.nn.leaky_relu(x, 0.1), np.where(x >= 0, x, x * np.float32(0.1)))


def test_eager_softmax_returns_numpy():
    x = rand(3, 4)
    out = ops.softmax(x, axis=0)
    assert isinstance(out, np.ndarray)
    assert_same(out, _softmax_ref(0)(x))
    assert_same(ops.log_softmax(x), _log_softmax_ref(-1)(x))
