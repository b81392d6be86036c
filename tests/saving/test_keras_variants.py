"""Keras 3 file variants: mixed-precision dtype policies, unzipped model folders, sharded weights."""

import json
import os
import warnings
import zipfile

import numpy as np
import pytest

import irtool

from ..harness import require_keras
from .test_weights import h5_tree

real = require_keras()

X = np.random.RandomState(0).randn(6, 4).astype("float32")


def _keras_model(dtypes=("mixed_float16", "mixed_bfloat16", "float32")):
    real.utils.set_random_seed(0)
    inputs = real.Input((4,), name="x")
    x = real.layers.Dense(8, activation="relu", dtype=dtypes[0], name="d1")(inputs)
    x = real.layers.LayerNormalization(dtype=dtypes[1], name="norm")(x)
    outputs = real.layers.Dense(3, dtype=dtypes[2], name="d2")(x)
    return real.Model(inputs, outputs, name="m")


def _keras_predict(model):
    return np.asarray(real.ops.convert_to_numpy(model(X)), dtype="float32")


def _load_with_warnings(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = irtool.models.load_model(path)
    return model, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("zipped", [True, False])
def test_mixed_policies_load_as_float32_with_one_warning(tmp_path, zipped):
    source = _keras_model()
    path = tmp_path / ("m.keras" if zipped else "m_folder")
    source.save(path, zipped=zipped)
    model, messages = _load_with_warnings(path)
    mixed = [m for m in messages if "mixed-precision" in m]
    assert len(mixed) == 1, messages
    assert "'mixed_float16' (1 layer: d1)" in mixed[0] and "'mixed_bfloat16' (1 layer: norm)" in mixed[0]
    assert "float32" in mixed[0]
    assert all(layer.dtype == "float32" for layer in model.layers)
    # Keras computes d1 in float16 and norm in bfloat16 (8 bits of mantissa); irtool in float32
    np.testing.assert_allclose(model.predict(X, verbose=0), _keras_predict(source), rtol=3e-2, atol=3e-2)


def test_global_mixed_policy_warns_once(tmp_path):
    previous = real.config.dtype_policy()
    real.config.set_dtype_policy("mixed_float16")
    try:
        inputs = real.Input((4,))
        x = real.layers.Dense(8, activation="tanh")(inputs)
        source = real.Model(inputs, real.layers.Dense(3)(x))
    finally:
        real.config.set_dtype_policy(previous)
    source.save(tmp_path / "m.keras")
    model, messages = _load_with_warnings(tmp_path / "m.keras")
    mixed = [m for m in messages if "mixed-precision" in m]
    assert len(mixed) == 1 and "'mixed_float16' (2 layers:" in mixed[0], messages
    np.testing.assert_allclose(model.predict(X, verbose=0), _keras_predict(source), rtol=1e-2, atol=1e-2)


def test_unzipped_keras_folder_loads(tmp_path):
    source = _keras_model(("float32",) * 3)
    source.save(tmp_path / "folder", zipped=False)
    assert {"config.json", "model.weights.h5"} <= set(os.listdir(tmp_path / "folder"))
    model = irtool.models.load_model(tmp_path / "folder")
    np.testing.assert_allclose(model.predict(X, verbose=0), _keras_predict(source), rtol=1e-5, atol=1e-5)


def test_unzipped_folder_refuses_links_and_oversized_files(tmp_path, monkeypatch):
    source = _keras_model(("float32",) * 3)
    source.save(tmp_path / "folder", zipped=False)
    from irtool.saving import saving_lib

    monkeypatch.setattr(saving_lib, "MAX_WEIGHTS_BYTES", 16)
    with pytest.raises(ValueError, match="model.weights.h5 has .* more than the limit"):
        irtool.models.load_model(tmp_path / "folder")
    # the limit itself is allowed: a file of exactly MAX_WEIGHTS_BYTES loads
    monkeypatch.setattr(saving_lib, "MAX_WEIGHTS_BYTES", (tmp_path / "folder" / "model.weights.h5").stat().st_size)
    irtool.models.load_model(tmp_path / "folder")
    monkeypatch.undo()
    outside = tmp_path / "outside.json"
    os.replace(tmp_path / "folder" / "config.json", outside)
    os.symlink(outside, tmp_path / "folder" / "config.json")
    with pytest.raises(ValueError, match="config.json is a link"):
        irtool.models.load_model(tmp_path / "folder")
    with pytest.raises(ValueError, match="File format not supported"):
        irtool.models.load_model(tmp_path / "nowhere")


def test_sharded_keras_weights_load(tmp_path):
    source = _keras_model(("float32",) * 3)
    source.save_weights(tmp_path / "w.weights.json", max_shard_size=0.0000003)  # ~322 bytes: several shards
    index = json.loads((tmp_path / "w.weights.json").read_text())
    shards = {name for files in index["weight_map"].values() for name in files}
    assert len(shards) > 1
    target = _keras_model(("float32",) * 3)
    model = irtool.models.Model.from_config(target.get_config())  # freshly initialised weights
    model.load_weights(tmp_path / "w.weights.json")
    np.testing.assert_allclose(model.predict(X, verbose=0), _keras_predict(source), rtol=1e-5, atol=1e-5)


def test_sharded_index_cannot_name_files_outside_its_folder(tmp_path):
    source = _keras_model(("float32",) * 3)
    source.save_weights(tmp_path / "w.weights.json", max_shard_size=0.0000003)
    model = irtool.models.Model.from_config(source.get_config())
    index = json.loads((tmp_path / "w.weights.json").read_text())
    for bad in ["../w_00000.weights.h5", "/etc/passwd.weights.h5", "w.json"]:
        first = next(iter(index["weight_map"]))
        index["weight_map"][first] = [bad]
        (tmp_path / "bad.weights.json").write_text(json.dumps(index))
        with pytest.raises(ValueError, match="not a plain name|not a `.weights.h5` file"):
            model.load_weights(tmp_path / "bad.weights.json")


def _irtool_model():
    irtool.utils.set_random_seed(0)
    inputs = irtool.Input((4,), name="x")
    x = irtool.layers.Dense(8, activation="relu", name="d1")(inputs)
    x = irtool.layers.LayerNormalization(name="norm")(x)
    return irtool.Model(inputs, irtool.layers.Dense(3, name="d2")(x), name="m")


def test_irtool_writes_unzipped_folders_keras_and_irtool_load(tmp_path):
    source = _irtool_model()
    want = source.predict(X, verbose=0)
    source.save(tmp_path / "folder", zipped=False)
    assert set(os.listdir(tmp_path / "folder")) == {"assets", "config.json", "metadata.json", "model.weights.h5"}
    np.testing.assert_allclose(_keras_predict(real.saving.load_model(tmp_path / "folder")), want, rtol=1e-5, atol=1e-5)
    back = irtool.models.load_model(tmp_path / "folder")
    np.testing.assert_allclose(back.predict(X, verbose=0), want, rtol=1e-6, atol=1e-6)
    with pytest.raises(FileExistsError):
        source.save(tmp_path / "folder", zipped=False, overwrite=False)
    # overwrite=True (the default) writes over the folder, as Keras does
    changed = _irtool_model()
    changed.set_weights([w + 1 for w in source.get_weights()])
    changed.save(tmp_path / "folder", zipped=False)
    np.testing.assert_allclose(
        irtool.models.load_model(tmp_path / "folder").predict(X, verbose=0),
        changed.predict(X, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


def test_irtool_writes_sharded_weights_like_keras(tmp_path):
    source = _irtool_model()
    want = source.predict(X, verbose=0)
    source.save_weights(tmp_path / "w.weights.json", max_shard_size=0.0000003)
    theirs = _keras_model(("float32",) * 3)
    theirs.save_weights(tmp_path / "k.weights.json", max_shard_size=0.0000003)
    ours_index = json.loads((tmp_path / "w.weights.json").read_text())
    keras_index = json.loads((tmp_path / "k.weights.json").read_text())
    rename = json.dumps(keras_index).replace('"k_0', '"w_0')
    assert ours_index == json.loads(rename)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["k.weights.json", "w.weights.json"] + [f"{p}_0000{i}.weights.h5" for p in "kw" for i in range(2)]
    )
    for i in range(2):  # the same groups, datasets and name attributes in each shard
        assert h5_tree(tmp_path / f"w_0000{i}.weights.h5") == h5_tree(tmp_path / f"k_0000{i}.weights.h5")
    theirs.load_weights(tmp_path / "w.weights.json")
    np.testing.assert_allclose(_keras_predict(theirs), want, rtol=1e-5, atol=1e-5)
    back = _irtool_model()
    for variable in back.weights:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    back.load_weights(tmp_path / "w.weights.json")
    np.testing.assert_allclose(back.predict(X, verbose=0), want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds the maximum shard size"):
        source.save_weights(tmp_path / "tiny.weights.json", max_shard_size=1e-9)


def test_a_keras_file_with_deflated_members_loads(tmp_path):
    """Zip tools that recompress a .keras file deflate its weights member too: it is read whole
    (h5py seeks backwards, which a deflated zip member cannot) and gives the same predictions."""
    source = _irtool_model()
    source.save(tmp_path / "stored.keras")
    with (
        zipfile.ZipFile(tmp_path / "stored.keras") as stored,
        zipfile.ZipFile(tmp_path / "deflated.keras", "w", compression=zipfile.ZIP_DEFLATED) as deflated,
    ):
        for info in stored.infolist():
            deflated.writestr(info.filename, stored.read(info))
    with zipfile.ZipFile(tmp_path / "deflated.keras") as archive:
        assert archive.getinfo("model.weights.h5").compress_type == zipfile.ZIP_DEFLATED
    back = irtool.models.load_model(tmp_path / "deflated.keras")
    np.testing.assert_array_equal(back.predict(X, verbose=0), source.predict(X, verbose=0))
