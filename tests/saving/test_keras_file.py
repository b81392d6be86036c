"""``.keras`` archives: saving, loading (irtool's and Keras 3's files), training state, safety, CLI."""

import json
import os
import zipfile

import numpy as np
import pytest

import irtool as keras
from irtool import layers
from irtool.cli import main as cli_main
from irtool.saving import saving_lib

from ..harness import flat_outputs
from ._guide_models import BUILDERS, sample_inputs

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def _expected():
    return np.load(os.path.join(DATA, "keras_expected.npz"), allow_pickle=False)


def _small_model():
    inputs = keras.Input((4,), name="x")
    x = layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, layers.Dense(2, name="out")(x), name="small")


# -- round trips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_save_and_load_give_the_same_model(tmp_path, name):
    model = BUILDERS[name](keras)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    xs = sample_inputs(model)
    for a, b in zip(flat_outputs(model.predict(xs, verbose=0)), flat_outputs(loaded.predict(xs, verbose=0))):
        np.testing.assert_array_equal(a, b)


def test_archive_members_are_what_keras_writes(tmp_path):
    path = tmp_path / "m.keras"
    _small_model().save(path)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        metadata = json.loads(archive.read("metadata.json"))
        config = json.loads(archive.read("config.json"))
    assert metadata["keras_version"] == saving_lib.KERAS_FORMAT_VERSION
    assert len(metadata["date_saved"]) == len("2024-01-31@12:00:00") and metadata["date_saved"][10] == "@"
    assert config["class_name"] == "Functional" and config["config"]["name"] == "small"
    assert config["compile_config"] == {}  # Keras writes an empty one for a model never compiled


def test_compile_config_is_saved_and_restored(tmp_path):
    model = _small_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8, amsgrad=True),
        loss={"out": keras.losses.Huber(delta=2.0)},
        loss_weights={"out": 0.5},
        metrics=["mae", keras.metrics.RootMeanSquaredError()],
        weighted_metrics=["mse"],
    )
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        saved = json.loads(archive.read("config.json"))["compile_config"]
    assert saved["optimizer"]["class_name"] == "Adam" and saved["optimizer"]["config"]["beta_1"] == 0.8
    assert saved["loss"] == {"out": keras.losses.serialize(keras.losses.Huber(delta=2.0))}
    assert saved["metrics"][0] == "mae" and saved["metrics"][1]["class_name"] == "RootMeanSquaredError"
    assert saved["loss_weights"] == {"out": 0.5} and saved["weighted_metrics"] == ["mse"]
    # Never trained, the optimizer saved only iteration and learning_rate; loading builds it for the
    # model's weights, so (as in Keras) its saved state does not fit and is skipped.
    with pytest.warns(UserWarning, match="it has 14 variables whereas the saved optimizer has 2 variables"):
        loaded = keras.models.load_model(path)
    assert loaded.compiled and isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.get_compile_config() == model.get_compile_config()
    assert not keras.models.load_model(path, compile=False).compiled
    assert loaded.optimizer.built and len(loaded.optimizer.variables) == 14


def test_loading_with_compile_false_ignores_the_optimizer_state(tmp_path):
    model = _small_model()
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.ones((2, 4), "float32"), np.zeros((2, 2), "float32"))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert loaded.optimizer is None
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def _resnet_training_step(model):
    rng = np.random.default_rng(3)
    x = rng.random((4, 16, 16, 3), dtype="float32")
    model.train_on_batch(x, rng.integers(0, 10, 4))


