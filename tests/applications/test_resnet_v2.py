"""irtool.applications.resnet_v2 against keras.applications with the same weights."""

import numpy as np
import pytest

from irtool.applications import resnet_v2
from tests.applications._parity import (
    KerasReference,
    assert_argument_checks,
    assert_imagenet_file_is_named,
    assert_matches_keras,
    assert_pooling_and_onnx,
    build,
)

BUILDERS = ["ResNet50V2", "ResNet101V2", "ResNet152V2"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("resnet_v2"))
    return {name: KerasReference(folder, name, 32, classes=3, classifier_activation=None) for name in BUILDERS}


@pytest.mark.parametrize("builder", BUILDERS)
def test_matches_keras_with_the_same_weights(builder, references):
    assert_matches_keras(build(builder, references[builder]), references[builder])


def test_pooling_and_onnx(references):
    assert_pooling_and_onnx("ResNet50V2", references["ResNet50V2"], "post_relu")


@pytest.mark.parametrize("builder", BUILDERS)
def test_argument_checks_match_keras(builder):
    assert_argument_checks(builder, 32)


@pytest.mark.parametrize("builder", BUILDERS)
def test_imagenet_weights_file_names(builder, monkeypatch, tmp_path):
    file_name = f"{builder.lower()}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert_imagenet_file_is_named(builder, 32, file_name, monkeypatch, tmp_path)


def test_preprocessing_is_tf_mode():
    x = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(resnet_v2.preprocess_input(x.copy()), x / 127.5 - 1, atol=1e-6)
