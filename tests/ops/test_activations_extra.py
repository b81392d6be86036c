"""The Keras 3.15 activations beyond the classic set (celu, glu, mish, sparsemax...) and their ops.

Each is checked against an independent float64 NumPy formula (NumPy executor and ONNX Runtime,
``onnx.checker`` full check), against central finite differences, and through the activation
name table (``get``, ``serialize``, layer configs).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import irtool as keras
from irtool import activations, layers, ops

from ..conftest import assert_onnx_parity
from ..train.gradcheck import check_gradients
from ._util import check_op

RNG = np.random.default_rng(7)


def _log1pexp(x):
    return np.logaddexp(0.0, x)


def _sparsemax_ref(x, axis=-1):
    """Sort-based sparsemax (Martins & Astudillo, 2016), one row at a time, in float64."""
    moved = np.moveaxis(np.asarray(x, "float64"), axis, -1)
    out = np.empty_like(moved)
    for index in np.ndindex(moved.shape[:-1]):
        z = moved[index]
        ordered = np.sort(z)[::-1]
        ks = np.arange(1, z.size + 1)
        cumulative = np.cumsum(ordered)
        k = ks[1 + ks * ordered > cumulative][-1]
        tau = (cumulative[k - 1] - 1) / k
        out[index] = np.maximum(z - tau, 0)
    return np.moveaxis(out, -1, axis)


def _glu_ref(x, axis=-1):
    a, b = np.split(x, 2, axis=axis)
    return a * 0.5 * (1 + np.tanh(b / 2))  # sigmoid(b), without overflow


# name -> (irtool op, float64 reference). Parametrized ops take their non-default arguments here.
REFERENCES = {
    "celu": (ops.celu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "celu_alpha": (
        lambda x: ops.celu(x, alpha=0.5),
        lambda x: np.maximum(x, 0) + np.minimum(0, 0.5 * np.expm1(np.minimum(x, 0) / 0.5)),
    ),
    "glu": (ops.glu, _glu_ref),
    "hard_shrink": (ops.hard_shrink, lambda x: np.where(np.abs(x) > 0.5, x, 0)),
    "hard_shrink_2": (lambda x: ops.hard_shrink(x, threshold=2.0), lambda x: np.where(np.abs(x) > 2, x, 0)),
    "hard_silu": (ops.hard_silu, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    "hard_tanh": (ops.hard_tanh, lambda x: np.clip(x, -1, 1)),
    "log_sigmoid": (ops.log_sigmoid, lambda x: -_log1pexp(-x)),
    "soft_shrink": (ops.soft_shrink, lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0)),
    "soft_shrink_1": (
        lambda x: ops.soft_shrink(x, threshold=1.0),
        lambda x: np.sign(x) * np.maximum(np.abs(x) - 1.0, 0),
    ),
    "sparse_plus": (
        ops.sparse_plus,
        lambda x: np.select([x <= -1, x >= 1], [np.zeros_like(x), x], (x + 1) ** 2 / 4),
    ),
    "sparse_sigmoid": (ops.sparse_sigmoid, lambda x: np.select([x <= -1, x >= 1], [0.0, 1.0], (x + 1) / 2)),
    # (x + sqrt(x^2 + b)) / 2 evaluated with no cancellation: b / (2 (sqrt(x^2 + b) - x)) for x < 0.
    "squareplus": (ops.squareplus, lambda x: np.where(x >= 0, x + np.hypot(x, 2), 4 / (np.hypot(x, 2) - x)) / 2),
    "squareplus_b1": (
        lambda x: ops.squareplus(x, b=1),
        lambda x: np.where(x >= 0, x + np.hypot(x, 1), 1 / (np.hypot(x, 1) - x)) / 2,
    ),
    "tanh_shrink": (ops.tanh_shrink, lambda x: x - np.tanh(x)),
    "threshold": (lambda x: ops.threshold(x, 0.3, -7.0), lambda x: np.where(x > 0.3, x, -7.0)),
    "sparsemax": (ops.sparsemax, _sparsemax_ref),
    "sparsemax_axis1": (lambda x: ops.sparsemax(x, axis=1), lambda x: _sparsemax_ref(x, axis=1)),
    "mish": (activations.mish, lambda x: x * np.tanh(_log1pexp(x))),
}

# A mix of ordinary values, values on the kinks and large magnitudes (overflow checks).
SPECIAL = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 30.0, -30.0, 90.0, -90.0, 1e4, -1e4, 3e4], "float32")


def _inputs(dtype="float32"):
    x = RNG.uniform(-4, 4, size=(3, 4, 6))
    x[0, 0, :] = SPECIAL[:6]
    x[0, 1, :] = SPECIAL[6:]
    return x.astype(dtype)


def _reference(fn):
    return lambda a: fn(a.astype("float64")).astype(a.dtype)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_against_numpy_and_onnx_runtime(name, dtype):
    op, ref = REFERENCES[name]
    check_op(op, [_inputs(dtype)], _reference(ref), atol=1e-6, rtol=2e-6 if dtype == "float32" else 1e-12)


def test_eager_calls_on_arrays_and_lists():
    x = np.array([-2.0, -0.25, 0.75, 3.0], "float32")
    np.testing.assert_allclose(ops.hard_shrink(x), [-2.0, 0.0, 0.75, 3.0])
    np.testing.assert_allclose(ops.soft_shrink(x), [-1.5, 0.0, 0.25, 2.5])
    np.testing.assert_allclose(ops.threshold(x, 0.0, 9.0), [9.0, 9.0, 0.75, 3.0])
    np.testing.assert_allclose(ops.glu([1.0, 2.0, 0.0, 0.0]), [0.5, 1.0])
    np.testing.assert_allclose(ops.sparsemax([[0.1, 1.1, 0.5, -2.0]]), [[0.0, 0.8, 0.2, 0.0]], atol=1e-6)
    assert ops.log_sigmoid(x).dtype == np.float32
    assert ops.celu(np.arange(3)).dtype == np.float32  # ints become floatx, as in Keras


def test_log_sigmoid_and_mish_do_not_overflow():
    x = np.array([-1e30, -1000.0, -100.0, 100.0, 1000.0, 1e30], "float32")
    got = ops.log_sigmoid(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [-1e30, -1000.0, -100.0, 0.0, 0.0, 0.0], atol=1e-30, rtol=1e-6)
    np.testing.assert_allclose(activations.mish(x), [0.0, 0.0, 0.0, 100.0, 1000.0, 1e30], atol=1e-30, rtol=1e-6)


def test_sparsemax_rows_are_sparse_distributions_with_ties():
    x = np.array([[3.0, 3.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0], [5.0, 0.1, 0.2, 0.3], [0.4, 0.4, 0.3, -9.0]], "float32")
    got = ops.sparsemax(x)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(got, _sparsemax_ref(x), atol=1e-7)
    np.testing.assert_allclose(got[0], [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(got[2], [1.0, 0.0, 0.0, 0.0])
    big = np.array([[1e4, 1e4 - 0.5, -1e4]], "float32")  # shift invariance keeps this exact
    np.testing.assert_allclose(ops.sparsemax(big), [[0.75, 0.25, 0.0]])


def _away_from(x, points, margin=0.05):
    for p in points:
        x = np.where(np.abs(x - p) < margin, p + 2 * margin, x)
    return x


KINKS = {
    "celu": [0.0],
    "celu_alpha": [0.0],
    "hard_shrink": [-0.5, 0.5],
    "hard_shrink_2": [-2.0, 2.0],
    "hard_silu": [-3.0, 3.0],
    "hard_tanh": [-1.0, 1.0],
    "soft_shrink": [-0.5, 0.5],
    "soft_shrink_1": [-1.0, 1.0],
    "sparse_plus": [-1.0, 1.0],
    "sparse_sigmoid": [-1.0, 1.0],
    "threshold": [0.3],
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_gradients_match_finite_differences(name):
    op, _ = REFERENCES[name]
    x = _away_from(np.random.default_rng(3).uniform(-3, 3, size=(3, 6)), KINKS.get(name, []))
    check_gradients(op, [x])


def test_gradients_at_large_magnitudes_are_finite_and_exact():
    x = np.array([[-200.0, -40.0, 40.0, 200.0]])
    for op in (ops.log_sigmoid, activations.mish, ops.squareplus, ops.celu, ops.sparse_plus):
        grads = check_gradients(op, [x], eps=1e-5)
        assert np.all(np.isfinite(grads[0]))


def test_sparsemax_gradient_is_the_projection_jacobian():
    x = np.array([[0.3, 1.2, 0.9, -1.0, 1.0]])
    check_gradients(ops.sparsemax, [x])
    check_gradients(lambda t: ops.sparsemax(t, axis=0), [np.random.default_rng(5).normal(size=(5, 3))])


NAMES = [
    "celu", "glu", "hard_shrink", "hard_tanh", "log_sigmoid", "mish", "soft_shrink", "sparse_plus",
    "sparse_sigmoid", "sparsemax", "squareplus", "tanh_shrink",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_dense_activation_by_name_exports_and_round_trips(name):
    dense = layers.Dense(4, activation=name)
    assert dense.activation is getattr(activations, name)
    assert dense.get_config()["activation"] == name
    inputs = keras.Input((5,))
    model = keras.Model(inputs, dense(inputs))
    assert model.output.shape == ((None, 2) if name == "glu" else (None, 4))
    x = (RNG.standard_normal((3, 5)) * 3).astype("float32")
    assert_onnx_parity(model, x)
    clone = layers.Dense.from_config(json.loads(json.dumps(dense.get_config())))
    assert clone.activation is dense.activation
    inputs = keras.Input((5,))
    clone_model = keras.Model(inputs, clone(inputs))
    clone.set_weights(dense.get_weights())
    np.testing.assert_allclose(clone_model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_names_aliases_and_serialization():
    assert activations.get("swish") is activations.silu
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.serialize(activations.get("hard_swish")) == "hard_silu"
    for name in [*NAMES, "threshold"]:
        fn = activations.get(name)
        assert activations.serialize(fn) == name
        assert activations.deserialize(name) is fn
    assert layers.Activation("mish").get_config()["activation"] == "mish"
    assert layers.Dense(3, activation="mish").get_config()["activation"] == "mish"
    assert ops.nn.sparsemax is ops.sparsemax and ops.hard_swish is ops.hard_silu


def test_activation_layer_with_an_argument_taking_activation():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layers.Activation(lambda t: activations.threshold(t, 0.0, -1.0))(inputs))
    x = RNG.standard_normal((2, 6)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.where(x > 0, x, -1.0))


def test_raw_ops_record_keras_op_classes_and_round_trip():
    inputs = keras.Input((4,))
    y = ops.squareplus(ops.celu(inputs, alpha=0.5), b=2)
    z = ops.threshold(ops.sparsemax(y), 0.1, 0.0)
    model = keras.Model(inputs, [ops.glu(y), z])
    kinds = [getattr(op, "class_name", type(op).__name__) for op in model.operations]
    assert {"Celu", "Squareplus", "Sparsemax", "Threshold", "Glu"} <= set(kinds)
    restored = keras.models.model_from_json(model.to_json())
    x = RNG.standard_normal((3, 4)).astype("float32")
    for got, want in zip(restored.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_allclose(got, want)


def test_errors_name_what_was_expected_and_received():
    with pytest.raises(ValueError, match=r"even.*x.shape=\(None, 5\)"):
        ops.glu(keras.Input((5,)))
    with pytest.raises(ValueError, match="non-zero `alpha`.*alpha=0.0"):
        ops.celu(np.ones(2, "float32"), alpha=0)
    with pytest.raises(ValueError, match="b >= 0.*b=-1.0"):
        ops.squareplus(np.ones(2, "float32"), b=-1)
    with pytest.raises(ValueError, match="Could not interpret activation function identifier: mishh"):
        activations.get("mishh")
