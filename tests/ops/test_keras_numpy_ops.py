"""Keras' math, statistics, sorting and rearrangement ops (``ops.tan`` ... ``ops.top_k``): each
against real Keras on arrays (values and dtypes), and each on symbolic tensors in a model whose
NumPy predictions equal the eager results and ONNX Runtime's on the export."""

from __future__ import annotations

import numpy as np
import pytest

import irtool
from irtool import layers, ops

from ..harness import assert_onnx_parity, get_keras

RNG = np.random.default_rng(11)
X = RNG.uniform(-2, 2, (3, 4)).astype("float32")
UNIT = RNG.uniform(-0.9, 0.9, (3, 4)).astype("float32")
POS = RNG.uniform(0.5, 3, (3, 4)).astype("float32")
INTS = RNG.integers(-5, 6, (3, 4)).astype("int32")
SPECIAL = np.array([[0.5, np.nan, -np.inf, 2.0], [np.inf, -1.0, np.nan, 0.0], [1.0, 2.0, 3.0, -0.0]], "float32")

# (function name, args, kwargs): the first arg is the model's input in the symbolic check
CASES = [
    ("tan", (UNIT,), {}),
    ("sinh", (X,), {}),
    ("cosh", (X,), {}),
    ("arcsin", (UNIT,), {}),
    ("arccos", (UNIT,), {}),
    ("arctan", (X,), {}),
    ("arcsinh", (X,), {}),
    ("arccosh", (POS + 1,), {}),
    ("arctanh", (UNIT,), {}),
    ("log1p", (UNIT,), {}),
    ("expm1", (X,), {}),
    ("log2", (POS,), {}),
    ("log10", (POS,), {}),
    ("exp2", (X,), {}),
    ("rsqrt", (POS,), {}),
    ("trunc", (X * 3,), {}),
    ("isnan", (SPECIAL,), {}),
    ("isinf", (SPECIAL,), {}),
    ("isfinite", (SPECIAL,), {}),
    ("deg2rad", (X * 90,), {}),
    ("rad2deg", (X,), {}),
    ("hypot", (X, POS), {}),
    ("logaddexp", (X, UNIT * 4), {}),
    ("logaddexp", (SPECIAL, SPECIAL), {}),  # equal infinities: inf and -inf, not NaN
    ("trunc", (INTS,), {}),  # integers keep their dtype
    ("dot", (X, 2.0), {}),  # a Python scalar takes the tensor's dtype
    ("inner", (X, 3.0), {}),
    ("sort", (X,), {"axis": None}),
    ("argsort", (INTS,), {"axis": None}),
    ("divide_no_nan", (X, np.where(INTS > 0, INTS, 0).astype("float32")), {}),
    ("var", (X,), {"axis": 1}),
    ("var", (X,), {"axis": None, "keepdims": True}),
    ("std", (X,), {"axis": 0, "keepdims": True}),
    ("logsumexp", (X * 30,), {"axis": -1}),
    ("logsumexp", (X,), {}),
    ("amax", (X,), {"axis": 0}),
    ("amin", (INTS,), {"axis": 1, "keepdims": True}),
    ("ptp", (X,), {"axis": 1}),
    ("count_nonzero", (INTS,), {"axis": 1}),
    ("sum", (X > 0,), {"axis": -1}),  # a mask counts: int32, as in Keras (it stayed bool and wrapped)
    ("sum", (INTS.astype("int8") * 40,), {}),
    ("prod", (INTS.astype("int16"),), {"axis": 0}),
    ("cumsum", (X,), {"axis": 1}),
    ("cumsum", (INTS,), {}),
    ("sort", (X,), {}),
    ("sort", (INTS,), {"axis": 0}),
    ("argsort", (X,), {"axis": 1}),
    ("top_k", (X,), {"k": 2}),
    ("flip", (X,), {"axis": 1}),
    ("flip", (X,), {}),
    ("fliplr", (X,), {}),
    ("flipud", (INTS,), {}),
    ("roll", (X,), {"shift": 1, "axis": 1}),
    ("roll", (X,), {"shift": -5}),
    ("swapaxes", (X[None],), {"axis1": 0, "axis2": 2}),
    ("moveaxis", (X[None],), {"source": 0, "destination": -1}),
    ("ravel", (X,), {}),
    ("broadcast_to", (X[:, :1],), {"shape": (2, 3, 4)}),
    ("full_like", (X,), {"fill_value": 7}),
    ("tensordot", (X, RNG.random((4, 2)).astype("float32")), {"axes": 1}),
    ("tensordot", (X[None], RNG.random((3, 4)).astype("float32")), {"axes": ([1, 2], [0, 1])}),
    ("dot", (X, RNG.random((4, 2)).astype("float32")), {}),
    ("dot", (X[None], RNG.random(4).astype("float32")), {}),
    ("inner", (X, RNG.random((5, 4)).astype("float32")), {}),
    ("outer", (X[0], RNG.random(3).astype("float32")), {}),
    ("vdot", (X, RNG.random((3, 4)).astype("float32")), {}),
    ("diagonal", (X[None],), {"offset": 1, "axis1": 1, "axis2": 2}),
    ("trace", (X[None],), {"offset": -1, "axis1": 1, "axis2": 2}),
    ("nan_to_num", (SPECIAL,), {"nan": 1.5}),
    ("isclose", (X, X + RNG.choice([0, 1e-7, 1e-3], (3, 4)).astype("float32")), {}),
    ("average", (X,), {"axis": 1, "weights": RNG.random(4).astype("float32")}),
    ("take_along_axis", (X, np.argsort(X, axis=1)[:, :2]), {"axis": 1}),
    ("take_along_axis", (X, np.array([[2, 0, 1, 1]])), {"axis": 0}),
    ("stop_gradient", (X,), {}),
    ("norm", (X,), {"axis": 1}),
    ("norm", (X,), {"ord": 1, "axis": -1, "keepdims": True}),
    ("norm", (X[None],), {"ord": "fro", "axis": (1, 2)}),
    ("norm", (X[None],), {"ord": np.inf, "axis": (1, 2)}),
    ("slice", (X[None],), {"start_indices": (0, 1, 1), "shape": (1, 2, 3)}),
    ("slice_update", (X[None],), {"start_indices": (0, 1, 2), "updates": np.full((1, 2, 2), -7, "float32")}),
    ("multi_hot", (RNG.integers(0, 5, (3, 4)).astype("int32"),), {"num_classes": 6}),
    ("copy", (INTS,), {}),
    (
        "dot_product_attention",
        (RNG.standard_normal((2, 5, 3, 4)).astype("float32"),)
        + tuple(RNG.standard_normal((2, 2, 6, 3, 4)).astype("float32")),
        {"mask": RNG.random((2, 3, 5, 6)) > 0.3, "is_causal": True},
    ),
]


