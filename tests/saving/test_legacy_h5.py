"""Keras' legacy HDF5 weights (``.h5``): files written by Keras' own legacy writer load into
irtool models topologically or by name; mismatches and unsafe files are refused before any
weight changes."""

import os
import shutil

import h5py
import numpy as np
import pytest

import irtool
from irtool import applications, layers
from irtool.saving.h5_weights import WeightsFormatError
from tests.applications._parity import KerasReference, build
from tests.harness import require_keras


@pytest.fixture(scope="module")
def resnet50_notop(tmp_path_factory):
    return KerasReference(str(tmp_path_factory.mktemp("legacy_resnet")), "ResNet50", 32, include_top=False)


@pytest.fixture(scope="module")
def vgg16_top(tmp_path_factory):
    return KerasReference(str(tmp_path_factory.mktemp("legacy_vgg")), "VGG16", 32, classes=4)


def _keras_legacy_file(keras_model, path, randomize=True):
    """Keras' legacy writer's file of ``keras_model``, after giving the model random weights (no
    zero-initialised bias, so every loaded value shows) unless ``randomize`` is False."""
    rng = np.random.default_rng(3)
    for weight in keras_model.weights if randomize else ():
        weight.assign(rng.uniform(0.5, 1.5, tuple(weight.shape)).astype("float32"))
    with h5py.File(path, "w") as h5file:
        require_keras().src.legacy.saving.legacy_h5_format.save_weights_to_hdf5_group(h5file, keras_model)
    return str(path)


@pytest.mark.parametrize("reference", ["resnet50_notop", "vgg16_top"])
def test_keras_written_legacy_files_load_topologically_and_by_name(reference, request):
    reference = request.getfixturevalue(reference)
    path = reference.legacy_h5()
    for by_name in (False, True):
        model = build(reference.builder, reference, weights=None)
        model.load_weights(path, by_name=by_name)
        np.testing.assert_allclose(model.predict(reference.images, verbose=0), reference.outputs, atol=1e-4, rtol=1e-4)


def test_topological_loading_ignores_names_and_by_name_needs_them(resnet50_notop, tmp_path):
    # The same architecture with other layer names (as auto names differ between sessions).
    path = resnet50_notop.legacy_h5()
    irtool.backend.clear_session()
    renamed = applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    for layer in renamed.layers:
        layer.name = f"other_{layer.name}"
    before = [w.numpy().copy() for w in renamed.weights]
    renamed.load_weights(path, by_name=True)  # nothing matches by name: nothing changes
    for old, w in zip(before, renamed.weights):
        np.testing.assert_array_equal(old, w.numpy())
    renamed.load_weights(path)
    np.testing.assert_allclose(renamed.predict(resnet50_notop.images, verbose=0), resnet50_notop.outputs, atol=1e-4)


def test_keras_reads_back_what_irtool_loaded(vgg16_top):
    # Round trip through Keras: the weights irtool took from the legacy file are Keras' own.
    model = build("VGG16", vgg16_top, weights=vgg16_top.legacy_h5())
    for ours, theirs in zip(model.weights, vgg16_top.model.weights):
        np.testing.assert_array_equal(ours.numpy(), np.asarray(theirs.numpy()))


