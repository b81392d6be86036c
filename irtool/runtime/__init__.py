"""Running ONNX models with ONNX Runtime. Takes ONNX and NumPy arrays only: nothing here imports
irtool's models or layers (``irtool.loading`` turns a model source into ONNX).

``Session`` is the API for running a model (checked feeds, verified providers, IO binding);
``make_session`` is the one place a raw ``onnxruntime.InferenceSession`` is opened.
"""

from irtool.runtime.feeds import InputError
from irtool.runtime.ort import (
    CPU,
    TensorInfo,
    check_parity,
    graph_io,
    load_onnx,
    make_session,
    random_inputs,
)
from irtool.runtime.providers import ProviderError, conflict_message, cuda_options, installed_runtimes
from irtool.runtime.session import Binding, Metadata, Session

__all__ = [
    "CPU",
    "Binding",
    "InputError",
    "Metadata",
    "ProviderError",
    "Session",
    "TensorInfo",
    "check_parity",
    "conflict_message",
    "cuda_options",
    "graph_io",
    "installed_runtimes",
    "load_onnx",
    "make_session",
    "random_inputs",
]
