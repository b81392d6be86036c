"""Dot: Keras' batch-dot semantics for 2D/3D (and higher) inputs, normalize, errors, ONNX."""

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test

RNG = np.random.default_rng(15)


def batch_dot_ref(x, y, axes):
    """Per-sample tensordot of x[i] and y[i] over (axes[0]-1, axes[1]-1); rank-1 results get a 1 axis."""
    out = np.stack([np.tensordot(a, b, axes=(axes[0] - 1, axes[1] - 1)) for a, b in zip(x, y)])
    return out.reshape(-1, 1) if out.ndim == 1 else out


def l2n(x, axis):
    return x / np.maximum(np.sqrt((x.astype("float64") ** 2).sum(axis, keepdims=True)), 1e-7)


CASES = [
    ((5,), (5,), 1, (None, 1), ["Mul", "ReduceSum"]),
    ((5,), (5,), -1, (None, 1), None),
    ((3, 4), (3, 6), 1, (None, 4, 6), ["Transpose", "MatMul"]),
    ((3, 4), (5, 4), 2, (None, 3, 5), ["Transpose", "MatMul"]),
    ((3, 4), (4, 5), (2, 1), (None, 3, 5), ["MatMul"]),
    ((3, 4), (5, 3), (1, 2), (None, 4, 5), None),
    ((4,), (4, 6), (1, 1), (None, 6), None),
    ((3, 4), (4,), (2, 1), (None, 3), None),
    ((2, 3, 4), (4, 5), (3, 1), (None, 2, 3, 5), ["Einsum"]),
    ((2, 3, 4), (3, 2, 6), (2, 1), (None, 2, 4, 2, 6), ["Einsum"]),
]


@pytest.mark.parametrize("s1, s2, axes, out_shape, nodes", CASES)
def test_dot_shapes_values_and_onnx(s1, s2, axes, out_shape, nodes):
    a, b = keras.Input(s1), keras.Input(s2)
    layer = layers.Dot(axes=axes)
    out = layer([a, b])
    assert out.shape == out_shape
    assert layer.compute_output_shape([(None,) + s1, (None,) + s2]) == out_shape
    model = keras.Model([a, b], out)
    x, y = RNG.standard_normal((3,) + s1).astype("float32"), RNG.standard_normal((3,) + s2).astype("float32")
    pair = [axes, axes] if isinstance(axes, int) else list(axes)
    pair = [p % (len(s) + 1) for p, s in zip(pair, (s1, s2))]
    np.testing.assert_allclose(model.predict([x, y], verbose=0), batch_dot_ref(x, y, pair), rtol=1e-5, atol=1e-5)
    proto = assert_onnx_parity(model, [x, y])
    if nodes is not None:
        assert [n.op_type for n in proto.graph.node if n.op_type not in ("Unsqueeze", "Squeeze")] == nodes


@pytest.mark.parametrize("axes", [2, (1, 1)])
def test_dot_normalize_is_cosine_similarity(axes):
    a, b = keras.Input((3, 4)), keras.Input((5, 4) if axes == 2 else (3, 6))
    model = keras.Model([a, b], layers.dot([a, b], axes=axes, normalize=True))
    x = RNG.standard_normal((2, 3, 4)).astype("float32")
    y = RNG.standard_normal((2,) + tuple(b.shape[1:])).astype("float32")
    pair = [2, 2] if axes == 2 else [1, 1]
    want = batch_dot_ref(l2n(x, pair[0]), l2n(y, pair[1]), pair)
    np.testing.assert_allclose(model.predict([x, y], verbose=0), want, rtol=1e-5, atol=1e-6)
    assert np.abs(model.predict([x, y], verbose=0)).max() <= 1 + 1e-6
    assert_onnx_parity(model, [x, y])


def test_dot_dynamic_lengths():
    q, k = keras.Input((None, 4)), keras.Input((None, 4))
    model = keras.Model([q, k], layers.Dot(axes=2)([q, k]))
    for n, m in ((2, 3), (5, 1)):
        x = RNG.standard_normal((2, n, 4)).astype("float32")
        y = RNG.standard_normal((2, m, 4)).astype("float32")
        np.testing.assert_allclose(model.predict([x, y], verbose=0), x @ y.transpose(0, 2, 1), rtol=1e-5, atol=1e-6)
        assert_onnx_parity(model, [x, y])


def test_dot_config_and_errors():
    layer = layers.Dot(axes=(1, 2), normalize=True, name="d")
    config = layer.get_config()
    assert config["axes"] == (1, 2) and config["normalize"] is True
    assert layers.Dot.from_config(config).get_config() == config
    with pytest.raises(TypeError, match="should be a list or an int"):
        layers.Dot(axes="x")
    with pytest.raises(ValueError, match="should contain two elements"):
        layers.Dot(axes=[1, 2, 3])
    with pytest.raises(ValueError, match="list elements should be integers"):
        layers.Dot(axes=[1, 2.0])
    a, b = keras.Input((3,)), keras.Input((4,))
    with pytest.raises(ValueError, match="Incompatible input shapes"):
        layers.Dot(axes=1)([a, b])
    with pytest.raises(ValueError, match="list of 2 inputs"):
        layers.Dot(axes=1)([a, a, a])
    with pytest.raises(ValueError, match="Cannot perform batch_dot over axis 0"):
        layers.Dot(axes=0)([a, a])


def test_dot_drops_masks_without_warning():
    tokens = keras.Input((4,), dtype="int32")
    x = layers.Embedding(5, 3, mask_zero=True)(tokens)
    out = layers.Dot(axes=2)([x, x])
    assert out._keras_mask is None


HARNESS_CASES = [("Dot", {"axes": 1}, [(5,), (5,)]), ("Dot", {"axes": (2, 1), "normalize": True}, [(3, 4), (4, 5)])]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
