"""What ``compile`` records, and the training graph built from it.

On the first training or evaluation batch the trainer builds a **training graph**: the model's
graph extended with symbolic ``y_true`` and ``sample_weight`` placeholders per output and the
losses traced on top (losses are written in ``irtool.ops``), whose first output is the total
loss. A ``GradientProgram`` compiles its forward and backward schedules once; a training step
is then one forward, one backward and one optimizer update in NumPy, and metrics are updated
from the step's NumPy outputs.
"""

from __future__ import annotations

import warnings

import numpy as np

from irtool import ops, regularizers
from irtool.ir import tree
from irtool.ir.graph import Graph
from irtool.layers.input_layer import Input
from irtool.ops.graph_from_trace import build_graph
from irtool.ops.operation import raw_operation, record_call
from irtool.train import losses, metrics, optimizers


class CompileConfig:
    """The optimizer, losses, loss weights and metrics of one ``compile``, per flat output."""

    def __init__(self, model, optimizer, loss, loss_weights, metrics, weighted_metrics):
        self.model = model
        self.optimizer = optimizers.get(optimizer)
        # The names of the per-output losses and metrics: a dict output's keys (as Keras logs them),
        # else the output layers' names, made unique (a subclassed model's outputs all come from it)
        self.keys = sorted(model.output) if isinstance(model.output, dict) else None
        self.names = list(self.keys) if self.keys is not None else _unique(model.output_names)
        self.keys = self.keys or self.names
        self.loss_specs = self._spread(loss, "loss")
        # evaluate() lists the per-output losses of dict outputs in the loss dict's order, as Keras does
        self.loss_order = (
            [self.keys.index(given) for given in loss]
            if isinstance(loss, dict) and isinstance(model.output, dict)
            else list(range(len(self.names)))
        )
        weights = self._spread(loss_weights, "loss_weights")
        self.loss_weights = [1.0 if w is None else float(w) for w in weights]
        self.metric_specs = self._spread_metrics(metrics, "metrics")
        self.weighted_metric_specs = self._spread_metrics(weighted_metrics, "weighted_metrics")
        self.losses: list | None = None  # resolved on the first batch (crossentropy by shapes)
        self.metrics: list | None = None  # [(output index, log name, metric, weighted)]
        self.programs: dict = {}  # weighted (bool) -> (GradientProgram, CompiledGraph)

    @property
    def multi_output(self) -> bool:
        return len(self.names) > 1

    def _spread(self, value, what: str) -> list:
        n = len(self.names)
        if value is None:
            return [None] * n
        if isinstance(value, dict):
            self._check_keys(value, what)
            return [value.get(key, value.get(name)) for key, name in zip(self.keys, self.names)]
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(
                    f"For a model with {n} output(s), `{what}` as a list should have {n} entries. "
                    f"Received: {what}={value}"
                )
            return list(value)
        return [value] * n

    def _spread_metrics(self, value, what: str) -> list:
        n = len(self.names)
        if value is None:
            return [[] for _ in range(n)]
        if isinstance(value, dict):
            self._check_keys(value, what)
            out = [value.get(key, value.get(name)) for key, name in zip(self.keys, self.names)]
            return [[] if v is None else list(v) if isinstance(v, (list, tuple)) else [v] for v in out]
        if isinstance(value, (list, tuple)):
            if any(isinstance(v, (list, tuple)) or v is None for v in value):
                if len(value) != n:
                    raise ValueError(f"`{what}` as a list of lists should have one list per output ({n}).")
                return [[] if v is None else list(v) for v in value]
            return [list(value) for _ in range(n)]
        return [[value] for _ in range(n)]

    def _check_keys(self, value: dict, what: str) -> None:
        for key in value:
            if key not in self.keys and key not in self.names:
                raise ValueError(
                    f"In the dict argument `{what}`, key '{key}' does not correspond to any model output. "
                    f"Received:\n{what}={value}"
                )

    # -- built on the first batch -------------------------------------------------------------------
    def build(self, y_true: list, y_pred_specs: list) -> None:
        self.losses = [
            losses.resolve_loss(spec, np.shape(y), pred.shape)
            for spec, y, pred in zip(self.loss_specs, y_true, y_pred_specs)
        ]
        self.metrics = []
        for k, y in enumerate(y_true):
            for specs, weighted in ((self.metric_specs[k], False), (self.weighted_metric_specs[k], True)):
                for spec in specs:
                    metric = metrics.resolve_metric(spec, np.shape(y), y_pred_specs[k].shape)
                    name = f"{self.names[k]}_{metric.name}" if self.multi_output else metric.name
                    self.metrics.append((k, name, metric, weighted))

    def training_graph(self, y_true: list, weighted: bool) -> Graph:
        """The model's graph extended with y_true (and, when ``weighted``, sample_weight) inputs and
        the traced losses: outputs ``[total_loss, loss_k..., y_pred...]``. Unweighted batches use a
        graph without weights, as Keras calls losses with ``sample_weight=None``."""
        model = self.model
        trues, weights, per_output, total = [], [], [], None
        self.loss_outputs = []
        for k, (y, output) in enumerate(zip(y_true, model.outputs)):
            loss = self.losses[k]
            if loss is None:
                continue
            y = np.asarray(y)
            dtype = y.dtype.name if np.issubdtype(y.dtype, np.integer) else output.dtype
            y_sym = Input(batch_shape=(None,) + tuple(y.shape[1:]), dtype=dtype, name=f"{self.names[k]}_true")
            w_sym = None
            if weighted:
                w_sym = Input(batch_shape=(None,), dtype=output.dtype, name=f"{self.names[k]}_sample_weight")
                weights.append(w_sym)
            value = loss(y_sym, output, sample_weight=w_sym)
            trues.append(y_sym)
            per_output.append(value)
            self.loss_outputs.append(k)
            scaled = value if self.loss_weights[k] == 1.0 else ops.multiply(value, self.loss_weights[k])
            total = scaled if total is None else ops.add(total, scaled)
        if total is None:
            raise ValueError("No loss to optimize: pass `loss=` to `compile()`.")
        total = add_regularization_losses(model, total)
        inputs = list(model.inputs) + trues + weights
        outputs = [total] + per_output + list(model.outputs)
        names = ["loss"] + [f"{self.names[k]}_loss" for k in self.loss_outputs] + self.names
        return build_graph(inputs, outputs, names)

    def feeds(self, x: list, y: list, w: list) -> list:
        """Graph inputs for one batch: x, then y_true (and sample weights, if any) of the outputs
        with a loss."""
        n = len(x[0]) if x else len(y[0])
        trues = [y[k] for k in self.loss_outputs]
        if all(w[k] is None for k in self.loss_outputs):
            return list(x) + trues
        weights = []
        for k in self.loss_outputs:
            dtype = self.model.outputs[k].dtype
            weights.append(np.ones(n, dtype) if w[k] is None else np.asarray(w[k], dtype))
        return list(x) + trues + weights


