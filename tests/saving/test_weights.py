"""``save_weights``/``load_weights``: Keras 3's ``.weights.h5`` layout, checks, errors and optimizer state.

The expected layouts below were read from files Keras 3.15.1 wrote for the same models (and
``tests/data`` holds such files), so these tests check irtool against Keras without Keras.
"""

import os
import warnings

import h5py
import numpy as np
import pytest

import irtool as keras
from irtool import layers
from irtool.saving import h5_weights

from ..harness import flat_outputs
from ._guide_models import BUILDERS, sample_inputs

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def h5_tree(path) -> dict:
    """``{dataset path: shape}`` and ``{vars group path: "name=<name attribute>"}`` of an HDF5 file."""
    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = tuple(obj.shape)
            elif "name" in obj.attrs:
                out[name] = "name=" + obj.attrs["name"]

        f.visititems(visit)
    return out


def layout_model():
    inputs = keras.Input((6, 4), name="seq")
    a = layers.LSTM(3)(inputs)
    b = layers.Bidirectional(layers.GRU(2))(inputs)
    c = layers.Flatten()(layers.MultiHeadAttention(2, 3)(inputs, inputs))
    d = layers.Flatten()(layers.BatchNormalization()(inputs))
    x = layers.concatenate([a, b, c, d])
    return keras.Model(inputs, layers.Dense(2)(x), name="layout")


# What Keras 3.15.1's save_weights writes for layout_model() in a fresh session.
KERAS_LAYOUT = {
    "layers/batch_normalization/vars": "name=batch_normalization",
    "layers/batch_normalization/vars/0": (4,),
    "layers/batch_normalization/vars/1": (4,),
    "layers/batch_normalization/vars/2": (4,),
    "layers/batch_normalization/vars/3": (4,),
    "layers/bidirectional/backward_layer/cell/vars": "name=gru_cell",
    "layers/bidirectional/backward_layer/cell/vars/0": (4, 6),
    "layers/bidirectional/backward_layer/cell/vars/1": (2, 6),
    "layers/bidirectional/backward_layer/cell/vars/2": (2, 6),
    "layers/bidirectional/backward_layer/vars": "name=backward_gru",
    "layers/bidirectional/forward_layer/cell/vars": "name=gru_cell",
    "layers/bidirectional/forward_layer/cell/vars/0": (4, 6),
    "layers/bidirectional/forward_layer/cell/vars/1": (2, 6),
    "layers/bidirectional/forward_layer/cell/vars/2": (2, 6),
    "layers/bidirectional/forward_layer/vars": "name=forward_gru",
    "layers/bidirectional/vars": "name=bidirectional",
    "layers/concatenate/vars": "name=concatenate",
    "layers/dense/vars": "name=dense",
    "layers/dense/vars/0": (55, 2),
    "layers/dense/vars/1": (2,),
    "layers/flatten/vars": "name=flatten",
    "layers/flatten_1/vars": "name=flatten_1",
    "layers/input_layer/vars": "name=seq",
    "layers/lstm/cell/vars": "name=lstm_cell",
    "layers/lstm/cell/vars/0": (4, 12),
    "layers/lstm/cell/vars/1": (3, 12),
    "layers/lstm/cell/vars/2": (12,),
    "layers/lstm/vars": "name=lstm",
    "layers/multi_head_attention/_dropout_layer/vars": "name=dropout",
    "layers/multi_head_attention/_softmax/vars": "name=softmax",
    "layers/multi_head_attention/key_dense/vars": "name=key",
    "layers/multi_head_attention/key_dense/vars/0": (4, 2, 3),
    "layers/multi_head_attention/key_dense/vars/1": (2, 3),
    "layers/multi_head_attention/output_dense/vars": "name=attention_output",
    "layers/multi_head_attention/output_dense/vars/0": (2, 3, 4),
    "layers/multi_head_attention/output_dense/vars/1": (4,),
    "layers/multi_head_attention/query_dense/vars": "name=query",
    "layers/multi_head_attention/query_dense/vars/0": (4, 2, 3),
    "layers/multi_head_attention/query_dense/vars/1": (2, 3),
    "layers/multi_head_attention/value_dense/vars": "name=value",
    "layers/multi_head_attention/value_dense/vars/0": (4, 2, 3),
    "layers/multi_head_attention/value_dense/vars/1": (2, 3),
    "layers/multi_head_attention/vars": "name=multi_head_attention",
    "vars": "name=layout",
}


