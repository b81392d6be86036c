"""irtool.applications.convnext against keras.applications.convnext."""

import pytest

import irtool
from irtool.applications import convnext
from tests.applications._family import FamilyChecks, exported
from tests.applications._reference import variant

family = FamilyChecks("convnext", convnext, {"input_shape": (32, 32, 3), "classes": 5, "classifier_activation": None})
BUILDERS = ["ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"]


def test_tiny_matches_keras_with_the_same_weights_and_exports_to_onnx(tmp_path):
    ours, _ = family.matches_keras("ConvNeXtTiny", tmp_path, onnx=True)
    # the stem and the downsampling blocks are nested Sequential models, as in Keras
    assert isinstance(ours.get_layer("convnext_tiny_stem"), irtool.Sequential)


@pytest.mark.parametrize("builder", [variant(name, heavy=True) for name in BUILDERS[1:]])
def test_variant_matches_keras(builder, tmp_path):
    family.matches_keras(builder, tmp_path)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_headless_model_with_pooling_matches_keras(pooling, tmp_path):
    # the headless model ends in a LayerNormalization after the pooling, so compare with Keras
    family.matches_keras("ConvNeXtTiny", tmp_path, include_top=False, pooling=pooling, include_preprocessing=False)


def test_signature_exports_and_preprocessing():
    family.signatures(BUILDERS)
    exported(convnext, BUILDERS)
    family.preprocess_and_decode(None)


def test_argument_checks(tmp_path, monkeypatch):
    family.argument_checks("ConvNeXtTiny", tmp_path)
    with pytest.raises(ValueError, match='does not match weights variant "convnext_tiny"'):
        convnext.ConvNeXtTiny(weights="imagenet", include_top=False, input_shape=(32, 32, 3), name="backbone")
    monkeypatch.setattr(irtool.backend, "image_data_format", lambda: "channels_first")
    with pytest.raises(ValueError, match="does not support the `channels_first`"):
        convnext.ConvNeXtTiny(weights=None)


@pytest.mark.parametrize("kwargs", [{"include_top": False, "input_shape": (32, 32, 3)}], ids=["tiny-notop"])
def test_imagenet_names_the_file_keras_uses(kwargs, tmp_path, monkeypatch):
    family.imagenet_file("ConvNeXtTiny", tmp_path, monkeypatch, **kwargs)
