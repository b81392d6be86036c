"""The channels-first pass: same results as the original graph, and transposes sunk away."""

import numpy as np

import irtool as keras
from irtool import layers, ops
from irtool.ir.executor import CompiledGraph
from irtool.ir.spec import TensorSpec
from irtool.onnx.layout import channels_first, has_channels_last_ops
from irtool.ops.core import Primitive, apply

from ..conftest import assert_onnx_parity


class ChannelAffine(Primitive):
    """A stand-in spatial op: ``x * scale + shift`` per channel, on the channel axis of ``data_format``."""

    name = "channel_affine"
    layout_sensitive = True

    def infer(self, specs, data_format):
        return [TensorSpec(specs[0].shape, specs[0].dtype)]

    def forward(self, x, scale, shift, data_format):
        shape = [1] * x.ndim
        shape[-1 if data_format == "channels_last" else 1] = -1
        return x * scale.reshape(shape) + shift.reshape(shape)

    def to_onnx(self, ctx, ins, outs, data_format):
        assert data_format == "channels_first", "the pass must have converted it"
        shape = [-1, 1, 1]  # the tests use 4-D inputs
        scaled = ctx.node("Mul", [ins[0], ctx.reshaped(ins[1], shape)])[0]
        ctx.node("Add", [scaled, ctx.reshaped(ins[2], shape)], outs)


CHANNEL_AFFINE = ChannelAffine()


class Affine(layers.Layer):
    def build(self, input_shape):
        channels = input_shape[-1]
        self.scale = self.add_weight(shape=(channels,), initializer="random_normal", name="scale")
        self.shift = self.add_weight(shape=(channels,), initializer="random_normal", name="shift")

    def call(self, inputs):
        return apply(CHANNEL_AFFINE, [inputs, self.scale, self.shift], data_format="channels_last")[0]


def toy_model():
    inputs = keras.Input((5, 6, 3))
    x = Affine()(inputs)
    x = layers.Activation("relu")(x)
    y = Affine()(x)
    x = layers.add([x, y * 2.0 + np.arange(3, dtype="float32")])
    x = Affine()(x)
    pooled = ops.mean(x, axis=(1, 2))
    probs = ops.softmax(x, axis=-1)
    return keras.Model(inputs, [layers.Dense(2)(pooled), probs])


def test_pass_preserves_results_in_numpy():
    model = toy_model()
    assert has_channels_last_ops(model.graph)
    rewritten = channels_first(model.graph)
    rewritten.lint()
    assert not has_channels_last_ops(rewritten)
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype("float32")
    want = model.predict(x, verbose=0)
    got = CompiledGraph(rewritten).run([x])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_transposes_are_sunk_to_the_boundaries():
    model = toy_model()
    rewritten = channels_first(model.graph)
    rewritten.lint()
    ops = [rewritten.op(op) for op in rewritten.ops]
    transposes = [op for op in ops if op.prim.name == "transpose" and op.inputs[0] in rewritten.inputs]
    assert len(transposes) == 1  # one at the image input
    assert "%add/transpose: float32[1, 3, 1, 1] = transpose(%add/reshape" in str(rewritten)  # constant, folded
    x = np.random.default_rng(1).standard_normal((3, 5, 6, 3)).astype("float32")
    proto = assert_onnx_parity(model, x)
    # One at the image input, one back to NHWC for the softmax output; the pooled branch needs none.
    assert [n.op_type for n in proto.graph.node].count("Transpose") == 2


def test_graph_without_spatial_ops_is_untouched():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dense(2)(inputs))
    assert not has_channels_last_ops(model.graph)


def test_real_conv_stack_with_padding_cropping_upsampling_and_norms():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Cropping2D(((1, 0), (0, 1)))(x)
    x = layers.UpSampling2D(2)(x)
    x = layers.MaxPooling2D(2)(x)
    skip = layers.Conv2D(4, 1)(x)
    x = layers.add([layers.Conv2D(4, 3, padding="same")(x), skip])
    x = layers.concatenate([x, skip])
    model = keras.Model(inputs, [x, layers.GlobalAveragePooling2D()(x)])
    data = np.random.default_rng(2).standard_normal((2, 8, 8, 3)).astype("float32")
    rewritten = channels_first(model.graph)
    rewritten.lint()
    for got, want in zip(CompiledGraph(rewritten).run([data]), model.predict(data, verbose=0)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    proto = assert_onnx_parity(model, data, atol=1e-5)
    assert [n.op_type for n in proto.graph.node].count("Transpose") == 2  # image in, image out
