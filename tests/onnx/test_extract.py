"""``irtool.onnx.extract`` on ONNX files irtool did not write: onnx.helper graphs, the files shipped
in the ``onnx`` package and torch.onnx exports. Every cut is checked with ``onnx.checker``
(``full_check``), run in ONNX Runtime and compared with an independent value: NumPy formulas,
the tensors stored next to the onnx package's models, or torch itself."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from irtool.onnx import EXTRACTED_FROM, ExtractError, cut_points, extract, extract_cut, save_cut

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def _reference(model, feeds: dict) -> list:
    return ReferenceEvaluator(model).run(None, feeds)


def _run(model, feeds: dict) -> list:
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)


def _w(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def helper_model(value_info: bool = False) -> onnx.ModelProto:
    """x[N,4] -> MatMul W -> Relu -> (+ x @ V) -> Sigmoid = y, with metadata, doc strings, an unused weight."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)  # no shape: the file says little
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm", doc_string="first layer"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["x", "V"], ["skip"], name="mm_skip"),
        helper.make_node("Add", ["r", "skip"], ["s"], name="add"),
        helper.make_node("Sigmoid", ["s"], ["y"], name="sig"),
    ]
    weights = [numpy_helper.from_array(_w((4, 3), 1), "W"), numpy_helper.from_array(_w((4, 3), 2), "V")]
    weights.append(numpy_helper.from_array(_w((7,), 3), "unused"))
    graph = helper.make_graph(nodes, "net", [x], [y], weights, doc_string="graph doc")
    if value_info:
        graph.value_info.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, ["N", 3]))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="handmade", producer_version="7"
    )
    model.doc_string = "model doc"
    helper.set_model_props(model, {"author": "someone"})
    return model


def test_cut_keeps_what_the_file_says_and_only_what_it_needs():
    cut = extract(helper_model(), outputs=["r"])
    onnx.checker.check_model(cut, full_check=True)
    assert [i.name for i in cut.graph.input] == ["x"] and [o.name for o in cut.graph.output] == ["r"]
    assert [n.name for n in cut.graph.node] == ["mm", "relu"]
    assert [t.name for t in cut.graph.initializer] == ["W"]  # V and the unused weight are left behind
    assert cut.producer_name == "handmade" and cut.producer_version == "7" and cut.doc_string == "model doc"
    assert cut.graph.doc_string == "graph doc" and cut.graph.node[0].doc_string == "first layer"
    assert [(o.domain, o.version) for o in cut.opset_import] == [("", 17)]
    assert cut.ir_version == helper_model().ir_version
    props = {p.key: p.value for p in cut.metadata_props}
    assert props["author"] == "someone" and props[EXTRACTED_FROM] == "net"
    assert props["irtool.extracted_inputs"] == "x" and props["irtool.extracted_outputs"] == "r"
    # the symbolic batch dim survives, and the output got a shape although the file had none
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(cut.graph.input[0]) == ["N", 4] and dims(cut.graph.output[0]) == ["N", 3]
    assert "h" in {v.name for v in cut.graph.value_info}
    x = _w((5, 4), 9)
    model = helper_model()
    w = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_allclose(_run(cut, {"x": x})[0], np.maximum(x @ w, 0), rtol=1e-6, atol=1e-6)


def test_cut_from_an_intermediate_tensor_and_by_node_name():
    model = helper_model(value_info=True)
    cut = extract(model, outputs=["sig"], inputs=["relu", "skip"])  # node names stand for their outputs
    onnx.checker.check_model(cut, full_check=True)
    assert [i.name for i in cut.graph.input] == ["r", "skip"] and [o.name for o in cut.graph.output] == ["y"]
    assert not cut.graph.initializer
    r, skip = _w((2, 3), 4), _w((2, 3), 5)
    np.testing.assert_allclose(_run(cut, {"r": r, "skip": skip})[0], 1 / (1 + np.exp(-(r + skip))), rtol=1e-6)


