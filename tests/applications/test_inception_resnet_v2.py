"""irtool.applications.inception_resnet_v2 against keras.applications with the same weights."""

import numpy as np
import pytest

import irtool
from irtool.applications import inception_resnet_v2
from tests.applications._parity import (
    KerasReference,
    assert_argument_checks,
    assert_imagenet_file_is_named,
    assert_matches_keras,
    assert_pooling_and_onnx,
    build,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return KerasReference(
        str(tmp_path_factory.mktemp("inception_resnet_v2")),
        "InceptionResNetV2",
        75,
        classes=3,
        classifier_activation=None,
    )


def test_matches_keras_with_the_same_weights(reference):
    assert_matches_keras(build("InceptionResNetV2", reference), reference)


def test_pooling_and_onnx(reference):
    assert_pooling_and_onnx("InceptionResNetV2", reference, "conv_7b_ac")


def test_argument_checks_match_keras():
    assert_argument_checks("InceptionResNetV2", 75)


def test_imagenet_weights_file_name(monkeypatch, tmp_path):
    assert_imagenet_file_is_named(
        "InceptionResNetV2",
        75,
        "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        monkeypatch,
        tmp_path,
    )


def test_preprocessing_is_tf_mode():
    x = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(inception_resnet_v2.preprocess_input(x.copy()), x / 127.5 - 1, atol=1e-6)


def test_a_keras_file_of_the_model_loads_without_custom_objects(reference, tmp_path):
    """Keras writes CustomScaleLayer under keras.src.applications.inception_resnet_v2."""
    path = str(tmp_path / "inception_resnet_v2.keras")
    reference.model.save(path)
    model = irtool.saving.load_model(path)
    assert sum(type(layer).__name__ == "CustomScaleLayer" for layer in model.layers) == 40
    outputs = model.predict(reference.images, verbose=0)
    np.testing.assert_allclose(outputs, reference.outputs, atol=1e-4 * max(1.0, float(np.abs(reference.outputs).max())))
