"""Reductions (sum, mean, max, min, prod, argmax, argmin) against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ._util import assert_same, check_op, rand

REDUCE = {
    "sum": (ops.sum, np.sum),
    "mean": (ops.mean, np.mean),
    "max": (ops.max, np.max),
    "min": (ops.min, np.min),
    "prod": (ops.prod, np.prod),
}
AXES = [None, 0, 1, 2, -1, -2, -3, (1, 2), (0, 2), (-1, 0), (0, 1, 2), ()]


def _ref(np_fn, axis, keepdims, dtype=None):
    def ref(a):
        out = np.asarray(np_fn(a.astype("float64") if a.dtype.kind == "f" else a, axis=axis, keepdims=keepdims))
        return out.astype(dtype or (a.dtype if np_fn is not np.mean or a.dtype.kind == "f" else "float32"))

    return ref


@pytest.mark.parametrize("name", sorted(REDUCE))
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_float(name, axis, keepdims):
    op, np_fn = REDUCE[name]
    x = rand(3, 4, 5, low=0.5, high=1.5) if name == "prod" else rand(3, 4, 5)
    check_op(lambda t: op(t, axis=axis, keepdims=keepdims), [x], _ref(np_fn, axis, keepdims))


@pytest.mark.parametrize("name", sorted(REDUCE))
@pytest.mark.parametrize("axis", [None, 1, (0, -1)], ids=str)
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_reduce_int(name, axis, dtype):
    op, np_fn = REDUCE[name]
    x = rand(3, 4, 2, low=-3, high=4, dtype=dtype)
    check_op(lambda t: op(t, axis=axis), [x], _ref(np_fn, axis, False))


def test_mean_of_int_is_float32():
    x = keras.Input(shape=(4,), dtype="int32")
    assert ops.mean(x, axis=1).dtype == "float32"
    assert ops.sum(x, axis=1).dtype == "int32"
    a = np.array([[1, 2], [3, 5]], "int32")
    assert_same(ops.mean(a, axis=1), np.array([1.5, 4.0], "float32"))


@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reduce_static_shape(name):
    op, np_fn = REDUCE[name]
    x = rand(2, 3, 4, low=0.5, high=1.5)
    check_op(lambda t: op(t, axis=(0, 2), keepdims=True), [x], _ref(np_fn, (0, 2), True), dynamic=False)
    check_op(lambda t: op(t), [x], _ref(np_fn, None, False), dynamic=False)


def test_reduce_symbolic_shapes():
    x = keras.Input(shape=(4, 5))
    assert ops.sum(x).shape == ()
    assert ops.sum(x, axis=0).shape == (4, 5)
    assert ops.sum(x, axis=0, keepdims=True).shape == (1, 4, 5)
    assert ops.mean(x, axis=-1, keepdims=True).shape == (None, 4, 1)
    assert ops.max(x, axis=(1, 2)).shape == (None,)


def test_reduce_bad_axis():
    x = keras.Input(shape=(4, 5))
    for op in (ops.sum, ops.mean, ops.max, ops.argmax):
        with pytest.raises(ValueError):
            op(x, axis=3)
        with pytest.raises(ValueError):
            op(x, axis=-4)


ARG = {"argmax": (ops.argmax, np.argmax), "argmin": (ops.argmin, np.argmin)}


@pytest.mark.parametrize("name", sorted(ARG))
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2])
@pytest.mark.parametrize("keepdims", [False, True])
def test_arg_reduce(name, axis, keepdims):
    # Regression (axis=None, keepdims=True): the result kept one axis instead of all of them.
    op, np_fn = ARG[name]
    x = rand(3, 4, 5)
    check_op(
        lambda t: op(t, axis=axis, keepdims=keepdims),
        [x],
        lambda a: np.asarray(np_fn(a, axis=axis, keepdims=keepdims)).astype("int32"),
    )


@pytest.mark.parametrize("name", sorted(ARG))
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
def test_arg_reduce_ties_pick_first(name, dtype):
    op, np_fn = ARG[name]
    x = np.array([[1, 3, 3, 0, 0], [2, 2, 2, 2, 2], [0, 5, 1, 5, 0]], dtype)
    check_op(lambda t: op(t, axis=-1), [x], lambda a: np_fn(a, axis=-1).astype("int32"))
    check_op(lambda t: op(t, axis=0), [x], lambda a: np_fn(a, axis=0).astype("int32"))


def test_max_min_initial_and_prod_dtype():
    # Regression: `initial` and `dtype` were accepted and ignored.
    x = rand(3, 4, 5)
    check_op(lambda t: ops.max(t, axis=1, initial=0.5), [x], lambda a: np.max(a, axis=1, initial=0.5))
    check_op(lambda t: ops.min(t, axis=(1, 2), initial=-0.25), [x], lambda a: np.min(a, axis=(1, 2), initial=-0.25))
    i = rand(3, 4, low=1, high=4, dtype="int32")
    check_op(lambda t: ops.prod(t, axis=1, dtype="float32"), [i], lambda a: np.prod(a, axis=1, dtype="float32"))
    check_op(lambda t: ops.prod(t, axis=1, dtype="int64"), [i], lambda a: np.prod(a, axis=1, dtype="int64"))
    assert_same(ops.max(x, initial=10.0), np.float32(10.0))


def test_eager_reductions_return_numpy():
    x = rand(3, 4)
    for out, want in [
        (ops.sum(x, axis=1), x.sum(1)),
        (ops.mean(x), x.mean()),
        (ops.max(x, axis=0, keepdims=True), x.max(0, keepdims=True)),
        (ops.min(x, axis=-1), x.min(-1)),
        (ops.prod(x, axis=(0, 1)), x.prod((0, 1))),
        (ops.argmax(x, axis=1), x.argmax(1).astype("int32")),
        (ops.argmin(x), np.asarray(x.argmin(), "int32")),
    ]:
        assert isinstance(out, np.ndarray)
        assert_same(out, np.asarray(want))


@pytest.mark.parametrize("name", ["any", "all"])
@pytest.mark.parametrize("axis", [None, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_any_all(name, axis, keepdims):
    x = rand(3, 4, 5)
    x[x < 0.3] = 0.0
    x[0, 1] = 0.0
    x[1, 2] = 1.0
    np_fn = np.any if name == "any" else np.all
    check_op(
        lambda t: getattr(ops, name)(t, axis=axis, keepdims=keepdims), [x], lambda a: np_fn(a, axis, keepdims=keepdims)
    )
