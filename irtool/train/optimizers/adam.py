"""Adam, AdamW, Nadam and Adamax: Keras 3's update rules, in place.

``t = iterations + 1`` is the step being taken; as in Keras, ``epsilon`` is added to ``sqrt(v)``
*after* the bias correction has been folded into the step size (Adam) — PyTorch adds it to
``sqrt(v / (1 - beta_2**t))`` instead, so the two agree only up to that epsilon placement.
"""

from __future__ import annotations

import numpy as np

from irtool.train.optimizers.base import ArrayOptimizer
from irtool.train.optimizers.utils import StateVariable

__all__ = ["Adam", "AdamW", "Nadam", "Adamax"]


class Adam(ArrayOptimizer):
    """``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)`` (``amsgrad``:
    ``v_hat = max(v_hat, v)`` is used for ``v``); ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``;
    ``w -= alpha * m / (sqrt(v) + epsilon)``."""

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        self._m = [x._value for x in self._momentums]
        self._v = [x._value for x in self._velocities]
        if self.amsgrad:
            self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat")
            self._v_hat = [x._value for x in self._velocity_hats]

    def _update(self, grads, variables, lr):
        index, scratch = self._trainable_variables_indices, self._scratch
        b1, b2, eps = float(self.beta_1), float(self.beta_2), float(self.epsilon)
        t = self._step_count() + 1
        alphas = {}
        for g, var in zip(grads, variables):
            i = index[id(var)]
            w, (s,), m, v = var._value, scratch[i], self._m[i], self._v[i]
            alpha = alphas.get(w.dtype)
            if alpha is None:  # lr * sqrt(1 - b2**t) / (1 - b1**t) in the weight's dtype, as Keras computes it
                f = w.dtype.type
                alpha = alphas[w.dtype] = f(lr) * np.sqrt(f(1) - f(b2) ** f(t)) / (f(1) - f(b1) ** f(t))
            np.subtract(g, m, out=s)
            s *= 1.0 - b1
            m += s
            np.multiply(g, g, out=s)
            s -= v
            s *= 1.0 - b2
            v += s
            if self.amsgrad:
                v = np.maximum(self._v_hat[i], v, out=self._v_hat[i])
            np.sqrt(v, out=s)
            s += eps
            np.divide(m, s, out=s)
            s *= alpha
            w -= s

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad})
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (``weight_decay=0.004`` by default): ``w *= 1 - weight_decay * lr``
    before each Adam step."""

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
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
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
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
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")


class Nadam(ArrayOptimizer):
    """Adam with Nesterov momentum and Keras' momentum schedule ``u_t = beta_1 * (1 - 0.5 * 0.96**t)``:
    ``m_hat = u_{t+1} m / (1 - prod u_1..u_{t+1}) + (1 - u_t) g / (1 - prod u_1..u_t)``,
    ``v_hat = v / (1 - beta_2**t)``, ``w -= lr * m_hat / (sqrt(v_hat) + epsilon)``. The running product
    is an optimizer variable (float32, like the weights), last in ``variables``."""

    _scratch_count = 2

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        dtype = var_list[0].dtype if var_list else "float32"
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        self._m = [x._value for x in self._momentums]
        self._v = [x._value for x in self._velocities]
        self._u_product = StateVariable(1.0, dtype=dtype, trainable=False)
        self._variables.append(self._u_product)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        u = self._u_product._value
        u *= self._momentum_schedule(u.dtype.type, self._step_count() + 1)
        self._update(grads, trainable_variables, learning_rate)

    def _momentum_schedule(self, f, t):
        """``u_t = beta_1 * (1 - 0.5 * 0.96**t)`` in the dtype ``f`` (Keras computes it in the weights' dtype)."""
        return f(self.beta_1) * (f(1) - f(0.5) * f(0.96) ** f(t))

    def _update(self, grads, variables, lr):
        index, scratch = self._trainable_variables_indices, self._scratch
        b1, b2, eps = float(self.beta_1), float(self.beta_2), float(self.epsilon)
        t = self._step_count() + 1
        coefficients = {}
        for g, var in zip(grads, variables):
            i = index[id(var)]
            w, (s, r), m, v = var._value, scratch[i], self._m[i], self._v[i]
            c = coefficients.get(w.dtype)
            if c is None:  # in the weight's dtype, as Keras computes them
                f = w.dtype.type
                u_t, u_t1 = self._momentum_schedule(f, t), self._momentum_schedule(f, t + 1)
                u_product = f(self._u_product._value)
                c = coefficients[w.dtype] = (
                    u_t1 / (f(1) - u_product * u_t1),
                    (f(1) - u_t) / (f(1) - u_product),
                    f(1) - f(b2) ** f(t),
                )
            c_m, c_g, v_scale = c
            np.subtract(g, m, out=s)
            s *= 1.0 - b1
            m += s
            np.multiply(g, g, out=s)
            s -= v
            s *= 1.0 - b2
            v += s
            np.multiply(m, c_m, out=s)
            np.multiply(g, c_g, out=r)
            s += r
            np.divide(v, v_scale, out=r)
            np.sqrt(r, out=r)
            r += eps
            s /= r
            s *= lr
            w -= s

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


class Adamax(ArrayOptimizer):
    """``m += (g - m) * (1 - beta_1)``; ``u = max(beta_2 * u, |g|)``;
    ``w -= lr * m / ((1 - beta_1**t) * (u + epsilon))``."""

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m_vars, self._u_vars = self.add_optimizer_variables(var_list, ["momentum", "norm"])
        self._m = [x._value for x in self._m_vars]
        self._u = [x._value for x in self._u_vars]

    def _update(self, grads, variables, lr):
        index, scratch = self._trainable_variables_indices, self._scratch
        b1, b2, eps = float(self.beta_1), float(self.beta_2), float(self.epsilon)
        t = self._step_count() + 1
        corrections = {}
        for g, var in zip(grads, variables):
            i = index[id(var)]
            w, (s,), m, u = var._value, scratch[i], self._m[i], self._u[i]
            correction = corrections.get(w.dtype)
            if correction is None:  # 1 - b1**t in the weight's dtype, as Keras computes it
                f = w.dtype.type
                correction = corrections[w.dtype] = f(1) - f(b1) ** f(t)
            np.subtract(g, m, out=s)
            s *= 1.0 - b1
            m += s
            u *= b2
            np.abs(g, out=s)
            np.maximum(u, s, out=u)
            np.add(u, eps, out=s)
            s *= correction
            np.divide(m, s, out=s)
            s *= lr
            w -= s

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
