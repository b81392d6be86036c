"""irtool.applications.efficientnet (EfficientNetB0-B7) against keras.applications.efficientnet."""

import pytest

from irtool.applications import efficientnet
from tests.applications._family import FamilyChecks, exported
from tests.applications._reference import variant

family = FamilyChecks(
    "efficientnet", efficientnet, {"input_shape": (32, 32, 3), "classes": 5, "classifier_activation": None}
)
BUILDERS = [f"EfficientNetB{i}" for i in range(8)]


def test_b0_matches_keras_with_the_same_weights_and_exports_to_onnx(tmp_path):
    ours, _ = family.matches_keras("EfficientNetB0", tmp_path, onnx=True)
    # drop-connect: a per-example Dropout named like Keras', its rate growing with the block index
    drops = [layer for layer in ours.layers if layer.name.endswith("_drop")]
    assert drops[0].name == "block2b_drop" and drops[0].rate == pytest.approx(0.2 * 2 / 16)


@pytest.mark.parametrize("builder", [variant(name, heavy=name != "EfficientNetB1") for name in BUILDERS[1:]])
def test_variant_matches_keras(builder, tmp_path):
    family.matches_keras(builder, tmp_path)


def test_headless_model_and_pooling(tmp_path):
    family.headless_pooling("EfficientNetB0", tmp_path)


def test_signature_exports_and_preprocessing():
    family.signatures(BUILDERS)
    exported(efficientnet, BUILDERS)
    family.preprocess_and_decode(None)


def test_argument_checks(tmp_path):
    family.argument_checks("EfficientNetB0", tmp_path)


@pytest.mark.parametrize(
    "builder, kwargs",
    [("EfficientNetB0", {"include_top": False, "input_shape": (32, 32, 3)}), ("EfficientNetB0", {})],
    ids=["b0-notop", "b0-top"],
)
def test_imagenet_names_the_file_keras_uses(builder, kwargs, tmp_path, monkeypatch):
    family.imagenet_file(builder, tmp_path, monkeypatch, **kwargs)
