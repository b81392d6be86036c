"""irtool.applications.imagenet_utils against keras.applications.imagenet_utils."""

import json

import numpy as np
import pytest

import irtool
from irtool.applications import imagenet_utils
from tests.harness import require_keras


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("batched", [True, False])
def test_preprocess_input_matches_keras_on_arrays(mode, data_format, batched):
    keras = require_keras()
    shape = (5, 4, 3) if data_format == "channels_last" else (3, 5, 4)
    x = np.random.default_rng(0).uniform(0, 255, ((2,) if batched else ()) + shape).astype("float32")
    expected = keras.applications.imagenet_utils.preprocess_input(x.copy(), data_format, mode)
    np.testing.assert_allclose(imagenet_utils.preprocess_input(x.copy(), data_format, mode), expected, atol=1e-4)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_input_traces_into_a_model(mode):
    keras = require_keras()
    x = np.random.default_rng(1).uniform(0, 255, (2, 5, 4, 3)).astype("float32")
    inputs = irtool.Input((5, 4, 3))
    model = irtool.Model(inputs, imagenet_utils.preprocess_input(inputs, mode=mode))
    expected = keras.applications.imagenet_utils.preprocess_input(x.copy(), mode=mode)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-4)


def test_integer_images_become_float_and_modes_are_checked():
    x = np.full((1, 2, 2, 3), 255, np.uint8)
    assert imagenet_utils.preprocess_input(x, mode="tf").dtype == np.float32
    with pytest.raises(ValueError, match="mode to be one of"):
        imagenet_utils.preprocess_input(x, mode="caff")


def test_decode_predictions_reads_keras_cache(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    (tmp_path / "models" / "imagenet_class_index.json").write_text(json.dumps(index))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet_utils, "_class_index", None)
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [7, 3]] = [0.9, 0.1]
    preds[1, 999] = 1.0
    decoded = imagenet_utils.decode_predictions(preds, top=2)
    assert decoded[0] == [("n00000007", "class_7", pytest.approx(0.9)), ("n00000003", "class_3", pytest.approx(0.1))]
    assert decoded[1][0][:2] == ("n00000999", "class_999")
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        imagenet_utils.decode_predictions(preds[:, :10])


def test_missing_cache_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet_utils, "_class_index", None)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "models" / "imagenet_class_index.json")):
        imagenet_utils.decode_predictions(np.zeros((1, 1000)))


def test_obtain_input_shape_follows_keras():
    keras_rule = require_keras().src.applications.imagenet_utils.obtain_input_shape

    cases = [
        (None, 224, 32, "channels_last", True, None),
        (None, 224, 32, "channels_first", False, None),
        ((64, 64, 3), 224, 32, "channels_last", False, "imagenet"),
        ((3, 96, 80), 224, 32, "channels_first", True, None),
        (None, 224, 32, "channels_last", True, "imagenet"),
    ]
    for case in cases:
        assert imagenet_utils.obtain_input_shape(*case) == tuple(keras_rule(*case)), case
    for bad in [
        ((16, 16, 3), 224, 32, "channels_last", False, None),
        ((64, 64, 1), 224, 32, "channels_last", False, "imagenet"),
    ]:
        with pytest.raises(ValueError):
            keras_rule(*bad)
        with pytest.raises(ValueError):
            imagenet_utils.obtain_input_shape(*bad)
