"""The optimizer base class: Keras 3's ``BaseOptimizer`` semantics over NumPy arrays.

One training step (``apply(grads, trainable_variables)``), in Keras' order:

1. drop ``None`` gradients (with Keras' warning) and divide by ``loss_scale_factor``;
2. with ``gradient_accumulation_steps=k``: add the gradients to accumulators, and only every
   ``k``-th call use their mean for steps 3-5 (then zero them);
3. clip: ``clipnorm`` (each tensor), ``global_clipnorm`` (all together) or ``clipvalue``;
4. decoupled weight decay ``w *= 1 - weight_decay * lr`` (when ``weight_decay`` is set, except for
   variables excluded with :meth:`Optimizer.exclude_from_weight_decay`);
5. the optimizer's update rule;
6. with ``use_ema``: update the moving averages (and every ``ema_overwrite_frequency`` steps copy
   them into the weights);
7. ``iterations += 1``.

Every update is in place: the weights' ``Variable._value`` arrays (which compiled graphs hold
references to) and the slot arrays are written with ``out=`` NumPy calls into preallocated scratch
buffers, so a step allocates no arrays (clipping aside).

Scalar coefficients that Keras computes as tensors (Adam's ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``,
the weight-decay factor, schedules) are computed in the weights' dtype too (float32 for float32
weights), because ``1 - beta_2**t`` loses digits in float32 and matching that keeps the trajectories
within a few float32 ulps of Keras'.
"""

from __future__ import annotations

import numbers
import re
import warnings

import numpy as np

from irtool import initializers
from irtool.ir.naming import to_snake_case, uniquify
from irtool.ops.variable import Variable
from irtool.train import schedules
from irtool.train.optimizers.utils import (
    StateVariable,
    as_gradient,
    check_learning_rate,
    clip_by_global_norm,
    filter_empty_gradients,
    global_norm,
    scratch_views,
)

__all__ = ["ArrayOptimizer", "Optimizer"]


