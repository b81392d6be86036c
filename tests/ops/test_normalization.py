"""Normalization ops: batch_normalization, layer_normalization, normalize, moments.

References are float64 NumPy written here from the definitions, never irtool's kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ..conftest import assert_onnx_parity
from ._util import check_op, rand


def _bn_ref(mean, var, axis, scale=None, offset=None, eps=1e-3):
    def ref(x):
        shape = [1] * x.ndim
        shape[axis] = -1
        y = (x.astype("float64") - mean.reshape(shape)) / np.sqrt(var.reshape(shape).astype("float64") + eps)
        if scale is not None:
            y = y * scale.reshape(shape)
        if offset is not None:
            y = y + offset.reshape(shape)
        return y.astype(x.dtype)

    return ref


@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_normalization(axis, affine):
    x = rand(3, 4, 5)
    c = x.shape[axis]
    mean, var = rand(c), rand(c, low=0.1, high=2.0)
    scale, offset = (rand(c), rand(c)) if affine else (None, None)
    model = check_op(
        lambda t: ops.batch_normalization(t, mean, var, axis=axis, offset=offset, scale=scale, epsilon=1e-3),
        [x],
        _bn_ref(mean, var, axis % 3, scale, offset),
    )
    proto = keras.onnx.to_onnx(model)
    assert [n.op_type for n in proto.graph.node] == ["Mul", "Add"]  # statistics folded into constants


def test_batch_normalization_with_symbolic_statistics_is_composed():
    x, mean, var = keras.Input((4, 5)), keras.Input((5,)), keras.Input((5,))
    model = keras.Model([x, mean, var], ops.batch_normalization(x, mean[0], var[0], axis=-1, epsilon=0.01))
    feeds = [rand(2, 4, 5), rand(2, 5), rand(2, 5, low=0.5, high=1.0)]
    want = (feeds[0] - feeds[1][0]) / np.sqrt(feeds[2][0] + 0.01)
    np.testing.assert_allclose(model.predict(feeds, verbose=0), want, rtol=1e-5, atol=1e-6)
    assert_onnx_parity(model, feeds)
    channels_first = keras.Model([x, mean, var], ops.batch_normalization(x, mean[0, :4], var[0, :4], axis=1))
    assert_onnx_parity(channels_first, feeds)


def test_batch_normalization_rejects_bad_shapes():
    x = keras.Input((4, 5))
    with pytest.raises(ValueError, match=r"`mean` of shape \(5,\)"):
        ops.batch_normalization(x, np.zeros(4, "float32"), np.ones(5, "float32"), axis=-1)
    with pytest.raises(ValueError, match=r"`variance` of shape \(4,\)"):
        ops.batch_normalization(x, np.zeros(4, "float32"), np.ones((4, 1), "float32"), axis=1)


def _ln_ref(axes, gamma=None, beta=None, eps=1e-3, rms=False):
    def ref(x):
        x64 = x.astype("float64")
        mean = x64.mean(axis=tuple(axes), keepdims=True)
        var = x64.var(axis=tuple(axes), keepdims=True)
        y = (x64 if rms else x64 - mean) / np.sqrt(var + eps)
        shape = [1] * x.ndim
        for a in axes:
            shape[a] = x.shape[a]
        if gamma is not None:
            y = y * gamma.reshape(shape)
        if beta is not None:
            y = y + beta.reshape(shape)
        return y.astype(x.dtype)

    return ref


@pytest.mark.parametrize("axes", [[-1], [1, 2], [1], [1, 3], [2, 3]])
@pytest.mark.parametrize("opset", [None, 15])
def test_layer_normalization(axes, opset):
    x = rand(3, 4, 5, 6, low=-3, high=3)
    norm = tuple(x.shape[a] for a in axes)
    gamma, beta = rand(*norm), rand(*norm)
    model = check_op(
        lambda t: ops.layer_normalization(t, gamma, beta, axis=axes, epsilon=1e-3),
        [x],
        _ln_ref([a % 4 for a in axes], gamma, beta),
        opset=opset,
    )
    ops_used = [n.op_type for n in keras.onnx.to_onnx(model, opset=opset).graph.node]
    fused = opset is None and axes in ([-1], [2, 3])
    assert ("LayerNormalization" in ops_used) == fused
    if fused:
        assert ops_used == ["LayerNormalization"]


def test_layer_normalization_without_gamma_beta_and_rms():
    x = rand(3, 7, low=-3, high=3)
    check_op(lambda t: ops.layer_normalization(t, axis=-1), [x], _ln_ref([1], eps=1e-7))
    gamma = rand(7)
    check_op(
        lambda t: ops.layer_normalization(t, gamma, axis=-1, epsilon=0.01, rms_scaling=True),
        [x],
        _ln_ref([1], gamma, eps=0.01, rms=True),
    )
    full_rank = gamma.reshape(1, 7)  # a broadcastable full-rank gamma is accepted, as in Keras
    check_op(lambda t: ops.layer_normalization(t, full_rank, axis=-1), [x], _ln_ref([1], gamma, eps=1e-7))


def test_layer_normalization_float64():
    x = rand(3, 5, 4, dtype="float64")
    gamma = rand(4, dtype="float64")
    check_op(lambda t: ops.layer_normalization(t, gamma, axis=-1), [x], _ln_ref([2], gamma, eps=1e-7))
    check_op(
        lambda t: ops.layer_normalization(t, gamma[:1], axis=1),
        [rand(3, 1, 4, dtype="float64")],
        _ln_ref([1], gamma[:1], eps=1e-7),
    )


def test_layer_normalization_rejects_bad_gamma():
    x = keras.Input((4, 5))
    with pytest.raises(ValueError, match="gamma"):
        ops.layer_normalization(x, keras.Input((4,))[0], axis=-1)


@pytest.mark.parametrize("axis", [-1, 1, (1, 2)])
def test_normalize_l2(axis):
    x = rand(3, 4, 5)
    x[0, 1] = 0.0  # a zero vector stays zero (norm floored at epsilon)

    def ref(a):
        a64 = a.astype("float64")
        norm = np.sqrt((a64**2).sum(axis=axis, keepdims=True))
        return (a64 / np.maximum(norm, 1e-7)).astype("float32")

    check_op(lambda t: ops.normalize(t, axis=axis), [x], ref)


@pytest.mark.parametrize("order", [1, 3])
def test_normalize_other_orders(order):
    def ref(a):
        norm = (np.abs(a.astype("float64")) ** order).sum(axis=-1, keepdims=True) ** (1 / order)
        return (a / np.maximum(norm, 1e-7)).astype("float32")

    check_op(lambda t: ops.normalize(t, axis=-1, order=order), [rand(3, 6)], ref)
    with pytest.raises(ValueError, match="must be an int >= 1"):
        ops.normalize(rand(2, 2), order=0)


@pytest.mark.parametrize("keepdims", [False, True])
def test_moments(keepdims):
    x = rand(3, 4, 5)

    def ref(a):
        a64 = a.astype("float64")
        return [
            a64.mean(axis=(0, 2), keepdims=keepdims).astype("float32"),
            a64.var(axis=(0, 2), keepdims=keepdims).astype("float32"),
        ]

    check_op(lambda t: list(ops.moments(t, axes=[0, 2], keepdims=keepdims)), [x], ref, dynamic=False)
