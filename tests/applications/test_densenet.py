"""irtool.applications.densenet against keras.applications with the same weights."""

import numpy as np
import pytest

from irtool.applications import densenet
from tests.applications._parity import (
    KerasReference,
    assert_argument_checks,
    assert_imagenet_file_is_named,
    assert_matches_keras,
    assert_pooling_and_onnx,
    build,
)

BUILDERS = ["DenseNet121", "DenseNet169", "DenseNet201"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("densenet"))
    return {name: KerasReference(folder, name, 32, classes=3, classifier_activation=None) for name in BUILDERS}


@pytest.mark.parametrize("builder", BUILDERS)
def test_matches_keras_with_the_same_weights(builder, references):
    assert_matches_keras(build(builder, references[builder]), references[builder])


def test_pooling_and_onnx(references):
    assert_pooling_and_onnx("DenseNet121", references["DenseNet121"], "relu")


@pytest.mark.parametrize("builder", BUILDERS)
def test_argument_checks_match_keras(builder):
    assert_argument_checks(builder, 32)


@pytest.mark.parametrize("builder", BUILDERS)
def test_imagenet_weights_file_names(builder, monkeypatch, tmp_path):
    file_name = f"{builder.lower()}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert_imagenet_file_is_named(builder, 32, file_name, monkeypatch, tmp_path)


def test_preprocessing_is_torch_mode():
    x = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    expected = (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(densenet.preprocess_input(x.copy()), expected, atol=1e-5)