def test_layout_matches_what_keras_writes(tmp_path):
    path = tmp_path / "m.weights.h5"
    model = layout_model()
    model.save_weights(path)
    assert h5_tree(path) == KERAS_LAYOUT
    with h5py.File(path, "r") as f:
        bn = model.get_layer("batch_normalization")
        np.testing.assert_array_equal(f["layers/batch_normalization/vars/2"][()], bn.moving_mean.numpy())
        np.testing.assert_array_equal(
            f["layers/lstm/cell/vars/1"][()], model.get_layer("lstm").cell.recurrent_kernel.numpy()
        )


class Block(layers.Layer):
    """A custom layer with its own weight, a list of sublayers and a named sublayer."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.inner = [layers.Dense(units), layers.Dense(units)]
        self.norm = layers.LayerNormalization()

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        y = x * self.scale
        for dense in self.inner:
            y = dense(y)
        return self.norm(y)


def test_nested_models_custom_layers_and_optimizer_paths(tmp_path):
    encoder_input = keras.Input((4,))
    encoder = keras.Model(encoder_input, Block(3)(encoder_input), name="encoder")
    decoder = keras.Sequential([keras.Input((3,)), layers.Dense(4)], name="decoder")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, decoder(encoder(inputs)), name="ae")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.train_on_batch(np.ones((2, 4), "float32"), np.zeros((2, 4), "float32"))
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    tree = h5_tree(path)
    assert {k: v for k, v in tree.items() if not k.startswith("optimizer")} == {
        "vars": "name=ae",
        "layers/input_layer/vars": "name=input_layer_2",
        "layers/functional/vars": "name=encoder",
        "layers/functional/layers/input_layer/vars": "name=input_layer",
        "layers/functional/layers/block/vars": "name=block",
        "layers/functional/layers/block/vars/0": (4,),
        "layers/functional/layers/block/inner/dense/vars": "name=dense",
        "layers/functional/layers/block/inner/dense/vars/0": (4, 3),
        "layers/functional/layers/block/inner/dense/vars/1": (3,),
        "layers/functional/layers/block/inner/dense_1/vars": "name=dense_1",
        "layers/functional/layers/block/inner/dense_1/vars/0": (3, 3),
        "layers/functional/layers/block/inner/dense_1/vars/1": (3,),
        "layers/functional/layers/block/norm/vars": "name=layer_normalization",
        "layers/functional/layers/block/norm/vars/0": (3,),
        "layers/functional/layers/block/norm/vars/1": (3,),
        "layers/sequential/vars": "name=decoder",
        "layers/sequential/layers/dense/vars": "name=dense_2",
        "layers/sequential/layers/dense/vars/0": (3, 4),
        "layers/sequential/layers/dense/vars/1": (4,),
    }
    # Keras' optimizer layout: iteration, learning_rate, then one momentum per trainable weight.
    trainable = model.trainable_weights
    assert tree["optimizer/vars"] == "name=sgd"
    with h5py.File(path, "r") as f:
        assert f["optimizer/vars/0"].dtype == np.int32 and f["optimizer/vars/0"][()] == 1
        assert f["optimizer/vars/1"][()] == np.float32(0.1)
        assert len(f["optimizer/vars"]) == 2 + len(trainable)
        for i, (weight, momentum) in enumerate(zip(trainable, model.optimizer.momentums)):
            assert f[f"optimizer/vars/{i + 2}"].shape == weight.shape
            np.testing.assert_array_equal(f[f"optimizer/vars/{i + 2}"][()], momentum.numpy())


class TwoDense(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.alpha = layers.Dense(3)
        self.zeta = layers.Dense(2)

    def call(self, x):
        return self.zeta(self.alpha(x))


def test_subclassed_model_layout_follows_keras_quirk(tmp_path):
    """Keras walks a subclassed model's ``layers`` property in alphabetical turn: ``alpha`` keeps its
    attribute name, ``zeta`` (after "layers") is stored as ``layers/dense_1``."""
    model = TwoDense()
    model(np.ones((1, 4), "float32"))
    model.save_weights(tmp_path / "m.weights.h5")
    assert h5_tree(tmp_path / "m.weights.h5") == {
        "vars": "name=two_dense",
        "alpha/vars": "name=dense",
        "alpha/vars/0": (4, 3),
        "alpha/vars/1": (3,),
        "layers/dense_1/vars": "name=dense_1",
        "layers/dense_1/vars/0": (3, 2),
        "layers/dense_1/vars/1": (2,),
    }
    other = TwoDense()
    other(np.ones((1, 4), "float32"))
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other.zeta.kernel.numpy(), model.zeta.kernel.numpy())


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_round_trip_restores_every_weight(tmp_path, name):
    keras.utils.set_random_seed(1)
    source = BUILDERS[name](keras)
    keras.utils.set_random_seed(2)
    target = BUILDERS[name](keras)
    assert any(not np.array_equal(a, b) for a, b in zip(source.get_weights(), target.get_weights()))
    path = tmp_path / "m.weights.h5"
    source.save_weights(path)
    target.load_weights(path)
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    xs = sample_inputs(source)
    for a, b in zip(flat_outputs(source.predict(xs, verbose=0)), flat_outputs(target.predict(xs, verbose=0))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_weights_written_by_keras_give_keras_outputs(name):
    expected = np.load(os.path.join(DATA, "keras_expected.npz"), allow_pickle=False)
    model = BUILDERS[name](keras)
    model.load_weights(os.path.join(DATA, f"{name}.keras"))  # the weights member of Keras' archive
    xs = [expected[f"{name}/x{i}"] for i in range(len(model.inputs))]
    for i, got in enumerate(flat_outputs(model.predict(xs, verbose=0))):
        np.testing.assert_allclose(got, expected[f"{name}/y{i}"], rtol=1e-5, atol=1e-5)
    if name == "mnist_mlp":
        other = BUILDERS[name](keras)
        other.load_weights(os.path.join(DATA, "mnist_mlp.weights.h5"))
        np.testing.assert_allclose(other.predict(xs[0], verbose=0), expected["mnist_mlp/y0"], rtol=1e-5, atol=1e-5)


KERAS_TRAINING = {
    "mnist_mlp": lambda: dict(
        optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ),
    "toy_resnet": lambda: dict(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ),
    "ticket_classifier": lambda: dict(
        optimizer=keras.optimizers.RMSprop(1e-3),
        loss={
            "priority": keras.losses.BinaryCrossentropy(from_logits=True),
            "department": keras.losses.CategoricalCrossentropy(from_logits=True),
        },
        loss_weights={"priority": 1.0, "department": 0.2},
    ),
}


@pytest.mark.parametrize("name", sorted(KERAS_TRAINING))
def test_keras_optimizer_state_resumes_training_like_keras(name):
    """Keras trained 2 steps and saved; one more step in irtool lands where Keras' third step did."""
    expected = np.load(os.path.join(DATA, "keras_expected.npz"), allow_pickle=False)
    model = BUILDERS[name](keras)
    model.compile(**KERAS_TRAINING[name]())
    model.optimizer.build(model.trainable_weights)
    model.load_weights(os.path.join(DATA, f"{name}.keras"))
    assert int(model.optimizer.iterations) == 2
    x = [expected[f"{name}/train_x{i}"] for i in range(len(model.inputs))]
    y = [expected[f"{name}/train_y{i}"] for i in range(len(model.outputs))]
    model.train_on_batch(x, {"priority": y[0], "department": y[1]} if name == "ticket_classifier" else y[0])
    # Adam scales each step to about lr (0.01), whatever the gradient's size. toy_resnet's first conv
    # bias 7 gets a gradient of 2.4e-7 summed from terms of total size 1.6: float32 rounding (~1e-7
    # there) decides even its sign, so summing in another order (BLAS's ones @ rows, or ONNX Runtime's
    # kernels upstream) moves that weight by up to 6% of lr (5.9e-4 seen); a wrong optimizer state
    # would move every weight by about lr. Hence the bound: 10% of lr.
    for i, got in enumerate(model.get_weights()):
        np.testing.assert_allclose(got, expected[f"{name}/after_step/{i}"], rtol=1e-4, atol=1e-3)