def test_cut_errors_name_the_tensor_and_the_fix():
    model = helper_model()
    with pytest.raises(ExtractError, match=r"output 'rlu': net has no tensor or node .*did you mean 'relu'"):
        extract(model, ["rlu"])
    with pytest.raises(ExtractError, match=r"also depend on x .*add it to the inputs"):
        extract(model, ["y"], inputs=["r"])  # the skip branch still reads x
    with pytest.raises(ExtractError, match=r"input 'x': the outputs r do not depend on it"):
        extract(model, ["r"], inputs=["h", "x"])
    with pytest.raises(ExtractError, match="weight"):
        extract(model, ["r"], inputs=["W"])


def test_cut_points_list_inputs_and_node_outputs_with_inferred_shapes():
    points = {p.name: p for p in cut_points(helper_model())}
    assert list(points) == ["x", "h", "r", "skip", "s", "y"]
    assert points["x"].kind == "input" and points["s"].producer == "Add"
    assert points["y"].dtype == "float32" and points["y"].shape_text == "(N, 3)"


def _loop_model() -> onnx.ModelProto:
    """``y = Loop(3 times: acc = acc * 2)``: the body's tensors exist once per iteration."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["acc_in", "two"], ["acc_out"], name="double"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["y"], name="repeat", body=body),
         helper.make_node("Neg", ["y"], ["z"], name="neg")],
        "looped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(3, np.int64), "n"), numpy_helper.from_array(np.array(2, np.float32), "two")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_cut_inside_a_loop_body_is_refused_and_one_around_it_works():
    model = _loop_model()
    with pytest.raises(ExtractError, match=r"'acc_out' is inside the 'body' graph of Loop node 'repeat'"):
        extract(model, ["acc_out"])
    # ONNX shape inference gives a Loop's outputs no shape, and the checker wants one at a graph output
    with pytest.raises(ExtractError, match=r"output 'y' \(made by Loop node 'repeat'\): .* does not declare its shape"):
        extract(model, ["y"])
    cut = extract(model, ["z"], inputs=["x"])  # the body comes along, with the weight it reads from outside
    onnx.checker.check_model(cut, full_check=True)
    assert sorted(t.name for t in cut.graph.initializer) == ["n", "two"]
    np.testing.assert_allclose(_run(cut, {"x": np.array([1, -2], np.float32)})[0], [-8, 16])


def test_only_the_functions_the_cut_calls_are_kept():
    def function(name, op):
        return helper.make_function("local", name, ["a"], ["b"], [helper.make_node(op, ["a"], ["b"])],
                                    [helper.make_opsetid("", 17)])  # fmt: skip

    graph = helper.make_graph(
        [helper.make_node("Twice", ["x"], ["t"], domain="local", name="twice"),
         helper.make_node("Absolute", ["t"], ["y"], domain="local", name="absolute")],
        "with_functions",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )  # fmt: skip
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[function("Twice", "Neg"), function("Absolute", "Abs")],
    )
    cut = extract(model, ["t"])
    onnx.checker.check_model(cut, full_check=True)
    assert [f.name for f in cut.functions] == ["Twice"]
    assert {o.domain for o in cut.opset_import} == {"", "local"}
    np.testing.assert_allclose(_run(cut, {"x": np.array([1, -2, 3], np.float32)})[0], [-1, 2, -3])


def test_external_data_in_and_out(tmp_path):
    """Zeros written as external data (as a >2 GB model would be): the cut writes its own data file."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])
    weights = [numpy_helper.from_array(np.zeros((256, 256), np.float32), f"w{i}") for i in range(4)]
    nodes, last = [], "x"
    for i in range(4):
        nodes += [helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  helper.make_node("Add", [f"m{i}", "x"], [f"a{i}"], name=f"add{i}")]  # fmt: skip
        last = f"a{i}"
    graph = helper.make_graph(
        nodes, "big", [x], [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)], weights
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    source = tmp_path / "src" / "big.onnx"
    source.parent.mkdir()
    onnx.save(model, source, save_as_external_data=True, all_tensors_to_one_file=True, location="big.bin")
    cut = extract_cut(str(source), ["a1"])
    proto = cut.to_proto()  # still pointing at the source's data file
    assert all(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer)
    out = tmp_path / "out" / "cut.onnx"
    data = save_cut(cut, out)
    assert data == out.parent / "cut.onnx.data" and data.stat().st_size == 2 * 256 * 256 * 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["cut.onnx", "cut.onnx.data"]  # no temp left
    onnx.checker.check_model(str(out), full_check=True)
    stored = onnx.load(str(out), load_external_data=False)
    assert [t.name for t in stored.graph.initializer] == ["w0", "w1"]
    assert stored.graph.initializer[0].external_data[0].value == "cut.onnx.data"
    xs = _w((3, 256), 6)
    np.testing.assert_array_equal(_run(str(out), {"x": xs})[0], xs)  # zeros weights: a1 = 0 @ ... + x


