"""Parity of an irtool.applications builder with keras.applications given the same weights.

``keras_reference(keras_builder, tmp_dir, **kwargs)`` builds Keras' model (``weights=None``),
gives its normalization statistics random values (fresh ones are 0 and 1, which would hide a
wrong epsilon or axis), saves its weights with Keras' ``save_weights``, runs it on fixed random
images and keeps only what the comparison needs, so the Keras model can be freed.
``assert_matches(ours, reference)`` compares layer names in order, weight paths and shapes, and
predictions on the same images, with a tolerance relative to the output's scale."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

import irtool
from tests.harness import require_keras


def variant(builder_name, heavy=False):
    """A test parameter for one builder. ``heavy`` ones (Keras takes 20-50 s to build each on a
    CPU) are marked ``slow``, so ``-m "not slow"`` leaves them out of a quick local run; CI runs all."""
    marks = [pytest.mark.slow] if heavy else []
    return pytest.param(builder_name, marks=marks, id=builder_name)


@dataclasses.dataclass
class KerasReference:
    weights_path: str
    images: np.ndarray
    outputs: np.ndarray
    layer_names: list
    weight_paths: list
    weight_shapes: list
    name: str
    output_layer: str | None = None


def _randomized(weight, rng):
    path, value = weight.path, np.asarray(weight.numpy())
    leaf = path.rsplit("/", 1)[-1]
    if leaf in {"moving_variance", "variance", "gamma"}:
        return rng.uniform(0.5, 1.5, value.shape).astype(value.dtype)
    if leaf in {"moving_mean", "mean", "beta"}:
        return (0.1 * rng.standard_normal(value.shape)).astype(value.dtype)
    return value


def keras_reference(
    keras_builder,
    tmp_dir,
    *,
    batch=2,
    seed=0,
    pixel_range=(0.0, 255.0),
    randomize_statistics=True,
    output_layer=None,
    **kwargs,
):
    keras = require_keras()
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    model = keras_builder(weights=None, **kwargs)
    rng = np.random.default_rng(seed)
    for weight in model.weights if randomize_statistics else ():
        if weight.path.rsplit("/", 1)[-1] != "count":
            weight.assign(_randomized(weight, rng))
    path = str(tmp_dir / f"{model.name}.weights.h5")
    model.save_weights(path)
    shape = (batch,) + tuple(d or 32 for d in model.input_shape[1:])
    images = rng.uniform(*pixel_range, shape).astype("float32")
    if output_layer is not None:  # compare there: deeper, the network is chaotic (see the callers)
        model_out = keras.Model(model.inputs, model.get_layer(output_layer).output)
    else:
        model_out = model
    outputs = keras.ops.convert_to_numpy(model_out(images, training=False))
    return KerasReference(
        weights_path=path,
        images=images,
        outputs=outputs,
        layer_names=[layer.name for layer in model.layers],
        weight_paths=[w.path for w in model.weights],
        weight_shapes=[tuple(w.shape) for w in model.weights],
        name=model.name,
        output_layer=output_layer,
    )


def build_ours(builder, reference: KerasReference, **kwargs):
    irtool.backend.clear_session()
    return builder(weights=reference.weights_path, **kwargs)


def assert_matches(ours, reference: KerasReference, rtol=1e-4):
    assert ours.name == reference.name
    assert [layer.name for layer in ours.layers] == reference.layer_names
    assert [w.path for w in ours.weights] == reference.weight_paths
    assert [tuple(w.shape) for w in ours.weights] == reference.weight_shapes
    if reference.output_layer is not None:
        ours = irtool.Model(ours.inputs, ours.get_layer(reference.output_layer).output)
    got = ours.predict(reference.images, verbose=0)
    scale = max(1.0, float(np.abs(reference.outputs).max()))
    np.testing.assert_allclose(got, reference.outputs, rtol=rtol, atol=rtol * scale)


def assert_same_signature(ours, theirs):
    """Same parameters, in order, with the same defaults."""
    mine = [(p.name, p.default) for p in inspect.signature(ours).parameters.values()]
    keras = [(p.name, p.default) for p in inspect.signature(theirs).parameters.values()]
    assert mine == keras, ours.__name__


def assert_missing_file_named(builder, file_name, tmp_path, monkeypatch, **kwargs):
    """With an empty Keras cache folder, ``weights="imagenet"`` names the file and where it goes."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    irtool.backend.clear_session()
    with pytest.raises(FileNotFoundError) as error:
        builder(weights="imagenet", **kwargs)
    assert f"save it as {tmp_path / 'models' / file_name}" in str(error.value)


class _FileRequested(Exception):
    pass


def keras_weights_file_name(keras_builder, **kwargs) -> str:
    """The file Keras' own builder asks for with ``weights="imagenet"`` (its download is
    intercepted, so nothing is fetched)."""
    keras = require_keras()
    file_utils = keras.src.utils.file_utils

    def get_file(fname=None, origin=None, **_):
        raise _FileRequested(fname)

    real = file_utils.get_file
    file_utils.get_file = get_file
    try:
        keras.backend.clear_session(free_memory=False)
        keras_builder(weights="imagenet", **kwargs)
    except _FileRequested as requested:
        return str(requested)
    finally:
        file_utils.get_file = real
    raise AssertionError("Keras did not ask for a weights file")
