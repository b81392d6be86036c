"""Keras parity for the Keras 3.15 activations and ops irtool added (celu, glu, mish, sparsemax...)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import irtool  # noqa: E402
from irtool import activations  # noqa: E402

from ..harness import require_keras  # noqa: E402

real = require_keras()

RNG = np.random.default_rng(11)
X = (RNG.standard_normal((4, 3, 8)) * 3).astype("float32")
X[0, 0] = [0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 0.25]
LARGE = np.array([-1e4, -300.0, -90.0, -20.0, 20.0, 90.0, 300.0, 1e4], "float32")
LARGE = np.stack([np.stack([LARGE, -0.5 * LARGE]), np.stack([0.25 * LARGE, LARGE[::-1]])])  # (2, 2, 8), no ties

# name -> (call with irtool's module, call with Keras' module): same arguments on both sides.
CALLS = {
    "celu": lambda m, x: m.celu(x),
    "celu_alpha": lambda m, x: m.celu(x, alpha=0.3),
    "glu": lambda m, x: m.glu(x),
    "glu_axis1": lambda m, x: m.glu(x[:, :2], axis=1),
    "hard_shrink": lambda m, x: m.hard_shrink(x, threshold=0.8),
    "hard_silu": lambda m, x: m.hard_silu(x),
    "hard_swish": lambda m, x: m.hard_swish(x),
    "hard_tanh": lambda m, x: m.hard_tanh(x),
    "log_sigmoid": lambda m, x: m.log_sigmoid(x),
    "soft_shrink": lambda m, x: m.soft_shrink(x),
    "sparse_plus": lambda m, x: m.sparse_plus(x),
    "sparse_sigmoid": lambda m, x: m.sparse_sigmoid(x),
    "sparsemax": lambda m, x: m.sparsemax(x),
    "sparsemax_axis1": lambda m, x: m.sparsemax(x, axis=1),
    "squareplus": lambda m, x: m.squareplus(x),
    "squareplus_b": lambda m, x: m.squareplus(x, b=0.5),
    "tanh_shrink": lambda m, x: m.tanh_shrink(x),
    "threshold": lambda m, x: m.threshold(x, 0.2, -3.0),
}
ACTIVATION_ONLY = {"mish": lambda m, x: m.mish(x)}


def _theirs(value):
    return np.asarray(real.ops.convert_to_numpy(value))


def _close(got, want, x):
    # Large |x| may lose digits to cancellation in Keras' formulas (squareplus at -1e4 gives 0
    # where the exact value is 1e-4), so the allowance grows with the input's magnitude.
    scale = np.max(np.abs(x))
    np.testing.assert_allclose(got, want, atol=1e-6 + 1e-8 * scale, rtol=2e-6)


def _close_sparsemax(got, want, axis=-1):
    """Keras 3.15 sums every cumulative sum in the support when it computes the threshold
    (keras-team/keras#23425, fixed by #23469), so its rows with a support of two or more do not
    sum to 1. Ours must sum to 1 everywhere and agree with Keras on the rows Keras gets right."""
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=1e-5)
    valid = np.abs(want.sum(axis=axis, keepdims=True) - 1) < 1e-5
    assert valid.any(), "no sparsemax row where Keras' output is a distribution"
    np.testing.assert_allclose(np.where(valid, got, 0), np.where(valid, want, 0), atol=1e-6, rtol=1e-5)


def _compare(name, got, want, x):
    if name.startswith("sparsemax"):
        _close_sparsemax(got, want, axis=1 if name.endswith("axis1") else -1)
    else:
        _close(got, want, x)


@pytest.mark.parametrize("name", sorted({**CALLS, **ACTIVATION_ONLY}))
def test_activations_match_keras(name):
    call = {**CALLS, **ACTIVATION_ONLY}[name]
    for x in (X, LARGE):
        _compare(name, call(activations, x), _theirs(call(real.activations, x)), x)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_ops_match_keras(name):
    call = CALLS[name]
    for x in (X, LARGE):
        _compare(name, call(irtool.ops, x), _theirs(call(real.ops, x)), x)


def test_sparsemax_differs_from_keras_only_where_keras_is_wrong():
    x = np.array([[0.1, 1.1, 0.5, -2.0], [0.0, 0.5, 1.0, 0.0], [5.0, 0.0, 0.0, 1.0]], "float32")
    ours = irtool.ops.sparsemax(x)
    np.testing.assert_allclose(ours, [[0.0, 0.8, 0.2, 0.0], [0.0, 0.25, 0.75, 0.0], [1.0, 0.0, 0.0, 0.0]], atol=1e-6)
    _close_sparsemax(ours, _theirs(real.ops.sparsemax(x)))


def test_squareplus_keeps_digits_keras_loses():
    x = np.array([-1e4, -1e3], "float32")
    np.testing.assert_allclose(irtool.ops.squareplus(x), [1e-4, 1e-3], rtol=1e-5)
    np.testing.assert_allclose(_theirs(real.ops.squareplus(x)), [0.0, 0.0], atol=2e-3)


def test_keras_registry_has_no_names_irtool_lacks():
    theirs = {name for name in dir(real.activations) if callable(getattr(real.activations, name))}
    theirs -= {"get", "serialize", "deserialize"}
    assert theirs <= set(activations.ALL_OBJECTS)
    for name in theirs:
        assert activations.serialize(activations.get(name)) == real.activations.serialize(real.activations.get(name))


DENSE_NAMES = [
    "celu", "glu", "hard_shrink", "hard_silu", "hard_swish", "hard_tanh", "log_sigmoid", "mish", "soft_shrink",
    "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "tanh_shrink",
]  # fmt: skip


@pytest.mark.parametrize("name", DENSE_NAMES)
def test_keras_written_dense_config_loads(name):
    theirs = real.layers.Dense(6, activation=name, name="d")
    inputs = real.Input((5,))
    their_model = real.Model(inputs, theirs(inputs))
    config = json.loads(json.dumps(theirs.get_config()))
    ours = irtool.layers.Dense.from_config(config)
    assert ours.get_config()["activation"] == config["activation"]
    inputs = irtool.Input((5,))
    our_model = irtool.Model(inputs, ours(inputs))
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    x = (RNG.standard_normal((3, 5)) * 2).astype("float32")
    got, want = our_model.predict(x, verbose=0), _theirs(their_model.predict(x, verbose=0))
    if name == "sparsemax":
        _close_sparsemax(got, want)
    else:
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-5)


def _raw_op_model(m):
    inputs = m.Input((4,), name="x")
    y = m.ops.squareplus(m.ops.celu(inputs, alpha=0.5), b=2)
    outs = [m.ops.glu(y), m.ops.sparsemax(y), m.ops.hard_shrink(y, threshold=0.3)]
    outs.append(m.ops.log_sigmoid(m.ops.threshold(m.ops.tanh_shrink(y), 0.1, -2.0)))
    outs.append(m.ops.soft_shrink(m.ops.sparse_plus(m.ops.hard_tanh(y)), threshold=0.1))
    outs.append(m.ops.sparse_sigmoid(m.ops.hard_silu(y)))
    return m.Model(inputs, outs, name="raw_activations")


def _op_class(op):
    return getattr(op, "class_name", type(op).__name__)  # irtool's revived and raw ops name their Keras class


@pytest.mark.parametrize("writer", ["irtool", "keras"])
def test_top_level_op_configs_cross_load(writer):
    x = (RNG.standard_normal((3, 4)) * 2).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if writer == "irtool":
            source = _raw_op_model(irtool)
            loaded = real.models.model_from_json(source.to_json())
            want, got = source.predict(x, verbose=0), [_theirs(t) for t in loaded.predict(x, verbose=0)]
        else:
            source = _raw_op_model(real)
            loaded = irtool.models.model_from_json(source.to_json())
            want, got = [_theirs(t) for t in source.predict(x, verbose=0)], loaded.predict(x, verbose=0)
    assert len(got) == len(want) == 6
    assert [_op_class(op) for op in loaded.operations] == [_op_class(op) for op in source.operations]
    for i, (g, w) in enumerate(zip(got, want)):
        if i == 1:  # sparsemax: the side that runs Keras carries keras-team/keras#23425
            _close_sparsemax(*((g, w) if writer == "keras" else (w, g)))
        else:
            np.testing.assert_allclose(g, w, atol=1e-6, rtol=1e-5)
