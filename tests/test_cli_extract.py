"""``irtool extract`` and ``irtool.onnx.extract`` on irtool models: cuts at layer names compared with
the NumPy executor of the Keras-style feature extractor (``Model(inputs, layer.output)``), and the
command's ``--list``, ``--check`` (exit 1 and nothing written on a real disagreement), ``--weights``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import irtool as keras
from irtool import layers
from irtool.cli import main
from irtool.onnx import ExtractError, cut_points, extract

CNN = textwrap.dedent(
    """
    import irtool as keras
    from irtool import layers

    image = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(image)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Flatten(name="flat")(x)
    model = keras.Model(image, layers.Dense(2, name="logits")(x), name="cnn")
    """
)


def _run(source, feeds: dict) -> list:
    source = str(source) if isinstance(source, Path) else source.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)


def _cnn():
    namespace: dict = {}
    exec(CNN, namespace)
    return namespace["model"]


def test_an_irtool_model_cut_at_layer_names_matches_its_feature_extractor():
    model = _cnn()
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    cut = extract(model, outputs=["pool"])
    onnx.checker.check_model(cut, full_check=True)
    assert [i.name for i in cut.graph.input] == ["image"] and [o.name for o in cut.graph.output] == ["pool"]
    features = keras.Model(model.inputs, model.get_layer("pool").output)  # Keras' recipe, run in NumPy
    np.testing.assert_allclose(_run(cut, {"image": x})[0], features.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    props = {p.key: p.value for p in cut.metadata_props}
    assert props["irtool.extracted_outputs"] == "pool" and props["irtool.extracted_from"] == "model 'cnn'"
    # the tail, from a channels-last feature map (in Keras' layout, as the layer outputs it)
    tail = extract(model, outputs=["logits"], inputs=["pool"])
    onnx.checker.check_model(tail, full_check=True)
    pooled = features.predict(x, verbose=0)
    assert [d.dim_value for d in tail.graph.input[0].type.tensor_type.shape.dim][1:] == [3, 3, 4]
    np.testing.assert_allclose(_run(tail, {"pool": pooled})[0], model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_layer_names_of_shared_and_multi_output_layers():
    a = keras.Input((3,), name="a")
    b = keras.Input((3,), name="b")
    shared = layers.Dense(2, name="shared")
    split = layers.Lambda(lambda t: [t[:, :1], t[:, 1:]], name="split")
    left, right = split(shared(b))
    model = keras.Model([a, b], [shared(a), left, right])
    names = [p.name for p in cut_points(model)]
    assert {"a", "b", "shared", "shared_call1", "split", "split:0", "split:1"} <= set(names)
    cut = extract(model, ["split:1"])
    assert [i.name for i in cut.graph.input] == ["b"]  # only the input the output needs
    xb = np.ones((1, 3), np.float32)
    whole = model.predict([xb, xb], verbose=0)
    np.testing.assert_allclose(_run(cut, {"b": xb})[0], whole[2], rtol=1e-6)
    with pytest.raises(ExtractError, match=r"output 'shard': .* no layer or input of that name .*'shared'"):
        extract(model, ["shard"])


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_cli_list_and_cut_a_model_py_with_check(tmp_path, capsys):
    source = _write(tmp_path, "cnn.py", CNN)
    assert main(["extract", str(source), "--list"]) == 0
    listed = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in listed.splitlines()[1:-1]}
    assert list(rows) == ["image", "conv", "pool", "flat", "logits"]
    assert rows["pool"] == ["MaxPooling2D", "float32", "(?,", "3,", "3,", "4)"]
    out = tmp_path / "features.onnx"
    assert main(["extract", str(source), "--outputs", "pool", "--inputs", "conv", "-o", str(out), "--check"]) == 0
    printed = capsys.readouterr()
    assert "output pool: max |diff|" in printed.out and "agrees" in printed.out
    assert "freshly initialised" in printed.err
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["conv"]


def test_cli_weights_for_a_model_py(tmp_path, capsys):
    source = _write(tmp_path, "cnn.py", CNN)
    trained = _cnn()
    trained.set_weights([np.full(w.shape, 0.1, np.float32) for w in trained.get_weights()])
    weights = tmp_path / "trained.weights.h5"
    trained.save_weights(weights)
    out = tmp_path / "cut.onnx"
    assert main(["extract", str(source), "--outputs", "logits", "--weights", str(weights), "-o", str(out)]) == 0
    x = np.ones((1, 8, 8, 3), np.float32)
    np.testing.assert_allclose(_run(out, {"image": x})[0], trained.predict(x, verbose=0), rtol=1e-5)


def _noisy_onnx(path: Path) -> None:
    """y = relu(x) + noise, z = x + other noise, both drawn at run time without a seed: ONNX Runtime
    seeds each random node from its session in node order, so the cut (without z's node) draws
    other noise for y than the whole model does."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    nodes = [
        helper.make_node("RandomNormalLike", ["x"], ["other"], name="other_noise"),
        helper.make_node("Add", ["x", "other"], ["z"], name="add_other"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("RandomNormalLike", ["r"], ["noise"], name="noise"),
        helper.make_node("Add", ["r", "noise"], ["y"], name="add"),
    ]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 3]) for name in ("y", "z")]
    graph = helper.make_graph(nodes, "noisy", [x], outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_cli_check_fails_on_a_real_disagreement_and_writes_nothing(tmp_path, capsys):
    source = tmp_path / "noisy.onnx"
    _noisy_onnx(source)
    out = tmp_path / "out" / "cut.onnx"
    assert main(["extract", str(source), "--outputs", "y", "-o", str(out), "--check"]) == 1
    printed = capsys.readouterr()
    assert "output y: max |diff|" in printed.out and "FAILED" in printed.out
    assert "disagrees with the whole model on y" in printed.err and "was not written" in printed.err
    assert not out.parent.exists()  # no temp folder, and not the folder it made either (as export does)
    # the deterministic part agrees exactly, with given inputs
    np.save(tmp_path / "x.npy", np.array([[1, -2, 3]], np.float32))
    args = [
        "extract",
        str(source),
        "--outputs",
        "relu",
        "-o",
        str(out),
        "--check",
        "--input",
        f"x={tmp_path / 'x.npy'}",
    ]
    assert main([*args, "--atol", "0", "--rtol", "0"]) == 0
    assert "output r: max |diff| 0 (1, 3): ok" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    source = tmp_path / "noisy.onnx"
    _noisy_onnx(source)
    assert main(["extract", str(source), "--outputs", "rlu"]) == 1
    assert "did you mean 'relu'" in capsys.readouterr().err
    assert main(["extract", str(source)]) == 2
    assert "--outputs NAME[,NAME...] is required" in capsys.readouterr().err
    assert main(["extract", str(source), "--outputs", "y", "--weights", "w.weights.h5"]) == 2
    assert "--weights applies to model.py and .keras sources" in capsys.readouterr().err


def test_cli_cut_of_an_external_data_file_keeps_metadata(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    w = numpy_helper.from_array(np.zeros((64, 64), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"), helper.make_node("Add", ["m", "x"], ["y"])]
    graph = helper.make_graph(nodes, "ext", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="maker")
    helper.set_model_props(model, {"license": "mit"})
    source = tmp_path / "ext.onnx"
    onnx.save(model, source, save_as_external_data=True, location="ext.bin", size_threshold=0)
    out = tmp_path / "cut.onnx"
    assert main(["extract", str(source), "--outputs", "mm", "-o", str(out), "--check"]) == 0
    assert "weights in cut.onnx.data" in capsys.readouterr().out
    cut = onnx.load(str(out))
    props = {p.key: p.value for p in cut.metadata_props}
    assert props["license"] == "mit" and props["irtool.extracted_from"] == "ext.onnx" and cut.producer_name == "maker"
    assert cut.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_cli_check_inputs_are_checked_as_irtool_run_checks_them(tmp_path, capsys):
    """--check --input casts only what loses nothing: float64 into a float32 input is refused, as by
    ``irtool run``, instead of being rounded silently."""
    source = tmp_path / "noisy.onnx"
    _noisy_onnx(source)
    np.save(tmp_path / "x64.npy", np.array([[1, -2, 3]], np.float64))
    np.save(tmp_path / "text.npy", np.array([["a", "b", "c"]]))
    out = tmp_path / "cut.onnx"
    for name in ("x64.npy", "text.npy"):
        argv = ["extract", str(source), "--outputs", "relu", "-o", str(out), "--check", "--input", str(tmp_path / name)]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert (
            err.startswith("irtool: error: --check: input 'x': expected shape (None, 3) float32")
            and err.count("\n") == 1
        )
        assert not out.exists()


def test_cli_check_compares_string_outputs_for_equality(tmp_path, capsys):
    s = helper.make_tensor_value_info("s", TensorProto.STRING, ["n"])
    nodes = [helper.make_node("Identity", ["s"], ["t"], name="first"), helper.make_node("Identity", ["t"], ["u"])]
    graph = helper.make_graph(nodes, "text", [s], [helper.make_tensor_value_info("u", TensorProto.STRING, ["n"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "text.onnx")
    np.save(tmp_path / "s.npy", np.array(["a", "bé"]))
    argv = ["extract", str(tmp_path / "text.onnx"), "--outputs", "t", "-o", str(tmp_path / "cut.onnx")]
    assert main([*argv, "--check", "--input", str(tmp_path / "s.npy")]) == 0
    assert "output t: max |diff| 0 (2,): ok" in capsys.readouterr().out


def test_cli_a_missing_external_data_file_is_named(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "ext", [x], [], [w])
    graph.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
    source = tmp_path / "ext.onnx"
    onnx.save(helper.make_model(graph), source, save_as_external_data=True, location="ext.bin", size_threshold=0)
    (tmp_path / "ext.bin").unlink()
    assert main(["extract", str(source), "--outputs", "y", "-o", str(tmp_path / "cut.onnx")]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"irtool: error: {source} keeps its weights in ext.bin, which is not in {tmp_path} (initializer 'w')\n"
    )
    assert not (tmp_path / "cut.onnx").exists()
