"""irtool.applications.resnet (and Keras' public module resnet50) against keras.applications
with the same weights."""

import numpy as np
import pytest

from irtool import applications
from irtool.applications import resnet, resnet50
from tests.applications._parity import (
    KerasReference,
    assert_argument_checks,
    assert_imagenet_file_is_named,
    assert_matches_keras,
    assert_pooling_and_onnx,
    build,
)

BUILDERS = ["ResNet50", "ResNet101", "ResNet152"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("resnet"))
    return {name: KerasReference(folder, name, 32, classes=3, classifier_activation=None) for name in BUILDERS}


@pytest.mark.parametrize("builder", BUILDERS)
def test_matches_keras_with_the_same_weights(builder, references):
    assert_matches_keras(build(builder, references[builder]), references[builder])


def test_pooling_and_onnx(references):
    assert_pooling_and_onnx("ResNet50", references["ResNet50"], "conv5_block3_out")


def test_keras_public_modules():
    assert resnet50.ResNet50 is resnet.ResNet50 is applications.ResNet50
    assert resnet50.preprocess_input is resnet.preprocess_input
    x = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        resnet50.preprocess_input(x.copy()), x[..., ::-1] - [103.939, 116.779, 123.68], atol=1e-4
    )


@pytest.mark.parametrize("builder", BUILDERS)
def test_argument_checks_match_keras(builder):
    assert_argument_checks(builder, 32)


@pytest.mark.parametrize("builder", BUILDERS)
def test_imagenet_weights_file_names(builder, monkeypatch, tmp_path):
    file_name = f"{builder.lower()}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert_imagenet_file_is_named(builder, 32, file_name, monkeypatch, tmp_path)


def test_imagenet_top_file_name_and_input_shape(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5"):
        applications.ResNet50(weights="imagenet")
    with pytest.raises(ValueError, match=r"`input_shape` should be \(224, 224, 3\)"):
        applications.ResNet50(weights="imagenet", input_shape=(64, 64, 3))
