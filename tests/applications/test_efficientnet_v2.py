"""irtool.applications.efficientnet_v2 against keras.applications.efficientnet_v2."""

import pytest

from irtool.applications import efficientnet_v2
from tests.applications._family import FamilyChecks, exported
from tests.applications._reference import variant

family = FamilyChecks(
    "efficientnet_v2", efficientnet_v2, {"input_shape": (32, 32, 3), "classes": 5, "classifier_activation": None}
)
BUILDERS = [f"EfficientNetV2{v}" for v in ["B0", "B1", "B2", "B3", "S", "M", "L"]]


def test_b0_matches_keras_with_the_same_weights_and_exports_to_onnx(tmp_path):
    family.matches_keras("EfficientNetV2B0", tmp_path, onnx=True)


def test_b0_without_preprocessing_matches_keras(tmp_path):
    family.matches_keras("EfficientNetV2B0", tmp_path, include_preprocessing=False, classifier_activation=None)


@pytest.mark.parametrize("builder", [variant(name, heavy=True) for name in BUILDERS[1:]])
def test_variant_matches_keras(builder, tmp_path):
    family.matches_keras(builder, tmp_path)


def test_headless_model_and_pooling(tmp_path):
    family.headless_pooling("EfficientNetV2B0", tmp_path)


def test_signature_exports_and_preprocessing():
    family.signatures(BUILDERS)
    exported(efficientnet_v2, BUILDERS)
    family.preprocess_and_decode(None)


def test_argument_checks(tmp_path):
    family.argument_checks("EfficientNetV2B0", tmp_path)


def test_renamed_model_keeps_its_variant():
    # Keras looks the stage table up by the model's name; irtool by the variant
    model = efficientnet_v2.EfficientNetV2B0(weights=None, input_shape=(32, 32, 3), name="backbone")
    assert model.name == "backbone" and model.get_layer("block6h_add") is not None


@pytest.mark.parametrize(
    "builder, kwargs",
    [("EfficientNetV2B0", {"include_top": False, "input_shape": (32, 32, 3)}), ("EfficientNetV2B0", {})],
    ids=["b0-notop", "b0-top"],
)
def test_imagenet_names_the_file_keras_uses(builder, kwargs, tmp_path, monkeypatch):
    family.imagenet_file(builder, tmp_path, monkeypatch, **kwargs)