def _regression_data():
    rng = np.random.default_rng(0)
    x = rng.random((16, 4), dtype="float32")
    return x, (x @ np.arange(1.0, 5.0, dtype="float32"))[:, None]


def _compiled_mlp(optimizer):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((4,))
    x = layers.BatchNormalization()(layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(1)(x))
    model.compile(optimizer=optimizer(), loss="mse")
    return model


@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.SGD(0.05, momentum=0.9), lambda: keras.optimizers.Adam(0.01)],
    ids=["sgd_momentum", "adam"],
)
def test_training_resumes_exactly_from_a_weights_file(tmp_path, optimizer):
    x, y = _regression_data()
    straight = _compiled_mlp(optimizer)
    for _ in range(6):
        straight.train_on_batch(x, y)
    first = _compiled_mlp(optimizer)
    for _ in range(3):
        first.train_on_batch(x, y)
    first.save_weights(tmp_path / "m.weights.h5")
    resumed = _compiled_mlp(optimizer)
    resumed.optimizer.build(resumed.trainable_weights)
    resumed.load_weights(tmp_path / "m.weights.h5")
    assert int(resumed.optimizer.iterations) == 3
    for _ in range(3):
        resumed.train_on_batch(x, y)
    for a, b in zip(
        straight.get_weights() + straight.optimizer.get_weights(),
        resumed.get_weights() + resumed.optimizer.get_weights(),
    ):
        np.testing.assert_array_equal(a, b)


