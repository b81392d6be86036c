"""irtool.applications.nasnet against keras.applications.nasnet. Keras refuses NASNetMobile on
its torch backend, so its reference is Keras' ``NASNet`` with NASNetMobile's arguments."""

import functools

import pytest

from irtool.applications import nasnet
from tests.applications._family import FamilyChecks, exported
from tests.applications._reference import variant
from tests.harness import require_keras


def _keras_nasnet_mobile(input_shape=None, name="nasnet_mobile", **kwargs):
    return require_keras().src.applications.nasnet.NASNet(
        input_shape,
        penultimate_filters=1056,
        num_blocks=4,
        stem_block_filters=32,
        skip_reduction=False,
        filter_multiplier=2,
        default_size=224,
        name=name,
        **kwargs,
    )


family = FamilyChecks(
    "nasnet",
    nasnet,
    {"input_shape": (32, 32, 3), "classes": 5, "classifier_activation": None},
    keras_builders={"NASNetMobile": _keras_nasnet_mobile},
)


def test_mobile_matches_keras_with_the_same_weights_and_exports_to_onnx(tmp_path):
    ours, reference = family.matches_keras("NASNetMobile", tmp_path, onnx=True)
    # Keras' name scopes reach the weights' paths
    assert "normal_A_block_0/block_1/separable_conv_block_normal_left1_0/" in " ".join(reference.weight_paths)


@pytest.mark.parametrize("builder", [variant("NASNetLarge", heavy=True)])
def test_large_matches_keras(builder, tmp_path):
    family.matches_keras(builder, tmp_path)


def test_headless_model_and_pooling(tmp_path):
    family.headless_pooling("NASNetMobile", tmp_path)


def test_signature_exports_and_preprocessing():
    keras = require_keras()
    family.signatures(["NASNetLarge"])
    exported(nasnet, ["NASNetMobile", "NASNetLarge"])
    # Keras' NASNetMobile cannot be called on torch, but its signature can be read
    family.keras_builders["NASNetMobile"] = keras.applications.NASNetMobile
    try:
        family.signatures(["NASNetMobile"])
    finally:
        family.keras_builders["NASNetMobile"] = _keras_nasnet_mobile
    family.preprocess_and_decode("tf")


def test_argument_checks(tmp_path):
    family.argument_checks("NASNetMobile", tmp_path)
    with pytest.raises(ValueError, match="must be static"):
        nasnet.NASNetMobile(weights="imagenet", include_top=False, input_shape=(None, None, 3))


@pytest.mark.parametrize("include_top", [False], ids=["mobile-notop"])
def test_imagenet_names_the_file_keras_uses(include_top, tmp_path, monkeypatch):
    family.imagenet_file("NASNetMobile", tmp_path, monkeypatch, include_top=include_top, input_shape=(32, 32, 3))


def test_nasnet_needs_a_multiple_of_24_filters():
    with pytest.raises(ValueError, match="multiple of 24"):
        functools.partial(nasnet.NASNet, penultimate_filters=1000)(weights=None, input_shape=(32, 32, 3))
