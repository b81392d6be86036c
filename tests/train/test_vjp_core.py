"""Every core primitive's vjp against central finite differences (float64)."""

import numpy as np
import pytest

from irtool import ops

from .gradcheck import check_gradients

RNG = np.random.default_rng(0)


def r(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape)


POSITIVE = {"sqrt", "log", "reciprocal"}
UNARY = [
    "negative", "abs", "square", "sqrt", "exp", "log", "tanh", "sigmoid", "relu", "relu6", "softplus",
    "softsign", "selu", "hard_sigmoid", "erf", "sin", "cos", "reciprocal", "silu",
]  # fmt: skip


@pytest.mark.parametrize("name", UNARY)
def test_unary(name):
    x = r(3, 4, low=0.3, high=2.0) if name in POSITIVE else r(3, 4)
    # keep away from kinks where finite differences are not defined
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    x = np.where(np.abs(np.abs(x) - 3) < 0.05, 2.5, x)
    check_gradients(getattr(ops, name), [x])


@pytest.mark.parametrize("approximate", [True, False])
def test_gelu(approximate):
    check_gradients(lambda x: ops.gelu(x, approximate=approximate), [r(3, 4)])


def test_parametrized_activations():
    x = np.where(np.abs(r(3, 4)) < 0.05, 0.3, r(3, 4))
    check_gradients(lambda x: ops.leaky_relu(x, 0.1), [x])
    check_gradients(lambda x: ops.elu(x, 0.7), [x])


BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "mod"]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4))])
def test_binary_with_broadcasting(name, shapes):
    a, b = r(*shapes[0]), r(*shapes[1], low=0.5, high=2.0)
    if name in ("maximum", "minimum"):
        b = b * np.sign(r(*shapes[1]))  # avoid ties
    check_gradients(getattr(ops, name), [a, b])


def test_power():
    check_gradients(ops.power, [r(3, 4, low=0.5, high=2.0), r(3, 4)])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), ((0, 2), True), (-1, True)])
def test_reductions(name, axis, keepdims):
    x = r(2, 3, 4)
    check_gradients(lambda x: getattr(ops, name)(x, axis=axis, keepdims=keepdims), [x])


def test_prod_with_zeros_is_exact():
    x = r(2, 3)
    x[0, 1] = 0.0
    check_gradients(lambda x: ops.prod(x, axis=1), [x])


@pytest.mark.parametrize(
    "sa, sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2))]
)
def test_matmul(sa, sb):
    check_gradients(ops.matmul, [r(*sa), r(*sb)])


@pytest.mark.parametrize(
    "eq, shapes",
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
        ("ij->i", [(3, 4)]),
        ("i,j->ij", [(3,), (2,)]),
    ],
)
def test_einsum(eq, shapes):
    check_gradients(lambda *xs: ops.einsum(eq, *xs), [r(*s) for s in shapes])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(axis):
    check_gradients(lambda x: ops.softmax(x, axis=axis), [r(3, 4)])
    check_gradients(lambda x: ops.log_softmax(x, axis=axis), [r(3, 4)])


def test_shape_ops():
    x = r(2, 3, 4)
    check_gradients(lambda x: ops.reshape(x, (4, 6)), [x])
    check_gradients(lambda x: ops.transpose(x, (2, 0, 1)), [x])
    check_gradients(lambda x: ops.expand_dims(x, 1), [x])
    check_gradients(lambda x: ops.squeeze(ops.expand_dims(x, 0), 0), [x])
    check_gradients(lambda a, b: ops.concatenate([a, b, a], axis=1), [x, r(2, 2, 4)])
    check_gradients(lambda a, b: ops.stack([a, b], axis=0), [x, r(2, 3, 4)])
    check_gradients(lambda x: x[:, 1:, ::2], [x])
    check_gradients(lambda x: x[1, None, -1, ::-1], [x])
    check_gradients(lambda x: ops.split(x, 2, axis=2)[1], [x])
    check_gradients(lambda x: ops.cast(ops.cast(x, "float32"), "float64"), [x], eps=1e-2, atol=1e-3, rtol=1e-3)


def test_take_where_clip_one_hot_paths():
    x = r(5, 3)
    check_gradients(lambda x, i: ops.take(x, i, axis=0), [x, np.array([[0, 4], [4, 2]])])
    c = RNG.random((5, 3)) > 0.5
    check_gradients(lambda c, a, b: ops.where(c, a, b), [c, x, r(3)])
    x = np.where(np.abs(np.abs(x) - 1) < 0.05, 0.5, x)
    check_gradients(lambda x: ops.clip(x, -1.0, 1.0), [x])
