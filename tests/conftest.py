"""Shared fixtures: a fresh naming session and a fixed seed for every test."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import irtool


@pytest.fixture(autouse=True)
def fresh_session():
    irtool.backend.clear_session()
    irtool.utils.set_random_seed(1234)
    yield
    irtool.backend.set_floatx("float32")


def run_onnx(proto, feeds: dict) -> list:
    """Run an ONNX ModelProto in ONNX Runtime's CPU provider."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_onnx_parity(model, feeds, atol=1e-5, rtol=1e-5, opset=None):
    """Export ``model``, check it with onnx.checker(full_check) and compare ORT with NumPy."""
    import onnx

    proto = irtool.onnx.to_onnx(model, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    if not isinstance(feeds, (list, tuple)):
        feeds = [feeds]
    names = [i.name for i in proto.graph.input]
    got = run_onnx(proto, dict(zip(names, feeds)))
    want = model.predict(list(feeds) if len(feeds) > 1 else feeds[0], verbose=0)
    if isinstance(want, dict):
        want = [want[k] for k in sorted(want)]
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol)
    return proto