@pytest.mark.parametrize(
    ("folder", "cut_at", "then_from"),
    [
        ("pytorch-operator/test_operator_params", "3", None),  # IR 3: the weight is a graph input too
        ("pytorch-operator/test_operator_basic", "2", "0"),  # two inputs; the tail reads one of them and '2'
        ("pytorch-converted/test_PixelShuffle", None, None),
        ("pytorch-converted/test_GLU", None, None),
    ],
)
def test_files_shipped_with_onnx(folder, cut_at, then_from):
    """Cut at the output: the stored output tensor is reproduced; cut at an inner tensor: the head
    and the tail composed give the stored output too. These files are opset 6 or 9, which ONNX
    Runtime no longer implements in full, so they run in ``onnx.reference``."""
    path = DATA / folder / "model.onnx"
    model = onnx.load(str(path))
    feeds = {}
    for i, value in enumerate(v for v in model.graph.input if v.name not in {t.name for t in model.graph.initializer}):
        feeds[value.name] = numpy_helper.to_array(
            onnx.load_tensor(str(path.parent / "test_data_set_0" / f"input_{i}.pb"))
        )
    want = numpy_helper.to_array(onnx.load_tensor(str(path.parent / "test_data_set_0" / "output_0.pb")))
    output = model.graph.output[0].name
    whole = extract(str(path), [output])
    onnx.checker.check_model(whole, full_check=True)
    np.testing.assert_allclose(_reference(whole, feeds)[0], want, rtol=1e-5, atol=1e-6)
    if cut_at is None:
        return
    head = extract(str(path), [cut_at])
    tail = extract(str(path), [output], inputs=[cut_at, then_from] if then_from else [cut_at])
    for part in (head, tail):
        onnx.checker.check_model(part, full_check=True)
    if model.ir_version < 4:  # then every initializer must also be a graph input, in the cut too
        assert {t.name for t in head.graph.initializer} <= {i.name for i in head.graph.input}
    mid = dict(zip([o.name for o in head.graph.output], _reference(head, feeds)))
    extra = extract(str(path), [then_from]) if then_from else None
    if extra is not None:
        mid.update(zip([o.name for o in extra.graph.output], _reference(extra, feeds)))
    tail_feeds = {i.name: mid.get(i.name, feeds.get(i.name)) for i in tail.graph.input if i.name not in
                  {t.name for t in tail.graph.initializer}}  # fmt: skip
    np.testing.assert_allclose(_reference(tail, tail_feeds)[0], want, rtol=1e-5, atol=1e-6)


def test_torch_onnx_export_of_a_small_cnn_cut_after_the_first_block():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    class SmallCNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
            self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 3 * 3, 5))

        def forward(self, x):
            return self.head(self.block(x))

    net = SmallCNN().eval()
    x = torch.randn(2, 3, 8, 8)
    buffer = io.BytesIO()
    torch.onnx.export(net, (x,), buffer, input_names=["image"], output_names=["logits"], dynamo=False,
                      dynamic_axes={"image": {0: "batch"}})  # fmt: skip
    model = onnx.load_from_string(buffer.getvalue())
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    cut = extract(model, [pool.name])  # the node's name: its output is the feature map
    onnx.checker.check_model(cut, full_check=True)
    assert [n.op_type for n in cut.graph.node] == ["Conv", "Relu", "MaxPool"]
    assert cut.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    with torch.no_grad():
        want = net.block(x).numpy()
    np.testing.assert_allclose(_run(cut, {"image": x.numpy()})[0], want, rtol=1e-5, atol=1e-5)
    tail = extract(model, ["logits"], inputs=[pool.output[0]])
    with torch.no_grad():
        want = net.head(torch.from_numpy(want)).numpy()
    np.testing.assert_allclose(
        _run(tail, {pool.output[0]: net.block(x).detach().numpy()})[0], want, rtol=1e-5, atol=1e-5
    )
