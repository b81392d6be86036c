"""Shape ops: reshape, transpose, expand_dims, squeeze, concatenate, stack, split, unstack,
take, where, clip, get_item and one_hot (references are plain NumPy)."""

from __future__ import annotations

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ._util import assert_same, check_op, rand

X3 = np.arange(3 * 4 * 6, dtype="float32").reshape(3, 4, 6) - 30.0

# ---------------------------------------------------------------------------------------
# reshape


@pytest.mark.parametrize(
    "shape, want_symbolic",
    [
        ((-1, 24), (None, 24)),
        ((None, -1), (None, 24)),
        ((None, 2, 12), (None, 2, 12)),
        ((None, 6, -1), (None, 6, 4)),
        ((None, 4, 3, 2), (None, 4, 3, 2)),
        ((-1, 4, 3, 2), (None, 4, 3, 2)),
        ((-1,), (None,)),
        ((-1, 2), (None, 2)),
    ],
)
def test_reshape_dynamic_batch(shape, want_symbolic):
    def ref(a):
        return a.reshape([a.shape[0] if d is None else d for d in shape])

    x = keras.Input(shape=(4, 6))
    assert ops.reshape(x, shape).shape == want_symbolic
    check_op(lambda t: ops.reshape(t, shape), [X3], ref)


@pytest.mark.parametrize("shape", [(4, -1), (-1,), (2, 3, -1), (3, 4, 3, 2), (72,), (-1, 1, 6)])
def test_reshape_static(shape):
    check_op(lambda t: ops.reshape(t, shape), [X3], lambda a: a.reshape(shape), dynamic=False)


def test_reshape_int_shape_and_int_dtype():
    x = np.arange(12, dtype="int64").reshape(2, 6)
    check_op(lambda t: ops.reshape(t, 12), [x], lambda a: a.reshape(12), dynamic=False)


@pytest.mark.parametrize("shape", [(None, 5, 5), (None, 7, -1), (None, -1, 5)])
def test_reshape_incompatible(shape):
    x = keras.Input(shape=(4, 6))
    with pytest.raises(ValueError) as info:
        ops.reshape(x, shape)
    assert "(None, 4, 6)" in str(info.value) and str(tuple(shape)) in str(info.value)


def test_reshape_static_incompatible_mentions_both_shapes():
    x = keras.Input(batch_shape=(2, 3))
    with pytest.raises(ValueError) as info:
        ops.reshape(x, (4, 2))
    assert "(2, 3)" in str(info.value) and "(4, 2)" in str(info.value)
    with pytest.raises(ValueError):
        ops.reshape(x, (-1, -1))


# ---------------------------------------------------------------------------------------
# transpose / expand_dims / squeeze


@pytest.mark.parametrize("axes", [None, (0, 2, 1), (1, 0, 2), (2, 0, 1), (0, -1, -2), (-3, -1, 1)])
def test_transpose(axes):
    check_op(lambda t: ops.transpose(t, axes), [X3], lambda a: np.transpose(a, axes))


def test_transpose_bad_axes():
    x = keras.Input(shape=(4, 6))
    with pytest.raises(ValueError) as info:
        ops.transpose(x, (0, 1, 1))
    assert "(None, 4, 6)" in str(info.value)
    with pytest.raises(ValueError):
        ops.transpose(x, (0, 1))


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2, -4, (1, 3), (0, -1), (1, 2)])
def test_expand_dims(axis):
    check_op(lambda t: ops.expand_dims(t, axis), [X3], lambda a: np.expand_dims(a, axis))


@pytest.mark.parametrize("axis", [1, -1, -3, (1, 3), (-1, 1), None])
def test_squeeze(axis):
    x = rand(3, 1, 5, 1)
    check_op(lambda t: ops.squeeze(t, axis), [x], lambda a: np.squeeze(a, axis if axis is not None else (1, 3)))


def test_squeeze_static_all():
    x = rand(1, 3, 1)
    check_op(lambda t: ops.squeeze(t), [x], np.squeeze, dynamic=False)
    check_op(lambda t: t.squeeze(0), [x], lambda a: np.squeeze(a, 0), dynamic=False)


