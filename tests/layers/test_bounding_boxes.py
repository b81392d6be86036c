"""MaxNumBoundingBoxes: the identity on images (a Keras-written model loads, predicts and
exports), and boxes/labels cut or padded to ``max_number`` as Keras does."""

import numpy as np
import pytest

import irtool

from ..harness import assert_onnx_parity, keras_parity, layers_from, require_keras

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(8)


def test_images_pass_unchanged_like_keras():
    require_keras()

    def build(k):
        inputs = k.Input((6, 5, 3))
        h = k.layers.MaxNumBoundingBoxes(4, bounding_box_format="xyxy")(inputs)
        return k.Model(inputs, k.layers.Conv2D(2, 3)(h))

    x = RNG.uniform(0, 255, size=(2, 6, 5, 3)).astype("float32")
    ours, _ = keras_parity(
        build,
        x,
        output_shape=True,
        names=True,
        configs=layers_from("bounding_boxes"),
        config_ignore=(),
        config_nested="exact",
    )
    assert_onnx_parity(ours, x)


def test_keras_written_file_loads_and_exports(tmp_path):
    keras = require_keras()
    inputs = keras.Input((6, 6, 3))
    h = keras.layers.Rescaling(1 / 255.0)(keras.layers.MaxNumBoundingBoxes(10)(inputs))
    theirs = keras.Model(inputs, keras.layers.Dense(2)(h))
    theirs.save(tmp_path / "boxes.keras")
    ours = irtool.models.load_model(tmp_path / "boxes.keras")
    assert ours.layers[1].max_number == 10
    x = RNG.uniform(0, 255, size=(2, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), atol=1e-5, rtol=1e-5)
    assert_onnx_parity(ours, x)


@pytest.mark.parametrize("count", [1, 3, 5])
@pytest.mark.parametrize("batched", [True, False])
def test_boxes_and_labels_match_keras(count, batched):
    keras = require_keras()
    shape = (2, 4, 4, 3) if batched else (4, 4, 3)
    lead = (2, count) if batched else (count,)
    data = {
        "images": RNG.uniform(0, 1, size=shape).astype("float32"),
        "bounding_boxes": {
            "boxes": RNG.uniform(0, 4, size=(*lead, 4)).astype("float32"),
            "labels": RNG.integers(0, 5, size=lead).astype("int32"),
        },
    }
    kwargs = {"max_number": 3, "fill_value": -2, "bounding_box_format": "xyxy"}
    want = keras.layers.MaxNumBoundingBoxes(**kwargs)({**data, "bounding_boxes": dict(data["bounding_boxes"])})
    got = irtool.layers.MaxNumBoundingBoxes(**kwargs)(data)
    np.testing.assert_array_equal(got["images"], np.asarray(want["images"]))
    for key in ("boxes", "labels"):
        expected = np.asarray(want["bounding_boxes"][key])
        assert got["bounding_boxes"][key].dtype == expected.dtype
        np.testing.assert_array_equal(got["bounding_boxes"][key], expected)


def test_boxes_without_a_format_are_refused():
    layer = irtool.layers.MaxNumBoundingBoxes(2, name="boxes")
    data = {
        "images": np.zeros((1, 2, 2, 3), "float32"),
        "bounding_boxes": {"boxes": np.zeros((1, 1, 4)), "labels": np.zeros((1, 1))},
    }
    with pytest.raises(
        ValueError, match="(?s)Layer 'boxes' got an input with a 'bounding_boxes' key, but no bounding box format"
    ):
        layer(data)
