"""``OnnxNode``: the layer an imported ONNX node becomes.

One layer per ONNX node keeps the foreign graph readable in irtool's terms: ``summary()`` and
``plot_model`` list the nodes by their ONNX names and op types (each op type gets a subclass
named after it, so a row reads ``conv1 (Conv)``), a layer's output is the node's output tensor
(so submodels cut at ONNX tensor names), and the node's float initializers are the layer's
weights, trainable through the primitives' ``vjp`` rules. ``call`` runs the op type's converter,
which records irtool primitives (channels-first convolutions and pools, never layout transposes).
"""

from __future__ import annotations

import numpy as np

from irtool.importer.dynamic_shapes import is_dynamic
from irtool.importer.registry import CONVERTERS, NodeInputs, PendingWeight
from irtool.layers.layer import Layer
from irtool.ops.variable import Variable


class OnnxNode(Layer):
    """An ONNX node as a layer: ``op_type``, its attributes, and which inputs are fixed at import.

    ``inputs`` lists, per ONNX input position, either ``"tensor"`` (a model tensor passed to the
    call, in order), a ``PendingWeight`` (an initializer this layer turns into a weight on its first
    call), a shared ``Variable`` (a weight another node's layer owns), a NumPy constant, or
    ``None`` (an omitted optional input).
    """

    def __init__(
        self, op_type: str, attributes: dict, inputs: list, name: str, num_outputs=1, shared_weights=None, **kwargs
    ):
        super().__init__(name=name, autocast=False, **kwargs)
        self.op_type = op_type
        self.attributes = dict(attributes)
        self.num_outputs = num_outputs
        # A plain list (not tracked as sublayers or owned weights); weights appear once created.
        object.__setattr__(self, "_input_plan", list(inputs))
        object.__setattr__(self, "_shared_weights", {} if shared_weights is None else shared_weights)

    @property
    def class_name(self) -> str:
        return self.op_type

    def build(self, input_shape=None):
        self.built = True

    def _make_weight(self, pending: PendingWeight, array: np.ndarray) -> Variable:
        shared = self._shared_weights.get(pending.name)
        if shared is not None and shared.shape == array.shape and np.array_equal(shared.numpy(), array):
            return shared  # the same initializer read by an earlier node: one weight, trained once
        name = pending.name.replace("/", ".").lstrip(".") or "weight"
        variable = self.add_weight(shape=array.shape, dtype=str(array.dtype), trainable=pending.trainable, name=name)
        variable.assign(array)
        self._shared_weights.setdefault(pending.name, variable)
        return variable

    def call(self, inputs):
        tensors = iter(inputs if isinstance(inputs, (list, tuple)) else [inputs])
        values = [
            next(tensors) if isinstance(planned, str) else planned.bound(tensors) if is_dynamic(planned) else planned
            for planned in self._input_plan
        ]
        node = NodeInputs(self.name, self.op_type, values, self._make_weight, self.num_outputs)
        conv = CONVERTERS[self.op_type]
        outputs = conv.fn(node, **{**conv.defaults, **self.attributes})
        # Weights created by this call are now the plan's values (the next call reuses them).
        object.__setattr__(
            self,
            "_input_plan",
            [v if isinstance(v, (Variable, list)) else p for v, p in zip(node._values, self._input_plan)],
        )
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({"op_type": self.op_type, "attributes": self.attributes, "num_outputs": self.num_outputs})
        return config
