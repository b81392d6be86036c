"""``irtool summary model.onnx``: the imported model's summary, or a read-only node list when ops are unsupported."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from irtool.cli import main


def _save(tmp_path, nodes, name):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_summary_of_an_importable_onnx_file(tmp_path, capsys):
    path = _save(
        tmp_path,
        [helper.make_node("Relu", ["x"], ["r"], name="act"), helper.make_node("Neg", ["r"], ["y"], name="neg")],
        "two",
    )
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'Model: "two"' in out and "act (Relu)" in out and "neg (Neg)" in out and "(2, 3)" in out


def test_summary_falls_back_to_the_node_list(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"), helper.make_node("NonZero", ["r"], ["y"], name="nz")]
    path = _save(tmp_path, nodes, "nonzero")
    assert main(["summary", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("irtool: note: Cannot import") and "NonZero (1)" in captured.err
    assert captured.err.count("\n") == 1
    lines = captured.out.splitlines()
    assert lines[0] == 'ONNX graph "nonzero" (2 nodes, read-only)'
    assert lines[2].split() == ["act", "Relu", "x", "->", "r"] and lines[3].split() == ["nz", "NonZero", "r", "->", "y"]
