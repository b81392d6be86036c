"""irtool.applications.inception_v3 against keras.applications with the same weights."""

import numpy as np
import pytest

from irtool.applications import inception_v3
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
        str(tmp_path_factory.mktemp("inception_v3")), "InceptionV3", 75, classes=3, classifier_activation=None
    )


def test_matches_keras_with_the_same_weights(reference):
    assert_matches_keras(build("InceptionV3", reference), reference)


def test_pooling_and_onnx(reference):
    assert_pooling_and_onnx("InceptionV3", reference, "mixed10")


def test_argument_checks_match_keras():
    assert_argument_checks("InceptionV3", 75)


def test_imagenet_weights_file_name(monkeypatch, tmp_path):
    assert_imagenet_file_is_named(
        "InceptionV3", 75, "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", monkeypatch, tmp_path
    )


def test_preprocessing_is_tf_mode():
    x = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(inception_v3.preprocess_input(x.copy()), x / 127.5 - 1, atol=1e-6)