def test_an_unbuilt_optimizer_is_skipped_with_keras_warning(tmp_path):
    x, y = _regression_data()
    trained = _compiled_mlp(lambda: keras.optimizers.Adam(0.01))
    trained.train_on_batch(x, y)
    trained.save_weights(tmp_path / "m.weights.h5")
    fresh = _compiled_mlp(lambda: keras.optimizers.Adam(0.01))
    with pytest.warns(
        UserWarning, match=r"Skipping variable loading for optimizer 'adam(_\d+)?'.*not been called/built yet"
    ):
        fresh.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(trained.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- errors -----------------------------------------------------------------------------------------
def test_save_weights_requires_the_keras_3_suffix(tmp_path):
    model = BUILDERS["mnist_mlp"](keras)
    for name in ("m.h5", "m.weights", "m.keras"):
        with pytest.raises(ValueError, match=r"The filename must end in `\.weights\.h5`"):
            model.save_weights(tmp_path / name)
    with pytest.raises(ValueError, match=r"must end in `\.weights\.json` when `max_shard_size`"):
        model.save_weights(tmp_path / "m.keras", max_shard_size=1)
    with pytest.raises(ValueError, match="File format not supported"):
        model.load_weights(tmp_path / "m.weights")
    assert os.listdir(tmp_path) == []


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    model = BUILDERS["mnist_mlp"](keras)
    model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(FileExistsError, match="already exists"):
        model.save_weights(tmp_path / "m.weights.h5", overwrite=False)


def test_unbuilt_model_cannot_load():
    model = keras.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="has not yet been built"):
        model.load_weights("any.weights.h5")


