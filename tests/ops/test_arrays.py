"""ops.pad and ops.repeat: NumPy references, dynamic dims, dtypes, opsets and errors."""

import functools

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ..conftest import run_onnx
from ..layers._spatial import check, op_types

RNG = np.random.default_rng(13)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_modes(mode):
    x = RNG.standard_normal((2, 5, 4, 3)).astype("float32")
    widths = ((0, 0), (1, 2), (0, 3), (0, 0))
    for shape in [(5, 4, 3), (None, None, 3)]:
        inputs = keras.Input(shape)
        out = ops.pad(inputs, widths, mode=mode)
        assert out.shape == ((None, 8, 7, 3) if shape[0] else (None, None, None, 3))
        model = keras.Model(inputs, out)
        xs = [x] if shape[0] else [x, RNG.standard_normal((1, 6, 7, 3)).astype("float32")]
        check(model, xs, lambda a: np.pad(a, widths, mode=mode))


def test_pad_width_forms_and_constant_values():
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(ops.pad(x, 1), np.pad(x, 1))
    np.testing.assert_array_equal(ops.pad(x, (1, 2)), np.pad(x, (1, 2)))
    np.testing.assert_array_equal(
        ops.pad(x, ((0, 1), (2, 0)), constant_values=-1), np.pad(x, ((0, 1), (2, 0)), constant_values=-1)
    )
    inputs = keras.Input((3,), dtype="int64")
    model = keras.Model(inputs, ops.pad(inputs, ((0, 0), (1, 1)), constant_values=7))
    xi = np.arange(6, dtype="int64").reshape(2, 3)
    check(model, [xi], lambda a: np.pad(a, ((0, 0), (1, 1)), constant_values=7))


def test_pad_errors():
    inputs = keras.Input((3,))
    with pytest.raises(ValueError, match="negative"):
        ops.pad(inputs, ((0, 0), (-1, 0)))
    with pytest.raises(ValueError, match="constant_values"):
        ops.pad(inputs, 1, mode="edge", constant_values=1)
    with pytest.raises(ValueError, match="mode"):
        ops.pad(inputs, 1, mode="linear_ramp")
    with pytest.raises(ValueError, match="broadcast"):
        ops.pad(inputs, ((1, 1), (1, 1), (1, 1)))
    with pytest.raises(ValueError, match="cannot pad"):
        ops.pad(keras.Input((2,)), ((0, 0), (2, 2)), mode="reflect")


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_repeat_static_and_dynamic(dtype):
    x = RNG.standard_normal((2, 3, 4)) > 0 if dtype == "bool" else (RNG.standard_normal((2, 3, 4)) * 9).astype(dtype)
    x = x.astype(dtype)
    for axis in (1, 2, -1):
        for shape in [(3, 4), (None, None)]:
            inputs = keras.Input(shape, dtype=dtype)
            out = ops.repeat(inputs, 3, axis=axis)
            model = keras.Model(inputs, out)
            xs = [x] if shape[0] else [x, x[:, :2, :3].copy()]
            proto = check(model, xs, functools.partial(np.repeat, repeats=3, axis=axis))
            if shape[0]:
                assert out.shape[axis] == x.shape[axis] * 3
            for opset in (13, 17):
                (got,) = run_onnx(keras.onnx.to_onnx(model, opset=opset), {proto.graph.input[0].name: x})
                np.testing.assert_array_equal(got, np.repeat(x, 3, axis=axis))


def test_repeat_flattens_without_axis_and_checks_repeats():
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(ops.repeat(x, 2), np.repeat(x, 2))
    np.testing.assert_array_equal(ops.repeat(x, [2], axis=0), np.repeat(x, 2, axis=0))
    with pytest.raises(ValueError, match="one integer"):
        ops.repeat(x, [1, 2], axis=1)
    with pytest.raises(ValueError, match="non-negative"):
        ops.repeat(x, -1, axis=1)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, ops.repeat(inputs, 1, axis=1))
    assert op_types(check(model, [x.astype("float32")], lambda a: a)) == ["Identity"]


def test_sink_transpose_rules_commute_with_transposes():
    """``prim(transpose(x2, perm)) == transpose(prim(x2, attrs'), perm')`` for the layout pass."""
    from irtool.ops.arrays import PAD, REPEAT
    from irtool.ops.image import CENTER_CROP

    x2 = RNG.standard_normal((2, 3, 5, 6)).astype("float32")
    perm = (0, 2, 3, 1)
    x = np.transpose(x2, perm)
    cases = [
        (PAD, {"pads": ((0, 0), (1, 2), (0, 1), (3, 0)), "mode": "constant", "value": 0.0}),
        (REPEAT, {"repeats": 2, "axis": 1}),
        (CENTER_CROP, {"axes": (1, 2), "size": (3, 4)}),
    ]
    for prim, attrs in cases:
        new_attrs, out_perm = prim.sink_transpose(attrs, perm)
        np.testing.assert_array_equal(prim.forward(x, **attrs), np.transpose(prim.forward(x2, **new_attrs), out_perm))


def test_tile():
    x = RNG.standard_normal((2, 3, 1)).astype("float32")
    for reps in [(1, 2, 3), (2, 1), 2, (2, 1, 1, 2)]:
        np.testing.assert_array_equal(ops.tile(x, reps), np.tile(x, reps))
    for shape in [(3, 1), (None, None)]:
        inputs = keras.Input(shape)
        out = ops.tile(inputs, (1, 2, 4))
        assert out.shape == ((None, 6, 4) if shape[0] else (None, None, None))
        xs = [x] if shape[0] else [x, RNG.standard_normal((1, 2, 3)).astype("float32")]
        proto = check(keras.Model(inputs, out), xs, functools.partial(np.tile, reps=(1, 2, 4)))
        assert op_types(proto) == ["Tile"]
    with pytest.raises(ValueError, match="non-negative"):
        ops.tile(x, (1, -1, 1))