class Optimizer:
    """Base class for optimizers, with Keras 3's constructor arguments and methods.

    Subclasses create slots in ``build(variables)`` (``add_optimizer_variables``) and implement
    ``update_step(gradient, variable, learning_rate)`` (per variable, Keras' extension point) or,
    for speed, ``_backend_update_step(grads, variables, learning_rate)`` (all variables at once).
    ``learning_rate`` is passed as a Python float.
    """

    def __init__(
        self,
        learning_rate,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=2)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        self.name = name if name is not None else uniquify(to_snake_case(type(self).__name__))
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.global_clipnorm = global_clipnorm
        self.clipvalue = clipvalue
        self.use_ema = use_ema
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        if gradient_accumulation_steps and not gradient_accumulation_steps >= 2:
            raise ValueError(
                "`gradient_accumulation_steps` must be an integer >= 2. "
                f"Received: gradient_accumulation_steps={gradient_accumulation_steps}"
            )
        if use_ema:
            if ema_momentum > 1 or ema_momentum < 0:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (
                not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    "`ema_overwrite_frequency` must be an integer >= 1 or None. "
                    f"Received: ema_overwrite_frequency={ema_overwrite_frequency}"
                )
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        self.built = False
        self._variables: list = []
        self._trainable_variables: list = []
        self._trainable_variables_indices: dict = {}
        self._iterations = self.add_variable((), initializer=0, dtype="int32", name="iteration")
        self._learning_rate = None
        if isinstance(learning_rate, schedules.LearningRateSchedule) or callable(learning_rate):
            self._learning_rate = learning_rate
        else:
            self._learning_rate = self.add_variable(
                (), initializer=check_learning_rate(learning_rate), dtype="float32", name="learning_rate"
            )

    # -- variables ----------------------------------------------------------------------------
    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none", layout=None, name=None):
        """A non-trainable optimizer variable ``<optimizer name>/<name>``, tracked in ``variables``."""
        dtype = dtype or "float32"
        if initializer == "zeros":
            value = np.zeros(shape, dtype)
        elif isinstance(initializer, numbers.Number):
            value = np.full(shape, initializer, dtype)
        else:
            value = initializers.get(initializer)(tuple(shape), dtype=dtype)
        variable = StateVariable(value, dtype=dtype, trainable=False, name=name)
        variable.path = f"{self.name}/{variable.name}"
        self._variables.append(variable)
        return variable

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """A slot shaped like ``reference_variable``, named ``<its path with _>_<name>`` (Keras)."""
        ref_name = getattr(reference_variable, "path", None) or str(reference_variable.name)
        name = f"{ref_name.replace('/', '_').replace(':', '_')}_{name or 'var'}"
        return self.add_variable(reference_variable.shape, initializer, dtype=reference_variable.dtype, name=name)

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """One slot per variable for each name; several names interleave per variable (m, v, m, v...)."""
        names = [name] if isinstance(name, str) else list(name)
        inits = [initializer] * len(names) if isinstance(initializer, (str, numbers.Number)) else list(initializer)
        if len(names) != len(inits):
            raise ValueError(
                "The number of provided names must match the number of provided initializers.  "
                f"Received name='{name}', initializer='{initializer}'"
            )
        out = tuple([] for _ in names)
        for variable in trainable_variables:
            for i, (var_name, var_init) in enumerate(zip(names, inits)):
                out[i].append(self.add_variable_from_reference(variable, name=var_name, initializer=var_init))
        return out[0] if isinstance(name, str) else out

    def build(self, variables):
        """Create the slots for ``variables`` (EMA averages and gradient accumulators here)."""
        variables = list(variables)
        if self.use_ema:
            self._model_variables_moving_average = self.add_optimizer_variables(variables, "average")
        if self.gradient_accumulation_steps:
            self._accumulated_gradients = self.add_optimizer_variables(variables, "gradient_accumulator")
        self._trainable_variables_indices = {id(v): i for i, v in enumerate(variables)}
        self._constrained = {id(v) for v in variables if getattr(v, "constraint", None) is not None}
        self._trainable_variables = variables[:]
        self.built = True

    @property
    def variables(self) -> list:
        return self._variables[:]

    @property
    def iterations(self):
        """The step counter (a Variable; with gradient accumulation, real steps // accumulation steps)."""
        if self.gradient_accumulation_steps:
            return self._iterations._value // self.gradient_accumulation_steps
        return self._iterations

    def _step_count(self) -> int:
        """``iterations`` as a Python int (what the update rules' bias corrections use)."""
        it = int(self._iterations._value)
        return it // self.gradient_accumulation_steps if self.gradient_accumulation_steps else it

    def _get_variable_index(self, variable) -> int:
        return self._trainable_variables_indices[id(variable)]

    def _var_key(self, variable):
        return id(variable)

    # -- learning rate ------------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The current rate: the float32 ``learning_rate`` variable, or the schedule at ``iterations``."""
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        previous = self._learning_rate if isinstance(self._learning_rate, Variable) else None
        if isinstance(learning_rate, schedules.LearningRateSchedule) or callable(learning_rate):
            self._learning_rate = learning_rate
        else:
            if isinstance(self._learning_rate, schedules.LearningRateSchedule):
                raise TypeError(
                    "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                    "constructor argument, hence its learning rate is not settable. If you need the learning rate "
                    "to be settable, you should instantiate the optimizer with a float `learning_rate` argument."
                )
            if isinstance(self._learning_rate, Variable):
                self._learning_rate._value[...] = np.asarray(learning_rate)
            else:  # a callable before: make a variable again
                self._learning_rate = self.add_variable(
                    (), initializer=check_learning_rate(learning_rate), dtype="float32", name="learning_rate"
                )
        if previous is not None and not isinstance(self._learning_rate, Variable):
            self._variables = [v for v in self._variables if v is not previous]

    def _get_current_learning_rate(self):
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            return lr(int(self._iterations._value))
        if isinstance(lr, Variable):
            return lr
        return lr()

    def _lr_float(self) -> float:
        lr = self._learning_rate
        if isinstance(lr, Variable):
            return float(lr._value)
        return float(np.asarray(self._get_current_learning_rate()))

    # -- applying gradients --------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        grads, trainable_variables = zip(*grads_and_vars)
        self.apply(grads, trainable_variables)
        return self._iterations

    def apply(self, grads, trainable_variables=None):
        """Update ``trainable_variables`` (in place) with ``grads`` (builds on first use)."""
        if len(grads) == 0:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                    "variables. Call `optimizer.build(trainable_variables)` first. "
                )
            if len(grads) != len(self._trainable_variables_indices):
                raise ValueError(
                    "When passing `grads` as a list of gradient tensors, the gradients must match "
                    f"`optimizer.variables` one-to-on. Received a list of {len(grads)} gradients, but the optimizer "
                    f"is tracking {len(self._trainable_variables)} trainable variables."
                )
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if not self.built:
                self.build(trainable_variables)
                self.built = True
            known = self._trainable_variables_indices
            for v in trainable_variables:
                if id(v) not in known:
                    raise ValueError(
                        f"Unknown variable: {v}. This optimizer can only be called for the variables it was "
                        "originally built with. When working with a new set of variables, you should recreate a new "
                        "optimizer instance."
                    )
        if any(g is None for g in grads):
            grads, trainable_variables = filter_empty_gradients(grads, trainable_variables)
        grads = list(map(as_gradient, grads, trainable_variables))
        if grads:
            scale = self.loss_scale_factor
            if scale is not None:
                grads = [g / np.asarray(scale, g.dtype) for g in grads]
            self._backend_apply_gradients(grads, trainable_variables)
            if self._constrained:
                for v in trainable_variables:
                    if id(v) in self._constrained:
                        v.assign(v.constraint(v))
        self._iterations._value += 1

    def _backend_apply_gradients(self, grads, trainable_variables):
        steps = self.gradient_accumulation_steps
        if steps:
            accumulators = [
                self._accumulated_gradients[self._get_variable_index(v)]._value for v in trainable_variables
            ]
            if (int(self._iterations._value) + 1) % steps == 0:
                grads = [(g + acc) / np.asarray(steps, g.dtype) for g, acc in zip(grads, accumulators)]
                self._clip_and_update(grads, trainable_variables)
                for acc in accumulators:
                    acc.fill(0)
            else:
                for g, acc in zip(grads, accumulators):
                    np.add(acc, g, out=acc)
        else:
            self._clip_and_update(grads, trainable_variables)
        if self.use_ema:
            self._update_model_variables_moving_average(self._trainable_variables)
            freq = self.ema_overwrite_frequency
            if freq and (self._step_count() + 1) % freq == 0:
                self._overwrite_model_variables_with_average_value(self._trainable_variables)

    def _clip_and_update(self, grads, trainable_variables):
        grads = self._clip_gradients(grads)
        self._apply_weight_decay(trainable_variables)
        self._backend_update_step(grads, trainable_variables, self._lr_float())

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        for g, v in zip(grads, trainable_variables):
            self.update_step(g, v, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError

    def _clip_gradients(self, grads):
        if self.clipnorm and self.clipnorm > 0:
            return [self._clip_by_norm(g) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            v = self.clipvalue
            return [np.clip(g, -v, v) for g in grads]
        return grads

    def _clip_by_norm(self, values):
        """``values * clipnorm / max(l2norm, clipnorm)`` (a new array only when it is clipped)."""
        norm = global_norm([values])
        if norm > self.clipnorm:
            return values * np.asarray(self.clipnorm / norm, values.dtype)
        return values

    # -- weight decay -------------------------------------------------------------------------
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude ``var_list`` and variables whose name contains any of ``var_names`` from weight decay."""
        self._exclude_from_weight_decay = {id(v) for v in var_list} if var_list else set()
        self._exclude_from_weight_decay_pattern = re.compile("|".join(set(var_names))) if var_names else None
        self._exclude_from_weight_decay_cache = {}

    def _use_weight_decay(self, variable) -> bool:
        cache = self.__dict__.setdefault("_exclude_from_weight_decay_cache", {})
        key = id(variable)
        if key not in cache:
            pattern = getattr(self, "_exclude_from_weight_decay_pattern", None)
            cache[key] = key not in getattr(self, "_exclude_from_weight_decay", set()) and (
                pattern is None or re.search(pattern, variable.name) is None
            )
        return cache[key]

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        wd, lr = float(self.weight_decay), self._lr_float()
        for v in variables:
            if self._use_weight_decay(v):
                f = v._value.dtype.type  # 1 - wd * lr in the weight's dtype, as Keras computes it
                np.multiply(v._value, f(1) - f(wd) * f(lr), out=v._value)

    # -- EMA ----------------------------------------------------------------------------------
    def _update_model_variables_moving_average(self, trainable_variables):
        momentum = float(self.ema_momentum) if self._step_count() != 0 else 0.0
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            a = average._value
            a *= momentum
            a += (1.0 - momentum) * var._value

    def _overwrite_model_variables_with_average_value(self, trainable_variables):
        if len(trainable_variables) != len(self._model_variables_moving_average):
            raise ValueError(
                f"The length of model variables ({len(trainable_variables)}) to override does not match the length "
                f"of model variables stored in the optimizer ({len(self._model_variables_moving_average)}). Please "
                "check if the optimizer was called on your model."
            )
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            var._value[...] = average._value

    def finalize_variable_values(self, var_list):
        """With ``use_ema``, copy the moving averages into the model variables (``fit`` does this at the end)."""
        if self.use_ema:
            self._overwrite_model_variables_with_average_value(var_list)

    # -- Keras helpers for custom optimizers -----------------------------------------------------
    def assign(self, variable, value):
        variable._value[...] = np.asarray(value)

    def assign_add(self, variable, value):
        np.add(variable._value, np.asarray(value), out=variable._value, casting="unsafe")

    def assign_sub(self, variable, value):
        np.subtract(variable._value, np.asarray(value), out=variable._value, casting="unsafe")

    def scale_loss(self, loss):
        return loss * self.loss_scale_factor if self.loss_scale_factor is not None else loss

    # -- state --------------------------------------------------------------------------------
    def set_weights(self, weights):
        if not self.built:
            raise ValueError(
                "You are calling `set_weights()` on an optimizer that has not yet been built. Please call "
                "`optimizer.build(trainable_variables)` to create the optimizer weights before calling "
                "`set_weights()`."
            )
        for variable, weight in zip(self._variables, weights):
            weight = np.asarray(weight)
            if variable.shape != weight.shape:
                raise ValueError(
                    f"Optimizer variable {variable.path} has shape {variable.shape} not compatible with provided "
                    f"weight shape {weight.shape}."
                )
            variable.assign(weight)

    def get_weights(self) -> list:
        return [v.numpy() for v in self._variables]

    def save_own_variables(self, store):
        for i, variable in enumerate(self._variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        if len(store.keys()) != len(self._variables):
            msg = (
                f"Skipping variable loading for optimizer '{self.name}', because it has {len(self._variables)} "
                f"variables whereas the saved optimizer has {len(store.keys())} variables. "
            )
            if not self._variables:
                msg += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(msg, stacklevel=2)
            return
        for i, variable in enumerate(self._variables):
            variable.assign(np.asarray(store[str(i)]))

    # -- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(lr)
        elif isinstance(lr, Variable):
            learning_rate = float(lr._value)
        else:
            learning_rate = lr
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects=custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class ArrayOptimizer(Optimizer):
    """Base of the built-in rules: ``_update(grads, variables, lr)`` updates all variables at once
    with in-place NumPy calls, using ``_scratch_count`` preallocated scratch arrays per variable
    (``self._scratch[i]``, views of buffers shared by all variables)."""

    _scratch_count = 1

    def build(self, variables):
        super().build(variables)
        self._scratch = scratch_views(self._trainable_variables, self._scratch_count)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self._update(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        self._update([as_gradient(gradient, variable)], [variable], float(np.asarray(learning_rate)))

    def _update(self, grads, variables, lr: float):
        raise NotImplementedError
