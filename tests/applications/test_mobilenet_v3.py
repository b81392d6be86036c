"""irtool.applications.mobilenet_v3 against keras.applications (MobileNetV3Small/Large)."""

import numpy as np
import pytest

from irtool.applications import mobilenet_v3
from tests.applications._family import FamilyChecks, exported

family = FamilyChecks(
    "mobilenet_v3", mobilenet_v3, {"input_shape": (32, 32, 3), "classes": 5, "classifier_activation": None}
)
BUILDERS = ["MobileNetV3Small", "MobileNetV3Large"]


def test_small_matches_keras_with_the_same_weights_and_exports_to_onnx(tmp_path):
    family.matches_keras("MobileNetV3Small", tmp_path, onnx=True, alpha=0.75)


def test_large_minimalistic_without_preprocessing_matches_keras(tmp_path):
    family.matches_keras(
        "MobileNetV3Large", tmp_path, minimalistic=True, include_preprocessing=False, classifier_activation=None
    )


def test_large_matches_keras(tmp_path):
    family.matches_keras("MobileNetV3Large", tmp_path, alpha=1.25, dropout_rate=0.0)


def test_headless_model_and_pooling(tmp_path):
    family.headless_pooling("MobileNetV3Small", tmp_path, minimalistic=True)


def test_hard_sigmoid_is_a_top_level_op_as_in_keras():
    model = mobilenet_v3.MobileNetV3Small(weights=None, input_shape=(32, 32, 3))
    names = [op.name for op in model.operations]
    assert "add" in names and "multiply" in names  # the x + 3 and * 1/6 of the first gate


def test_signature_exports_and_preprocessing():
    family.signatures(BUILDERS)
    exported(mobilenet_v3, BUILDERS)
    family.preprocess_and_decode(None)


def test_argument_checks(tmp_path):
    family.argument_checks("MobileNetV3Small", tmp_path)
    with pytest.raises(ValueError, match="alpha can be one of"):
        mobilenet_v3.MobileNetV3Large(weights="imagenet", minimalistic=True, alpha=0.75)


def test_unknown_input_size_runs_on_any_size():
    model = mobilenet_v3.MobileNetV3Small(weights=None, include_top=False, pooling="avg")
    assert model.input_shape == (None, None, None, 3)
    assert model.predict(np.zeros((1, 40, 48, 3), "float32"), verbose=0).shape == (1, 576)


@pytest.mark.parametrize(
    "builder, kwargs",
    [
        ("MobileNetV3Small", {"alpha": 0.75}),
        ("MobileNetV3Large", {"include_top": False, "minimalistic": True, "input_shape": (32, 32, 3)}),
    ],
    ids=["small-top", "large-minimalistic-notop"],
)
def test_imagenet_names_the_file_keras_uses(builder, kwargs, tmp_path, monkeypatch):
    family.imagenet_file(builder, tmp_path, monkeypatch, **kwargs)