def _narrow_mlp():
    inputs = keras.Input((64,), name="img")
    x = layers.Dense(32, activation="relu")(inputs)
    x = layers.Dense(16, activation="relu")(x)  # 32 in the saved model
    return keras.Model(inputs, layers.Dense(10)(x))


def test_shape_mismatch_names_the_layer_and_both_shapes_and_changes_nothing(tmp_path):
    BUILDERS["mnist_mlp"](keras).save_weights(tmp_path / "m.weights.h5")
    model = _narrow_mlp()
    before = model.get_weights()
    with pytest.raises(ValueError) as info:
        model.load_weights(tmp_path / "m.weights.h5")
    message = str(info.value)
    assert "layer 'dense_4' (Dense) at 'layers/dense_1/vars'" in message
    assert "variable 0 'kernel' has shape (32, 16), but the file's has shape (32, 32)" in message
    assert "and 1 more" in message and "'dense_5'" in message  # the next Dense's kernel is (16, 10) vs (32, 10)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_skip_mismatch_loads_the_rest_and_warns(tmp_path):
    source = BUILDERS["mnist_mlp"](keras)
    source.save_weights(tmp_path / "m.weights.h5")
    model = _narrow_mlp()
    before = model.get_weights()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(tmp_path / "m.weights.h5", skip_mismatch=True)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "Skipping loading weights" in messages[0]
    assert "'dense_4'" in messages[0] and "'dense_5'" in messages[1]
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], source.get_weights()[0])  # the first Dense matched
    np.testing.assert_array_equal(after[2], before[2])  # the mismatching ones are untouched


def test_missing_group_and_wrong_count_are_reported(tmp_path):
    path = tmp_path / "m.weights.h5"
    model = BUILDERS["mnist_mlp"](keras)
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        del f["layers/dense_2"]
        del f["layers/dense_1/vars/1"]
    with pytest.raises(ValueError) as info:
        model.load_weights(path)
    message = str(info.value)
    assert "'layers/dense_1/vars': expected 2 variables ['kernel', 'bias'], but the file has 1" in message
    assert (
        "'layers/dense_2/vars': expected 2 variables ['kernel', 'bias'], but the file has 0 (no such group)" in message
    )


def test_a_file_that_is_not_hdf5_is_a_clear_error(tmp_path):
    path = tmp_path / "m.weights.h5"
    path.write_bytes(b"not an HDF5 file at all")
    with pytest.raises(ValueError, match=r"m\.weights\.h5 is not a valid HDF5 file"):
        BUILDERS["mnist_mlp"](keras).load_weights(path)
    with pytest.raises(FileNotFoundError, match="No such file"):
        BUILDERS["mnist_mlp"](keras).load_weights(tmp_path / "missing.weights.h5")


def test_a_damaged_hdf5_file_is_a_clear_error_and_changes_nothing(tmp_path):
    path = tmp_path / "m.weights.h5"
    model = BUILDERS["mnist_mlp"](keras)
    model.save_weights(path)
    data = bytearray(path.read_bytes())
    for offset in range(2000, len(data), 997):  # past the superblock: the file opens, its insides are broken
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    target = BUILDERS["mnist_mlp"](keras)
    before = target.get_weights()
    with pytest.raises(ValueError, match=r"m\.weights\.h5 is not a valid HDF5 file"):
        target.load_weights(path)
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)


