"""Shared fixtures: a fresh naming session and a fixed seed for every test.

The shared checks live in ``tests/harness.py``; ``run_onnx`` and ``assert_onnx_parity`` are
re-exported here for the tests that import them from ``conftest``.
"""

from __future__ import annotations

import pytest

import irtool

from .harness import assert_onnx_parity, run_onnx

__all__ = ["assert_onnx_parity", "run_onnx"]


@pytest.fixture(autouse=True)
def fresh_session():
    irtool.backend.clear_session()
    irtool.utils.set_random_seed(1234)
    yield
    irtool.backend.set_floatx("float32")
