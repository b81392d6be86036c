"""conv, depthwise_conv, separable_conv and conv_transpose: NumPy and ONNX Runtime against
naive-loop references, shape inference, errors and the shape of the lowering."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import irtool as keras
from irtool import ops

from ..conftest import assert_onnx_parity, run_onnx
from ._util import check_op, rand
from .conv_reference import ref_conv, ref_conv_transpose, ref_depthwise


def _input(nd, channels, data_format, spatial):
    shape = (*spatial, channels) if data_format == "channels_last" else (channels, *spatial)
    return rand(3, *shape, low=-1, high=1)


# -- conv -----------------------------------------------------------------------------------------------

CONV_CASES = [
    # nd, spatial, kernel, strides, padding, dilation, groups, data_format
    (1, (9,), 3, 1, "valid", 1, 1, "channels_last"),
    (1, (9,), 3, 2, "same", 1, 1, "channels_last"),
    (1, (9,), 2, 1, "causal", 2, 1, "channels_last"),
    (1, (8,), 4, 1, "causal", 1, 2, "channels_first"),
    (1, (10,), 4, 3, "same", 1, 2, "channels_last"),
    (2, (7, 6), 3, 1, "same", 1, 1, "channels_last"),
    (2, (7, 6), 3, 2, "same", 1, 1, "channels_last"),
    (2, (8, 8), 2, 2, "same", 1, 1, "channels_first"),
    (2, (7, 6), (2, 3), 1, "valid", 2, 1, "channels_last"),
    (2, (7, 6), 3, 1, "same", 2, 2, "channels_first"),
    (2, (7, 6), 3, 2, "valid", 1, 2, "channels_last"),
    (2, (9, 8), 1, 2, "same", 1, 1, "channels_last"),
    (2, (9, 8), 2, 3, "same", 1, 1, "channels_last"),
    (2, (9, 8), 3, 2, "same", 2, 1, "channels_first"),
    (3, (5, 4, 6), 3, 1, "same", 1, 1, "channels_last"),
    (3, (5, 4, 6), 2, 2, "valid", 1, 2, "channels_first"),
    (3, (5, 6, 4), (1, 2, 3), (2, 1, 1), "same", 1, 1, "channels_last"),
]


@pytest.mark.parametrize("nd,spatial,ks,strides,padding,dilation,groups,data_format", CONV_CASES)
def test_conv_matches_reference(nd, spatial, ks, strides, padding, dilation, groups, data_format):
    ksize = (ks,) * nd if isinstance(ks, int) else ks
    kernel = rand(*ksize, 4 // groups, 6, low=-1, high=1)
    bias = rand(6)
    x = _input(nd, 4, data_format, spatial)

    def fn(t):
        return ops.conv(t, kernel, strides, padding, data_format, dilation, bias=bias)

    check_op(fn, [x], lambda a: ref_conv(a, kernel, strides, padding, data_format, dilation, bias))


@pytest.mark.parametrize("strides,padding,dilation", [(1, "same", 1), (2, "valid", 1), (1, "valid", 2), (2, "same", 1)])
@pytest.mark.parametrize("dm", [1, 2])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_depthwise_conv_matches_reference(strides, padding, dilation, dm, data_format):
    kernel = rand(3, 2, 3, dm, low=-1, high=1)
    x = _input(2, 3, data_format, (7, 6))
    check_op(
        lambda t: ops.depthwise_conv(t, kernel, strides, padding, data_format, dilation),
        [x],
        lambda a: ref_depthwise(a, kernel, strides, padding, data_format, dilation),
    )


def test_separable_conv_is_depthwise_then_pointwise():
    depthwise = rand(3, 3, 2, low=-1, high=1)
    pointwise = rand(1, 6, 4, low=-1, high=1)
    x = _input(1, 3, "channels_last", (9,))

    def ref(a):
        mid = ref_depthwise(a, depthwise, 2, "same")
        return ref_conv(mid, pointwise)

    model = check_op(lambda t: ops.separable_conv(t, depthwise, pointwise, 2, "same"), [x], ref)
    assert [model._graph.prim(op).name for op in model._graph.ops] == ["depthwise_conv", "conv"]


# -- conv_transpose ---------------------------------------------------------------------------------------

TRANSPOSE_CASES = [
    # nd, spatial, kernel, strides, padding, output_padding, dilation, data_format
    (1, (5,), 3, 2, "same", None, 1, "channels_last"),
    (1, (5,), 4, 2, "valid", 1, 1, "channels_first"),
    (1, (5,), 3, 1, "same", None, 2, "channels_last"),
    (1, (4,), 2, 3, "valid", None, 1, "channels_last"),
    (1, (4,), 1, 3, "same", None, 1, "channels_last"),
    (2, (4, 5), 3, 2, "same", None, 1, "channels_last"),
    (2, (4, 5), 4, 2, "same", None, 1, "channels_first"),
    (2, (4, 5), 3, 2, "same", 1, 1, "channels_last"),
    (2, (4, 5), 3, 2, "same", 0, 1, "channels_last"),
    (2, (4, 5), 4, 2, "same", (1, 0), 1, "channels_last"),
    (2, (4, 5), 3, 2, "valid", 1, 1, "channels_last"),
    (2, (4, 5), (2, 3), 1, "valid", None, (2, 1), "channels_first"),
    (2, (3, 4), 5, 3, "same", 2, 1, "channels_last"),
    (3, (3, 4, 2), 3, 2, "same", None, 1, "channels_last"),
    (3, (3, 2, 4), 2, (2, 1, 1), "valid", None, 1, "channels_first"),
]


@pytest.mark.parametrize("nd,spatial,ks,strides,padding,output_padding,dilation,data_format", TRANSPOSE_CASES)
def test_conv_transpose_matches_reference(nd, spatial, ks, strides, padding, output_padding, dilation, data_format):
    ksize = (ks,) * nd if isinstance(ks, int) else ks
    kernel = rand(*ksize, 5, 3, low=-1, high=1)
    bias = rand(5)
    x = _input(nd, 3, data_format, spatial)

    def fn(t):
        return ops.conv_transpose(t, kernel, strides, padding, output_padding, data_format, dilation, bias=bias)

    def ref(a):
        return ref_conv_transpose(a, kernel, strides, padding, output_padding, data_format, dilation, bias)

    check_op(fn, [x], ref)


# -- dynamic spatial dims -----------------------------------------------------------------------------------


def _check_dynamic(fn, ref, channels, data_format, sizes, nd=2):
    spatial = (None,) * nd
    inputs = keras.Input((*spatial, channels) if data_format == "channels_last" else (channels, *spatial))
    model = keras.Model(inputs, fn(inputs))
    proto = None
    for size in sizes:
        x = _input(nd, channels, data_format, size)
        want = ref(x)
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
        proto = assert_onnx_parity(model, x) if proto is None else proto
        np.testing.assert_allclose(run_onnx(proto, {proto.graph.input[0].name: x})[0], want, rtol=1e-5, atol=1e-5)
    return proto


@pytest.mark.parametrize(
    "ks,strides,dilation,auto_pad,pad_node",
    [(3, 1, 1, False, False), (3, 2, 1, True, False), (2, 2, 1, True, False), (2, 3, 1, False, True),
     (3, 2, 2, False, True), (1, 3, 1, False, False), (3, 1, 2, False, False)],
)  # fmt: skip
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv_same_on_dynamic_spatial_dims(ks, strides, dilation, auto_pad, pad_node, data_format):
    """``same`` pads depend on the input size: static pads where they cannot, else ORT's
    SAME_UPPER where it agrees with Keras, else pads computed from the runtime shape."""
    kernel = rand(ks, ks, 3, 4, low=-1, high=1)
    proto = _check_dynamic(
        lambda t: ops.conv(t, kernel, strides, "same", data_format, dilation),
        lambda a: ref_conv(a, kernel, strides, "same", data_format, dilation),
        3,
        data_format,
        [(7, 6), (8, 9), (5, 5)],
    )
    (conv,) = [n for n in proto.graph.node if n.op_type == "Conv"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert ("auto_pad" in attrs) == auto_pad
    assert any(n.op_type == "Pad" for n in proto.graph.node) == pad_node
    transposes = sum(n.op_type == "Transpose" for n in proto.graph.node)
    assert transposes == (2 if data_format == "channels_last" else 0)


@pytest.mark.parametrize("padding,output_padding", [("same", None), ("valid", None), ("same", 1), ("valid", 1)])
def test_conv_transpose_on_dynamic_spatial_dims(padding, output_padding):
    kernel = rand(3, 3, 2, 3, low=-1, high=1)
    _check_dynamic(
        lambda t: ops.conv_transpose(t, kernel, 2, padding, output_padding),
        lambda a: ref_conv_transpose(a, kernel, 2, padding, output_padding),
        3,
        "channels_last",
        [(4, 5), (3, 3)],
    )


def test_conv1d_causal_on_dynamic_steps():
    kernel = rand(3, 2, 4, low=-1, high=1)
    proto = _check_dynamic(
        lambda t: ops.conv(t, kernel, 1, "causal", dilation_rate=2),
        lambda a: ref_conv(a, kernel, 1, "causal", dilation=2),
        2,
        "channels_last",
        [(5,), (11,)],
        nd=1,
    )
    (conv,) = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert [onnx.helper.get_attribute_value(a) for a in conv.attribute if a.name == "pads"] == [[4, 0]]
    assert not any(n.op_type == "Pad" for n in proto.graph.node)


# -- inference, errors, eager use, lowering ---------------------------------------------------------------------


def test_shape_inference():
    x = keras.Input((None, 10, 4))
    k = np.zeros((3, 3, 2, 6), "float32")
    assert ops.conv(x, k, 2, "same").shape == (None, None, 5, 6)
    assert ops.conv(x, k, 1, "valid", dilation_rate=2).shape == (None, None, 6, 6)
    assert ops.conv(keras.Input((4, 7, 9)), k, (2, 3), data_format="channels_first").shape == (None, 6, 3, 3)
    assert ops.depthwise_conv(x, np.zeros((3, 3, 4, 2), "float32"), 2).shape == (None, None, 4, 8)
    sep = ops.separable_conv(x, np.zeros((3, 3, 4, 2), "float32"), np.zeros((1, 1, 8, 5), "float32"), padding="same")
    assert sep.shape == (None, None, 10, 5)
    kt = np.zeros((3, 3, 5, 4), "float32")
    assert ops.conv_transpose(x, kt, 2, "same").shape == (None, None, 20, 5)
    assert ops.conv_transpose(x, kt, 2, "valid").shape == (None, None, 21, 5)
    assert ops.conv_transpose(x, kt, 2, "valid", output_padding=1).shape == (None, None, 22, 5)
    assert ops.conv_transpose(x, kt, 2, "same", output_padding=0).shape == (None, None, 19, 5)
    assert ops.conv(keras.Input((5, 4)), np.zeros((3, 4, 2), "float32"), padding="causal").shape == (None, 5, 2)


def test_errors():
    x = keras.Input((8, 8, 4))
    k = np.zeros((3, 3, 4, 6), "float32")
    with pytest.raises(ValueError, match="same length as input"):
        ops.conv(keras.Input((8, 4)), k)
    with pytest.raises(ValueError, match="rank >= 3"):
        ops.conv(keras.Input((4,)), np.zeros((4, 6), "float32"))
    with pytest.raises(ValueError, match="evenly divisible by kernel's in_channels"):
        ops.conv(x, np.zeros((3, 3, 3, 6), "float32"))
    with pytest.raises(ValueError, match="divisible by groups"):
        ops.conv(x, np.zeros((3, 3, 2, 5), "float32"))
    with pytest.raises(ValueError, match="zero or negative"):
        ops.conv(x, np.zeros((9, 9, 4, 6), "float32"))
    with pytest.raises(ValueError, match="bias of shape"):
        ops.conv(x, k, bias=np.zeros(5, "float32"))
    with pytest.raises(ValueError, match="one dtype"):
        ops.conv(x, k.astype("float64"))
    with pytest.raises(ValueError, match="channel dimension"):
        ops.conv(keras.Input((8, 8, None)), k)
    with pytest.raises(ValueError, match="`padding` argument"):
        ops.conv(x, k, padding="full")
    with pytest.raises(ValueError, match="`data_format` argument"):
        ops.conv(x, k, data_format="NHWC")
    with pytest.raises(ValueError, match="`strides` argument must be a tuple of 2"):
        ops.conv(x, k, strides=(1, 1, 1))
    with pytest.raises(ValueError, match="depthwise kernel's input channels"):
        ops.depthwise_conv(x, np.zeros((3, 3, 3, 1), "float32"))
    with pytest.raises(ValueError, match="kernel's input channels"):
        ops.conv_transpose(x, np.zeros((3, 3, 6, 3), "float32"))
    with pytest.raises(ValueError, match="`output_padding` argument"):
        ops.conv_transpose(x, np.zeros((3, 3, 6, 4), "float32"), output_padding=-1)
    with pytest.raises(ValueError, match="`padding` argument"):
        ops.conv_transpose(x, np.zeros((3, 3, 6, 4), "float32"), padding="causal")


def test_eager_arrays_and_float64():
    x = rand(2, 6, 5, 4, low=-1, high=1).astype("float64")
    k = rand(3, 3, 2, 4, low=-1, high=1).astype("float64")
    got = ops.conv(x, k, 1, "same")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref_conv(x, k, 1, "same").astype("float64"), rtol=1e-6, atol=1e-6)
    kt = rand(2, 2, 3, 4, low=-1, high=1)
    got = ops.conv_transpose(x.astype("float32"), kt, 2, "same")
    np.testing.assert_allclose(got, ref_conv_transpose(x, kt, 2, "same"), rtol=1e-5, atol=1e-5)


def test_lowering_folds_kernels_and_fuses_bias():
    x = keras.Input((6, 6, 4))
    kernel, bias = rand(3, 3, 2, 6), rand(6)
    y = ops.conv(x, kernel, 1, "same", bias=bias)
    y = ops.depthwise_conv(y, rand(3, 3, 6, 2), 2, "same")
    y = ops.conv_transpose(y, rand(2, 2, 3, 12), 2, "same", bias=rand(3))
    model = keras.Model(x, y)
    proto = assert_onnx_parity(model, rand(2, 6, 6, 4))
    assert [n.op_type for n in proto.graph.node] == ["Transpose", "Conv", "Conv", "ConvTranspose", "Transpose"]
    first, depthwise, transpose = proto.graph.node[1:4]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(weights[first.input[1]], kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(weights[first.input[2]], bias)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in first.attribute}
    assert attrs["pads"] == [1, 1, 1, 1] and "group" in attrs and attrs["group"] == 2
    assert {a.name: onnx.helper.get_attribute_value(a) for a in depthwise.attribute}["group"] == 6
    assert weights[depthwise.input[1]].shape == (12, 1, 3, 3) and len(depthwise.input) == 2
    assert weights[transpose.input[1]].shape == (12, 3, 2, 2)
    for opset in (13, 17):
        assert_onnx_parity(model, rand(2, 6, 6, 4), opset=opset)


def test_symbolic_kernel_lowers_for_valid_padding():
    x, k = keras.Input((6, 6, 4)), keras.Input(batch_shape=(3, 3, 4, 5))
    model = keras.Model([x, k], ops.conv(x, k))
    xv, kv = rand(2, 6, 6, 4), rand(3, 3, 4, 5)
    np.testing.assert_allclose(model([xv, kv]), ref_conv(xv, kv), rtol=1e-5, atol=1e-5)
    proto = keras.onnx.to_onnx(model)
    got = run_onnx(proto, {proto.graph.input[0].name: xv, proto.graph.input[1].name: kv})[0]
    np.testing.assert_allclose(got, ref_conv(xv, kv), rtol=1e-5, atol=1e-5)
    same = keras.Model([x, k], ops.conv(x, k, padding="same"))
    with pytest.raises(keras.onnx.ExportError, match="needs the kernel's size"):
        keras.onnx.to_onnx(same)