def test_squeeze_non_unit_axis():
    x = keras.Input(shape=(3, 1))
    with pytest.raises(ValueError) as info:
        ops.squeeze(x, 1)
    assert "(None, 3, 1)" in str(info.value)


# ---------------------------------------------------------------------------------------
# concatenate / stack / split / unstack


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_concatenate_two_inputs(axis):
    a = rand(3, 4, 6)
    b = rand(3, 4, 6)
    check_op(lambda s, t: ops.concatenate([s, t], axis=axis), [a, b], lambda p, q: np.concatenate([p, q], axis))


@pytest.mark.parametrize("axis", [1, -1])
def test_concatenate_different_sizes(axis):
    a = rand(3, 2, 5)
    b = rand(3, 3, 5) if axis == 1 else rand(3, 2, 1)
    check_op(lambda s, t: ops.concatenate([s, t, s], axis=axis), [a, b], lambda p, q: np.concatenate([p, q, p], axis))


def test_concatenate_single_input_and_int_promotion():
    a = rand(3, 4)
    check_op(lambda s: ops.concatenate([s], axis=1), [a], lambda p: p)
    i = rand(3, 4, low=-5, high=5, dtype="int32")
    check_op(
        lambda s, t: ops.concatenate([s, t], axis=1),
        [a, i],
        lambda p, q: np.concatenate([p, q.astype("float32")], axis=1),
    )


def test_concatenate_with_constant_operand():
    a = rand(2, 4)
    c = rand(2, 3)
    check_op(lambda s: ops.concatenate([s, c], axis=1), [a], lambda p: np.concatenate([p, c], 1), dynamic=False)


def test_concatenate_incompatible():
    a = keras.Input(shape=(3, 4))
    b = keras.Input(shape=(5, 6))
    with pytest.raises(ValueError) as info:
        ops.concatenate([a, b], axis=1)
    assert "(None, 3, 4)" in str(info.value) and "(None, 5, 6)" in str(info.value)
    c = keras.Input(shape=(3,))
    with pytest.raises(ValueError) as info:
        ops.concatenate([a, c], axis=-1)
    assert "(None, 3, 4)" in str(info.value) and "(None, 3)" in str(info.value)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(axis):
    a, b, c = rand(3, 2, 4), rand(3, 2, 4), rand(3, 2, 4)
    check_op(lambda p, q, r: ops.stack([p, q, r], axis=axis), [a, b, c], lambda p, q, r: np.stack([p, q, r], axis))


def test_stack_single():
    check_op(lambda p: ops.stack([p], axis=1), [rand(3, 4)], lambda p: np.stack([p], 1))


@pytest.mark.parametrize("sections, axis", [(2, 1), (3, -1), ([1, 3], 1), ([2], -1), ([1, 2, 5], 2), (1, 1)])
def test_split(sections, axis):
    check_op(lambda t: ops.split(t, sections, axis=axis), [X3], lambda a: np.split(a, sections, axis))


def test_split_uneven_raises():
    x = keras.Input(shape=(4, 6))
    with pytest.raises(ValueError) as info:
        ops.split(x, 4, axis=2)
    assert "(None, 4, 6)" in str(info.value)
    with pytest.raises(ValueError):
        ops.split(x, 2, axis=0)  # unknown batch size


@pytest.mark.parametrize("axis", [1, 2, -1, -2])
def test_unstack(axis):
    check_op(lambda t: ops.unstack(t, axis=axis), [X3], lambda a: [np.take(a, i, axis) for i in range(a.shape[axis])])


def test_unstack_static_batch_and_unknown():
    check_op(lambda t: ops.unstack(t), [X3], lambda a: list(a), dynamic=False)
    check_op(lambda t: ops.unstack(t, num=3, axis=0), [X3], lambda a: list(a), dynamic=False)
    with pytest.raises(ValueError):
        ops.unstack(keras.Input(shape=(3,)), axis=0)


# ---------------------------------------------------------------------------------------
# take / where / clip