def test_imagenet_weights_come_from_the_keras_cache_folder(resnet50_notop, vgg16_top, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    shutil.copy(
        resnet50_notop.legacy_h5(), tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    irtool.backend.clear_session()
    model = applications.ResNet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    np.testing.assert_allclose(model.predict(resnet50_notop.images, verbose=0), resnet50_notop.outputs, atol=1e-4)
    # The notop VGG16 file under Keras' name serves a pooled feature extractor, by order.
    keras = require_keras()
    features = keras.Model(vgg16_top.model.inputs, vgg16_top.model.get_layer("block5_pool").output)
    _keras_legacy_file(features, tmp_path / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", False)
    irtool.backend.clear_session()
    model = applications.VGG16(weights="imagenet", include_top=False, pooling="max", input_shape=(32, 32, 3))
    expected = np.asarray(features.predict(vgg16_top.images, verbose=0)).max(axis=(1, 2))
    np.testing.assert_allclose(model.predict(vgg16_top.images, verbose=0), expected, atol=1e-4, rtol=1e-5)


def _small_keras_and_irtool():
    keras = require_keras()

    def make(lib, units=4):
        inputs = lib.Input((3,))
        hidden = lib.layers.Dense(units, name="hidden")(inputs)
        normed = lib.layers.BatchNormalization(name="norm")(hidden)
        return lib.Model(inputs, lib.layers.Dense(2, name="out")(normed))

    return keras, make


def test_mismatches_raise_naming_layer_and_shapes_and_change_nothing(tmp_path):
    keras, make = _small_keras_and_irtool()
    path = _keras_legacy_file(make(keras, units=5), tmp_path / "m.h5")
    model = make(irtool)
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(
        ValueError, match=r"Shape mismatch in layer #0 \(named hidden .*hidden/kernel.*\(3, 4\).*\(3, 5\)"
    ):
        model.load_weights(path)
    with pytest.raises(ValueError, match=r"Shape mismatch in layer #1 \(named hidden\)"):
        model.load_weights(path, by_name=True)
    for old, w in zip(before, model.weights):
        np.testing.assert_array_equal(old, w.numpy())
    with pytest.warns(UserWarning, match="Skipping loading weights: Shape mismatch.*hidden/kernel"):
        model.load_weights(path, skip_mismatch=True)
    # Only the output bias has the shape the model expects: it alone was loaded.
    with h5py.File(path) as h5file:
        saved_bias = h5file["out"]["out"]["bias"][()]
    for old, w in zip(before, model.weights):
        expected = saved_bias if w.path == "out/bias" else old
        np.testing.assert_array_equal(w.numpy(), expected)
    assert not np.array_equal(saved_bias, before[-1])


def test_layer_and_weight_count_mismatches(tmp_path):
    keras, make = _small_keras_and_irtool()
    inputs = keras.Input((3,))
    smaller = keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs))
    path = _keras_legacy_file(smaller, tmp_path / "small.h5")
    with pytest.raises(
        ValueError, match="Layer count mismatch when loading weights from file. Model expected 3 layers, found 1"
    ):
        make(irtool).load_weights(path)
    no_bias = keras.Model(inputs, keras.layers.Dense(4, use_bias=False, name="hidden")(inputs))
    path = _keras_legacy_file(no_bias, tmp_path / "no_bias.h5")
    with pytest.raises(ValueError, match=r"Weight count mismatch for layer #1 \(named hidden\). Layer expects 2"):
        make(irtool).load_weights(path, by_name=True)
    with pytest.warns(UserWarning, match="Weight count mismatch"):
        make(irtool).load_weights(path, by_name=True, skip_mismatch=True)


def test_by_name_is_only_for_legacy_files(tmp_path):
    _, make = _small_keras_and_irtool()
    model = make(irtool)
    model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match="`by_name` only supports loading legacy '.h5' or '.hdf5' files"):
        model.load_weights(tmp_path / "m.weights.h5", by_name=True)


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    keras, make = _small_keras_and_irtool()
    path = _keras_legacy_file(make(keras), tmp_path / "m.hdf5")
    model = make(irtool)
    model.load_weights(path)  # the .hdf5 suffix is read too
    # A weight that is a soft link to another dataset is not followed.
    linked = tmp_path / "linked.h5"
    shutil.copy(path, linked)
    with h5py.File(linked, "a") as h5file:
        del h5file["out"]["out"]["bias"]
        h5file["out"]["out"]["bias"] = h5py.SoftLink("/hidden/hidden/bias")
    with pytest.raises(WeightsFormatError, match="bias is a SoftLink; links are not followed"):
        model.load_weights(linked)
    # A Keras 3 weights file under a legacy name is not mistaken for one.
    model.save_weights(tmp_path / "k3.weights.h5")
    os.rename(tmp_path / "k3.weights.h5", tmp_path / "k3.h5")
    with pytest.raises(WeightsFormatError, match="not a Keras legacy HDF5 weights file"):
        model.load_weights(tmp_path / "k3.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(WeightsFormatError, match="text.h5 is not a valid HDF5 file"):
        model.load_weights(tmp_path / "text.h5")
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "missing.h5")


def test_layers_without_weights_in_the_file_are_skipped_like_keras(tmp_path):
    keras, _ = _small_keras_and_irtool()
    inputs = keras.Input((2, 2, 1))
    flat = keras.layers.Flatten(name="flat")(inputs)
    keras_model = keras.Model(inputs, keras.layers.Dense(3, name="d")(flat))
    path = _keras_legacy_file(keras_model, tmp_path / "f.h5")
    inputs = irtool.Input((2, 2, 1))
    model = irtool.Model(inputs, layers.Dense(3, name="dense_other")(layers.Flatten()(inputs)))
    model.load_weights(path)
    x = np.arange(8, dtype="float32").reshape(2, 2, 2, 1)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(keras_model.predict(x, verbose=0)), atol=1e-6)
