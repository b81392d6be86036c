"""``irtool.runtime.ort``: ONNX Runtime sessions, random inputs from an ONNX graph, and the parity check.

The runtime takes ONNX and NumPy only; an irtool model enters these tests as its export and
as the ``reference`` callable that ``irtool.loading.numpy_reference`` makes of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import irtool as keras
from irtool import layers, ops
from irtool.loading import numpy_reference
from irtool.runtime.ort import TensorInfo, check_parity, graph_io, load_onnx, make_session, random_inputs

RUNTIME = Path(__file__).resolve().parents[2] / "irtool" / "runtime"


def _mlp():
    inputs = keras.Input((6,), name="x")
    x = layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, layers.Dense(3)(x), name="mlp")


class _ToFloat(layers.Layer):
    def call(self, x):
        return ops.cast(x, "float32")


class _ArgMax(layers.Layer):
    def call(self, x):
        return ops.argmax(x, axis=-1)


def _parity(model, proto, **kwargs):
    return check_parity(proto, numpy_reference(model), **kwargs)


def _relu_neg(input_shape, output_shape=None):
    """A two-node ONNX model made with ``onnx.helper`` (no irtool in it)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Neg", ["b"], ["c"])],
        "relu_neg",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, output_shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: The modules of irtool the runtime may import: leaves on the standard library and NumPy alone (the
#: memory check before large allocations, the string-tensor rule), shared rather than copied.
RUNTIME_MAY_IMPORT = {"irtool.memory", "irtool.strings"}


def test_runtime_imports_nothing_of_irtool_outside_itself():
    """Issue 11: the runtime depends on onnx, onnxruntime and numpy only, and on the leaf
    ``irtool.memory`` and ``irtool.strings`` (function-level imports included)."""
    found = []
    for path in sorted(RUNTIME.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            for name in names:
                inside = name.startswith(".") or name == "irtool.runtime" or name.startswith("irtool.runtime.")
                if (name == "irtool" or name.startswith("irtool.")) and not inside and name not in RUNTIME_MAY_IMPORT:
                    found.append(f"{path.name}:{node.lineno}: {name}")
                if name.startswith("..") or (node.__class__ is ast.ImportFrom and node.level == 1 and not node.module):
                    found.append(f"{path.name}:{node.lineno}: {name} (relative, leaves the package)")
    assert found == []


def test_runtime_import_graph_with_grimp():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("irtool")
    outside = {
        (importer, imported)
        for module in graph.find_children("irtool.runtime") | {"irtool.runtime"}
        for importer, imported in [(module, m) for m in graph.find_modules_directly_imported_by(module)]
        if not (imported == "irtool.runtime" or imported.startswith("irtool.runtime."))
        and imported not in RUNTIME_MAY_IMPORT
    }
    assert outside == set()


def test_check_parity_passes_on_a_good_export():
    model = _mlp()
    reports = _parity(model, keras.onnx.to_onnx(model))
    assert len(reports) == 1
    report = reports[0]
    assert set(report) == {"name", "shape", "dtype", "max_abs_diff", "max_rel_diff", "ok"}
    assert report["name"] == "dense_1"
    assert report["shape"] == ("batch", 3)
    assert report["dtype"] == "float32"
    assert report["ok"] is True
    assert 0 <= report["max_abs_diff"] < 1e-5


def test_check_parity_reads_a_file_and_bytes(tmp_path):
    model = _mlp()
    path = tmp_path / "mlp.onnx"
    model.export(path)
    assert all(r["ok"] for r in _parity(model, str(path), batch_sizes=(2, 4, 7)))
    assert all(r["ok"] for r in _parity(model, path.read_bytes()))


def test_check_parity_reports_tampered_weights():
    model = _mlp()
    proto = keras.onnx.to_onnx(model)
    for i, init in enumerate(proto.graph.initializer):
        if init.name.endswith("kernel"):
            tampered = numpy_helper.to_array(init) + 0.5
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(tampered, init.name))
            break
    else:
        pytest.fail(f"no kernel initializer among {[i.name for i in proto.graph.initializer]}")
    (report,) = _parity(model, proto)
    assert report["ok"] is False
    assert report["max_abs_diff"] > 0.1
    assert report["max_rel_diff"] > 1e-3


def test_check_parity_tolerances_decide():
    model = _mlp()
    proto = keras.onnx.to_onnx(model)
    bias = next(i for i in proto.graph.initializer if i.name.endswith("dense_1/bias"))
    shifted = numpy_helper.to_array(bias) + 1e-3
    bias.CopyFrom(numpy_helper.from_array(shifted, bias.name))
    assert not _parity(model, proto)[0]["ok"]
    (report,) = _parity(model, proto, atol=1e-2)
    assert report["ok"] and report["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2)


def test_check_parity_multi_io_integer_inputs_and_outputs():
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    extra = keras.Input((2,), name="extra")
    x = layers.concatenate([_ToFloat()(tokens), extra])
    scores = layers.Dense(4, name="scores")(x)
    model = keras.Model({"tokens": tokens, "extra": extra}, [scores, _ArgMax(name="best")(scores)])
    proto = keras.onnx.to_onnx(model)
    reports = _parity(model, proto)
    assert [(r["name"], r["dtype"], r["ok"]) for r in reports] == [("scores", "float32", True), ("best", "int32", True)]
    inputs, _ = graph_io(proto)
    by_name = {info.name: a for info, a in zip(inputs, random_inputs(proto, 3))}
    assert by_name["tokens"].dtype == np.int32 and by_name["tokens"].min() >= 0 and by_name["tokens"].max() < 5
    assert by_name["extra"].dtype == np.float32 and by_name["extra"].shape == (3, 2)


def test_check_parity_reports_a_shape_mismatch_and_a_wrong_output_count():
    proto = _relu_neg(["n", 4], ["n", 4])
    (report,) = check_parity(proto, lambda xs: [-np.maximum(xs[0], 0)[:1]], reference_name="NumPy")
    assert report["ok"] is False and report["max_abs_diff"] == float("inf")
    assert report["error"] == "batch 2: ONNX Runtime gave float32[2, 4], NumPy float32[1, 4]"
    with pytest.raises(ValueError, match=r"the reference gave 2 outputs, but the ONNX model has 1 \(c\)"):
        check_parity(proto, lambda xs: [xs[0], xs[0]])


def test_check_parity_of_an_onnx_file_with_a_numpy_reference():
    (report,) = check_parity(_relu_neg(["batch", "n"], ["batch", "n"]), lambda xs: [-np.maximum(xs[0], 0)])
    assert report["ok"] and report["shape"] == ("batch", "n") and report["max_abs_diff"] == 0


def test_random_inputs_give_dynamic_dims_sizes_other_than_one():
    inputs = keras.Input((None, 4), name="seq")
    model = keras.Model(inputs, layers.Dense(2)(inputs))
    proto = keras.onnx.to_onnx(model)
    shapes = [random_inputs(proto, b, run=r)[0].shape for r, b in enumerate((2, 3))]
    assert shapes == [(2, 5, 4), (3, 3, 4)]
    assert all(r["ok"] for r in _parity(model, proto))


def test_random_inputs_match_what_the_model_based_version_gave():
    """Same seeds, same order of draws: ``--check`` feeds the arrays it fed before the runtime lost the model."""
    proto = keras.onnx.to_onnx(_mlp())
    rng = np.random.default_rng([0, 1, 3])
    np.testing.assert_array_equal(random_inputs(proto, 3, run=1)[0], rng.standard_normal((3, 6)).astype(np.float32))


def test_random_inputs_share_named_dims_and_take_tensor_infos():
    infos = [
        TensorInfo("a", np.dtype("float32"), ("batch", "n", 2)),
        TensorInfo("b", np.dtype("bool"), ("batch", None, "n")),
        TensorInfo("c", np.dtype("int64"), (7,)),
    ]
    a, b, c = random_inputs(infos, 4)
    assert a.shape == (4, 5, 2) and b.shape == (4, 5, 5) and c.shape == (7,)  # "n" at axis 2 alone would get 3
    assert b.dtype == np.bool_ and c.dtype == np.int64
    with pytest.raises(ValueError, match="'d' has no declared shape"):
        random_inputs([TensorInfo("d", np.dtype("float32"), None)], 2)
    with pytest.raises(ValueError, match="'s' has element type object"):
        random_inputs([TensorInfo("s", np.dtype(object), (2,))], 2)


def test_graph_io_reads_declared_inputs_and_outputs(tmp_path):
    proto = _relu_neg(["batch", 3], None)
    proto.graph.input[0].type.tensor_type.shape.dim[1].Clear()  # an unnamed dynamic dim
    inputs, outputs = graph_io(proto)
    assert inputs == [TensorInfo("a", np.dtype("float32"), ("batch", None))]
    assert outputs == [TensorInfo("c", np.dtype("float32"), None)]
    onnx.save(proto, tmp_path / "m.onnx")
    assert graph_io(tmp_path / "m.onnx") == graph_io(proto.SerializeToString()) == (inputs, outputs)


def test_graph_io_leaves_out_initializers_listed_as_inputs():
    proto = keras.onnx.to_onnx(_mlp())
    proto.graph.input.extend([helper.make_tensor_value_info(proto.graph.initializer[0].name, TensorProto.FLOAT, None)])
    assert [info.name for info in graph_io(proto)[0]] == ["x"]


def test_load_onnx_errors_name_the_file(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\xff\xff garbage")
    with pytest.raises(ValueError, match="bad.onnx is not a readable ONNX model"):
        load_onnx(tmp_path / "bad.onnx")
    with pytest.raises(OSError):
        load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="the bytes given is not a readable ONNX model"):
        load_onnx(b"\x08\xff\xff garbage")


def test_make_session_defaults_to_cpu():
    session = make_session(keras.onnx.to_onnx(_mlp()))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert [i.name for i in session.get_inputs()] == ["x"]


def test_make_session_accepts_paths_and_bytes(tmp_path):
    proto = keras.onnx.to_onnx(_mlp())
    onnx.save(proto, tmp_path / "m.onnx")
    for source in (tmp_path / "m.onnx", str(tmp_path / "m.onnx"), proto.SerializeToString()):
        assert make_session(source, "CPUExecutionProvider").get_providers() == ["CPUExecutionProvider"]


@pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="CUDA is available here")
def test_make_session_refuses_a_missing_provider():
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
        make_session(keras.onnx.to_onnx(_mlp()), ["CUDAExecutionProvider"])


def test_check_parity_names_the_set_and_tells_rounding_from_a_real_disagreement():
    proto = _relu_neg(["batch", 4], ["batch", 4])
    x = np.array([[1.0, -2.0, 3.0, 0.5]], np.float32)
    sets = [("all negative", [-np.abs(x)]), ("mixed", [x])]
    exact = lambda xs: [-np.maximum(xs[0].astype(np.float64), 0)]  # noqa: E731
    # the reference is 1e-3 off where ONNX Runtime is exact: ONNX Runtime is the closer, so rounding
    (report,) = check_parity(
        proto, lambda xs: [-np.maximum(xs[0], 0) * np.float32(1.001)], input_sets=sets, exact_reference=exact
    )
    assert report["ok"] is False and report["worst"] == "mixed" and report["worst_index"] == (0, 2)
    assert report["onnx_value"] == -3.0 and report["reference_value"] == pytest.approx(-3.003)
    assert report["verdict"] == "float rounding" and report["onnx_error"] == 0
    # the reference computes something else (+1e-3) and its float64 run agrees: a real disagreement
    shifted = lambda xs: [-np.maximum(xs[0].astype(np.float64), 0) + 1e-3]  # noqa: E731
    (report,) = check_parity(
        proto, lambda xs: [shifted(xs)[0].astype(np.float32)], input_sets=sets, exact_reference=shifted
    )
    assert report["verdict"] == "a real disagreement" and report["onnx_error"] == pytest.approx(1e-3, rel=1e-3)
    assert report["reference_error"] < 1e-7
    assert report["worst"] == "all negative"  # the first set of the largest difference
    # without an exact reference there is no verdict; integer-free outputs that agree get no location
    (report,) = check_parity(proto, lambda xs: [-np.maximum(xs[0], 0)], input_sets=sets)
    assert report["ok"] and "worst" not in report and "verdict" not in report
