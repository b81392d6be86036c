"""The ONNX files shipped in the ``onnx`` package (``backend/test/data/pytorch-converted`` and
``simple``), written by PyTorch and the ONNX project, not by irtool: each imports and runs in
NumPy with the stored outputs, or is refused with the documented reason (docs/onnx_import.md)."""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from irtool import importer

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
CASES = sorted(glob.glob(os.path.join(DATA, "pytorch-converted", "*")) + glob.glob(os.path.join(DATA, "simple", "*")))

# Refused on purpose (docs/onnx_import.md): sequences, strings and the training-preview Gradient
# have no irtool primitive; Expand's target shape is a graph input, while irtool's shapes are static.
UNSUPPORTED = {"Gradient": 2, "Sequence": 8, "StringNormalizer": 6}
DYNAMIC_SHAPE = {"test_expand_shape_model1", "test_expand_shape_model2", "test_expand_shape_model3",
                 "test_expand_shape_model4"}  # fmt: skip


def _tensors(folder: str, kind: str) -> list:
    files = sorted(glob.glob(os.path.join(folder, f"{kind}_*.pb")), key=lambda f: int(f.rsplit("_", 1)[1][:-3]))
    return [numpy_helper.to_array(onnx.load_tensor(f)) for f in files]


def _expected_refusal(model: onnx.ModelProto) -> bool:
    ops = {n.op_type for n in model.graph.node}
    return any(any(key in op for op in ops) for key in UNSUPPORTED)


def test_corpus_is_there():
    assert len(CASES) == 105


@pytest.mark.parametrize("folder", CASES, ids=os.path.basename)
def test_backend_model_runs_with_the_stored_outputs(folder):
    path = os.path.join(folder, "model.onnx")
    proto = onnx.load(path)
    name = os.path.basename(folder)
    if _expected_refusal(proto):
        with pytest.raises(importer.UnsupportedOpsError, match="unsupported ONNX op type"):
            importer.load(path)
        return
    if name in DYNAMIC_SHAPE:
        with pytest.raises(importer.OnnxImportError, match="must be a constant known at import time"):
            importer.load(path)
        return
    model = importer.load(path)
    for data_set in sorted(glob.glob(os.path.join(folder, "test_data_set_*"))):
        inputs, expected = _tensors(data_set, "input"), _tensors(data_set, "output")
        got = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
        got = got if isinstance(got, list) else [got]
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == e.dtype
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
