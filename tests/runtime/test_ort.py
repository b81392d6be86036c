"""``irtool.runtime.ort``: ONNX Runtime sessions and the ONNX-vs-NumPy parity check."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import numpy_helper

import irtool as keras
from irtool import layers, ops
from irtool.runtime.ort import check_parity, make_session, random_inputs


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


def test_check_parity_passes_on_a_good_export():
    model = _mlp()
    reports = check_parity(model, keras.onnx.to_onnx(model))
    assert len(reports) == 1
    report = reports[0]
    assert set(report) == {"name", "shape", "dtype", "max_abs_diff", "max_rel_diff", "ok"}
    assert report["name"] == "dense_1"
    assert report["shape"] == (None, 3)
    assert report["dtype"] == "float32"
    assert report["ok"] is True
    assert 0 <= report["max_abs_diff"] < 1e-5


def test_check_parity_reads_a_file(tmp_path):
    model = _mlp()
    path = tmp_path / "mlp.onnx"
    model.export(path)
    assert all(r["ok"] for r in check_parity(model, str(path), batch_sizes=(2, 4, 7)))


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
    (report,) = check_parity(model, proto)
    assert report["ok"] is False
    assert report["max_abs_diff"] > 0.1
    assert report["max_rel_diff"] > 1e-3


def test_check_parity_tolerances_decide():
    model = _mlp()
    proto = keras.onnx.to_onnx(model)
    bias = next(i for i in proto.graph.initializer if i.name.endswith("dense_1/bias"))
    shifted = numpy_helper.to_array(bias) + 1e-3
    bias.CopyFrom(numpy_helper.from_array(shifted, bias.name))
    assert not check_parity(model, proto)[0]["ok"]
    (report,) = check_parity(model, proto, atol=1e-2)
    assert report["ok"] and report["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2)


def test_check_parity_multi_io_integer_inputs_and_outputs():
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    extra = keras.Input((2,), name="extra")
    x = layers.concatenate([_ToFloat()(tokens), extra])
    scores = layers.Dense(4, name="scores")(x)
    model = keras.Model({"tokens": tokens, "extra": extra}, [scores, _ArgMax(name="best")(scores)])
    reports = check_parity(model, keras.onnx.to_onnx(model))
    assert [(r["name"], r["dtype"], r["ok"]) for r in reports] == [("scores", "float32", True), ("best", "int32", True)]
    feeds = random_inputs(model, 3)
    by_name = {t.name: a for t, a in zip(model.inputs, feeds)}
    assert by_name["tokens"].dtype == np.int32 and by_name["tokens"].min() >= 0 and by_name["tokens"].max() < 5
    assert by_name["extra"].dtype == np.float32 and by_name["extra"].shape == (3, 2)


def test_random_inputs_give_dynamic_dims_sizes_other_than_one():
    inputs = keras.Input((None, 4), name="seq")
    model = keras.Model(inputs, layers.Dense(2)(inputs))
    shapes = [random_inputs(model, b, run=r)[0].shape for r, b in enumerate((2, 3))]
    assert shapes == [(2, 5, 4), (3, 3, 4)]
    assert all(r["ok"] for r in check_parity(model, keras.onnx.to_onnx(model)))


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
