"""irtool.applications.mobilenet (MobileNet v1) against keras.applications.mobilenet."""

import pytest

from irtool.applications import mobilenet
from tests.applications._family import FamilyChecks, exported

family = FamilyChecks("mobilenet", mobilenet, {"input_shape": (32, 32, 3), "classes": 5, "classifier_activation": None})


def test_matches_keras_with_the_same_weights_and_exports_to_onnx(tmp_path):
    family.matches_keras("MobileNet", tmp_path, onnx=True, alpha=0.5)


def test_depth_multiplier_and_non_square_input_match_keras(tmp_path):
    family.matches_keras("MobileNet", tmp_path, alpha=0.25, depth_multiplier=2, input_shape=(40, 32, 3))


def test_headless_model_and_pooling(tmp_path):
    family.headless_pooling("MobileNet", tmp_path, alpha=0.25)


def test_signature_exports_and_preprocessing():
    family.signatures(["MobileNet"])
    exported(mobilenet, ["MobileNet"])
    family.preprocess_and_decode("tf")


def test_argument_checks(tmp_path):
    family.argument_checks("MobileNet", tmp_path)
    with pytest.raises(ValueError, match="depth multiplier must be 1"):
        mobilenet.MobileNet(weights="imagenet", depth_multiplier=2)
    with pytest.raises(ValueError, match="alpha can be one of"):
        mobilenet.MobileNet(weights="imagenet", alpha=0.3)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"include_top": False, "alpha": 0.25, "input_shape": (128, 128, 3)}],
    ids=["top", "notop"],
)
def test_imagenet_names_the_file_keras_uses(kwargs, tmp_path, monkeypatch):
    family.imagenet_file("MobileNet", tmp_path, monkeypatch, **kwargs)
