"""Learning-rate schedules with Keras 3's names, arguments, defaults and formulas.

A schedule maps the optimizer's step count (``optimizer.iterations`` before the update) to a
learning rate. As Keras does (in ``floatx`` tensors), the arithmetic is done in float32 — here on
NumPy scalars — and the result is a ``np.float32``.

>>> s = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
>>> float(s(10))
0.05000000074505806
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
    "serialize",
    "deserialize",
]


_f = np.float32


def _step(step) -> np.float32:
    """The step as a float32: accepts ints, NumPy scalars/0-d arrays and Variables."""
    return _f(np.asarray(step))


def _check_decay_steps(value, arg: str = "decay_steps") -> None:
    if value <= 0:
        raise ValueError(f"Argument `{arg}` must be > 0. Received: {arg}={value}")


class LearningRateSchedule:
    """Base class: subclasses override ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{self.__class__.__name__}' must override `__call__(self, step)`."
        )

    def get_config(self):
        raise NotImplementedError(
            f"Learning rate schedule '{self.__class__.__name__}' must override `get_config()` in order to be "
            "serializable."
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored exponent if staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_decay_steps(decay_steps)

    def __call__(self, step):
        p = _step(step) / _f(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f(self.initial_learning_rate) * _f(self.decay_rate) ** p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` on ``(boundaries[i-1], boundaries[i]]``,
    ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        super().__init__()
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        s = _step(step)
        value = self.values[-1]
        for boundary, v in zip(self.boundaries, self.values):
            if s <= boundary:
                value = v
                break
        return np.float32(value)

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``; with ``cycle`` the horizon grows
    to the next multiple of ``decay_steps``, otherwise the step is capped at ``decay_steps``."""

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name="PolynomialDecay",
    ):
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        _check_decay_steps(decay_steps)

    def __call__(self, step):
        s, decay_steps = _step(step), _f(self.decay_steps)
        if self.cycle:
            decay_steps *= _f(1) if s == 0 else np.ceil(s / decay_steps)
        else:
            s = min(s, decay_steps)
        p = s / decay_steps
        initial, end = _f(self.initial_learning_rate), _f(self.end_learning_rate)
        return (initial - end) * (_f(1) - p) ** _f(self.power) + end

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored ratio if staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_decay_steps(decay_steps)

    def __call__(self, step):
        p = _step(step) / _f(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f(self.initial_learning_rate) / (_f(1) + _f(self.decay_rate) * p)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` (or, with ``warmup_target``, a linear warmup from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps`` and then cosine decay from
    ``warmup_target``) down to ``alpha`` times that rate after ``decay_steps``."""

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name="CosineDecay",
        warmup_target=None,
        warmup_steps=0,
    ):
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        _check_decay_steps(decay_steps)

    def _decay(self, step, decay_from):
        cosine = _f(0.5) * (_f(1) + np.cos(_f(math.pi) * (step / _f(self.decay_steps))))
        return decay_from * (_f(1 - self.alpha) * cosine + _f(self.alpha))

    def __call__(self, step):
        s, decay_steps = _step(step), _f(self.decay_steps)
        initial = _f(self.initial_learning_rate)
        if self.warmup_target is None:
            return self._decay(min(s, decay_steps), initial)
        target, warmup_steps = _f(self.warmup_target), _f(self.warmup_steps)
        s = min(s, decay_steps + warmup_steps)
        if s < warmup_steps:
            return (target - initial) * (s / warmup_steps) + initial
        return self._decay(s - warmup_steps, target)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """SGDR: cosine decay restarted every period; periods grow by ``t_mul``, peaks shrink by ``m_mul``."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        super().__init__()
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name
        _check_decay_steps(first_decay_steps, "first_decay_steps")

    def __call__(self, step):
        fraction = _step(step) / _f(self.first_decay_steps)
        t_mul, m_mul, alpha = _f(self._t_mul), _f(self._m_mul), _f(self.alpha)
        if t_mul == 1:
            i_restart = np.floor(fraction)
            fraction -= i_restart
        else:
            i_restart = np.floor(np.log(_f(1) - fraction * (_f(1) - t_mul)) / np.log(t_mul))
            sum_r = (_f(1) - t_mul**i_restart) / (_f(1) - t_mul)
            fraction = (fraction - sum_r) / t_mul**i_restart
        cosine = _f(0.5) * m_mul**i_restart * (_f(1) + np.cos(_f(math.pi) * fraction))
        return _f(self.initial_learning_rate) * ((_f(1) - alpha) * cosine + alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


_BY_NAME = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}


def serialize(learning_rate_schedule) -> dict:
    """Keras' serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    return {
        "module": "keras.optimizers.schedules",
        "class_name": type(learning_rate_schedule).__name__,
        "config": learning_rate_schedule.get_config(),
        "registered_name": None,
    }


def deserialize(config, custom_objects=None):
    """Rebuild a schedule from :func:`serialize`'s dict (custom classes through ``custom_objects``)."""
    lookup = {**_BY_NAME, **(custom_objects or {})}
    name = config.get("class_name")
    cls = lookup.get(name)
    if cls is None:
        raise ValueError(f"Could not interpret decay identifier: {config}")
    return cls.from_config(dict(config.get("config") or {}))
