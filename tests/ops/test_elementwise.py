"""Elementwise ops: binary arithmetic, comparisons, logical ops, unary math, activations, cast.

References are plain NumPy / ``math`` closed forms, never irtool's own kernels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ._util import assert_same, check_op, rand

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def f32(x):
    return np.asarray(x, dtype="float32")


def _ref64(ref, a):
    """A reference computed in float32 or better, cast to ``a``'s dtype (float32 rounding is
    far below the float64 tests' tolerance)."""
    return np.asarray(ref(a)).astype(a.dtype)


def _erf_ref(x):
    return f32(np.vectorize(math.erf)(x.astype("float64")))


def _sigmoid_ref(x):
    return f32(1.0 / (1.0 + np.exp(-x.astype("float64"))))


# ---------------------------------------------------------------------------------------
# Binary arithmetic

BINARY = {
    "add": (ops.add, np.add),
    "subtract": (ops.subtract, np.subtract),
    "multiply": (ops.multiply, np.multiply),
    "maximum": (ops.maximum, np.maximum),
    "minimum": (ops.minimum, np.minimum),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (3, 1)), ((2, 1, 4), (2, 3, 1))])
def test_binary_float_two_inputs(name, shapes):
    op, ref = BINARY[name]
    a, b = rand(3, *shapes[0]), rand(3, *shapes[1])
    check_op(op, [a, b], ref)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_binary_int(name, dtype):
    op, ref = BINARY[name]
    a, b = rand(3, 5, low=-9, high=9, dtype=dtype), rand(3, 5, low=-9, high=9, dtype=dtype)
    check_op(op, [a, b], ref)


def test_divide_float():
    a, b = rand(3, 4), rand(3, 4, low=0.5, high=2.0) * np.sign(rand(3, 4))
    check_op(ops.divide, [a, b], lambda x, y: x / y)
    check_op(ops.true_divide, [a, b], lambda x, y: x / y)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_divide_int_gives_float32(dtype):
    a = rand(3, 5, low=-9, high=9, dtype=dtype)
    b = np.array([[1, -2, 3, -4, 7]] * 3, dtype=dtype)
    check_op(ops.divide, [a, b], lambda x, y: f32(x.astype("float64") / y.astype("float64")))


