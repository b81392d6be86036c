"""Models too large for one protobuf message are written with their weights in `<file>.data`
(ONNX's external data), checked by onnx's checker and run by ONNX Runtime from the path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import irtool
from irtool import layers
from irtool.cli import main
from irtool.onnx import external_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    inputs = irtool.Input((64,), name="x")
    hidden = layers.Dense(512, activation="relu", name="wide")(inputs)  # 128 KiB of weights
    outputs = layers.Dense(3, name="out")(hidden)  # 6 KiB
    model = irtool.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_external_data_file_holds_the_weights_and_runs_from_the_path(model, tmp_path):
    path = tmp_path / "big.onnx"
    irtool.onnx.save_onnx(model.to_onnx(), path, external_data=True)
    assert sorted(os.listdir(tmp_path)) == ["big.onnx", "big.onnx.data"]
    weights = sum(w.nbytes for w in model.get_weights())
    assert (tmp_path / "big.onnx.data").stat().st_size >= weights - 1024 * 2  # small tensors stay inline
    assert path.stat().st_size < 4096
    graph = onnx.load(str(path), load_external_data=False)
    moved = [t for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert moved and all(dict((e.key, e.value) for e in t.external_data)["location"] == "big.onnx.data" for t in moved)
    onnx.checker.check_model(str(path), full_check=True)
    loaded = onnx.load(str(path))
    names = {t.name: numpy_helper.to_array(t) for t in loaded.graph.initializer}
    assert any(np.array_equal(a, model.get_weights()[0]) for a in names.values())
    x = np.random.default_rng(1).normal(size=(4, 64)).astype("float32")
    np.testing.assert_allclose(run(path, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_export_switches_to_external_data_over_the_threshold_and_replaces_both_files(model, tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    model.export(path)  # small: one file
    assert os.listdir(tmp_path) == ["m.onnx"]
    monkeypatch.setattr(external_data, "EXTERNAL_DATA_THRESHOLD", 64 * 1024)
    model.export(path)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    first = (tmp_path / "m.onnx.data").read_bytes()
    changed = irtool.models.clone_model(model)
    changed.set_weights([w + 1 for w in model.get_weights()])
    changed.export(path)  # again over the same pair: both replaced, no leftovers
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    assert (tmp_path / "m.onnx.data").read_bytes() != first
    x = np.ones((2, 64), "float32")
    np.testing.assert_allclose(run(path, x), changed.predict(x, verbose=0), rtol=1e-5, atol=1e-4)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("m.onnx", "m.onnx.data"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_cli_export_of_a_large_model_writes_both_files_and_checks_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(external_data, "EXTERNAL_DATA_THRESHOLD", 64 * 1024)  # the MLP has ~400 KiB
    assert main(["export", str(ROOT / "examples" / "mnist_mlp.py"), "-o", "out/mnist.onnx", "--check"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["mnist.onnx", "mnist.onnx.data"]
    capsys.readouterr()
    assert main(["run", "out/mnist.onnx", "--random"]) == 0
    assert "float32" in capsys.readouterr().out  # the outputs, named with their shapes and dtypes
    onnx.checker.check_model(str(tmp_path / "out" / "mnist.onnx"), full_check=True)
