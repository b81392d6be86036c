"""A Sequential model builds its layers under its name, as Keras does (``stem/stem_conv/kernel``),
whether its first call builds it (ConvNeXt's stem) or its ``Input`` does."""

import numpy as np

import irtool
from tests.harness import keras_parity, require_keras


def _build(lib):
    inputs = lib.Input((8, 8, 3))
    stem = lib.Sequential(
        [lib.layers.Conv2D(4, 2, strides=2, name="stem_conv"), lib.layers.LayerNormalization(name="stem_norm")],
        name="stem",
    )
    x = stem(inputs)
    return lib.Model(inputs, lib.layers.Dense(2, name="head")(x))


def test_a_sequential_built_by_its_call():
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    ours, _ = keras_parity(_build, x, weight_paths=True, names=True, atol=1e-5)
    assert ours.weights[0].path == "stem/stem_conv/kernel"


def test_a_sequential_built_from_its_input_too():
    paths = []
    for lib in (require_keras(), irtool):
        stem = lib.Sequential([lib.Input((4,)), lib.layers.Dense(2, name="dense_a")], name="stem")
        stem(lib.Input((4,)))
        paths.append([w.path for w in stem.weights])
    assert paths[1] == paths[0] == ["stem/dense_a/kernel", "stem/dense_a/bias"]