@pytest.mark.parametrize(
    "indices, axis",
    [
        (np.array([0, 2, 1, 2], "int32"), 1),
        (np.array([[5, 0], [-1, -6]], "int64"), 2),
        (np.array([3, -1], "int32"), -1),
        (np.array(2, "int32"), 1),
        (np.array([0, 0, 1], "int32"), 0),
        (np.array([[0, 7], [-1, 20]], "int32"), None),
    ],
)
def test_take_constant_indices(indices, axis):
    check_op(lambda t: ops.take(t, indices, axis=axis), [X3], lambda a: np.take(a, indices, axis), dynamic=axis != 0)


def test_take_symbolic_indices():
    table = rand(3, 5, 4)  # static batch: gathered along axis 1
    idx = np.array([[0, 4, -1], [2, 2, 1], [3, 0, -5]], "int32")
    check_op(lambda t, i: ops.take(t, i[0], axis=1), [table, idx], lambda a, i: np.take(a, i[0], 1), dynamic=False)
    emb = rand(6, 3)
    check_op(lambda i: ops.take(emb, i, axis=0), [idx], lambda i: np.take(emb, i, 0))


def test_take_float_indices_raise():
    x = keras.Input(shape=(4,))
    with pytest.raises(ValueError):
        ops.take(x, np.array([0.0, 1.0], "float32"), axis=1)


def test_where():
    a, b = rand(3, 4, 5), rand(3, 4, 5)
    check_op(lambda s, t: ops.where(s > t, s, t), [a, b], lambda p, q: np.where(p > q, p, q))
    check_op(lambda s: ops.where(s > 0, s, 0.0), [a], lambda p: np.where(p > 0, p, np.float32(0)))
    check_op(lambda s: ops.where(s > 0, 1.0, -1.0), [a], lambda p: np.where(p > 0, 1, -1).astype("float32"))
    c = rand(5) > 0
    check_op(lambda s, t: ops.where(c, s, t), [a, b], lambda p, q: np.where(c, p, q))
    i = rand(3, 4, low=-5, high=5, dtype="int32")
    check_op(lambda s: ops.where(s, s, 7), [i], lambda p: np.where(p != 0, p, np.int32(7)))


def test_where_broadcast_error():
    a = keras.Input(shape=(3,))
    b = keras.Input(shape=(2, 4))
    with pytest.raises(ValueError) as info:
        ops.where(a > 0, a, b)
    assert "(None, 3)" in str(info.value) and "(None, 2, 4)" in str(info.value)


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (0, 6), (-0.5, 10.0)])
def test_clip(low, high):
    check_op(lambda t: ops.clip(t, low, high), [rand(3, 7)], lambda a: np.clip(a, low, high).astype("float32"))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_clip_int(dtype):
    x = rand(3, 7, low=-9, high=9, dtype=dtype)
    check_op(lambda t: ops.clip(t, -3, 4), [x], lambda a: np.clip(a, -3, 4).astype(dtype))


# ---------------------------------------------------------------------------------------
# get_item