# -- Keras' `model.losses` in the training loss -------------------------------------------------------


def _activity_regularizer(layer):
    regularizer = getattr(layer, "activity_regularizer", None)
    if regularizer is None and type(layer).__name__ == "ActivityRegularization" and (layer.l1 or layer.l2):
        regularizer = regularizers.L1L2(l1=layer.l1, l2=layer.l2)
    return regularizer


def _batch_count(x):
    """The batch size of symbolic ``x`` as a scalar of its dtype (the batch dim may be unknown)."""
    flat = ops.reshape(x, (-1, int(np.prod(x.shape[1:])))) if len(x.shape) != 2 else x
    return ops.sum(ops.ones_like(flat[:, 0]))


def _activity_terms(model, graph_ops, translate=None) -> list:
    """``(tensor of this graph, regularizer)`` for each output of each call, in ``model`` or in
    the models nested in it, of a layer with an activity regularizer. A nested model's inner
    tensors are found through the tensors its replay recorded (``LayerCall.replayed``)."""
    terms = []
    for layer in _layers_within(model):
        regularizer = _activity_regularizer(layer)
        for call in layer._inbound_nodes:
            if regularizer is not None:
                for t in call.output_tensors:
                    t = t if translate is None else translate(t)
                    if t is not None and t.producer in graph_ops and str(t.dtype).startswith("float"):
                        terms.append((t, regularizer))
            if call.replayed is not None and hasattr(layer, "layers") and layer is not model:

                def inner(t, replayed=call.replayed):
                    t = replayed.get(id(t))
                    return t if t is None or translate is None else translate(t)

                terms += _activity_terms(layer, graph_ops, inner)
    return terms


def add_regularization_losses(model, total):
    """``total`` plus what Keras adds to the compiled loss from ``model.losses``: each regularized
    trainable weight's ``regularizer(weight)``, and for each call of a layer with an
    ``activity_regularizer`` (``ActivityRegularization`` included) in this model or the models
    nested in it, ``regularizer(output) / batch_size`` per output. The terms are recorded as one
    ``regularization_losses`` call reading the weights at run time, so they train and evaluate
    like the rest of the loss."""
    weights = [w for w in model.trainable_weights if getattr(w, "regularizer", None) is not None]
    graph_ops = set(model.graph.ops)
    activities = _activity_terms(model, graph_ops)
    added = _added_losses(model, graph_ops)
    if not weights and not activities and not added:
        return total

    def penalties(loss, *tensors):
        terms = [ops.cast(w.regularizer(w), loss.dtype) for w in weights]
        for (_, regularizer), out in zip(activities, tensors):
            term = regularizer(out)
            if len(out.shape) > 0:
                term = ops.divide(term, _batch_count(out))
            terms.append(ops.cast(term, loss.dtype))
        for value in tensors[len(activities) :]:
            terms.append(ops.cast(ops.sum(value) if len(value.shape) else value, loss.dtype))
        for term in terms:
            loss = ops.add(loss, term)
        return loss

    tensors = [t for t, _ in activities] + added
    return record_call(raw_operation("RegularizationLosses"), penalties, (total, *tensors), {})


def _unique(names) -> list:
    out, seen = [], {}
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count}")
    return out


def _layers_within(model) -> list:
    """``model``'s layers and, recursively, the layers they track (a layer called in another's
    ``call``, a subclassed model's attributes); which of their calls belong to the graph being
    trained is decided by the graph's ops."""
    return [layer for layer in model._with_sublayers() if layer is not model]


def _added_losses(model, graph_ops) -> list:
    """The tensors ``add_loss`` was given in the calls of ``model``'s layers (and the layers called
    within them) that are part of its graph (a shared layer's calls in other models are not). A
    nested functional model's graph does not keep the ops of its layers' losses, so those are not
    replayed into the outer model: give such a loss where the model is called directly."""
    found = []
    for layer in _layers_within(model):
        for call in layer._inbound_nodes:
            if call.added_losses and any(t.producer in graph_ops for t in call.output_tensors):
                found += [t for loss in call.added_losses for t in tree.flatten(loss)]
        calls = getattr(layer, "_calls", None)  # a nested functional model's own calls
        if layer is not model and calls and any(c.added_losses for c in calls):
            warnings.warn(
                f"Model '{layer.name}', nested in '{model.name}', adds losses with `add_loss`, which irtool's "
                "training loss leaves out (a nested model's graph keeps only what its outputs need): call "
                "those layers in the outer model directly to train with them.",
                stacklevel=4,
            )
    return found
