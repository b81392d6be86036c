"""The ONNX export of LSTM reorders Keras' gate blocks (i, f, c, o) into ONNX's (i, o, f, c):
ONNX Runtime's LSTM must compute what irtool's NumPy LSTM computes, with weights that make
every gate matter."""

from __future__ import annotations

import numpy as np
import pytest

import irtool

from ..harness import run_onnx


@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm_onnx_matches_numpy(return_sequences):
    rng = np.random.default_rng(0)
    inputs = irtool.Input((5, 3), name="x")
    lstm = irtool.layers.LSTM(4, return_sequences=return_sequences, name="lstm")
    model = irtool.Model(inputs, lstm(inputs))
    # Distinct scales per gate block, so a permuted block changes the output.
    model.set_weights([rng.normal(scale=0.6, size=w.shape).astype("float32") for w in model.get_weights()])
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    want = model.predict(x, verbose=0)
    (got,) = run_onnx(model.to_onnx(), {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
