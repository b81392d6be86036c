"""irtool.applications.vgg16 / vgg19 against keras.applications with the same weights."""

import numpy as np
import pytest

import irtool
from irtool import layers
from irtool.applications import vgg16, vgg19
from tests.applications._parity import (
    KerasReference,
    assert_argument_checks,
    assert_imagenet_file_is_named,
    assert_matches_keras,
    assert_pooling_and_onnx,
    build,
)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("vgg"))
    return {
        name: KerasReference(folder, name, 32, classes=3, classifier_activation=None) for name in ("VGG16", "VGG19")
    }


@pytest.mark.parametrize("builder", ["VGG16", "VGG19"])
def test_matches_keras_with_the_same_weights(builder, references):
    model = build(builder, references[builder])
    assert_matches_keras(model, references[builder])
    assert model.name == builder.lower()


def test_pooling_and_onnx(references):
    assert_pooling_and_onnx("VGG16", references["VGG16"], "block5_pool")


@pytest.mark.parametrize("builder", ["VGG16", "VGG19"])
def test_argument_checks_match_keras(builder):
    assert_argument_checks(builder, 32)


def test_imagenet_weights_file_names(monkeypatch, tmp_path):
    assert_imagenet_file_is_named(
        "VGG16", 32, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", monkeypatch, tmp_path
    )
    assert_imagenet_file_is_named(
        "VGG19", 32, "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", monkeypatch, tmp_path
    )


def test_preprocessing_is_caffe_mode():
    x = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    for module in (vgg16, vgg19):
        np.testing.assert_allclose(
            module.preprocess_input(x.copy()), x[..., ::-1] - [103.939, 116.779, 123.68], atol=1e-4
        )


def test_input_tensor_grows_the_model_from_its_source_input(references):
    # As in Keras: the model's input is the Input the tensor was computed from.
    reference = references["VGG16"]
    inputs = irtool.Input((32, 32, 3), name="raw")
    halved = layers.Rescaling(0.5)(inputs)
    model = vgg16.VGG16(weights=None, include_top=False, input_tensor=halved)
    assert model.inputs[0] is inputs and model.layers[1].name == "rescaling"
    model.load_weights(reference.legacy_h5(), by_name=True)
    expected = reference.features("block5_pool")
    np.testing.assert_allclose(
        model.predict(reference.images * 2, verbose=0), expected, atol=1e-4 * np.abs(expected).max()
    )