def test_power_float():
    a, b = rand(3, 4, low=0.5, high=2.0), rand(3, 4, low=-2.0, high=3.0)
    check_op(ops.power, [a, b], np.power, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_power_int(dtype):
    a = rand(3, 4, low=-5, high=5, dtype=dtype)
    b = rand(3, 4, low=0, high=4, dtype=dtype)
    check_op(ops.power, [a, b], np.power)


# Python's floor semantics: the remainder has the sign of the divisor.
MOD_A = np.array([[-7, 7, -7, 7, 0, 9], [-1, 1, -9, 9, 5, -5], [6, -6, 3, -3, 1, -1]])
MOD_B = np.array([[2, -2, -2, 2, 3, 4], [3, -3, 4, -4, -2, 2], [3, 3, -3, -3, 5, 5]])


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_mod_int_python_semantics(dtype):
    a, b = MOD_A.astype(dtype), MOD_B.astype(dtype)
    want = np.array([[x % y for x, y in zip(ra, rb)] for ra, rb in zip(MOD_A.tolist(), MOD_B.tolist())], dtype)
    check_op(ops.mod, [a, b], lambda x, y: want[: len(x)])


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_floor_divide_int_python_semantics(dtype):
    a, b = MOD_A.astype(dtype), MOD_B.astype(dtype)
    want = np.array([[x // y for x, y in zip(ra, rb)] for ra, rb in zip(MOD_A.tolist(), MOD_B.tolist())], dtype)
    check_op(ops.floor_divide, [a, b], lambda x, y: want[: len(x)])


def test_mod_and_floor_divide_float():
    a = rand(3, 6, low=-5, high=5)
    b = rand(3, 6, low=0.5, high=3.0) * np.array([1, -1, 1, -1, 1, -1], "float32")
    check_op(ops.mod, [a, b], np.mod, atol=1e-5)
    check_op(ops.floor_divide, [a, b], np.floor_divide)
    # Exactly divisible values and negative operands, as Python computes them.
    a, b = MOD_A.astype("float32"), MOD_B.astype("float32")
    check_op(ops.mod, [a, b], lambda x, y: f32([[p % q for p, q in zip(r, s)] for r, s in zip(x.tolist(), y.tolist())]))
    check_op(
        ops.floor_divide,
        [a, b],
        lambda x, y: f32([[p // q for p, q in zip(r, s)] for r, s in zip(x.tolist(), y.tolist())]),
    )


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_mod_floor_divide_by_python_scalar(dtype):
    a = MOD_A.astype(dtype)
    check_op(lambda x: ops.mod(x, -4), [a], lambda x: np.mod(x, np.asarray(-4, dtype)))
    check_op(lambda x: ops.floor_divide(x, 3), [a], lambda x: np.floor_divide(x, np.asarray(3, dtype)))


def test_binary_with_constant_and_scalars():
    a = rand(3, 2, 4)
    c = rand(4)
    check_op(lambda x: ops.add(x, c), [a], lambda x: x + c)
    check_op(lambda x: ops.subtract(c, x), [a], lambda x: c - x)
    check_op(lambda x: ops.multiply(x, 2.5), [a], lambda x: x * np.float32(2.5))
    check_op(lambda x: ops.maximum(x, 0.0), [a], lambda x: np.maximum(x, np.float32(0)))
    check_op(lambda x: ops.divide(1, x), [a], lambda x: np.float32(1) / x)


@pytest.mark.parametrize(
    "da, db, want",
    [("int32", "float32", "float32"), ("int32", "int64", "int64"), ("float32", "float64", "float64")],
)
def test_binary_dtype_promotion(da, db, want):
    a, b = rand(3, 4, low=-5, high=5, dtype=da), rand(3, 4, low=-5, high=5, dtype=db)
    check_op(ops.add, [a, b], lambda x, y: x.astype(want) + y.astype(want))


def test_python_scalar_is_weakly_typed():
    i = keras.Input(shape=(3,), dtype="int32")
    assert ops.add(i, 2).dtype == "int32"
    assert ops.add(i, 2.5).dtype == "float32"
    h = keras.Input(shape=(3,), dtype="float16")
    assert ops.multiply(h, 2.0).dtype == "float16"
    check_op(lambda x: x + 2.5, [rand(3, 4, low=-5, high=5, dtype="int32")], lambda x: f32(x) + np.float32(2.5))


# ---------------------------------------------------------------------------------------
# Comparisons and logical ops

COMPARE = {
    "less": (ops.less, np.less),
    "less_equal": (ops.less_equal, np.less_equal),
    "greater": (ops.greater, np.greater),
    "greater_equal": (ops.greater_equal, np.greater_equal),
    "equal": (ops.equal, np.equal),
    "not_equal": (ops.not_equal, np.not_equal),
}


@pytest.mark.parametrize("name", sorted(COMPARE))
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
def test_comparisons(name, dtype):
    op, ref = COMPARE[name]
    # Small ints so that ties happen.
    a = rand(3, 6, low=-2, high=3, dtype="int32").astype(dtype)
    b = rand(3, 6, low=-2, high=3, dtype="int32").astype(dtype)
    check_op(op, [a, b], ref)


@pytest.mark.parametrize("name", sorted(COMPARE))
def test_comparisons_broadcast_with_scalar(name):
    op, ref = COMPARE[name]
    a = np.array([[-1, 0, 0.5, 1, 2]] * 3, "float32")
    check_op(lambda x: op(x, 0.5), [a], lambda x: ref(x, np.float32(0.5)))


LOGICAL = {
    "logical_and": (ops.logical_and, np.logical_and),
    "logical_or": (ops.logical_or, np.logical_or),
    "logical_xor": (ops.logical_xor, np.logical_xor),
}


@pytest.mark.parametrize("name", sorted(LOGICAL))
@pytest.mark.parametrize("dtype", ["bool", "float32", "int32"])
def test_logical_binary(name, dtype):
    op, ref = LOGICAL[name]
    a = np.array([[0, 0, 1, 1, 2, -3]] * 3).astype(dtype)
    b = np.array([[0, 1, 0, 1, -1, 0]] * 3).astype(dtype)
    check_op(op, [a, b], ref)


@pytest.mark.parametrize("dtype", ["bool", "float32", "int32"])
def test_logical_not(dtype):
    a = np.array([[0, 1, 2, -3]] * 3).astype(dtype)
    check_op(ops.logical_not, [a], np.logical_not)


# ---------------------------------------------------------------------------------------
# Unary math and activations


def _selu_ref(x):
    x = x.astype("float64")
    return f32(SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(np.minimum(x, 0)) - 1)))


def _gelu_tanh_ref(x):
    x = x.astype("float64")
    return f32(0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))))


def _gelu_erf_ref(x):
    x64 = x.astype("float64")
    return f32(0.5 * x64 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2))))


