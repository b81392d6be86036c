"""Functional models: a graph of layer calls between symbolic inputs and outputs.

``Functional(inputs, outputs)`` walks back from the outputs twice: through layer calls for
the layer view (``layers``, ``summary``; Keras' order) and through primitive records for the
``ir.Graph`` (execution, export). Both walks see the same shared objects, so submodels
(``Model(m.input, m.get_layer("x").output)``) share layers and weights with ``m``, and one
graph of layers can back several models.

Called on symbolic tensors, a functional model replays its primitives inside its own call
scope (its inner layers get no new calls, as in Keras); called on arrays, it runs its
compiled schedule.
"""

from __future__ import annotations

import warnings

import numpy as np

from irtool import random
from irtool.ir import tree
from irtool.ir.executor import CompiledGraph, as_array
from irtool.ir.gc_pause import gc_paused
from irtool.layers.input_layer import InputLayer
from irtool.layers.layer import Layer
from irtool.models.functional_config import functional_get_config
from irtool.models.graph_builder import clone_input_layer_name, map_layers
from irtool.models.model import Model
from irtool.ops import core
from irtool.ops.core import SymbolicTensor
from irtool.ops.fusion import fuse_matmul_add, fuse_relu
from irtool.ops.gradients import ReverseSweep
from irtool.ops.graph_from_trace import build_graph


