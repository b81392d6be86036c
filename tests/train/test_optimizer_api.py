"""Optimizer API: learning rate and schedules, iterations, Keras' state layout and config, ``apply``'s
edge cases, gradient accumulation, EMA, loss scaling and Keras-style custom optimizers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import irtool.optimizers as optimizers
from irtool.ops.variable import Variable
from irtool.optimizers import schedules
from tests.train.test_optimizers import grad_seq, make_vars, run_ours


# -- learning rate, iterations, schedules -----------------------------------------------------------
def test_learning_rate_is_a_float32_variable_and_settable():
    opt = optimizers.SGD()
    assert float(opt.learning_rate) == float(np.float32(0.01))
    assert opt.get_config()["learning_rate"] == 0.009999999776482582
    opt.learning_rate = 0.5
    assert float(opt.learning_rate) == 0.5 and opt.learning_rate.numpy() == 0.5
    w = Variable(np.ones(1))
    opt.apply([np.ones(1)], [w])
    np.testing.assert_allclose(w.numpy(), 0.5)
    assert f"{opt.learning_rate:.2f}" == "0.50"
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.SGD(learning_rate="fast")


def test_iterations():
    opt = optimizers.Adam()
    assert int(opt.iterations) == 0
    w = Variable(np.ones(2))
    for _ in range(3):
        opt.apply([np.ones(2)], [w])
    assert int(opt.iterations) == 3 and opt.iterations.numpy() == 3
    assert opt.iterations.dtype == "int32"


def test_schedule_drives_the_learning_rate():
    sched = schedules.ExponentialDecay(0.5, decay_steps=2, decay_rate=0.5)
    opt = optimizers.SGD(sched)
    assert [v.name for v in opt.variables] == ["iteration"]
    w = Variable(np.zeros(1))
    for _ in range(4):
        opt.apply([np.ones(1)], [w])
    lrs = [float(np.float32(0.5 * 0.5 ** (k / 2))) for k in range(4)]
    np.testing.assert_allclose(w.numpy(), -sum(lrs), rtol=1e-12)
    np.testing.assert_allclose(float(opt.learning_rate), 0.5 * 0.5**2, rtol=1e-7)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    assert opt.get_config()["learning_rate"]["class_name"] == "ExponentialDecay"


def test_assigning_a_schedule_drops_the_learning_rate_variable():
    opt = optimizers.SGD(0.1)
    opt.learning_rate = schedules.PiecewiseConstantDecay([1], [0.1, 0.01])
    assert [v.name for v in opt.variables] == ["iteration"]


def test_callable_learning_rate():
    opt = optimizers.SGD(lambda: 0.25)
    w = Variable(np.zeros(1))
    opt.apply([np.ones(1)], [w])
    np.testing.assert_allclose(w.numpy(), -0.25)


@pytest.mark.parametrize(
    ("schedule", "reference"),
    [
        (schedules.ExponentialDecay(0.1, 10, 0.5), lambda s: 0.1 * 0.5 ** (s / 10)),
        (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True), lambda s: 0.1 * 0.5 ** (s // 10)),
        (schedules.InverseTimeDecay(0.1, 10, 0.5), lambda s: 0.1 / (1 + 0.5 * s / 10)),
        (schedules.InverseTimeDecay(0.1, 10, 0.5, staircase=True), lambda s: 0.1 / (1 + 0.5 * (s // 10))),
        (
            schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]),
            lambda s: 1.0 if s <= 10 else 0.5 if s <= 20 else 0.1,
        ),
        (
            schedules.PolynomialDecay(0.1, 20, end_learning_rate=0.01, power=2.0),
            lambda s: (0.1 - 0.01) * (1 - min(s, 20) / 20) ** 2 + 0.01,
        ),
        (
            schedules.PolynomialDecay(0.1, 20, cycle=True),
            lambda s: (0.1 - 1e-4) * (1 - s / (20 * max(1, math.ceil(s / 20)))) + 1e-4,
        ),
        (
            schedules.CosineDecay(0.1, 20, alpha=0.1),
            lambda s: 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 20) / 20)) + 0.1),
        ),
        (
            schedules.CosineDecay(0.0, 20, warmup_target=0.1, warmup_steps=5),
            lambda s: 0.1 * s / 5 if s < 5 else 0.1 * 0.5 * (1 + math.cos(math.pi * min(s - 5, 20) / 20)),
        ),
        (
            schedules.CosineDecayRestarts(0.1, 10, t_mul=1.0),
            lambda s: 0.1 * 0.5 * (1 + math.cos(math.pi * ((s / 10) % 1.0))),
        ),
    ],
    ids=["exp", "exp_stair", "inv", "inv_stair", "piecewise", "poly", "poly_cycle", "cos", "cos_warmup", "sgdr"],
)
def test_schedules_closed_form(schedule, reference):
    for s in [0, 1, 4, 5, 9, 10, 11, 19, 20, 21, 35, 50]:
        got = schedule(s)
        assert isinstance(got, np.float32)
        np.testing.assert_allclose(float(got), reference(s), rtol=1e-6, atol=1e-9, err_msg=f"step {s}")
    config = schedule.get_config()
    again = type(schedule).from_config(config)
    assert again.get_config() == config
    assert schedules.deserialize(schedules.serialize(schedule)).get_config() == config


def test_schedule_validation():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="1 less than"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1])
    with pytest.raises(NotImplementedError):
        schedules.LearningRateSchedule()(0)


# -- state, names, config ---------------------------------------------------------------------------
def test_variables_layout_matches_keras():
    variables = make_vars("float32")
    names = {
        optimizers.SGD(momentum=0.9): ["kernel_momentum", "bias_momentum"],
        optimizers.Adam(amsgrad=True): [
            "kernel_momentum", "kernel_velocity", "bias_momentum", "bias_velocity", "kernel_velocity_hat",
            "bias_velocity_hat",
        ],
        optimizers.RMSprop(momentum=0.5, centered=True): [
            "kernel_velocity", "bias_velocity", "kernel_momentum", "bias_momentum", "kernel_average_gradient",
            "bias_average_gradient",
        ],
        optimizers.Adam(use_ema=True, gradient_accumulation_steps=2): [
            "kernel_average", "bias_average", "kernel_gradient_accumulator", "bias_gradient_accumulator",
            "kernel_momentum", "kernel_velocity", "bias_momentum", "bias_velocity",
        ],
        optimizers.Adadelta(): [
            "kernel_accumulated_grad", "kernel_accumulated_delta_var", "bias_accumulated_grad",
            "bias_accumulated_delta_var",
        ],
        optimizers.Adamax(): ["kernel_momentum", "kernel_norm", "bias_momentum", "bias_norm"],
        optimizers.Nadam(): ["kernel_momentum", "kernel_velocity", "bias_momentum", "bias_velocity", "variable"],
    }  # fmt: skip
    for opt, slots in names.items():
        opt.build(variables)
        got = [v.name for v in opt.variables]
        assert got[:2] == ["iteration", "learning_rate"]
        assert [n.replace("dense_", "") for n in got[2:]] == slots, type(opt).__name__
        assert opt.variables[2].path.startswith(opt.name + "/dense_")
    assert [o.name for o in names][:4] == ["sgd", "adam", "rm_sprop", "adam_1"]
    assert optimizers.AdamW().name == "adam_w"
    assert optimizers.SGD().variables[1].dtype == "float32"


def test_adagrad_accumulator_starts_at_initial_value():
    opt = optimizers.Adagrad(initial_accumulator_value=0.3)
    opt.build(make_vars("float32"))
    np.testing.assert_allclose(opt.variables[2].numpy(), 0.3, rtol=1e-7)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "nadam", "adamax"])
def test_get_by_name_and_config_round_trip(name):
    opt = optimizers.get(name)
    assert type(opt).__name__.lower() == name
    config = opt.get_config()
    again = type(opt).from_config(config)
    assert again.get_config() == config
    clone = optimizers.deserialize(optimizers.serialize(opt))
    assert clone.get_config() == config and clone is not opt
    assert optimizers.get(optimizers.serialize(opt)).get_config() == config


def test_get_variants():
    opt = optimizers.Adam()
    assert optimizers.get(opt) is opt
    assert optimizers.get(None) is None
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    assert float(optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.5}}).learning_rate) == 0.5
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        optimizers.get("nope")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        optimizers.get(3)
    sched = schedules.CosineDecay(0.1, 100)
    clone = optimizers.deserialize(optimizers.serialize(optimizers.Adam(sched)))
    assert isinstance(clone._learning_rate, schedules.CosineDecay)


def test_config_has_keras_keys():
    config = optimizers.RMSprop(momentum=0.5).get_config()
    assert list(config) == [
        "name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema",
        "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps", "rho",
        "momentum", "epsilon", "centered",
    ]  # fmt: skip


def test_unknown_kwargs_and_decay():
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(foo=1)
    with pytest.warns(UserWarning, match="decay"):
        optimizers.Adam(decay=0.1)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)


def test_save_and_load_own_variables_and_set_weights():
    variables = make_vars("float32")
    opt = optimizers.Adam()
    run_ours(opt, variables, grad_seq(2, dtype="float32"))
    store = {}
    opt.save_own_variables(store)
    assert list(store) == [str(i) for i in range(6)] and store["0"] == 2
    other = optimizers.Adam()
    other.build(variables)
    other.load_own_variables(store)
    for a, b in zip(opt.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    fresh = optimizers.Adam()
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        fresh.load_own_variables(store)
    with pytest.raises(ValueError, match="not yet been built"):
        fresh.set_weights(opt.get_weights())
    fresh.build(variables)
    fresh.set_weights(opt.get_weights())
    assert int(fresh.iterations) == 2


# -- apply() edge cases, accumulation, EMA, loss scaling --------------------------------------------
def test_apply_edge_cases():
    a, b = make_vars()
    opt = optimizers.SGD(0.5)
    with pytest.raises(ValueError, match="must already be built"):
        opt.apply([np.ones(3)])
    opt.build([a, b])
    opt.apply([np.zeros((4, 3)), np.ones(3)])  # grads only: the variables it was built with
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply([np.ones(3)], [Variable(np.zeros(3))])
    before = a.numpy()
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['dense/kernel'\]"):
        opt.apply([None, np.ones(3)], [a, b])
    np.testing.assert_array_equal(a.numpy(), before)
    with pytest.raises(ValueError, match="No gradients provided"):
        opt.apply([None], [a])
    assert int(opt.iterations) == 2
    opt.apply([], [])
    assert int(opt.iterations) == 2


def test_gradient_accumulation():
    w = Variable(np.zeros(2))
    opt = optimizers.SGD(0.5, gradient_accumulation_steps=2)
    opt.apply([np.array([1.0, 2.0])], [w])
    np.testing.assert_array_equal(w.numpy(), [0.0, 0.0])
    assert int(opt.iterations) == 0
    opt.apply([np.array([3.0, 4.0])], [w])
    np.testing.assert_allclose(w.numpy(), [-1.0, -1.5])
    assert int(opt.iterations) == 1 and int(opt._iterations) == 2
    np.testing.assert_array_equal(opt.variables[2].numpy(), 0)  # accumulator reset
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        optimizers.SGD(gradient_accumulation_steps=1)


def test_gradient_accumulation_bias_correction_uses_accumulated_steps():
    w1, w2 = Variable(np.ones(2)), Variable(np.ones(2))
    g1, g2 = np.array([0.5, -1.0]), np.array([1.5, 2.0])
    acc = optimizers.Adam(0.1, gradient_accumulation_steps=2)
    acc.apply([g1], [w1])
    acc.apply([g2], [w1])
    optimizers.Adam(0.1).apply([(g1 + g2) / 2], [w2])
    np.testing.assert_allclose(w1.numpy(), w2.numpy(), rtol=1e-12)


def test_ema():
    w = Variable(np.array([1.0]))
    opt = optimizers.SGD(0.5, use_ema=True, ema_momentum=0.9)
    opt.apply([np.array([1.0])], [w])  # w = 0.5; first step: average = w
    average = opt.variables[2]
    np.testing.assert_allclose(average.numpy(), [0.5])
    opt.apply([np.array([1.0])], [w])  # w = 0.0; average = 0.9 * 0.5 + 0.1 * 0.0
    np.testing.assert_allclose(average.numpy(), [0.45])
    opt.finalize_variable_values([w])
    np.testing.assert_allclose(w.numpy(), [0.45])
    w = Variable(np.array([1.0]))
    opt = optimizers.SGD(0.5, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=2)
    opt.apply([np.array([1.0])], [w])
    opt.apply([np.array([1.0])], [w])
    np.testing.assert_allclose(w.numpy(), [0.45])
    with pytest.raises(ValueError, match="ema_momentum"):
        optimizers.SGD(use_ema=True, ema_momentum=2.0)


def test_loss_scale_factor():
    w = Variable(np.zeros(1))
    opt = optimizers.SGD(0.5, loss_scale_factor=4.0)
    assert opt.scale_loss(2.0) == 8.0
    opt.apply([np.array([4.0])], [w])
    np.testing.assert_allclose(w.numpy(), [-0.5])


def test_keras_style_custom_optimizer():
    class MySGD(optimizers.Optimizer):
        def __init__(self, learning_rate=0.1, **kwargs):
            super().__init__(learning_rate, **kwargs)

        def build(self, variables):
            super().build(variables)
            self.velocities = self.add_optimizer_variables(variables, "velocity")

        def update_step(self, gradient, variable, learning_rate):
            v = self.velocities[self._get_variable_index(variable)]
            self.assign(v, 0.5 * v.numpy() + gradient)
            self.assign_sub(variable, learning_rate * v.numpy())

    w = Variable(np.zeros(1))
    opt = MySGD(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.apply([np.ones(1)], [w])
        opt.apply([np.ones(1)], [w])
    np.testing.assert_allclose(w.numpy(), [-0.5 - 0.75])
    assert [v.name for v in opt.variables] == ["iteration", "learning_rate", "variable_velocity"]


def test_update_step_per_variable_matches_batched():
    variables_a, variables_b, grads = make_vars(), make_vars(), grad_seq(1)[0]
    opt_a, opt_b = optimizers.RMSprop(0.1, momentum=0.5), optimizers.RMSprop(0.1, momentum=0.5)
    opt_a.apply(grads, variables_a)
    opt_b.build(variables_b)
    for g, v in zip(grads, variables_b):
        opt_b.update_step(g, v, 0.1)
    for a, b in zip(variables_a, variables_b):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