def _ids(case):
    name, args, kwargs = case
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


def _flat(result):
    return [np.asarray(r) for r in (result if isinstance(result, (tuple, list)) else [result])]


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_equal_to_real_keras(case):
    keras = get_keras()
    if keras is None:
        pytest.skip("keras is not installed")
    name, args, kwargs = case
    ours = _flat(getattr(ops, name)(*args, **kwargs))
    given = [a.ravel() if name == "vdot" else a for a in args]  # Keras' torch backend takes 1-D vdot operands only
    given = [keras.ops.convert_to_tensor(a) for a in given]
    theirs = [keras.ops.convert_to_numpy(t) for t in _flat_keras(getattr(keras.ops, name)(*given, **kwargs))]
    assert len(ours) == len(theirs)
    for k, (got, want) in enumerate(zip(ours, theirs)):
        if name == "top_k" and k == 1:  # indices: int64 on Keras' torch backend, int32 on TensorFlow and JAX
            want = want.astype("int32")
        assert got.shape == want.shape and str(got.dtype) == str(want.dtype), (got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6, equal_nan=True)


def _flat_keras(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_symbolic_calls_predict_and_export_like_the_eager_op(case):
    name, args, kwargs = case
    if name == "slice_update":
        pytest.skip("an update of part of the batch axis needs a static batch size")
    if name == "roll" and "axis" not in kwargs:
        pytest.skip("rolling the flattened tensor needs its size, unknown with a dynamic batch")
    first, rest = args[0], args[1:]
    inputs = irtool.Input(first.shape[1:], dtype=str(first.dtype))
    outputs = getattr(ops, name)(inputs, *rest, **kwargs)
    model = irtool.Model(inputs, outputs)
    want = _flat(getattr(ops, name)(*args, **kwargs))
    got = _flat(model.predict(first, verbose=0))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, equal_nan=True)
    if name in ("isnan", "isinf", "isfinite") or not np.isnan(first).any():
        assert_onnx_parity(model, first, atol=2e-5)


def test_gradients_of_the_composed_statistics_match_finite_differences():
    from ..train.gradcheck import check_gradients

    x = RNG.uniform(-2, 2, (2, 5))
    for fn in (
        lambda t: ops.var(t, axis=1),
        lambda t: ops.std(t, axis=0),
        lambda t: ops.logsumexp(t * 3, axis=1),
        lambda t: ops.sort(t, axis=1),
        lambda t: ops.top_k(t, 3)[0],
        lambda t: ops.cumsum(t, axis=1),
        lambda t: ops.roll(t, 2, axis=1),
        lambda t: ops.broadcast_to(t[:1], (3, 2, 5)),
    ):
        check_gradients(fn, [x], atol=1e-6, rtol=1e-5)


