"""ONNX ``Resize`` onto irtool's image resize: torch.onnx exports of ``F.interpolate``.

References: PyTorch's outputs, ONNX Runtime on the original file, and the re-export with
``full_check``; a mode with no exact irtool equivalent is refused with its attributes named.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irtool import importer

from ..harness import run_onnx

torch = pytest.importorskip("torch")


class Interpolate(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return torch.nn.functional.interpolate(torch.relu(x), **self.kwargs)


def _export(module, x, **kwargs):
    buffer = io.BytesIO()
    torch.onnx.export(
        module, (torch.from_numpy(x),), buffer, input_names=["x"], dynamo=False, opset_version=17, **kwargs
    )
    return onnx.load_from_string(buffer.getvalue())


CASES = {
    "nearest_x2": dict(scale_factor=2, mode="nearest"),
    "nearest_x3_2": dict(scale_factor=(3, 2), mode="nearest"),
    "bilinear_x2": dict(scale_factor=2, mode="bilinear", align_corners=False),
    "bilinear_size": dict(size=(5, 11), mode="bilinear", align_corners=False),
}


@pytest.mark.parametrize("kwargs", list(CASES.values()), ids=list(CASES))
def test_torch_interpolate_imports_exactly(kwargs):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 6)).astype("float32")
    module = Interpolate(**kwargs).eval()
    proto = _export(module, x)
    assert any(n.op_type == "Resize" for n in proto.graph.node)
    model = importer.load(proto)
    want = module(torch.from_numpy(x)).numpy()
    got = model.predict(x, verbose=0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, run_onnx(proto, {"x": x})[0], atol=1e-6)
    np.testing.assert_allclose(got, want, atol=1e-5)
    again = model.to_onnx()
    onnx.checker.check_model(again, full_check=True)
    np.testing.assert_allclose(run_onnx(again, {"x": x})[0], got, atol=1e-6)


def test_dynamic_batch_and_spatial_sizes_with_integer_factors():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 6)).astype("float32")
    module = Interpolate(scale_factor=2, mode="nearest").eval()
    proto = _export(module, x, dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    model = importer.load(proto)
    assert model.inputs[0].shape == (None, 3, None, None)
    y = np.random.default_rng(2).standard_normal((1, 3, 5, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(y, verbose=0), module(torch.from_numpy(y)).numpy(), atol=0)


def test_align_corners_is_refused_with_its_attributes():
    x = np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype("float32")
    proto = _export(Interpolate(size=(7, 5), mode="bilinear", align_corners=True).eval(), x)
    with pytest.raises(
        importer.OnnxImportError, match=r"\(Resize\): mode=linear, coordinate_transformation_mode=align_corners"
    ):
        importer.load(proto)


@pytest.mark.parametrize("sizes", [(5, 11), (3, 4)], ids=["up", "down"])
def test_half_pixel_round_prefer_ceil_nearest_to_any_size_matches_onnx_runtime(sizes):
    """torch's ``nearest-exact`` (which its TorchScript exporter cannot write at opset 17), by hand."""
    node = helper.make_node(
        "Resize", ["x", "", "", "sizes"], ["y"], name="up", mode="nearest", nearest_mode="round_prefer_ceil"
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, *sizes])],
        [numpy_helper.from_array(np.array([2, 3, *sizes], np.int64), "sizes")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 6)).astype("float32")
    model = importer.load(proto)
    want = run_onnx(proto, {"x": x})[0]
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    np.testing.assert_array_equal(run_onnx(model.to_onnx(), {"x": x})[0], want)
