"""SGD, RMSprop, Adagrad and Adadelta: Keras 3's update rules, in place.

Notation: ``w`` weight, ``g`` gradient, ``lr`` learning rate; every line below is one or two
``out=`` NumPy calls on the weight, its slots or a scratch buffer ``s``.
"""

from __future__ import annotations

import numbers

import numpy as np

from irtool.train.optimizers.base import ArrayOptimizer

__all__ = ["SGD", "RMSprop", "Adagrad", "Adadelta"]


class SGD(ArrayOptimizer):
    """Gradient descent with optional (Nesterov) momentum.

    - no momentum: ``w -= lr * g``
    - momentum ``mu``: ``m = mu * m - lr * g``; then ``w += m``, or with ``nesterov``
      ``w += mu * m - lr * g`` (with the new ``m``).
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
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
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or momentum < 0 or momentum > 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = momentum
        self.nesterov = nesterov

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")
        self._m = [m._value for m in self.momentums]

    def _update(self, grads, variables, lr):
        index, scratch = self._trainable_variables_indices, self._scratch
        mu = float(self.momentum)
        for g, v in zip(grads, variables):
            i = index[id(v)]
            w, (s,) = v._value, scratch[i]
            np.multiply(g, lr, out=s)
            if mu == 0:
                w -= s
                continue
            m = self._m[i]
            m *= mu
            m -= s
            if self.nesterov:
                w -= s
                np.multiply(m, mu, out=s)
                w += s
            else:
                w += m

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config


class RMSprop(ArrayOptimizer):
    """``v = rho * v + (1 - rho) * g**2``; ``inc = lr * g / sqrt(v + eps)`` (``centered``: also
    ``a = rho * a + (1 - rho) * g`` and ``sqrt(v - a**2 + eps)``); with ``momentum``:
    ``m = momentum * m + inc; w -= m``, else ``w -= inc``."""

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
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
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._momentums = []
        if self.momentum > 0:
            self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._average_gradients = []
        if self.centered:
            self._average_gradients = self.add_optimizer_variables(var_list, "average_gradient")
        self._v = [x._value for x in self._velocities]
        self._m = [x._value for x in self._momentums]
        self._a = [x._value for x in self._average_gradients]

    def _update(self, grads, variables, lr):
        index, scratch = self._trainable_variables_indices, self._scratch
        rho, mu, eps = float(self.rho), float(self.momentum), float(self.epsilon)
        for g, var in zip(grads, variables):
            i = index[id(var)]
            w, (s,), v = var._value, scratch[i], self._v[i]
            v *= rho
            np.multiply(g, g, out=s)
            s *= 1 - rho
            v += s
            if self.centered:
                a = self._a[i]
                a *= rho
                np.multiply(g, 1 - rho, out=s)
                a += s
                np.multiply(a, a, out=s)
                np.subtract(v, s, out=s)
                s += eps
            else:
                np.add(v, eps, out=s)
            np.sqrt(s, out=s)
            np.divide(g, s, out=s)
            s *= lr
            if mu > 0:
                m = self._m[i]
                m *= mu
                m += s
                w -= m
            else:
                w -= s

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered})
        return config


class Adagrad(ArrayOptimizer):
    """``acc += g**2`` (``acc`` starts at ``initial_accumulator_value``); ``w -= lr * g / sqrt(acc + eps)``."""

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
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
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list, "accumulator", initializer=float(self.initial_accumulator_value)
        )
        self._acc = [x._value for x in self._accumulators]

    def _update(self, grads, variables, lr):
        index, scratch, eps = self._trainable_variables_indices, self._scratch, float(self.epsilon)
        for g, var in zip(grads, variables):
            i = index[id(var)]
            w, (s,), acc = var._value, scratch[i], self._acc[i]
            np.multiply(g, g, out=s)
            acc += s
            np.add(acc, eps, out=s)
            np.sqrt(s, out=s)
            np.divide(g, s, out=s)
            s *= lr
            w -= s

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon})
        return config


class Adadelta(ArrayOptimizer):
    """``G = rho * G + (1 - rho) * g**2``; ``d = -sqrt(D + eps) * g / sqrt(G + eps)``;
    ``D = rho * D + (1 - rho) * d**2``; ``w += lr * d``."""

    _scratch_count = 2

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.95,
        epsilon=1e-7,
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
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.rho = rho
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulated_grads, self._accumulated_delta_vars = self.add_optimizer_variables(
            var_list, ["accumulated_grad", "accumulated_delta_var"]
        )
        self._G = [x._value for x in self._accumulated_grads]
        self._D = [x._value for x in self._accumulated_delta_vars]

    def _update(self, grads, variables, lr):
        index, scratch = self._trainable_variables_indices, self._scratch
        rho, eps = float(self.rho), float(self.epsilon)
        for g, var in zip(grads, variables):
            i = index[id(var)]
            w, (s, t), G, D = var._value, scratch[i], self._G[i], self._D[i]
            G *= rho
            np.multiply(g, g, out=s)
            s *= 1 - rho
            G += s
            # s = -d = sqrt(D + eps) * g / sqrt(G + eps)
            np.add(D, eps, out=s)
            np.sqrt(s, out=s)
            s *= g
            np.add(G, eps, out=t)
            np.sqrt(t, out=t)
            s /= t
            D *= rho
            np.multiply(s, s, out=t)
            t *= 1 - rho
            D += t
            s *= lr
            w -= s

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