# name -> (op, reference, low, high)
UNARY = {
    "negative": (ops.negative, lambda x: -x, -3, 3),
    "abs": (ops.abs, np.abs, -3, 3),
    "absolute": (ops.absolute, np.abs, -3, 3),
    "square": (ops.square, lambda x: x * x, -3, 3),
    "sqrt": (ops.sqrt, lambda x: f32(np.sqrt(x.astype("float64"))), 0.0, 9),
    "exp": (ops.exp, lambda x: f32(np.exp(x.astype("float64"))), -5, 5),
    "log": (ops.log, lambda x: f32(np.log(x.astype("float64"))), 0.01, 10),
    "tanh": (ops.tanh, lambda x: f32(np.tanh(x.astype("float64"))), -4, 4),
    "sigmoid": (ops.sigmoid, _sigmoid_ref, -8, 8),
    "relu": (ops.relu, lambda x: np.where(x > 0, x, np.float32(0)), -3, 3),
    "relu6": (ops.relu6, lambda x: f32(np.minimum(np.maximum(x, 0), 6)), -3, 9),
    "softplus": (ops.softplus, lambda x: f32(np.logaddexp(0, x.astype("float64"))), -8, 8),
    "softsign": (ops.softsign, lambda x: f32(x.astype("float64") / (1 + np.abs(x.astype("float64")))), -5, 5),
    "selu": (ops.selu, _selu_ref, -4, 4),
    "hard_sigmoid": (ops.hard_sigmoid, lambda x: f32(np.clip(x.astype("float64") / 6 + 0.5, 0, 1)), -5, 5),
    "erf": (ops.erf, _erf_ref, -3, 3),
    "gelu": (ops.gelu, _gelu_tanh_ref, -4, 4),  # ops.gelu defaults to the tanh approximation
    "leaky_relu": (ops.leaky_relu, lambda x: np.where(x >= 0, x, f32(x * 0.2)), -3, 3),
    "elu": (ops.elu, lambda x: f32(np.where(x > 0, x, np.exp(np.minimum(x, 0).astype("float64")) - 1)), -4, 4),
    "silu": (ops.silu, lambda x: f32(x.astype("float64") / (1 + np.exp(-x.astype("float64")))), -6, 6),
    "swish": (ops.swish, lambda x: f32(x.astype("float64") / (1 + np.exp(-x.astype("float64")))), -6, 6),
    "floor": (ops.floor, np.floor, -3, 3),
    "ceil": (ops.ceil, np.ceil, -3, 3),
    "round": (ops.round, np.round, -3, 3),
    "sign": (ops.sign, np.sign, -3, 3),
    "reciprocal": (ops.reciprocal, lambda x: f32(1.0 / x.astype("float64")), 0.25, 4),
    "sin": (ops.sin, lambda x: f32(np.sin(x.astype("float64"))), -4, 4),
    "cos": (ops.cos, lambda x: f32(np.cos(x.astype("float64"))), -4, 4),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_float(name):
    op, ref, low, high = UNARY[name]
    check_op(op, [rand(3, 2, 5, low=low, high=high)], ref)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_static_shape(name):
    op, ref, low, high = UNARY[name]
    check_op(op, [rand(2, 7, low=low, high=high)], ref, dynamic=False)


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_unary_other_float_dtypes(name, dtype):
    # Regression (float64): ONNX Runtime has no double kernel for Erf, Elu, Selu, LeakyRelu,
    # Softplus, Softsign or HardSigmoid; those are lowered with other ops for float64.
    op, ref, low, high = UNARY[name]
    tol = 1e-6 if dtype == "float64" else 2e-2
    x = rand(3, 2, 5, low=low, high=high).astype(dtype)
    check_op(op, [x], lambda a: _ref64(ref, a), atol=tol, rtol=tol)


@pytest.mark.parametrize("opset", [17, 21])
@pytest.mark.parametrize("approximate", [True, False])
def test_gelu_float64(opset, approximate):
    x = rand(3, 6, low=-4, high=4).astype("float64")
    ref = _gelu_tanh_ref if approximate else _gelu_erf_ref
    check_op(lambda t: ops.gelu(t, approximate=approximate), [x], lambda a: _ref64(ref, a), atol=1e-6, opset=opset)


@pytest.mark.parametrize("name", ["negative", "abs", "square", "relu", "relu6", "sign"])
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_unary_int_keeps_dtype(name, dtype):
    op, _, _, _ = UNARY[name]
    ref = {
        "negative": np.negative,
        "abs": np.abs,
        "square": lambda x: x * x,
        "relu": lambda x: np.maximum(x, 0).astype(x.dtype),
        "relu6": lambda x: np.minimum(np.maximum(x, 0), 6).astype(x.dtype),
        "sign": np.sign,
    }[name]
    check_op(op, [rand(3, 6, low=-9, high=9, dtype=dtype)], ref)


@pytest.mark.parametrize("name", ["sqrt", "exp", "sigmoid", "tanh", "floor", "sin"])
def test_float_only_unary_casts_int_to_float32(name):
    op, ref, low, high = UNARY[name]
    x = rand(3, 4, low=max(low, 0), high=high, dtype="int32")
    check_op(op, [x], lambda a: ref(f32(a)))


def test_round_half_to_even_and_sign_of_zero():
    x = np.array([[-2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.5]] * 3, "float32")
    check_op(ops.round, [x], lambda a: f32([[-2, -2, -0, 0, 0, 2, 2, 4]] * len(a)))
    check_op(ops.sign, [x], lambda a: f32([[-1, -1, -1, 0, 1, 1, 1, 1]] * len(a)))


def test_activations_are_stable_at_extremes():
    x = np.array([[-100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0]] * 3, "float32")
    check_op(ops.sigmoid, [x], _sigmoid_ref)
    check_op(ops.softplus, [x], lambda a: f32(np.logaddexp(0, a.astype("float64"))))
    check_op(ops.silu, [x], lambda a: f32(a.astype("float64") * (1 / (1 + np.exp(-a.astype("float64"))))))
    check_op(ops.tanh, [x], lambda a: f32(np.tanh(a.astype("float64"))))
    check_op(ops.elu, [x], lambda a: f32(np.where(a > 0, a, np.expm1(np.minimum(a, 0).astype("float64")))))


@pytest.mark.parametrize("approximate", [True, False])
def test_gelu_both_forms(approximate):
    x = rand(3, 8, low=-5, high=5)
    ref = _gelu_tanh_ref if approximate else _gelu_erf_ref
    check_op(lambda t: ops.gelu(t, approximate=approximate), [x], ref)


def test_gelu_forms_differ():
    x = np.array([[-2.0, -1.0, 1.0, 2.0]], "float32")
    assert not np.allclose(ops.gelu(x, approximate=True), ops.gelu(x, approximate=False), atol=1e-5)


@pytest.mark.parametrize("slope", [0.2, 0.01, 0.5])
def test_leaky_relu_slopes(slope):
    x = rand(3, 6)
    check_op(lambda t: ops.leaky_relu(t, negative_slope=slope), [x], lambda a: f32(np.where(a >= 0, a, a * slope)))


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_elu_alphas(alpha):
    x = rand(3, 6, low=-4, high=4)
    check_op(
        lambda t: ops.elu(t, alpha=alpha),
        [x],
        lambda a: f32(np.where(a > 0, a, alpha * (np.exp(np.minimum(a, 0).astype("float64")) - 1))),
    )


def test_float_only_unary_rejects_nothing_but_records_float32():
    x = keras.Input(shape=(3,), dtype="int64")
    assert ops.exp(x).dtype == "float32"
    assert ops.negative(x).dtype == "int64"
    assert ops.logical_not(x).dtype == "bool"


# ---------------------------------------------------------------------------------------
# Cast


@pytest.mark.parametrize(
    "src, dst",
    [
        ("float32", "int32"),
        ("float32", "int64"),
        ("int32", "float32"),
        ("int64", "int32"),
        ("int32", "int64"),
        ("float32", "bool"),
        ("bool", "float32"),
        ("bool", "int32"),
        ("float32", "float64"),
        ("float64", "float32"),
        ("float32", "float16"),
    ],
)
def test_cast(src, dst):
    base = np.array([[-2.7, -1.0, -0.5, 0.0, 0.4, 1.0, 3.9]] * 3)
    x = base.astype(src) if src != "bool" else base > 0
    check_op(lambda t: ops.cast(t, dst), [x], lambda a: a.astype(dst), atol=1e-3)


def test_cast_to_same_dtype_keeps_values():
    x = rand(3, 4)
    check_op(lambda t: ops.cast(t, "float32"), [x], lambda a: a)
    check_op(lambda t: ops.cast(t, np.float32), [x], lambda a: a)
    a = np.arange(3, dtype="int32")
    assert ops.cast(a, "int32") is a  # eager: no copy


# ---------------------------------------------------------------------------------------
# Shape-inference errors


@pytest.mark.parametrize(
    "op", [ops.add, ops.subtract, ops.multiply, ops.divide, ops.maximum, ops.mod, ops.less, ops.equal]
)
def test_binary_incompatible_shapes(op):
    a = keras.Input(shape=(3, 4))
    b = keras.Input(shape=(5, 4))
    with pytest.raises(ValueError) as info:
        op(a, b)
    message = str(info.value)
    assert "(None, 3, 4)" in message and "(None, 5, 4)" in message


def test_binary_incompatible_ranks():
    a = keras.Input(batch_shape=(2, 3))
    b = keras.Input(batch_shape=(3, 2, 4))
    with pytest.raises(ValueError) as info:
        ops.add(a, b)
    assert "(2, 3)" in str(info.value) and "(3, 2, 4)" in str(info.value)


def test_binary_unknown_dims_broadcast():
    a = keras.Input(shape=(None, 4))
    b = keras.Input(shape=(3, 1))
    assert ops.add(a, b).shape == (None, 3, 4)


# ---------------------------------------------------------------------------------------
# Eager use


def test_eager_ops_return_numpy():
    a = np.array([[1.0, -2.0], [3.0, -4.0]], "float32")
    b = np.array([[0.5, 2.0], [-1.0, 4.0]], "float32")
    for out, want in [
        (ops.add(a, b), a + b),
        (ops.multiply(a, 2.0), a * 2),
        (ops.exp(a), np.exp(a)),
        (ops.relu(a), np.maximum(a, 0)),
        (ops.greater(a, b), a > b),
        (ops.cast(a, "int32"), a.astype("int32")),
        (ops.gelu(a, approximate=False), _gelu_erf_ref(a)),
    ]:
        assert isinstance(out, np.ndarray)
        assert_same(out, want)
    assert_same(ops.mod(np.array([-7, 7], "int32"), np.array([2, -2], "int32")), np.array([1, -1], "int32"))
    assert_same(ops.floor_divide(np.array([-7, 7], "int64"), 2), np.array([-4, 3], "int64"))
    assert_same(ops.divide(np.array([1, 2], "int32"), 4), np.array([0.25, 0.5], "float32"))
    assert_same(ops.sqrt(np.array([4, 9], "int32")), np.array([2, 3], "float32"))
    assert_same(ops.add(1.0, 2.0), np.float32(3.0))


def test_eager_and_traced_agree():
    x = rand(4, 5)
    y = rand(4, 5)
    fns = [ops.add, ops.subtract, ops.multiply, ops.maximum, ops.minimum, ops.greater]
    for fn in fns:
        check_op(fn, [x, y], lambda a, b, fn=fn: fn(a, b), dynamic=False, onnx=False)


# ---------------------------------------------------------------------------------------
# Python operators on symbolic tensors


def test_python_operators_trace():
    x = rand(3, 4)
    y = rand(3, 4, low=0.5, high=2)
    w = rand(4, 2)
    check_op(lambda t: 2.0 * t, [x], lambda a: np.float32(2) * a)
    check_op(lambda t: t * 2.0 + 1, [x], lambda a: a * np.float32(2) + np.float32(1))
    check_op(lambda t: 1 - t, [x], lambda a: np.float32(1) - a)
    check_op(lambda t: t / 4, [x], lambda a: a / np.float32(4))
    check_op(lambda t: 1.0 / t, [y], lambda a: np.float32(1) / a)
    check_op(lambda t: t**2, [x], lambda a: a * a)
    check_op(lambda t: 2.0**t, [x], lambda a: f32(2.0 ** a.astype("float64")))
    check_op(lambda t: t @ w, [x], lambda a: a @ w)
    check_op(lambda t: w.T @ t[0], [x], lambda a: w.T @ a[0])
    check_op(lambda t: -t, [x], lambda a: -a)
    check_op(lambda t: +t, [x], lambda a: a)
    check_op(lambda t: abs(t), [x], np.abs)
    check_op(lambda t: t[..., 1], [x], lambda a: a[..., 1])
    check_op(lambda s, t: s != t, [x, np.where(x > 0, x, 0).astype("float32")], lambda a, b: a != b)
    check_op(lambda s, t: s < t, [x, y], lambda a, b: a < b)
    check_op(lambda s, t: s >= t, [x, y], lambda a, b: a >= b)
    check_op(lambda t: t // 0.5, [x], lambda a: np.floor_divide(a, np.float32(0.5)))
    check_op(lambda t: t % 0.75, [x], lambda a: np.mod(a, np.float32(0.75)))
    check_op(lambda s, t: (s > 0) & (t > 1), [x, y], lambda a, b: (a > 0) & (b > 1))
    check_op(lambda s, t: (s > 0) | (t > 1), [x, y], lambda a, b: (a > 0) | (b > 1))
    check_op(lambda s, t: (s > 0) ^ (t > 1), [x, y], lambda a, b: (a > 0) ^ (b > 1))
    check_op(lambda t: ~(t > 0), [x], lambda a: ~(a > 0))
    check_op(lambda t: t.reshape((-1, 2, 2)), [x], lambda a: a.reshape(-1, 2, 2))


def test_eq_is_identity_and_tensors_hash():
    x = keras.Input(shape=(3,))
    y = keras.Input(shape=(3,))
    assert (x == x) is True
    assert (x == y) is False
    ne = x != y  # `!=` records an op: a symbolic bool tensor
    assert isinstance(ne, type(x)) and ne.dtype == "bool" and ne.shape == (None, 3)
    assert len({x: 1, y: 2}) == 2
    with pytest.raises(TypeError):
        bool(x)


def test_ops_on_symbolic_tensor_record_raw_ops_in_model():
    x = keras.Input(shape=(3,))
    out = ops.add(ops.multiply(x, 2.0), 1.0)
    model = keras.Model(x, out)
    names = [op.name for op in model.operations]
    assert "add" in names and "multiply" in names
