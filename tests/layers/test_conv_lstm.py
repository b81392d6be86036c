"""ConvLSTM1D/2D/3D (``RNN(ConvLSTMCell)`` on the ``scan`` primitive): Keras parity with the same
weights, ONNX Runtime parity (a ``Scan`` with ``Conv`` nodes in its body), masks, Bidirectional,
gradients by finite differences and configs."""

import numpy as np
import pytest

import irtool

from ..harness import keras_outputs, keras_parity, require_keras, run_onnx
from ..train.gradcheck import check_gradients

real = require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(21)

CASES = {
    "1d_same_seq": ("ConvLSTM1D", (5, 2), dict(filters=3, kernel_size=3, padding="same", return_sequences=True)),
    "1d_first_strided_state_back": (
        "ConvLSTM1D",
        (2, 7),
        dict(filters=2, kernel_size=2, strides=2, data_format="channels_first", return_state=True, go_backwards=True),
    ),
    "2d_valid_no_forget_bias": (
        "ConvLSTM2D",
        (5, 4, 2),
        dict(filters=2, kernel_size=(2, 3), unit_forget_bias=False, return_sequences=True),
    ),
    "2d_first_dilated": (
        "ConvLSTM2D",
        (2, 6, 5),
        dict(filters=2, kernel_size=3, padding="same", dilation_rate=2, data_format="channels_first"),
    ),
    "3d_same_state": ("ConvLSTM3D", (3, 4, 3, 1), dict(filters=2, kernel_size=2, padding="same", return_state=True)),
}


def _flat(theirs, feeds):
    return [real.ops.convert_to_numpy(t) for t in real.tree.flatten(theirs(feeds, training=False))]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_keras_and_onnx(case):
    name, shape, kwargs = CASES[case]

    def build(lib):
        x = lib.Input((None, *shape))
        return lib.Model(x, getattr(lib.layers, name)(**kwargs)(x))

    batches = [RNG.standard_normal((2, t, *shape)).astype("float32") for t in (1, 3)]
    ours, theirs = keras_parity(
        build,
        batches[0],
        extra_inputs=batches[1:],
        atol=2e-5,
        direct_call=True,
        weight_paths=True,
        weight_shapes=True,
        configs=lambda layer: type(layer).__name__.startswith("ConvLSTM"),
        config_nested="class_name",
    )
    proto = irtool.onnx.to_onnx(ours)
    body_ops = {n.op_type for node in proto.graph.node if node.op_type == "Scan" for n in node.attribute[0].g.node}
    assert "Conv" in body_ops
    for x in batches:
        got = run_onnx(proto, {proto.graph.input[0].name: x})
        want = _flat(theirs, x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)


def test_masks_and_bidirectional_match_keras():
    def build(lib):
        x, m = lib.Input((None, 4, 2)), lib.Input((None,), dtype="bool")
        seq = lib.layers.ConvLSTM1D(2, 3, padding="same", return_sequences=True)(x, mask=m)
        bi = lib.layers.Bidirectional(lib.layers.ConvLSTM1D(2, 2, return_sequences=True))(x, mask=m)
        return lib.Model([x, m], [seq, bi])

    masks = [[[1, 0, 1, 1], [0, 0, 1, 1]], [[0, 0, 0, 0], [1, 1, 0, 0]]]
    feeds = [[RNG.standard_normal((2, 4, 4, 2)).astype("float32"), np.asarray(m, bool)] for m in masks]
    ours, theirs = keras_parity(build, feeds[0], extra_inputs=feeds[1:], atol=2e-5, direct_call=True)
    proto = irtool.onnx.to_onnx(ours)
    for batch in feeds:
        got = run_onnx(proto, {i.name: v for i, v in zip(proto.graph.input, batch)})
        for g, w in zip(got, keras_outputs(theirs, batch)):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)


def test_gradients_by_finite_differences():
    x = RNG.standard_normal((2, 3, 4, 2))
    mask = np.asarray([[1, 0, 1], [0, 1, 1]], bool)

    def build(x, m):
        layer = irtool.layers.ConvLSTM1D(2, 3, padding="same", return_sequences=True, dtype="float64")
        return layer(x, mask=m)

    check_gradients(build, [x, mask], atol=1e-6, rtol=1e-5, weight_samples=4)


def test_config_round_trip():
    layer = irtool.layers.ConvLSTM2D(3, (2, 2), strides=(1, 2), return_state=True, go_backwards=True)
    x = irtool.Input((None, 5, 6, 2))
    model = irtool.Model(x, layer(x))
    clone = irtool.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    data = RNG.standard_normal((1, 3, 5, 6, 2)).astype("float32")
    for a, b in zip(clone.predict(data, verbose=0), model.predict(data, verbose=0)):
        np.testing.assert_allclose(a, b)
    assert layer.filters == 3 and layer.get_config()["strides"] == (1, 2)
