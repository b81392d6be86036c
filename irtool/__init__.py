"""irtool: a Keras-3-compatible functional API over a networkx graph IR, with a NumPy
executor and lowering to ONNX.

    import irtool as keras
    from irtool import layers, ops
"""

from irtool import (
    activations,
    applications,
    backend,
    callbacks,
    constraints,
    initializers,
    layers,
    losses,
    metrics,
    models,
    onnx,
    ops,
    optimizers,
    regularizers,
    saving,
    utils,
)
from irtool.layers import Input, InputLayer, Layer
from irtool.models import Functional, Model, Sequential
from irtool.ops.variable import Variable
from irtool.version import __version__

__all__ = [
    "Functional",
    "Input",
    "InputLayer",
    "Layer",
    "Model",
    "Sequential",
    "Variable",
    "activations",
    "applications",
    "backend",
    "callbacks",
    "constraints",
    "losses",
    "metrics",
    "initializers",
    "layers",
    "models",
    "onnx",
    "optimizers",
    "ops",
    "regularizers",
    "saving",
    "utils",
    "__version__",
]