KEYS = {
    "int": lambda t: t[:, 1],
    "neg_int": lambda t: t[:, -1],
    "neg_int2": lambda t: t[:, -2, -3],
    "batch_int": lambda t: t[0],
    "batch_neg_int": lambda t: t[-1],
    "batch_neg_int2": lambda t: t[-2],
    "slice": lambda t: t[:, 1:3],
    "slice_neg": lambda t: t[:, -3:-1],
    "slice_step": lambda t: t[:, ::2, 1::3],
    "slice_neg_step": lambda t: t[:, ::-1],
    "slice_neg_step2": lambda t: t[:, 3:0:-2, -1::-2],
    "slice_neg_step_stop": lambda t: t[:, :, 4:1:-1],
    "slice_neg_start_neg_step": lambda t: t[:, -2::-1],
    "slice_out_of_range": lambda t: t[:, -100:100, 2:50],
    "slice_empty": lambda t: t[:, 3:1],
    "batch_slice": lambda t: t[1:],
    "batch_slice_neg_step": lambda t: t[::-1],
    "ellipsis_int": lambda t: t[..., 1],
    "ellipsis_neg_int": lambda t: t[..., -1],
    "ellipsis_mid": lambda t: t[0, ..., 2],
    "ellipsis_slice": lambda t: t[..., 1:4:2],
    "ellipsis_alone": lambda t: t[...],
    "newaxis_front": lambda t: t[None],
    "newaxis_mid": lambda t: t[:, None, 1:3],
    "newaxis_end": lambda t: t[..., None],
    "newaxis_with_int": lambda t: t[:, 2, None, ::-1],
    "newaxes_many": lambda t: t[None, :, None, -1, ..., None],
    "full_slice": lambda t: t[:, :, :],
    "all_ints": lambda t: t[1, 2, 3],
    "np_int": lambda t: t[:, np.int64(1)],
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_get_item(name):
    key = KEYS[name]
    check_op(key, [X3], key)


@pytest.mark.parametrize("name", ["int", "slice_neg_step2", "ellipsis_mid", "newaxes_many", "batch_int"])
def test_get_item_static(name):
    key = KEYS[name]
    check_op(key, [X3], key, dynamic=False)


def test_get_item_functional_form_and_int_dtype():
    x = np.arange(24, dtype="int32").reshape(3, 8)
    check_op(lambda t: ops.get_item(t, (slice(None), slice(None, None, -3))), [x], lambda a: a[:, ::-3])


def test_get_item_errors():
    x = keras.Input(shape=(4, 6))
    with pytest.raises(IndexError):
        x[:, 4]
    with pytest.raises(IndexError):
        x[:, -5]
    with pytest.raises(IndexError):
        x[..., ...]
    with pytest.raises(IndexError):
        x[0, 0, 0, 0]
    with pytest.raises(TypeError):
        x[:, 1.5]
    with pytest.raises(TypeError):
        x[:, 0.5:2]


# ---------------------------------------------------------------------------------------
# one_hot


def _one_hot_ref(x, n, axis=-1, dtype="float32"):
    out = (x[..., None] == np.arange(n)).astype(dtype)
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize("dtype", [None, "int32", "float32"])
def test_one_hot(axis, dtype):
    x = np.array([[0, 4, 2], [1, -1, 5], [3, 3, 0]], "int32")
    check_op(
        lambda t: ops.one_hot(t, 5, axis=axis, dtype=dtype),
        [x],
        lambda a: _one_hot_ref(a, 5, axis, dtype or "float32"),
    )


def test_one_hot_int64_and_eager():
    x = np.array([2, 0, 1], "int64")
    check_op(lambda t: ops.one_hot(t, 3), [x], lambda a: _one_hot_ref(a, 3))
    assert_same(ops.one_hot(x, 4), _one_hot_ref(x, 4))


# ---------------------------------------------------------------------------------------
# Eager use


def test_eager_shape_ops_return_numpy():
    a = X3
    for out, want in [
        (ops.reshape(a, (-1, 6)), a.reshape(-1, 6)),
        (ops.transpose(a), a.T),
        (ops.expand_dims(a, 1), a[:, None]),
        (ops.squeeze(a[:, :1], 1), a[:, 0]),
        (ops.concatenate([a, a], axis=1), np.concatenate([a, a], 1)),
        (ops.stack([a, a], axis=-1), np.stack([a, a], -1)),
        (ops.take(a, np.array([0, -1]), axis=2), a[:, :, [0, -1]]),
        (ops.where(a > 0, a, 0.0), np.where(a > 0, a, np.float32(0))),
        (ops.clip(a, -1, 1), np.clip(a, -1, 1)),
        (ops.get_item(a, (Ellipsis, slice(None, None, -1))), a[..., ::-1]),
    ]:
        assert isinstance(out, np.ndarray)
        assert_same(out, want)
    parts = ops.split(a, 2, axis=2)
    assert all(isinstance(p, np.ndarray) for p in parts)
    for p, w in zip(parts, np.split(a, 2, 2)):
        assert_same(p, w)
    for p, w in zip(ops.unstack(a, axis=1), [a[:, i] for i in range(4)]):
        assert_same(p, w)
    assert ops.shape(keras.Input(shape=(4, 6))) == (None, 4, 6)


# ---------------------------------------------------------------------------------------
# Regressions and unknown inner dims


def test_squeeze_with_nothing_to_squeeze_keeps_a_batch_of_one():
    # Regression: an empty `axes` input made ONNX Squeeze drop every size-1 dim, the batch too.
    x = rand(3, 4)
    check_op(lambda t: ops.squeeze(t), [x], lambda a: a, batch_sizes=(3, 1))
    check_op(lambda t: ops.expand_dims(t, ()), [x], lambda a: a, batch_sizes=(3, 1))
    check_op(lambda t: ops.squeeze(t, ()), [rand(3, 1, 2)], lambda a: a, batch_sizes=(3, 1))


def test_squeeze_at_batch_one():
    x = rand(3, 1, 4)
    check_op(lambda t: ops.squeeze(t), [x], lambda a: a[:, 0], batch_sizes=(1, 3))


def test_zeros_like_and_ones_like_ignore_inf_and_nan():
    # Regression: they were computed as x * 0 (+ 1), which is NaN where x is inf or NaN.
    x = np.array([[np.inf, -np.inf, np.nan, 1.0]] * 3, "float32")
    check_op(ops.zeros_like, [x], np.zeros_like)
    check_op(ops.ones_like, [x], np.ones_like)
    check_op(lambda t: ops.ones_like(t, dtype="int32"), [x], lambda a: np.ones(a.shape, "int32"))
    check_op(lambda t: ops.zeros_like(t, dtype="bool"), [x], lambda a: np.zeros(a.shape, "bool"))
    i = rand(3, 2, low=-3, high=3, dtype="int64")
    check_op(ops.ones_like, [i], np.ones_like)
    assert_same(ops.zeros_like(x), np.zeros_like(x))


def test_constructors_are_eager():
    assert_same(ops.zeros((2, 3)), np.zeros((2, 3), "float32"))
    assert_same(ops.ones(4, dtype="int32"), np.ones(4, "int32"))
    assert_same(ops.full((2,), 7, dtype="int64"), np.full((2,), 7, "int64"))
    assert_same(ops.arange(5), np.arange(5, dtype="int32"))
    assert_same(ops.arange(1.0, 2.0, 0.5), np.array([1.0, 1.5], "float32"))
    with pytest.raises(ValueError):
        ops.zeros((None, 3))
    x = rand(3, 4)
    check_op(lambda t: t + ops.ones((4,)), [x], lambda a: a + np.float32(1))


def test_reshape_with_kept_dims():
    check_op(lambda t: ops.reshape(t, (None, None, 2, 3)), [X3], lambda a: a.reshape(a.shape[0], 4, 2, 3))
    check_op(lambda t: t.reshape((None, 2, 2, -1)), [X3], lambda a: a.reshape(a.shape[0], 2, 2, 6))


def _run_both(model, feeds, want):
    import irtool

    from ..conftest import run_onnx

    got = model.predict(feeds, verbose=0)
    assert_same(got, want)
    proto = irtool.onnx.to_onnx(model)
    assert_same(run_onnx(proto, {proto.graph.input[0].name: feeds})[0], want)
    return proto


def test_ops_on_unknown_inner_dims():
    x = keras.Input(shape=(None, 6))
    y = ops.reshape(x, (None, -1))
    z = ops.softmax(x[:, 1:, ::2] * 2.0, axis=1)
    s = ops.sum(ops.transpose(x, (0, 2, 1)), axis=-1, keepdims=True)
    assert y.shape == (None, None)
    assert z.shape == (None, None, 3)
    assert s.shape == (None, 6, 1)
    for n in (2, 5):
        a = rand(2, n, 6)
        _run_both(keras.Model(x, y), a, a.reshape(2, -1))
        e = np.exp(a[:, 1:, ::2].astype("float64") * 2)
        _run_both(keras.Model(x, z), a, (e / e.sum(1, keepdims=True)).astype("float32"))
        _run_both(keras.Model(x, s), a, a.transpose(0, 2, 1).sum(-1, keepdims=True))


def test_where_with_bool_branches():
    # Regression: ONNX Runtime has no bool Where kernel.
    a, b = rand(3, 5), rand(3, 5)
    check_op(lambda s, t: ops.where(s > 0, s > t, t > 1), [a, b], lambda p, q: np.where(p > 0, p > q, q > 1))
    c = rand(5) > 0
    check_op(lambda s: ops.where(c, s > 0, False), [a], lambda p: np.where(c, p > 0, False))
