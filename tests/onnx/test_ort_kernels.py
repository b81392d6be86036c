"""Element types ONNX Runtime has no CPU kernel for (``irtool/onnx/ort_kernels.py``): the table
holds on the installed ONNX Runtime, and models on those types export and agree with ``predict``."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import irtool
from irtool import ops
from irtool.onnx import ort_kernels

from ..harness import assert_onnx_parity

TYPES = {
    "bool": TensorProto.BOOL,
    "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8,
    "int16": TensorProto.INT16,
    "uint16": TensorProto.UINT16,
    "int32": TensorProto.INT32,
    "uint32": TensorProto.UINT32,
    "int64": TensorProto.INT64,
    "uint64": TensorProto.UINT64,
    "float16": TensorProto.FLOAT16,
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
}
_CONSTANT_INPUTS = {  # the ops' other inputs, as irtool emits them
    "Pad": [np.array([0, 1, 0, 1], np.int64)],
    "ReduceMax": [np.array([1], np.int64)],
    "ReduceMin": [np.array([1], np.int64)],
    "ReduceSum": [np.array([1], np.int64)],
    "ReduceProd": [np.array([1], np.int64)],
    "TopK": [np.array([2], np.int64)],
    "CumSum": [np.array(1, np.int64)],
}
_BOOL_OUT = {"Less", "Greater", "LessOrEqual", "GreaterOrEqual"}


def _runs(op: str, dtype: str) -> bool:
    """Whether ONNX Runtime's CPU provider loads and runs one ``op`` node on ``dtype``."""
    x = np.ones((2, 3), dtype)
    feeds = {"x": x}
    inputs = ["x"]
    inits = []
    if op in ("Where",):
        feeds = {"c": np.ones((2, 3), bool), "x": x, "x2": x}
        inputs = ["c", "x", "x2"]
    elif op == "Clip":
        inits = [numpy_helper.from_array(np.asarray(v, dtype), n) for n, v in (("lo", 0), ("hi", 1))]
        inputs = ["x", "lo", "hi"]
    elif op in _CONSTANT_INPUTS:
        inits = [numpy_helper.from_array(_CONSTANT_INPUTS[op][0], "k")]
        inputs = ["x", "k"]
    elif op not in ("Abs", "Sign", "Neg", "ArgMax", "ArgMin", "Trilu", "Einsum"):  # binary
        feeds["x2"] = np.ones((3, 2) if op == "MatMul" else (2, 3), dtype)
        inputs = ["x", "x2"]
    out_type = (
        TensorProto.BOOL if op in _BOOL_OUT else TensorProto.INT64 if op in ("ArgMax", "ArgMin") else TYPES[dtype]
    )
    outputs = ["y", "i"] if op == "TopK" else ["y"]
    attrs = {"equation": "ij->ji"} if op == "Einsum" else {}
    if op == "Mod" and dtype.startswith("float"):
        attrs = {"fmod": 1}  # ONNX's rule: floats take C's remainder only
    graph = helper.make_graph(
        [helper.make_node(op, inputs, outputs, **attrs)],
        "one",
        [helper.make_tensor_value_info(k, TYPES[str(v.dtype)], v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info(n, out_type if n == "y" else TensorProto.INT64, None) for n in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception:  # noqa: BLE001 - ONNX's type check or ORT's NOT_IMPLEMENTED: no kernel
        return False
    return True


@pytest.mark.parametrize("op", sorted(ort_kernels.MISSING))
def test_the_table_names_every_type_onnxruntime_lacks_and_the_wider_one_runs(op):
    missing = ort_kernels.MISSING[op]
    unlisted = [t for t in TYPES if t not in missing and not _runs(op, t)]
    # float16 and the float-only ops aside, every type irtool may emit runs or is in the table
    assert [t for t in unlisted if t != "float16"] == [], f"{op}: add {unlisted} to ort_kernels.MISSING"
    assert all(_runs(op, ort_kernels.wider(t)) for t in missing)


CASES = {
    "int8 power": (lambda x: x**2, np.array([[1, -5, 3, 0, 2]], "int8")),
    "uint8 matmul": (
        lambda x: ops.matmul(x, np.array([[1], [2], [3], [4], [5]], "uint8")),
        np.array([[1, 2, 3, 4, 1]], "uint8"),
    ),
    "uint8 negative wraps": (lambda x: -x, np.array([[200, 100, 50, 7, 1]], "uint8")),
    "bool multiply and add": (lambda x: ops.add(x * x, ops.logical_not(x)), np.array([[True, False, True]])),
    "bool argmax": (lambda x: ops.argmax(x, axis=-1), np.array([[False, True, True]])),
    "int16 max and maximum": (
        lambda x: ops.maximum(x, ops.max(x, axis=-1, keepdims=True) - 2),
        np.array([[2, 5, -3]], "int16"),
    ),
    "int16 where, clip, pad, relu": (
        lambda x: ops.pad(ops.relu(ops.clip(ops.where(x > 0, x, x * 2), -4, 4)), ((0, 0), (1, 1))),
        np.array([[2, -5, 3, 9]], "int16"),
    ),
    "int16 argmin": (lambda x: ops.argmin(x, axis=-1), np.array([[2, -5, 3]], "int16")),
    "uint16 sort and top_k": (
        lambda x: ops.add(ops.sort(x), ops.top_k(x, 4)[0]),
        np.array([[3, 1, 60000, 2]], "uint16"),
    ),
    "uint32 sum": (lambda x: ops.sum(x, axis=-1), np.array([[4_000_000_000, 1, 2]], "uint32")),
    "int8 cumsum": (lambda x: ops.cumsum(x, axis=-1), np.array([[100, 100, -50]], "int8")),
    "uint8 tril": (lambda x: ops.tril(x), np.arange(9, dtype="uint8").reshape(1, 3, 3)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_models_on_types_without_kernels_export_and_agree(name):
    build, x = CASES[name]
    inputs = irtool.Input(x.shape[1:], dtype=str(x.dtype))
    model = irtool.Model(inputs, build(inputs))
    assert_onnx_parity(model, x, atol=0, rtol=0)


def test_ordering_uint64_is_refused_not_computed_wrongly():
    """int64 keeps uint64's arithmetic but not its order: a max over 2**63 + 5 and 7 would be 7."""
    inputs = irtool.Input((3,), dtype="uint64")
    model = irtool.Model(inputs, ops.max(inputs, axis=-1))
    with pytest.raises(ValueError, match="no ReduceMax kernel for uint64, and int64 would order values"):
        irtool.onnx.to_onnx(model)
    summed = irtool.Model(inputs, ops.sum(inputs, axis=-1))  # arithmetic: int64 wraps as uint64 does
    assert_onnx_parity(summed, np.array([[2**63 + 5, 7, 2**64 - 1]], "uint64"), atol=0, rtol=0)
