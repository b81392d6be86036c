"""irtool.applications.mobilenet_v2 against keras.applications.mobilenet_v2."""

import pytest

import irtool
from irtool.applications import mobilenet_v2
from tests.applications._family import FamilyChecks, exported
from tests.harness import require_keras

family = FamilyChecks(
    "mobilenet_v2", mobilenet_v2, {"input_shape": (32, 32, 3), "classes": 5, "classifier_activation": None}
)


def test_matches_keras_with_the_same_weights_and_exports_to_onnx(tmp_path):
    family.matches_keras("MobileNetV2", tmp_path, onnx=True, alpha=0.35)


def test_wide_variant_matches_keras(tmp_path):
    # alpha > 1 widens the last convolution too
    family.matches_keras("MobileNetV2", tmp_path, alpha=1.3, input_shape=(33, 35, 3))


def test_headless_model_and_pooling(tmp_path):
    family.headless_pooling("MobileNetV2", tmp_path, alpha=0.35)


def test_signature_exports_and_preprocessing():
    family.signatures(["MobileNetV2"])
    exported(mobilenet_v2, ["MobileNetV2"])
    family.preprocess_and_decode("tf")


def test_argument_checks(tmp_path):
    family.argument_checks("MobileNetV2", tmp_path)
    with pytest.raises(ValueError, match="alpha must be one of"):
        mobilenet_v2.MobileNetV2(weights="imagenet", alpha=0.3)
    with pytest.raises(ValueError, match=r"input_tensor.shape\[2\] must equal input_shape\[1\]"):
        mobilenet_v2.MobileNetV2(weights=None, input_tensor=irtool.Input((64, 64, 3)), input_shape=(32, 32, 3))


def test_input_tensor_starts_the_model_at_its_source():
    keras = require_keras()
    models = []
    for lib in (keras, irtool):
        inputs = lib.Input((96, 96, 3))
        x = lib.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
        model = lib.applications.MobileNetV2(weights=None, input_tensor=x, include_top=False, alpha=0.35)
        assert model.inputs[0] is inputs
        models.append(model)
    assert models[1].name == models[0].name
    assert [layer.name for layer in models[1].layers][:3] == ["input_layer", "rescaling", "Conv1"]


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": 0.35, "input_shape": (96, 96, 3)}, {"include_top": False, "alpha": 1.4, "input_shape": (160, 160, 3)}],
    ids=["top", "notop"],
)
def test_imagenet_names_the_file_keras_uses(kwargs, tmp_path, monkeypatch):
    family.imagenet_file("MobileNetV2", tmp_path, monkeypatch, **kwargs)
