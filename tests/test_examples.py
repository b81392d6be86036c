"""The examples run and do what they say."""

import numpy as np
import pytest


def test_train_digits_reaches_its_target_and_exports_with_parity():
    pytest.importorskip("sklearn")
    import onnxruntime as ort

    from examples.train_digits import TARGET_ACCURACY, train

    model, accuracy, (x_test, _) = train(epochs=15, verbose=0)
    assert accuracy >= TARGET_ACCURACY
    import irtool

    proto = irtool.onnx.to_onnx(model)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"digit": x_test})[0], model.predict(x_test, verbose=0), atol=1e-5)
