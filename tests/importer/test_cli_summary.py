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


def test_plot_layers_draws_the_import_and_the_default_stays_node_by_node(tmp_path, capsys):
    path = _save(
        tmp_path,
        [helper.make_node("Relu", ["x"], ["r"], name="/block/act"), helper.make_node("Neg", ["r"], ["y"], name="neg")],
        "two",
    )
    layers_dot, nodes_dot = tmp_path / "layers.dot", tmp_path / "nodes.dot"
    assert main(["plot", str(path), "-o", str(layers_dot), "--layers", "--show-shapes", "--show-trainable"]) == 0
    assert capsys.readouterr().out == f"plotted model 'two' -> {layers_dot} (dot)\n"
    text = layers_dot.read_text()
    # The layer view: layers named after the nodes ("/" read as "."), edges between layer names.
    assert 'x -> "block.act"' in text and '"block.act" -> neg' in text and "(None, 3)" not in text
    assert "Relu" in text and "(2, 3)" in text
    assert main(["plot", str(path), "-o", str(nodes_dot)]) == 0
    assert "node0 -> node1" in nodes_dot.read_text()


def test_plot_layers_errors_are_one_line(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"), helper.make_node("NonZero", ["r"], ["y"], name="nz")]
    path = _save(tmp_path, nodes, "nonzero")
    assert main(["plot", str(path), "-o", str(tmp_path / "n.dot"), "--layers"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("irtool: error: --layers: Cannot import") and "NonZero (1)" in err
    assert "without --layers the file is drawn node by node" in err and err.count("\n") == 1
    source = tmp_path / "m.py"
    source.write_text("import irtool\nmodel = irtool.Sequential([irtool.Input((2,)), irtool.layers.Dense(1)])\n")
    assert main(["plot", str(source), "-o", str(tmp_path / "m.dot"), "--layers"]) == 1
    assert "--layers applies to ONNX files" in capsys.readouterr().err
    assert not (tmp_path / "n.dot").exists() and not (tmp_path / "m.dot").exists()
