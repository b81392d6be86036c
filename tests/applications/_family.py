"""The checks every application family's test module runs, given its modules and builders.

``FamilyChecks(keras_module, our_module, small)`` holds the family; its methods are the bodies
of the tests in tests/applications/test_<family>.py: Keras parity per builder (with ONNX Runtime
parity where asked), the headless model with ``pooling`` None/avg/max, Keras' signatures, the
argument checks and the ImageNet file names Keras would download."""

from __future__ import annotations

import numpy as np
import pytest

import irtool
from tests.applications._reference import (
    assert_matches,
    assert_missing_file_named,
    assert_same_signature,
    build_ours,
    keras_reference,
    keras_weights_file_name,
)
from tests.harness import assert_onnx_parity, require_keras


class FamilyChecks:
    def __init__(self, keras_module: str, our_module, small: dict, keras_builders=None):
        self.keras_module = keras_module
        self.ours = our_module
        self.small = small
        self.keras_builders = keras_builders or {}

    def keras(self, builder_name):
        if builder_name in self.keras_builders:
            return self.keras_builders[builder_name]
        applications = require_keras().applications
        # Keras exports some builders (MobileNetV3*) only from keras.applications itself
        return getattr(getattr(applications, self.keras_module), builder_name, None) or getattr(
            applications, builder_name
        )

    def matches_keras(self, builder_name, tmp_path, onnx=False, randomize_statistics=True, output_layer=None, **kwargs):
        kwargs = {**self.small, **kwargs}
        reference = keras_reference(
            self.keras(builder_name),
            tmp_path,
            randomize_statistics=randomize_statistics,
            output_layer=output_layer,
            **kwargs,
        )
        ours = build_ours(getattr(self.ours, builder_name), reference, **kwargs)
        assert_matches(ours, reference)
        if onnx:
            scale = max(1.0, float(np.abs(reference.outputs).max()))
            assert_onnx_parity(ours, reference.images, atol=1e-4 * scale, rtol=1e-4)
        return ours, reference

    def headless_pooling(self, builder_name, tmp_path, **kwargs):
        """``include_top=False``: the feature map as Keras', and ``pooling`` avg/max are its
        spatial mean and max (the same weights file loads into all three)."""
        kwargs = {**self.small, "include_top": False, **kwargs}
        kwargs.pop("classes", None)
        _, reference = self.matches_keras(builder_name, tmp_path, **kwargs)
        spatial = (1, 2)
        for pooling, reduce in [("avg", np.mean), ("max", np.max)]:
            pooled = build_ours(getattr(self.ours, builder_name), reference, pooling=pooling, **kwargs)
            got = pooled.predict(reference.images, verbose=0)
            want = reduce(reference.outputs, axis=spatial)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))

    def signatures(self, builder_names):
        for name in builder_names:
            assert_same_signature(getattr(self.ours, name), self.keras(name))

    def argument_checks(self, builder_name, tmp_path):
        builder = getattr(self.ours, builder_name)
        with pytest.raises(ValueError, match="The `weights` argument should be either"):
            builder(weights=str(tmp_path / "missing.weights.h5"))
        with pytest.raises(ValueError, match="`classes` should be 1000"):
            builder(weights="imagenet", classes=5)
        with pytest.raises(ValueError, match="at least 32x32"):
            builder(weights=None, include_top=False, input_shape=(16, 16, 3))

    def imagenet_file(self, builder_name, tmp_path, monkeypatch, **kwargs):
        """The file ``weights="imagenet"`` looks for in Keras' cache folder is the one Keras'
        own builder asks for."""
        file_name = keras_weights_file_name(self.keras(builder_name), **kwargs)
        assert_missing_file_named(getattr(self.ours, builder_name), file_name, tmp_path, monkeypatch, **kwargs)

    def preprocess_and_decode(self, mode):
        """``preprocess_input`` as Keras' (``mode`` None: the identity); ``decode_predictions``
        checks its input as Keras does."""
        x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
        theirs = getattr(require_keras().applications, self.keras_module)
        np.testing.assert_allclose(self.ours.preprocess_input(x.copy()), theirs.preprocess_input(x.copy()), atol=1e-5)
        if mode is None:
            assert self.ours.preprocess_input(x) is x
        with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
            self.ours.decode_predictions(np.zeros((1, 10)))


def exported(module, names):
    """Every builder is reachable as ``irtool.applications.<name>`` too."""
    for name in names:
        assert getattr(irtool.applications, name) is getattr(module, name)
