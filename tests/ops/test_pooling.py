"""ops.max_pool / ops.average_pool: loop references, every padding/stride combination, both
layouts, dynamic spatial dims, ONNX Runtime parity and shape errors."""

import functools
import itertools
import math

import numpy as np
import pytest

import irtool as keras
from irtool import ops

from ..layers._spatial import check, op_types

RNG = np.random.default_rng(11)


def reference_pool(x, pool_size, strides, padding, data_format, mode):
    """Naive pooling: one window per output position, padding excluded (TensorFlow semantics)."""
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    x = x.astype(np.float64)
    sizes = x.shape[1:-1]
    outs, starts = [], []
    for n, k, s in zip(sizes, pool_size, strides):
        if padding == "same":
            out = math.ceil(n / s)
            before = max((out - 1) * s + k - n, 0) // 2
        else:
            out = (n - k) // s + 1
            before = 0
        outs.append(out)
        starts.append([j * s - before for j in range(out)])
    y = np.zeros((x.shape[0], *outs, x.shape[-1]))
    for index in itertools.product(*(range(o) for o in outs)):
        window = [slice(None)]
        for axis, j in enumerate(index):
            start = starts[axis][j]
            window.append(slice(max(start, 0), min(start + pool_size[axis], sizes[axis])))
        patch = x[tuple(window)]
        spatial = tuple(range(1, 1 + len(index)))
        y[(slice(None), *index)] = patch.max(axis=spatial) if mode == "max" else patch.mean(axis=spatial)
    if data_format == "channels_first":
        y = np.moveaxis(y, -1, 1)
    return y.astype(np.float32)


WINDOWS = [(2, None), (3, 2), (3, 1), (2, 3)]


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_matches_loop_reference_and_onnx(mode, rank, padding, data_format):
    fn = ops.max_pool if mode == "max" else ops.average_pool
    spatial = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}[rank]
    for pool, stride in WINDOWS:
        shape = (2, *spatial, 3) if data_format == "channels_last" else (2, 3, *spatial)
        x = RNG.standard_normal(shape).astype("float32")
        inputs = keras.Input(shape[1:])
        model = keras.Model(inputs, fn(inputs, pool, stride, padding, data_format))
        pool_size = (pool,) * rank
        strides = pool_size if stride is None else (stride,) * rank

        reference = functools.partial(
            reference_pool, pool_size=pool_size, strides=strides, padding=padding, data_format=data_format, mode=mode
        )
        proto = check(model, [x], reference)
        assert ("MaxPool" if mode == "max" else "AveragePool") in op_types(proto)
        # Eager call on arrays gives the same result.
        np.testing.assert_allclose(fn(x, pool, stride, padding, data_format), reference(x), atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("window", [((3, 2), (2, 1)), ((2, 1), (3, 2))])
def test_pooling_with_dynamic_spatial_dims_runs_at_two_sizes(mode, padding, window):
    fn = ops.max_pool if mode == "max" else ops.average_pool
    pool_size, strides = window
    inputs = keras.Input((None, None, 2))
    out = fn(inputs, pool_size, strides, padding)
    assert out.shape == (None, None, None, 2)
    model = keras.Model(inputs, out)
    # 7 and 9 rows: with a window smaller than its stride, "same" needs padding at one size only.
    xs = [RNG.standard_normal((2, 7, 5, 2)).astype("float32"), RNG.standard_normal((3, 9, 8, 2)).astype("float32")]
    check(model, xs, lambda a: reference_pool(a, pool_size, strides, padding, "channels_last", mode))


def test_pooling_non_square_windows_and_opsets():
    x = RNG.standard_normal((2, 8, 9, 3)).astype("float32")
    for opset in (13, 17, 21):
        inputs = keras.Input((8, 9, 3))
        model = keras.Model(inputs, ops.average_pool(inputs, (2, 3), (3, 2), "same"))
        check(model, [x], lambda a: reference_pool(a, (2, 3), (3, 2), "same", "channels_last", "average"), opset=opset)


def test_pooling_shape_inference():
    x = keras.Input((10, 7, 3))
    assert ops.max_pool(x, 2).shape == (None, 5, 3, 3)
    assert ops.max_pool(x, 3, 2, "same").shape == (None, 5, 4, 3)
    assert ops.average_pool(x, (3, 1), (1, 1)).shape == (None, 8, 7, 3)
    assert ops.max_pool(keras.Input((3, 10, 7)), 2, data_format="channels_first").shape == (None, 3, 5, 3)
    assert ops.max_pool(keras.Input((None, 4)), 2, padding="same").shape == (None, None, 4)
    assert ops.max_pool(keras.Input((6, 6, 6, 1)), 2).shape == (None, 3, 3, 3, 1)


def test_pooling_errors():
    with pytest.raises(ValueError, match="ndim=3, 4 or 5"):
        ops.max_pool(keras.Input((4,)), 2)
    with pytest.raises(ValueError, match="pool_size"):
        ops.max_pool(keras.Input((4, 4, 1)), (2, 2, 2))
    with pytest.raises(ValueError, match="zero or negative"):
        ops.average_pool(keras.Input((3, 3, 1)), 4)
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        ops.max_pool(keras.Input((4, 4, 1)), 2, padding="full")
    with pytest.raises(ValueError, match="data_format"):
        ops.max_pool(keras.Input((4, 4, 1)), 2, data_format="nhwc")
    with pytest.raises(ValueError, match="float"):
        ops.max_pool(keras.Input((4, 4, 1), dtype="int32"), 2)
    # The primitive's own rank check (used by graph passes that re-infer shapes).
    from irtool.ir.spec import TensorSpec
    from irtool.ops.pooling import MAX_POOL

    with pytest.raises(ValueError, match="rank 4"):
        MAX_POOL.infer(
            [TensorSpec((None, 4, 1), "float32")],
            pool_size=(2, 2),
            strides=(2, 2),
            padding="valid",
            data_format="channels_last",
        )


def test_top_level_pooling_is_a_raw_op():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, ops.max_pool(inputs, 2))
    assert [type(op).__name__ for op in model.operations][-1] == "MaxPool"
    assert model.operations[-1].class_name == "MaxPool"
