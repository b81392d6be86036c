"""Shared checks of the application tests (part 1): an irtool application against the same
keras.applications builder given the same weights, written by Keras itself."""

from __future__ import annotations

import contextlib
import os
import sys

import h5py
import numpy as np
import pytest

import irtool
from irtool import applications
from tests.harness import assert_onnx_parity, require_keras


class KerasReference:
    """A Keras application built once (fresh auto-naming counters) and its weights, saved by
    Keras in both the Keras 3 ``.weights.h5`` layout and the legacy ``.h5`` layout."""

    def __init__(self, folder, builder: str, size: int, **kwargs):
        keras = require_keras()
        keras.backend.clear_session()
        self.builder, self.size, self.kwargs = builder, size, kwargs
        self.images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
        self.weights_path = os.path.join(folder, f"{builder}.weights.h5")
        self._folder = folder
        with one_torch_thread():
            self.model = getattr(keras.applications, builder)(weights=None, input_shape=(size, size, 3), **kwargs)
            self.model.save_weights(self.weights_path)
            self.outputs = np.asarray(self.model.predict(self.images, verbose=0))

    def legacy_h5(self) -> str:
        """The weights in Keras' legacy HDF5 layout, written by Keras' own legacy writer."""
        legacy_h5_format = require_keras().src.legacy.saving.legacy_h5_format
        path = os.path.join(self._folder, f"{self.builder}.h5")
        if not os.path.exists(path):
            with h5py.File(path, "w") as h5file:
                legacy_h5_format.save_weights_to_hdf5_group(h5file, self.model)
        return path

    def features(self, layer_name: str) -> np.ndarray:
        """The Keras model's output of ``layer_name`` on the images."""
        keras = require_keras()
        submodel = keras.Model(self.model.inputs, self.model.get_layer(layer_name).output)
        with one_torch_thread():
            return np.asarray(submodel.predict(self.images, verbose=0))


@contextlib.contextmanager
def one_torch_thread():
    """Keras' torch backend on one thread: on a small shared machine its thread pool spins against
    the other processes and builds the large applications about five times slower."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build(builder: str, reference: KerasReference, **kwargs):
    """The irtool application with the reference's arguments (overridden by ``kwargs``), from fresh counters."""
    irtool.backend.clear_session()
    arguments = {"input_shape": (reference.size, reference.size, 3), **reference.kwargs, **kwargs}
    arguments.setdefault("weights", reference.weights_path)
    return getattr(applications, builder)(**arguments)


def assert_matches_keras(model, reference: KerasReference, atol: float = 1e-4) -> None:
    """Same layer names in the same order, same weight paths and shapes, same predictions
    (``atol`` relative to the largest output)."""
    keras_model = reference.model
    assert [layer.name for layer in model.layers] == [layer.name for layer in keras_model.layers]
    assert [(w.path, tuple(w.shape)) for w in model.weights] == [(w.path, tuple(w.shape)) for w in keras_model.weights]
    outputs = model.predict(reference.images, verbose=0)
    scale = max(1.0, float(np.abs(reference.outputs).max()))
    np.testing.assert_allclose(outputs, reference.outputs, atol=atol * scale, rtol=0)


def assert_pooling_and_onnx(builder: str, reference: KerasReference, last_layer: str, atol: float = 1e-4) -> None:
    """``include_top=False`` with ``pooling="avg"``/``"max"``, loaded by name from the legacy
    file of the reference (whose classifier the pooled model lacks), against Keras' features of
    ``last_layer`` pooled in NumPy; the average-pooled model also through ONNX Runtime."""
    features = reference.features(last_layer)
    scale = max(1.0, float(np.abs(features).max()))
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        model = build(builder, reference, include_top=False, pooling=pooling, weights=None)
        model.load_weights(reference.legacy_h5(), by_name=True)
        assert model.output.shape == (None, features.shape[-1])
        outputs = model.predict(reference.images, verbose=0)
        np.testing.assert_allclose(outputs, reduce(features, axis=(1, 2)), atol=atol * scale, rtol=0)
        if pooling == "avg":
            assert_onnx_parity(model, reference.images, atol=atol * scale, rtol=1e-4)


def assert_argument_checks(builder: str, min_size: int) -> None:
    """Keras' refusals, from irtool and from Keras alike: a weights argument that is neither a
    file nor ``"imagenet"``, ImageNet weights with other than 1000 classes, too small an input."""
    keras = require_keras()
    cases = [
        ({"weights": "no_such_weights.h5"}, "The `weights` argument should be either"),
        ({"weights": "imagenet", "classes": 10}, "`classes` should be 1000"),
        (
            {"weights": None, "include_top": False, "input_shape": (min_size - 1, min_size - 1, 3)},
            f"Input size must be at least {min_size}x{min_size}",
        ),
    ]
    for kwargs, message in cases:
        for library in (applications, keras.applications):
            with pytest.raises(ValueError, match=message):
                getattr(library, builder)(**kwargs)


def assert_imagenet_file_is_named(builder: str, min_size: int, file_name: str, monkeypatch, tmp_path) -> None:
    """With an empty Keras cache folder, ``weights="imagenet"`` says which file to put where."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    irtool.backend.clear_session()
    expected = os.path.join(str(tmp_path), "models", file_name)
    with pytest.raises(FileNotFoundError, match=f"Download https://storage.googleapis.com/.*{file_name}") as info:
        getattr(applications, builder)(weights="imagenet", include_top=False, input_shape=(min_size, min_size, 3))
    assert f"save it as {expected}" in str(info.value)