class Functional(Model):
    """A model defined by its input and output tensors (what ``Model(inputs, outputs)`` returns)."""

    _model_kind = "functional"

    def __new__(cls, *args, **kwargs):
        return Layer.__new__(cls)

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        if isinstance(inputs, dict):
            for key, value in inputs.items():
                if isinstance(value, SymbolicTensor) and key != value.name:
                    warnings.warn(
                        "When providing `inputs` as a dict, all keys in the dict must match the names of the "
                        f"corresponding tensors. Received key '{key}' mapping to value {value} which has name "
                        f"'{value.name}'. Change the tensor name to '{key}' (via `Input(..., name='{key}')`)",
                        stacklevel=2,
                    )
        flat_inputs = tree.flatten(inputs)
        flat_outputs = tree.flatten(outputs)
        for what, flat, structure in (("inputs", flat_inputs, inputs), ("outputs", flat_outputs, outputs)):
            for value in flat:
                if not isinstance(value, SymbolicTensor):
                    raise ValueError(
                        f"All `{what}` values must be KerasTensors. Received: {what}={structure} including "
                        f"invalid value {value} of type {type(value)}"
                    )
        if not flat_inputs:
            raise ValueError(f"`inputs` argument cannot be empty. Received:\ninputs={inputs}\noutputs={outputs}")
        if not flat_outputs:
            raise ValueError(f"`outputs` argument cannot be empty. Received:\ninputs={inputs}\noutputs={outputs}")
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.autocast = False
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs) -> None:
        with gc_paused():
            self._init_graph_unpaused(inputs, outputs)

    def _init_graph_unpaused(self, inputs, outputs) -> None:
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._inputs = tree.flatten(inputs)
        self._outputs = tree.flatten(outputs)
        # Per input, read once for ``_feeds``: the NumPy dtype a feed is used as is in (None: always
        # converted, as strings are; never compared, as a dtype equals None when it is float64) and
        # the shape; and whether the outputs are one bare tensor.
        self._feed_specs = [(_numpy_dtype(t.dtype), tuple(t.shape)) for t in self._inputs]
        self._one_output = not isinstance(outputs, (list, tuple, dict))
        paths = [p for p, _ in tree.flatten_with_paths(outputs)]
        self._graph = build_graph(self._inputs, self._outputs, paths)
        input_calls = {}
        for t in self._inputs:
            history = t._keras_history
            if history is not None and isinstance(history[0].operation, InputLayer):
                input_calls[id(t)] = history[0]
            else:
                stand_in = InputLayer(batch_shape=t.shape, dtype=t.dtype, name=clone_input_layer_name(t))
                input_calls[id(t)] = stand_in._inbound_nodes[0]
        self._input_calls = input_calls
        operations, calls_by_depth, _ = map_layers(self._outputs, input_calls)
        counts: dict = {}
        for op in operations:
            counts[op.name] = counts.get(op.name, 0) + 1
        for op_name, count in counts.items():
            if count > 1:
                raise ValueError(
                    f'The name "{op_name}" is used {count} times in the model. All operation names should be unique.'
                )
        self._operations = operations
        self._nodes_by_depth = dict(calls_by_depth)
        self._calls = {call for calls in calls_by_depth.values() for call in calls}
        self._compiled = None
        self._inference = None
        self._training_forward = None
        self.built = True

    # -- structure ------------------------------------------------------------------------
    @property
    def graph(self):
        """The primitive-level ``ir.Graph`` (``print(model.graph)`` shows it)."""
        return self._graph

    @property
    def inference_graph(self):
        """The graph that ``predict`` runs and the ONNX export lowers: ``graph`` after the fusion
        passes (``ops.fusion``), made once (a model's graph does not change once built)."""
        if self._inference is None:
            self._inference = fuse_matmul_add(self._graph)
        return self._inference

    @property
    def operations(self) -> list:
        return list(self._operations)

    @property
    def layers(self) -> list:
        return [op for op in self._operations if isinstance(op, Layer)]

    @layers.setter
    def layers(self, _):
        raise AttributeError("`Model.layers` attribute is reserved and should not be used. Please use another name.")

    def _sublayers(self) -> list:
        return self.layers

    @property
    def inputs(self) -> list:
        return list(self._inputs)

    @property
    def outputs(self) -> list:
        return list(self._outputs)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_shape(self):
        return _unwrap(tree.map_structure(lambda t: tuple(t.shape), self._inputs_struct))

    @property
    def output_shape(self):
        return _unwrap(tree.map_structure(lambda t: tuple(t.shape), self._outputs_struct))

    @property
    def output_names(self) -> list:
        names = []
        for t in self._outputs:
            call = self._input_calls.get(id(t)) or t._keras_history[0]
            names.append(call.operation.name)
        return names

    def get_layer(self, name=None, index=None) -> Layer:
        """A layer by ``name`` or by ``index`` in ``model.layers`` (Keras' errors)."""
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. Received: index={index}, name={name}.")
        layers = self.layers
        if index is not None:
            if len(layers) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has {len(layers)} layers."
                )
            return layers[index]
        if name is not None:
            for layer in layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    # -- config (Keras 3's functional format; see functional_config.py) -------------------
    def get_config(self) -> dict:
        """The model's layers with their ``inbound_nodes``, ``input_layers`` and ``output_layers``."""
        return functional_get_config(self)

    # ``from_config`` is ``Model.from_config``: a functional config gives ``cls(inputs, outputs)``.

    def get_build_config(self):
        # A functional model is built by construction; Keras writes this for it.
        return {"input_shape": None}

    # -- calling --------------------------------------------------------------------------
    def call(self, inputs, training=None, mask=None):
        flat = self._match_inputs(inputs)
        if any(isinstance(x, SymbolicTensor) for x in flat):
            return tree.pack_like(self._outputs_struct, self._replay(flat, training))
        if training:
            return self._pack_outputs(self._run_training(self._feeds(flat)))
        return self._pack_outputs(self._run_flat(self._feeds(flat)))

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and type(args[0]) is np.ndarray:  # model(x): no structure to search
            return self.call(args[0])
        if args and not any(isinstance(x, SymbolicTensor) for x in tree.flatten([args, kwargs])):
            return self.call(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def _replay(self, flat_inputs: list, training=None) -> list:
        """Record this model's primitives again on new symbolic inputs (a nested call).

        With ``training=False`` each op takes its inference form (``Primitive.inference_attrs``):
        dropout and noise vanish, batch normalization keeps its moving statistics, as in Keras."""
        mapping = {id(t): x for t, x in zip(self._inputs, flat_inputs)}
        base = core.current_scope()
        for node in self._graph.ops:
            ins = [mapping.get(id(x), x) for x in node.inputs]
            attrs = node.attrs
            if training is False:
                attrs = node.prim.inference_attrs(attrs)
                if attrs is None:
                    mapping[id(node.outputs[0])] = ins[0]
                    continue
            outs = core.apply_in_scope(node.prim, ins, attrs, base + node.scope)
            for old, new in zip(node.outputs, outs):
                mapping[id(old)] = new
        if base:
            base[-1].replayed = mapping
        return [mapping[id(t)] for t in self._outputs]

    def _match_inputs(self, inputs) -> list:
        """Flatten call arguments to the model's input order (dicts by input name)."""
        if isinstance(inputs, dict) and not isinstance(self._inputs_struct, dict):
            names = [t.name for t in self._inputs]
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(f"Missing data for input(s) {missing}. Expected the keys {names}.")
            return [inputs[n] for n in names]
        if isinstance(inputs, dict) and isinstance(self._inputs_struct, dict):
            missing = [k for k in self._inputs_struct if k not in inputs]
            if missing:
                raise ValueError(
                    f"Missing data for input(s) {missing}. Expected the keys {sorted(self._inputs_struct)}."
                )
            return tree.flatten({k: inputs[k] for k in self._inputs_struct})
        flat = tree.flatten(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(flat) != len(self._inputs):
            raise ValueError(
                f"Model '{self.name}' expects {len(self._inputs)} input(s), but it received {len(flat)} input "
                f"tensors. Inputs received: {[getattr(x, 'shape', x) for x in flat]}"
            )
        return flat

    def _flatten_feeds(self, x) -> list:
        return self._feeds(self._match_inputs(x))

    def _feeds(self, flat: list) -> list:
        feeds = []
        for i, (t, (dtype, shape), x) in enumerate(zip(self._inputs, self._feed_specs, flat)):
            if dtype is None or type(x) is not np.ndarray or x.dtype != dtype:  # else an array to use as it is
                if hasattr(x, "_value"):
                    x = x._value
                try:
                    x = as_array(x, t.dtype) if t.dtype != "float32" or not _is_f32(x) else x
                except (ValueError, TypeError) as error:  # NumPy's message names neither the input nor the model
                    kind = ValueError if isinstance(error, ValueError) else TypeError
                    raise kind(
                        f"Input {i} with name '{t.name}' of layer '{self.name}' expects {t.dtype} values, received "
                        f"{type(x).__name__} {getattr(x, 'dtype', '')}: {error}"
                    ) from None
            if x.ndim != len(shape):
                x = self._adjust_rank(x, t, i)
            for want, got in zip(shape, x.shape):
                if want is not None and want != got:
                    raise ValueError(
                        f"Input {i} with name '{t.name}' of layer '{self.name}' is incompatible with the layer: "
                        f"expected shape={tuple(t.shape)}, found shape={tuple(x.shape)}"
                    )
            feeds.append(x)
        return feeds

    def _adjust_rank(self, x: np.ndarray, t: SymbolicTensor, i: int) -> np.ndarray:
        # Keras squeezes a trailing 1 or adds one when that reconciles the ranks.
        if x.ndim == len(t.shape) + 1 and x.shape[-1] == 1:
            return x[..., 0]
        if x.ndim == len(t.shape) - 1 and t.shape[-1] == 1:
            return x[..., None]
        raise ValueError(
            f"Invalid input shape for input {x.shape} with name '{t.name}' and path '{i}'. Expected shape "
            f"{tuple(t.shape)}, but input has incompatible shape {tuple(x.shape)}"
        )

    def _run_flat(self, feeds: list) -> list:
        if self._compiled is None:
            # ReLUs fold into the Dense before them here only: the export keeps Gemm + Relu.
            self._compiled = CompiledGraph(fuse_relu(self.inference_graph))
        return self._compiled.run(feeds)

    def _run_training(self, feeds: list) -> list:
        """``model(x, training=True)`` on arrays, as in a custom training loop or Monte-Carlo dropout:
        the graph in training mode, as ``fit``'s forward pass runs it (dropout drops, BatchNormalization
        normalizes with the batch's statistics and updates its moving ones)."""
        rng = random.generator()  # set_random_seed replaces it: the kernels must draw from the current one
        if self._training_forward is None or self._training_forward.rng is not rng:
            self._training_forward = ReverseSweep(self._graph, [], training=True, rng=rng)
        sweep = self._training_forward
        return sweep.outputs(sweep.forward(feeds))

    def _pack_outputs(self, results: list):
        if self._one_output:
            return results[0]
        structure = self._outputs_struct
        if (
            isinstance(structure, (list, tuple))
            and len(structure) == 1
            and not isinstance(structure[0], (list, tuple, dict))
        ):
            return results[0]
        return tree.pack_like(structure, results)


# ``Model(inputs, outputs)`` builds a Functional (``Model.__new__``); model.py cannot import
# this module (it imports model.py), so the class is handed to the base here.
Model._functional_class = Functional


def _numpy_dtype(name: str):
    """``np.dtype(name)``, or None for a dtype NumPy has no exact equal of ("string", "bfloat16"...)."""
    try:
        return None if name == "string" else np.dtype(name)
    except TypeError:
        return None


def _is_f32(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.float32


def _unwrap(structure):
    if isinstance(structure, list) and len(structure) == 1:
        return structure[0]
    return structure
