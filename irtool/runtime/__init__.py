"""Running ONNX models with ONNX Runtime. Takes ONNX and NumPy arrays only: nothing here imports
irtool's models or layers (``irtool.loading`` turns a model source into ONNX)."""

from irtool.runtime.ort import (
    CPU,
    TensorInfo,
    check_parity,
    graph_io,
    load_onnx,
    make_session,
    random_inputs,
)

__all__ = ["CPU", "TensorInfo", "check_parity", "graph_io", "load_onnx", "make_session", "random_inputs"]