@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.SGD(0.05, momentum=0.9), lambda: keras.optimizers.Adam(0.01)],
    ids=["sgd_momentum", "adam"],
)
def test_training_resumes_exactly_after_save_and_load(tmp_path, optimizer):
    def fresh():
        keras.backend.clear_session()
        keras.utils.set_random_seed(4)
        model = BUILDERS["toy_resnet"](keras)
        model.compile(optimizer=optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    straight = fresh()
    for _ in range(6):
        _resnet_training_step(straight)
    first = fresh()
    for _ in range(3):
        _resnet_training_step(first)
    first.save(tmp_path / "m.keras")
    resumed = keras.models.load_model(tmp_path / "m.keras")
    assert int(resumed.optimizer.iterations) == 3
    for _ in range(3):
        _resnet_training_step(resumed)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(straight.optimizer.get_weights(), resumed.optimizer.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- files written by Keras 3 (tests/data, made by make_keras_files.py) ---------------------------------
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_keras_written_files_load_and_predict_like_keras(name):
    expected = _expected()
    model = keras.models.load_model(os.path.join(DATA, f"{name}.keras"))
    xs = [expected[f"{name}/x{i}"] for i in range(len(model.inputs))]
    for i, got in enumerate(flat_outputs(model.predict(xs, verbose=0))):
        np.testing.assert_allclose(got, expected[f"{name}/y{i}"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["mnist_mlp", "ticket_classifier", "toy_resnet"])
def test_keras_written_training_state_resumes_like_keras(name):
    expected = _expected()
    model = keras.models.load_model(os.path.join(DATA, f"{name}.keras"))
    assert model.compiled and int(model.optimizer.iterations) == 2
    x = [expected[f"{name}/train_x{i}"] for i in range(len(model.inputs))]
    y = [expected[f"{name}/train_y{i}"] for i in range(len(model.outputs))]
    model.train_on_batch(x, {"priority": y[0], "department": y[1]} if name == "ticket_classifier" else y[0])
    for i, got in enumerate(model.get_weights()):  # atol: see test_weights.py (Adam near zero gradients)
        np.testing.assert_allclose(got, expected[f"{name}/after_step/{i}"], rtol=1e-4, atol=1e-3)


# -- safety and clear errors ------------------------------------------------------------------------
def _archive(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _members_of(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture
def saved():
    """The members of a good archive (one Keras wrote), to break one at a time."""
    return _members_of(os.path.join(DATA, "mnist_mlp.keras"))


@pytest.mark.parametrize("member", ["../evil.json", "/abs/evil.json", "a/../../evil.json", "C:\\evil.json"])
def test_member_paths_that_escape_are_refused(tmp_path, saved, member):
    path = _archive(tmp_path / "m.keras", {**saved, member: b"{}"})
    with pytest.raises(ValueError, match="has a path that escapes the archive"):
        keras.models.load_model(path)


@pytest.mark.parametrize("missing", ["config.json", "model.weights.h5"])
def test_missing_members_are_named(tmp_path, saved, missing):
    path = _archive(tmp_path / "m.keras", {k: v for k, v in saved.items() if k != missing})
    with pytest.raises(ValueError, match=f"m.keras: the archive has no {missing}"):
        keras.models.load_model(path)


@pytest.mark.parametrize(
    "member, data, message",
    [
        ("config.json", b"{not json", r"m\.keras: config\.json is not valid JSON: Expecting property name"),
        ("config.json", b"[1, 2]", r"m\.keras: config\.json should hold a JSON object, found list"),
        ("config.json", b"\xff\xfe", r"m\.keras: config\.json is not valid JSON"),
        ("metadata.json", b"", r"m\.keras: metadata\.json is not valid JSON"),
        ("model.weights.h5", b"garbage", r"m\.keras: model\.weights\.h5 is not a valid HDF5 file"),
    ],
)
def test_malformed_members_are_one_line_errors(tmp_path, saved, member, data, message):
    path = _archive(tmp_path / "m.keras", {**saved, member: data})
    with pytest.raises(ValueError, match=message) as info:
        keras.models.load_model(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: {"config": {}}, r"m\.keras: config\.json describes a dict, not a model"),
        (lambda c: c["config"]["layers"][1], r"m\.keras: config\.json describes a Dense, not a model"),
        (
            lambda c: {**c, "config": {**c["config"], "output_layers": ["nowhere", 0, 0]}},
            r"m\.keras: config\.json: .*unknown layer 'nowhere'",
        ),
        (
            lambda c: {**c, "compile_config": {"optimizer": {"class_name": "Nope", "config": {}}, "loss": "mse"}},
            r"m\.keras: compile_config: Could not interpret optimizer identifier",
        ),
        (
            lambda c: {**c, "compile_config": {"optimizer": "adam", "loss": {"class_name": "Nope", "config": {}}}},
            r"m\.keras: compile_config: Could not locate class 'Nope'",
        ),
    ],
    ids=["no_class", "a_layer", "bad_output", "bad_optimizer", "bad_loss"],
)
def test_configs_that_do_not_describe_a_model_are_named(tmp_path, saved, change, message):
    config = change(json.loads(saved["config.json"]))
    path = _archive(tmp_path / "m.keras", {**saved, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match=message):
        keras.models.load_model(path)


@pytest.mark.parametrize("member", ["config.json", "model.weights.h5"])
def test_damaged_members_fail_their_checksum(tmp_path, saved, member):
    path = _archive(tmp_path / "m.keras", saved)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data[info.header_offset + 30 + len(member) + 40] ^= 0xFF  # a byte of the member's stored data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"m.keras: {member} is damaged: Bad CRC-32"):
        keras.models.load_model(path)


def test_oversized_members_are_refused(tmp_path, saved, monkeypatch):
    path = _archive(tmp_path / "m.keras", saved)
    monkeypatch.setattr(saving_lib, "MAX_JSON_BYTES", 100)
    with pytest.raises(ValueError, match=r"config\.json declares \d[\d,]* bytes, more than the limit of 100"):
        keras.models.load_model(path)
    monkeypatch.setattr(saving_lib, "MAX_JSON_BYTES", 2**20)
    monkeypatch.setattr(saving_lib, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(ValueError, match=r"model\.weights\.h5 declares .* more than the limit of 1,000"):
        keras.models.load_model(path)


def test_decompression_bombs_are_refused(tmp_path, saved):
    bomb = {**saved, "config.json": b" " * (8 * 2**20)}
    path = _archive(tmp_path / "m.keras", bomb, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="refusing a possible decompression bomb"):
        keras.models.load_model(path)


def test_not_a_keras_file(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"plain text")
    with pytest.raises(ValueError, match=r"m\.keras: not a `\.keras` archive \(not a valid zip file"):
        keras.models.load_model(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="File not found: filepath=.*missing.keras"):
        keras.models.load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=r"legacy HDF5 model format \(`\.h5`\) is not supported"):
        keras.models.load_model(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="File format not supported"):
        keras.saving.load_model(tmp_path / "m.onnx")


def test_unknown_classes_and_lambdas_are_refused_with_their_message(tmp_path):
    class Doubler(layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Doubler(name="doubler")(layers.Lambda(lambda t: t + 1)(inputs)))
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(Exception, match="m.keras: config.json: .*Lambda") as info:
        keras.models.load_model(path)
    assert "safe_mode" in str(info.value)
    with pytest.raises(Exception, match="m.keras: config.json: .*Doubler"):
        keras.models.load_model(path, safe_mode=False)
    loaded = keras.models.load_model(path, safe_mode=False, custom_objects={"Doubler": Doubler})
    np.testing.assert_allclose(loaded.predict(np.ones((1, 3), "float32"), verbose=0), [[4.0, 4.0, 4.0]])


def test_save_refuses_other_formats(tmp_path):
    model = _small_model()
    with pytest.raises(ValueError, match="legacy HDF5 model format"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="Invalid filepath extension for saving"):
        model.save(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="should not end in `.keras`"):
        model.save(tmp_path / "m.keras", zipped=False)
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)
    assert os.listdir(tmp_path) == ["m.keras"]


def test_save_is_atomic(tmp_path, monkeypatch):
    model = _small_model()
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()

    def fail(model, h5file):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(saving_lib, "write_weights", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.keras"]


def test_load_weights_from_an_archive(tmp_path):
    source = _small_model()
    source.save(tmp_path / "m.keras")
    target = _small_model()
    target.load_weights(tmp_path / "m.keras")
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_saves_the_best_model(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((16, 4), dtype="float32")
    y = x[:, :2] * 3
    model = _small_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    path = str(tmp_path / "best.keras")
    losses = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append((logs["val_loss"], [w.copy() for w in self.model.get_weights()]))

    checkpoint = keras.callbacks.ModelCheckpoint(path, save_best_only=True)
    model.fit(x, y, epochs=4, batch_size=8, validation_data=(x, y), callbacks=[checkpoint, Record()], verbose=0)
    best = min(losses, key=lambda item: item[0])[1]
    loaded = keras.models.load_model(path)
    assert loaded.compiled
    for a, b in zip(loaded.get_weights(), best):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == ["best.keras"]


# -- CLI ----------------------------------------------------------------------------------------------
def test_cli_summary_and_export_of_a_keras_file(tmp_path, capsys):
    import onnx

    path = tmp_path / "mnist.keras"
    BUILDERS["mnist_mlp"](keras).save(path)
    assert cli_main(["summary", str(path)]) == 0
    assert 'Model: "mnist_model"' in capsys.readouterr().out
    out = tmp_path / "mnist.onnx"
    assert cli_main(["export", str(path), "-o", str(out), "--check"]) == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_cli_errors_on_keras_files_are_one_line(tmp_path, capsys):
    (tmp_path / "broken.keras").write_bytes(b"nope")
    assert cli_main(["summary", str(tmp_path / "broken.keras")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("irtool: error: cannot load ") and "not a `.keras` archive" in err and err.count("\n") == 1
    assert cli_main(["export", str(tmp_path / "m.h5")]) == 1
    assert "loading saved models (.h5 files) is not supported yet" in capsys.readouterr().err
    _small_model().save(tmp_path / "m.keras")
    assert cli_main(["summary", str(tmp_path / "m.keras"), "--object", "model"]) == 1
    assert "--object picks a model in a Python file" in capsys.readouterr().err
