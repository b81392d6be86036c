"""``onnx_to_dot`` / ``plot_onnx``: node-level pictures of ONNX files, irtool's and hand-made ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irtool.viz import onnx_to_dot, plot_onnx, render, styles

from .dotparse import cell_lines, label_rows, parse_dot
from .guide_models import ticket_classifier, toy_resnet
from .test_plot_model import needs_pip_renderer, png_size, svg_root, svg_texts


def hand_made_model() -> onnx.ModelProto:
    """Conv(+bias) -> Relu -> Reshape(by a Constant) -> MatMul -> Add, made with onnx.helper, no value_info."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.random((4, 3, 3, 3), dtype=np.float32), "conv.weight")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "conv.bias")
    dense = numpy_helper.from_array(rng.random((144, 10), dtype=np.float32), "fc.weight")
    fc_bias = numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")
    shape = helper.make_tensor("target_shape", TensorProto.INT64, [2], [0, 144])
    nodes = [
        helper.make_node("Conv", ["X", "conv.weight", "conv.bias"], ["c"], name="features/conv"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Constant", [], ["shape"], value=shape),
        helper.make_node("Reshape", ["r", "shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "fc.weight"], ["logits_raw"], name="fc/MatMul"),
        helper.make_node("Add", ["logits_raw", "fc.bias"], ["Y"], name="fc/Add"),
    ]
    graph = helper.make_graph(
        nodes,
        "hand_made",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 10])],
        [weight, bias, dense, fc_bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_hand_made_model_boxes_folded_initializers_and_inferred_shapes():
    dot = parse_dot(onnx_to_dot(hand_made_model(), show_dtype=True).source)
    assert list(dot.nodes) == ["input0", "node0", "node1", "node3", "node4", "node5", "output0"]  # no Constant box
    assert dot.edges == [
        ("input0", "node0"),
        ("node0", "node1"),
        ("node1", "node3"),
        ("node3", "node4"),
        ("node4", "node5"),
        ("node5", "output0"),
    ]
    assert label_rows(dot.nodes["input0"]) == [["X (Input)"], ["Shape (N, 3, 8, 8)", "Dtype float32"]]
    conv = label_rows(dot.nodes["node0"])
    assert conv[:4] == [["Conv"], ["features/conv"], ["W: (4, 3, 3, 3) float32"], ["B: (4,) float32"]]
    assert cell_lines(dot.nodes["node0"], "Output shape") == ["(N, 4, 6, 6)"]  # from shape inference
    assert label_rows(dot.nodes["node1"])[0] == ["Relu"]  # an unnamed node shows its type only
    assert label_rows(dot.nodes["node3"])[2] == ["shape: (2,) int64"]  # the Constant node, folded
    assert cell_lines(dot.nodes["node3"], "Output shape") == ["(N, 144)"]
    assert label_rows(dot.nodes["node4"])[2] == ["B: (144, 10) float32"]
    assert cell_lines(dot.nodes["output0"], "Shape") == ["(N, 10)"]
    assert dot.header_color("node0") == styles.FAMILY_COLORS["conv"]
    assert dot.header_color("node1") == styles.FAMILY_COLORS["activation"]
    assert dot.header_color("node3") == styles.FAMILY_COLORS["reshape"]
    assert dot.header_color("node4") == styles.FAMILY_COLORS["core"]
    assert dot.header_color("input0") == styles.FAMILY_COLORS["input"]


def test_irtool_export_of_the_toy_resnet(tmp_path):
    model = toy_resnet()
    path = tmp_path / "resnet.onnx"
    model.export(str(path))
    proto = onnx.load(str(path))
    dot = parse_dot(onnx_to_dot(path).source)
    assert len(dot.nodes) == len(proto.graph.node) + 2  # one input, one output, no initializer boxes
    headers = [label_rows(label)[0][0] for label in dot.nodes.values()]
    assert headers.count("Conv") == 7 and headers.count("Gemm") == 2 and headers.count("Add") == 2
    assert headers[0] == "img (Input)" and headers[-1] == f"{proto.graph.output[0].name} (Output)"
    first_conv = next(n for n, label in dot.nodes.items() if label_rows(label)[0] == ["Conv"])
    rows = label_rows(dot.nodes[first_conv])
    assert ["W: (32, 3, 3, 3)"] in rows and ["B: (32,)"] in rows
    assert cell_lines(dot.nodes[first_conv], "Output shape") == ["(batch, 32, 30, 30)"]
    assert cell_lines(dot.nodes["output0"], "Shape") == ["(batch, 10)"]
    adds = [n for n, label in dot.nodes.items() if label_rows(label)[0] == ["Add"]]
    assert all(sum(head == add for _, head in dot.edges) == 2 for add in adds)  # the residual joins
    assert len(dot.edges) == len(dot.edge_set)


def test_a_multi_output_export_with_shapes_and_names(tmp_path):
    path = tmp_path / "ticket.onnx"
    ticket_classifier().export(str(path))
    dot = parse_dot(onnx_to_dot(path).source)
    inputs = [label_rows(dot.nodes[n])[0][0] for n in dot.nodes if n.startswith("input")]
    outputs = [label_rows(dot.nodes[n])[0][0] for n in dot.nodes if n.startswith("output")]
    assert inputs == ["title (Input)", "body (Input)", "tags (Input)"]
    assert sorted(outputs) == ["department (Output)", "priority (Output)"]
    lstms = [n for n in dot.nodes if label_rows(dot.nodes[n])[0] == ["LSTM"]]
    assert len(lstms) == 2
    assert ["W: (1, 512, 64)"] in label_rows(dot.nodes[lstms[0]])


def test_unknown_domains_long_names_subgraphs_and_legacy_initializer_inputs():
    weight = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y_then"])],
        "then",
        [],
        [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [1, 2])],
    )
    long_name = "very/long/exporter/path/" * 4 + "MatMul"
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name=long_name),
        helper.make_node("FusedThing", ["m"], ["f"], domain="com.example"),
        helper.make_node("ReduceSum", ["f"], ["s"], keepdims=0),
        helper.make_node("Cast", ["s"], ["cond"], to=TensorProto.BOOL),
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch),
    ]
    graph = helper.make_graph(
        nodes,
        "odd",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2]),  # IR < 4 style: initializer as input
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [weight],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)], ir_version=8
    )
    dot = parse_dot(onnx_to_dot(model).source)
    assert [n for n in dot.nodes if n.startswith("input")] == ["input0"]  # w is folded, not an input box
    matmul = label_rows(dot.nodes["node0"])
    assert matmul[1][0].startswith("very/long/exporter") and "…" in matmul[1][0] and len(matmul[1][0]) <= 48
    assert matmul[2] == ["B: (2, 2)"]
    assert label_rows(dot.nodes["node1"])[0] == ["com.example.FusedThing"]
    assert cell_lines(dot.nodes["node1"], "Output shape") == ["?"]  # nobody knows its shapes
    assert ["subgraphs (not drawn): else_branch, then_branch"] in label_rows(dot.nodes["node4"])
    assert dot.edges == [("input0", "node0"), ("node0", "node1"), ("node1", "node2"), ("node2", "node3")] + [
        ("node3", "node4"),
        ("node4", "output0"),
    ]


