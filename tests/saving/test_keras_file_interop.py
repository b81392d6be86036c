"""Files both ways with real Keras 3: ``.keras`` and ``.weights.h5`` written by one, read by the other."""

import h5py
import numpy as np
import pytest

import irtool

from ..harness import assert_same_outputs, require_keras
from ._guide_models import BUILDERS, sample_inputs
from .test_weights import h5_tree

real = require_keras()

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _assert_same_outputs(a, b, xs):
    assert_same_outputs(a, b, xs, rtol=1e-5, atol=1e-5, quiet=True)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_keras_file_loads_in_irtool(tmp_path, name):
    real.utils.set_random_seed(0)
    source = BUILDERS[name](real)
    source.save(tmp_path / "m.keras")
    loaded = irtool.models.load_model(tmp_path / "m.keras")
    _assert_same_outputs(source, loaded, sample_inputs(source))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_irtool_file_loads_in_keras(tmp_path, name):
    irtool.utils.set_random_seed(0)
    source = BUILDERS[name](irtool)
    source.save(tmp_path / "m.keras")
    loaded = real.saving.load_model(tmp_path / "m.keras")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in source.layers]
    _assert_same_outputs(source, loaded, sample_inputs(source))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_weights_files_both_ways(tmp_path, name):
    real.backend.clear_session()
    irtool.backend.clear_session()
    keras_model = BUILDERS[name](real)
    irtool_model = BUILDERS[name](irtool)
    keras_model.save_weights(tmp_path / "k.weights.h5")
    irtool_model.save_weights(tmp_path / "i.weights.h5")
    # The same layout, group names and attributes included (both sessions named layers alike).
    assert h5_tree(tmp_path / "k.weights.h5") == h5_tree(tmp_path / "i.weights.h5")
    irtool_model.load_weights(tmp_path / "k.weights.h5")
    _assert_same_outputs(keras_model, irtool_model, sample_inputs(keras_model))
    fresh = BUILDERS[name](real)
    irtool_model.save_weights(tmp_path / "i.weights.h5")
    fresh.load_weights(tmp_path / "i.weights.h5")
    _assert_same_outputs(fresh, irtool_model, sample_inputs(keras_model, seed=1))


def _batch(seed=3):
    rng = np.random.default_rng(seed)
    return rng.random((4, 16, 16, 3), dtype="float32"), rng.integers(0, 10, 4)


@pytest.mark.parametrize("writer", ["irtool", "keras"])
def test_training_state_crosses_over(tmp_path, writer):
    """Two steps in one library, save, one more step in both: the weights agree."""
    first, second = (irtool, real) if writer == "irtool" else (real, irtool)
    first.utils.set_random_seed(0)
    model = BUILDERS["toy_resnet"](first)
    model.compile(
        optimizer=first.optimizers.Adam(0.01), loss=first.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = _batch()
    for _ in range(2):
        model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    load = irtool.models.load_model if second is irtool else real.saving.load_model
    other = load(tmp_path / "m.keras")
    assert int(np.asarray(other.optimizer.iterations)) == 2
    model.train_on_batch(x, y)
    other.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_optimizer_layouts_agree(tmp_path):
    """SGD with momentum, RMSprop (centered) and Adam (amsgrad): the same ``optimizer/vars``."""
    for make in (
        lambda k: k.optimizers.SGD(0.1, momentum=0.9),
        lambda k: k.optimizers.RMSprop(centered=True, momentum=0.5),
        lambda k: k.optimizers.Adam(amsgrad=True),
    ):
        trees = []
        for lib in (real, irtool):
            lib.backend.clear_session()
            model = BUILDERS["mnist_mlp"](lib)
            model.compile(optimizer=make(lib), loss="mse")
            model.train_on_batch(np.ones((2, 64), "float32"), np.zeros((2, 10), "float32"))
            path = tmp_path / f"{lib.__name__}.weights.h5"
            model.save_weights(path)
            trees.append({k: v for k, v in h5_tree(path).items() if k.startswith("optimizer")})
        assert trees[0] == trees[1]
        with h5py.File(tmp_path / "irtool.weights.h5") as f:
            assert f["optimizer/vars/0"][()] == 1
