"""Optimizers and schedules against real Keras 3 (torch backend): same weights, same gradients."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import irtool.optimizers as optimizers  # noqa: E402
from irtool.ops.variable import Variable  # noqa: E402
from irtool.optimizers import schedules  # noqa: E402

from ..harness import require_keras  # noqa: E402

keras = require_keras()

STEPS = 10
SHAPES = [(5, 4), (4,), (3, 2, 2)]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s).astype("float32") for s in SHAPES]
    grads = [[rng.normal(size=s).astype("float32") for s in SHAPES] for _ in range(STEPS)]
    grads[3][1][:] = 0.0  # an all-zero gradient (clipnorm's zero-norm branch, RMSprop with small v)
    return init, grads


def _run_keras(opt, init, grads):
    variables = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(init)]
    for gs in grads:
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gs], variables))
    return [keras.ops.convert_to_numpy(v.value) for v in variables], [
        keras.ops.convert_to_numpy(v.value) for v in opt.variables
    ]


def _run_ours(opt, init, grads):
    variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(init)]
    for gs in grads:
        opt.apply_gradients(zip(gs, variables))
    return [v.numpy() for v in variables], [v.numpy() for v in opt.variables]


CASES = [
    ("SGD", {}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.05}),
    ("SGD", {"learning_rate": 0.1, "clipnorm": 1.0}),
    ("SGD", {"learning_rate": 0.1, "global_clipnorm": 2.0}),
    ("SGD", {"learning_rate": 0.1, "clipvalue": 0.5}),
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "rho": 0.8}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.9, "epsilon": 1e-3}),
    ("Adam", {"learning_rate": 0.01}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("Adam", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
    ("Adam", {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 3}),
    ("Adam", {"learning_rate": 0.01, "gradient_accumulation_steps": 3}),
    ("Adam", {"learning_rate": 0.01, "loss_scale_factor": 8.0}),
    ("AdamW", {"learning_rate": 0.01}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True, "clipnorm": 0.5}),
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "epsilon": 1e-3}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adadelta", {"learning_rate": 1.0, "rho": 0.5, "epsilon": 1e-4}),
    ("Nadam", {"learning_rate": 0.01}),
    ("Nadam", {"learning_rate": 0.01, "beta_1": 0.8, "gradient_accumulation_steps": 2}),
    ("Adamax", {"learning_rate": 0.01}),
    ("Adamax", {"learning_rate": 0.01, "beta_2": 0.9, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=[f"{c}-{'-'.join(k) or 'defaults'}" for c, k in CASES])
def test_matches_keras(cls, kwargs):
    init, grads = _data()
    want_w, want_state = _run_keras(getattr(keras.optimizers, cls)(**kwargs), init, grads)
    got_w, got_state = _run_ours(getattr(optimizers, cls)(**kwargs), init, grads)
    for w, g in zip(want_w, got_w):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    assert len(got_state) == len(want_state)
    for w, g in zip(want_state, got_state):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


SCHEDULES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5, "staircase": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5, "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [2, 5], "values": [0.1, 0.05, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 6, "power": 2.0}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "cycle": True, "end_learning_rate": 0.01}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 8, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 6, "warmup_target": 0.1, "warmup_steps": 3}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 3}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 3, "t_mul": 1.0, "m_mul": 0.5}),
]


@pytest.mark.parametrize(("cls", "kwargs"), SCHEDULES, ids=[f"{c}-{'-'.join(k)}" for c, k in SCHEDULES])
def test_schedules_match_keras(cls, kwargs):
    ks, ours = getattr(keras.optimizers.schedules, cls)(**kwargs), getattr(schedules, cls)(**kwargs)
    for step in range(25):
        want = float(keras.ops.convert_to_numpy(ks(step)))
        np.testing.assert_allclose(float(ours(step)), want, rtol=1e-6, atol=1e-9, err_msg=f"step {step}")
    assert ours.get_config() == ks.get_config()
    assert schedules.serialize(ours) == keras.optimizers.schedules.serialize(ks)


@pytest.mark.parametrize("cls", ["SGD", "Adam"])
def test_optimizer_with_schedule_matches_keras(cls):
    init, grads = _data(1)
    sched = {"initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.3}
    want_w, _ = _run_keras(
        getattr(keras.optimizers, cls)(keras.optimizers.schedules.ExponentialDecay(**sched), weight_decay=0.1),
        init,
        grads,
    )
    got_w, _ = _run_ours(getattr(optimizers, cls)(schedules.ExponentialDecay(**sched), weight_decay=0.1), init, grads)
    for w, g in zip(want_w, got_w):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "nadam", "adamax"])
def test_config_matches_keras(name):
    want = keras.optimizers.get(name).get_config()
    got = optimizers.get(name).get_config()
    assert got["name"] == name.replace("rmsprop", "rm_sprop").replace("adamw", "adam_w")
    assert {k: v for k, v in got.items() if k != "name"} == {k: v for k, v in want.items() if k != "name"}
    kwargs = {"learning_rate": 0.05, "clipnorm": 1.0, "use_ema": True}
    want = keras.optimizers.get(name).__class__(**kwargs).get_config()
    got = optimizers.get(name).__class__(**kwargs).get_config()
    assert {k: v for k, v in got.items() if k != "name"} == {k: v for k, v in want.items() if k != "name"}


def test_variable_names_match_keras():
    init, _ = _data()
    for cls, kwargs in [("Adam", {"amsgrad": True, "use_ema": True}), ("RMSprop", {"momentum": 0.5, "centered": True})]:
        k_opt = getattr(keras.optimizers, cls)(**kwargs)
        k_opt.build([keras.Variable(w, name=f"w{i}") for i, w in enumerate(init)])
        o_opt = getattr(optimizers, cls)(**kwargs)
        o_opt.build([Variable(w, name=f"w{i}") for i, w in enumerate(init)])
        assert [v.name for v in o_opt.variables] == [v.name for v in k_opt.variables]
        assert [v.path.split("/", 1)[1] for v in o_opt.variables] == [v.path.split("/", 1)[1] for v in k_opt.variables]