def test_shape_inference_failure_still_draws(monkeypatch):
    def refuse(model, *args, **kwargs):
        raise onnx.shape_inference.InferenceError("[ShapeInferenceError] nope")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", refuse)
    with pytest.warns(UserWarning, match="ONNX shape inference failed"):
        dot = parse_dot(onnx_to_dot(hand_made_model()).source)
    assert cell_lines(dot.nodes["node0"], "Output shape") == ["?"]
    assert cell_lines(dot.nodes["input0"], "Shape") == ["(N, 3, 8, 8)"]  # declared shapes remain


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(ValueError, match="bad.onnx is not a readable ONNX model"):
        onnx_to_dot(bad)


@needs_pip_renderer
def test_plot_onnx_renders_png_and_svg(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(hand_made_model(), str(path))
    png = plot_onnx(path, tmp_path / "m.png", renderer="graphviz-pure")
    width, height = png_size(png.data)
    assert 200 < width < 3000 and 500 < height < 8000
    plot_onnx(path, tmp_path / "m.svg", show_dtype=True, rankdir="LR", renderer="graphviz-pure")
    texts = svg_texts(svg_root((tmp_path / "m.svg").read_bytes()))
    assert "Conv" in texts and "(N, 4, 6, 6)" in texts
    inline = plot_onnx(path, None)
    assert "image/svg+xml" in inline._repr_mimebundle_()
    assert render.format_of(tmp_path / "m.svg") == "svg"


def constant_chains_model() -> onnx.ModelProto:
    """Weights reaching their consumers through Cast / Transpose / ConstantOfShape chains, as
    exporters write them; a random op and a constant graph output that must stay boxes."""
    rng = np.random.default_rng(1)
    kernel = numpy_helper.from_array(rng.random((3, 3, 3, 4)).astype(np.float16), "kernel_hwio")
    nodes = [
        helper.make_node("Cast", ["kernel_hwio"], ["kernel32"], to=TensorProto.FLOAT, name="cast_w"),
        helper.make_node("Transpose", ["kernel32"], ["W"], perm=[3, 2, 0, 1], name="to_oihw"),
        helper.make_node("Constant", [], ["bias_shape"], value=numpy_helper.from_array(np.array([4], np.int64))),
        helper.make_node(
            "ConstantOfShape", ["bias_shape"], ["B"], value=numpy_helper.from_array(np.zeros(1, np.float32))
        ),
        helper.make_node("Conv", ["X", "W", "B"], ["c"], name="conv"),
        helper.make_node("RandomNormal", [], ["noise"], shape=[1, 4, 6, 6]),
        helper.make_node("Add", ["c", "noise"], ["Y"], name="add"),
        helper.make_node("Shape", ["kernel_hwio"], ["kernel_shape"], name="kernel_shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "chains",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4, 6, 6]),
            helper.make_tensor_value_info("kernel_shape", TensorProto.INT64, [4]),
        ],
        [kernel],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_constant_chains_fold_into_their_consumer():
    dot = parse_dot(onnx_to_dot(constant_chains_model()).source)
    headers = {node: dot.header(node) for node in dot.nodes}
    # Cast, Transpose, Constant and ConstantOfShape are folded; the random op and the graph output stay.
    assert headers == {
        "input0": "X (Input)",
        "node4": "Conv",
        "node5": "RandomNormal",
        "node6": "Add",
        "node7": "Shape",
        "output0": "Y (Output)",
        "output1": "kernel_shape (Output)",
    }
    conv = label_rows(dot.nodes["node4"])
    assert conv[2:4] == [["W: (4, 3, 3, 3) (Transpose)"], ["B: (4,) (ConstantOfShape)"]]
    assert ("node5", "node6") in dot.edge_set and ("node7", "output1") in dot.edge_set
    assert not any(tail == "node4" and head == "node7" for tail, head in dot.edges)


def _chain_model(length: int) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"]) for i in range(length)]
    graph = helper.make_graph(
        nodes,
        "relus",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(f"v{length}", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_auto_splines_are_orthogonal_for_small_graphs_only():
    small = styles.ORTHO_MAX_BOXES - 2  # plus the input and output boxes
    assert parse_dot(onnx_to_dot(_chain_model(small)).source).graph_attributes["splines"] == "ortho"
    big = _chain_model(small + 1)
    assert parse_dot(onnx_to_dot(big).source).graph_attributes["splines"] == "spline"
    assert parse_dot(onnx_to_dot(big, splines="ortho").source).graph_attributes["splines"] == "ortho"
    assert styles.resolve_splines("polyline", 10_000) == "polyline"