def test_stop_gradient_stops_it():
    """out = y + stop_gradient(y), y = x @ W: the loss's gradient reaches W through the first term only."""
    inputs = irtool.Input((3,))
    dense = layers.Dense(1, use_bias=False, kernel_initializer="ones")
    y = dense(inputs)
    model = irtool.Model(inputs, ops.add(y, ops.stop_gradient(y)))
    model.compile(optimizer=irtool.optimizers.SGD(0.01), loss="mse")
    model.train_on_batch(np.ones((1, 3), "float32"), np.zeros((1, 1), "float32"))
    # loss (6 - 0)^2: dL/dout = 12, dout/dW = x = 1 (not 2): W = 1 - 0.01 * 12
    np.testing.assert_allclose(dense.kernel.numpy(), np.full((3, 1), 0.88), rtol=1e-6)


def test_slice_update_on_symbolic_tensors():
    """A partial update of an axis needs its size: a static batch works, a dynamic one is refused."""
    updates = np.full((1, 2, 2), -7, "float32")
    with pytest.raises(ValueError, match="needs static sizes on axis 0"):
        ops.slice_update(irtool.Input((3, 4)), (0, 1, 2), updates)
    static = irtool.Input(batch_shape=(1, 3, 4))
    model = irtool.Model(static, ops.slice_update(static, (0, 1, 2), updates))
    x = X[None].copy()
    want = x.copy()
    want[0, 1:3, 2:4] = -7
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    assert_onnx_parity(model, x, atol=0, rtol=0)


def test_numpy_scalars_are_constants_in_a_model():
    inputs = irtool.Input((2,))
    model = irtool.Model(
        inputs, [ops.add(inputs, np.float32(1)), ops.hypot(inputs, 4.0), ops.divide_no_nan(inputs, 4.0)]
    )
    x = np.array([[3.0, -1.0]], "float32")
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got[0], x + 1)
    np.testing.assert_allclose(got[1], np.hypot(x, 4.0), rtol=1e-6)
    np.testing.assert_allclose(got[2], x / 4.0)


def test_ndim_and_size():
    assert ops.ndim(X) == 2 and ops.size(X) == 12 and ops.ndim(irtool.Input((3, 4))) == 3
    inputs = irtool.Input((3, 4))
    model = irtool.Model(inputs, ops.size(inputs))  # an unknown batch: a symbolic count
    assert model.predict(np.zeros((5, 3, 4), "float32"), verbose=0) == 60


def test_constructors_are_numpys_in_keras_dtypes():
    assert ops.eye(3, 4, k=1).dtype == np.float32 and np.array_equal(ops.eye(3, 4, k=1), np.eye(3, 4, 1))
    assert np.array_equal(ops.identity(2, dtype="int32"), np.eye(2, dtype="int32"))
    assert np.array_equal(ops.tri(3, k=-1), np.tri(3, k=-1).astype("float32"))
    values, step = ops.linspace(0, 1, 5, retstep=True)
    assert values.dtype == np.float32 and step == 0.25 and values.tolist() == [0, 0.25, 0.5, 0.75, 1]
    with pytest.raises(ValueError, match="`ops.eye` needs static sizes"):
        ops.eye(irtool.Input((3,)))
    assert ops.vstack([np.ones(3), np.zeros(3)]).shape == (2, 3) and ops.hstack([np.ones(2), np.ones(3)]).shape == (5,)


def test_models_with_these_ops_travel_through_keras_files_both_ways(tmp_path):
    """Raw ops at the top level are saved under Keras' op classes (``keras.src.ops.math.Logsumexp``,
    ``numpy.Cumsum``...) with Keras' arguments: real Keras loads irtool's file and irtool Keras'."""
    keras = get_keras()
    if keras is None:
        pytest.skip("keras is not installed")
    inputs = irtool.Input((5,))
    outputs = [
        ops.logsumexp(inputs, axis=-1, keepdims=True),
        ops.var(inputs, axis=1, keepdims=True),
        ops.top_k(inputs, 2)[0],
        ops.cumsum(inputs, axis=1),
        ops.roll(inputs, 2, axis=1),
        ops.sort(ops.tan(ops.arcsinh(inputs))),
    ]
    model = irtool.Model(inputs, outputs)
    model.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    x = RNG.random((3, 5)).astype("float32")
    want = model.predict(x, verbose=0)
    for got, w in zip(theirs.predict(x, verbose=0), want):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), w, rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    again = irtool.saving.load_model(tmp_path / "theirs.keras")
    for got, w in zip(again.predict(x, verbose=0), want):
        np.testing.assert_allclose(got, w, rtol=1e-6)


def test_take_along_axis_broadcasts_over_an_unknown_batch_and_roll_needs_a_size():
    inputs = irtool.Input((4,))
    model = irtool.Model(inputs, ops.take_along_axis(inputs, np.array([[3, 0]]), axis=1))
    x = RNG.random((5, 4)).astype("float32")
    assert tuple(model.output.shape) == (None, 2)
    np.testing.assert_array_equal(model.predict(x, verbose=0), np.take_along_axis(x, np.array([[3, 0]]), 1))
    assert_onnx_parity(model, x, atol=0, rtol=0)
    with pytest.raises(ValueError, match="`roll` needs a static size on axis 1"):
        ops.roll(irtool.Input((None,)), 5, axis=1)