class Lookup(layers.Layer):
    """State that is not a Variable, saved through Keras' ``save_own_variables`` hooks."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.table = np.zeros(3, "float32")

    def call(self, x):
        return x

    def save_own_variables(self, store):
        store["0"] = self.table

    def load_own_variables(self, store):
        self.table = np.array(store["0"])


def test_custom_save_and_load_own_variables_hooks(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Lookup(name="lookup")(inputs))
    model.get_layer("lookup").table = np.array([1.0, 2.0, 3.0], "float32")
    model.save_weights(tmp_path / "m.weights.h5")
    assert h5_tree(tmp_path / "m.weights.h5")["layers/lookup/vars/0"] == (3,)
    inputs = keras.Input((3,))
    other = keras.Model(inputs, Lookup(name="lookup")(inputs))
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other.get_layer("lookup").table, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("kind", ["soft_link", "external_link", "external_data", "strings"])
def test_unsafe_or_odd_hdf5_is_refused(tmp_path, kind):
    path = tmp_path / "m.weights.h5"
    model = BUILDERS["mnist_mlp"](keras)
    model.save_weights(path)
    (tmp_path / "secret.bin").write_bytes(np.zeros(64 * 32, "float32").tobytes())
    with h5py.File(path, "a") as f:
        vars_group = f["layers/dense/vars"]
        del vars_group["0"]
        if kind == "soft_link":
            vars_group["0"] = h5py.SoftLink("/layers/dense_1/vars/0")
        elif kind == "external_link":
            vars_group["0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
        elif kind == "external_data":
            vars_group.create_dataset(
                "0", shape=(64, 32), dtype="float32", external=[(str(tmp_path / "secret.bin"), 0, h5py.h5f.UNLIMITED)]
            )
        else:
            vars_group.create_dataset("0", data=np.full((64, 32), b"a"))
    expected = {
        "soft_link": "SoftLink; links are not followed",
        "external_link": "ExternalLink; links are not followed",
        "external_data": "stores its data outside the file",
        "strings": "expected a numeric array",
    }[kind]
    with pytest.raises(ValueError, match=expected):
        model.load_weights(path)


def test_bfloat16_weights_from_keras_are_widened(tmp_path):
    path = tmp_path / "m.weights.h5"
    model = keras.Sequential([keras.Input((2,)), layers.Dense(2, use_bias=False)])
    model.save_weights(path)
    kernel = np.array([[1.5, -2.25], [3.0, 0.5]], "float32")
    bits = (kernel.view(np.uint32) >> 16).astype(np.uint16)  # exact: these values fit bfloat16
    with h5py.File(path, "a") as f:
        del f["layers/dense/vars/0"]
        dataset = f["layers/dense/vars"].create_dataset("0", data=np.frombuffer(bits.tobytes(), "V2").reshape(2, 2))
        dataset.attrs["dtype"] = "bfloat16"
    model.load_weights(path)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernel)


def test_save_weights_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.weights.h5"
    model = BUILDERS["mnist_mlp"](keras)
    model.save_weights(path)
    before = path.read_bytes()

    def fail_halfway(model, h5file):
        h5file.create_group("layers")
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5_weights, "write_weights", fail_halfway)
    with pytest.raises(RuntimeError, match="disk full"):
        model.save_weights(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.weights.h5"]


def test_model_checkpoint_keeps_the_best_weights(tmp_path):
    x, y = _regression_data()
    model = _compiled_mlp(lambda: keras.optimizers.SGD(0.3))
    path = str(tmp_path / "best.weights.h5")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["val_loss"], [w.copy() for w in self.model.get_weights()]))

    checkpoint = keras.callbacks.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SGD(0.3) diverges on purpose: val_loss rises
        model.fit(x, y, epochs=6, batch_size=4, validation_data=(x, y), callbacks=[checkpoint, Record()], verbose=0)
    best = min(range(len(seen)), key=lambda i: seen[i][0])
    restored = _compiled_mlp(lambda: keras.optimizers.SGD(0.3))
    restored.load_weights(path)
    for a, b in zip(restored.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["best.weights.h5"]
