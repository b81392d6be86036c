"""matmul and einsum against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ._util import assert_same, check_op, rand


@pytest.mark.parametrize(
    "sa, sb",
    [
        ((4,), (4,)),  # 1-D x 1-D: a scalar
        ((4,), (4, 3)),  # vector x matrix
        ((2, 4), (4,)),  # matrix x vector
        ((2, 4), (4, 3)),
        ((5, 2, 4), (4, 3)),
        ((5, 2, 4), (5, 4, 3)),
        ((5, 1, 2, 4), (3, 4, 6)),  # batch dims broadcast
        ((2, 4), (5, 4, 3)),
        ((4,), (5, 4, 3)),
        ((5, 2, 4), (4,)),
    ],
)
def test_matmul_static(sa, sb):
    a, b = rand(*sa), rand(*sb)
    check_op(ops.matmul, [a, b], np.matmul, dynamic=False)


def test_matmul_dynamic_batch():
    # (B, 3) @ constant (3, 4)
    w = rand(3, 4)
    check_op(lambda t: ops.matmul(t, w), [rand(3, 3)], lambda a: a @ w)
    # (B, 2, 3) @ (B, 3, 4)
    check_op(ops.matmul, [rand(3, 2, 3), rand(3, 3, 4)], np.matmul)
    # (B, 1, 2, 3) @ (B, 5, 3, 4): inner batch dims broadcast
    check_op(ops.matmul, [rand(3, 1, 2, 3), rand(3, 5, 3, 4)], np.matmul)
    # (B, 2, 3) @ vector
    v = rand(3)
    check_op(lambda t: ops.matmul(t, v), [rand(3, 2, 3)], lambda a: a @ v)
    # vector @ (B, 3, 4)
    check_op(lambda t: ops.matmul(v, t), [rand(3, 3, 4)], lambda a: v @ a)
    # (B, 3) @ (B, 3) (rank-2 dynamic on both sides: a matrix product of B x 3 and 3 x ... needs B==3)
    check_op(lambda t: ops.matmul(t, w), [rand(3, 2, 3)], lambda a: a @ w)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_matmul_int(dtype):
    a = rand(3, 2, 4, low=-5, high=5, dtype=dtype)
    b = rand(3, 4, 3, low=-5, high=5, dtype=dtype)
    check_op(ops.matmul, [a, b], np.matmul)


def test_matmul_promotes_int_with_float():
    a = rand(3, 4, low=-5, high=5, dtype="int32")
    w = rand(4, 2)
    check_op(lambda t: ops.matmul(t, w), [a], lambda p: p.astype("float32") @ w)


@pytest.mark.parametrize(
    "sa, sb",
    [((None, 3, 4), (None, 5, 2)), ((None, 3), (4, 2)), ((5, 2, 3), (7, 3, 4)), ((None, 2, 3, 4), (5, 4, 2))],
)
def test_matmul_shape_errors(sa, sb):
    a = keras.Input(batch_shape=sa)
    b = keras.Input(batch_shape=sb)
    with pytest.raises(ValueError) as info:
        ops.matmul(a, b)
    assert str(sa) in str(info.value) and str(sb) in str(info.value)


def test_matmul_scalar_error():
    a = keras.Input(batch_shape=(2, 3))
    with pytest.raises(ValueError):
        ops.matmul(a, np.float32(2.0))


@pytest.mark.parametrize(
    "equation, shapes",
    [
        ("bij,jk->bik", [(3, 2, 4), (4, 5)]),
        ("bi,bi->b", [(3, 4), (3, 4)]),
        ("bij->bji", [(3, 2, 4)]),
        ("bij->b", [(3, 2, 4)]),
        ("bij,bkj->bik", [(3, 2, 4), (3, 5, 4)]),
        ("bi,j->bij", [(3, 4), (2,)]),
        ("bhqd,bhkd->bhqk", [(3, 2, 4, 5), (3, 2, 6, 5)]),
    ],
)
def test_einsum(equation, shapes):
    arrays = [rand(*s) for s in shapes]
    dynamic = all(s[0] == 3 for s in shapes) or len(shapes) == 1
    if equation == "bi,j->bij" or equation == "bij,jk->bik":
        const = arrays[1]
        check_op(lambda t: ops.einsum(equation, t, const), arrays[:1], lambda a: np.einsum(equation, a, const))
    else:
        check_op(lambda *ts: ops.einsum(equation, *ts), arrays, lambda *a: np.einsum(equation, *a), dynamic=dynamic)


@pytest.mark.parametrize(
    "equation, shapes",
    [
        ("bii->bi", [(3, 4, 4)]),
        ("bii->b", [(3, 4, 4)]),
        ("bi,bi->bi", [(3, 4), (3, 4)]),
        ("bij,bij->b", [(3, 2, 4), (3, 2, 4)]),
        ("bij->ij", [(3, 2, 4)]),
        ("bi,bj->bij", [(3, 2), (3, 4)]),
        ("bij,bj->bi", [(3, 2, 4), (3, 4)]),
        ("bij,bjk->bik", [(3, 2, 1), (3, 4, 5)]),  # a size-1 label broadcasts, as in NumPy
    ],
)
def test_einsum_two_dynamic_operands(equation, shapes):
    check_op(lambda *ts: ops.einsum(equation, *ts), [rand(*s) for s in shapes], lambda *a: np.einsum(equation, *a))


def test_einsum_implicit_output():
    a, b = rand(2, 3), rand(3, 4)
    check_op(lambda s, t: ops.einsum("ij,jk", s, t), [a, b], lambda p, q: np.einsum("ij,jk", p, q), dynamic=False)
    check_op(lambda s: ops.einsum("ij", s), [a], lambda p: np.einsum("ij", p), dynamic=False)
    check_op(lambda s: ops.einsum("ji", s), [a], lambda p: np.einsum("ji", p), dynamic=False)


def test_einsum_three_operands_static():
    a, b, c = rand(2, 3), rand(3, 4), rand(4, 5)
    check_op(
        lambda p, q, r: ops.einsum("ij,jk,kl->il", p, q, r),
        [a, b, c],
        lambda p, q, r: np.einsum("ij,jk,kl->il", p, q, r),
        dynamic=False,
    )


def test_einsum_shape_errors():
    a = keras.Input(batch_shape=(2, 3))
    b = keras.Input(batch_shape=(4, 5))
    with pytest.raises(ValueError):
        ops.einsum("ij,jk->ik", a, b)
    with pytest.raises(ValueError):
        ops.einsum("ijk->i", a)
    with pytest.raises(ValueError):
        ops.einsum("...j->j", a)


def test_einsum_symbolic_shape_with_unknown_batch():
    a = keras.Input(shape=(2, 3))
    b = keras.Input(shape=(3, 4))
    assert ops.einsum("bij,bjk->bik", a, b).shape == (None, 2, 4)


def test_eager_linalg_returns_numpy():
    a, b = rand(2, 3), rand(3, 4)
    out = ops.matmul(a, b)
    assert isinstance(out, np.ndarray)
    assert_same(out, a @ b)
    assert_same(ops.einsum("ij,jk->ik", a, b), a @ b)
    assert_same(ops.matmul(rand(3), rand(3)).shape, ())


def test_matmul_with_variables_on_either_side():
    w = keras.Variable(rand(4, 3), name="w")
    v = keras.Variable(rand(2, 5), name="v")
    model = check_op(lambda t: v @ (t @ w), [rand(3, 5, 4)], lambda a: v.numpy() @ (a @ w.numpy()))
    proto = keras.onnx.to_onnx(model)
    assert sorted(t.name for t in proto.graph.initializer if t.name in ("w", "v")) == ["v", "w"]
    # The graph reads the variables when it runs.
    w.assign(np.ones((4, 3), "float32"))
    x = rand(2, 5, 4)
    assert_same(model.predict(x, verbose=0), v.numpy() @ (x @ np.ones((4, 3), "float32")))
