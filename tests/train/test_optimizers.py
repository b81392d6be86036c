"""Optimizers and schedules against closed-form float64 references written from Keras 3's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import irtool.optimizers as optimizers
from irtool.ops.variable import Variable

F32 = float(np.float32(0.1))  # what a learning rate of 0.1 becomes in the float32 variable


def make_vars(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return [
        Variable(rng.normal(size=(4, 3)).astype(dtype), name="kernel", path="dense/kernel"),
        Variable(rng.normal(size=(3,)).astype(dtype), name="bias", path="dense/bias"),
    ]


def grad_seq(steps, seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=(3,)).astype(dtype)] for _ in range(steps)]


# -- float64 references: one function per rule, (w, g, state, t, lr) -> new w (state updated) ----------
def ref_sgd(mu=0.0, nesterov=False):
    def step(w, g, st, t, lr):
        if mu == 0:
            return w - lr * g
        m = st.get("m", np.zeros_like(w)) * mu - lr * g
        st["m"] = m
        return w + (m * mu - lr * g if nesterov else m)

    return step


def ref_rmsprop(rho=0.9, mu=0.0, eps=1e-7, centered=False):
    def step(w, g, st, t, lr):
        v = st["v"] = rho * st.get("v", 0 * w) + (1 - rho) * g**2
        if centered:
            a = st["a"] = rho * st.get("a", 0 * w) + (1 - rho) * g
            denom = v - a**2 + eps
        else:
            denom = v + eps
        inc = lr * g / np.sqrt(denom)
        if mu > 0:
            m = st["m"] = mu * st.get("m", 0 * w) + inc
            return w - m
        return w - inc

    return step


def ref_adam(b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    def step(w, g, st, t, lr):
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        m = st["m"] = st.get("m", 0 * w) + (g - st.get("m", 0 * w)) * (1 - b1)
        v = st["v"] = st.get("v", 0 * w) + (g**2 - st.get("v", 0 * w)) * (1 - b2)
        if amsgrad:
            v = st["vh"] = np.maximum(st.get("vh", 0 * w), v)
        return w - alpha * m / (np.sqrt(v) + eps)

    return step


def ref_adagrad(init=0.1, eps=1e-7):
    def step(w, g, st, t, lr):
        acc = st["acc"] = st.get("acc", np.full_like(w, init)) + g**2
        return w - lr * g / np.sqrt(acc + eps)

    return step


def ref_adadelta(rho=0.95, eps=1e-7):
    def step(w, g, st, t, lr):
        G = st["G"] = rho * st.get("G", 0 * w) + (1 - rho) * g**2
        D = st.get("D", 0 * w)
        d = -np.sqrt(D + eps) * g / np.sqrt(G + eps)
        st["D"] = rho * D + (1 - rho) * d**2
        return w + lr * d

    return step


def ref_nadam(b1=0.9, b2=0.999, eps=1e-7):
    def step(w, g, st, t, lr):
        # the running product is shared by all variables: keep it per step in st["shared"]
        shared = st["shared"]
        if shared.get("t") != t:
            shared["t"] = t
            shared["u_prod"] = w.dtype.type(shared.get("u_prod", 1.0) * b1 * (1 - 0.5 * 0.96**t))
        u_prod = float(shared["u_prod"])
        u_t, u_t1 = b1 * (1 - 0.5 * 0.96**t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
        m = st["m"] = st.get("m", 0 * w) + (g - st.get("m", 0 * w)) * (1 - b1)
        v = st["v"] = st.get("v", 0 * w) + (g**2 - st.get("v", 0 * w)) * (1 - b2)
        m_hat = u_t1 * m / (1 - u_prod * u_t1) + (1 - u_t) * g / (1 - u_prod)
        v_hat = v / (1 - b2**t)
        return w - m_hat * lr / (np.sqrt(v_hat) + eps)

    return step


def ref_adamax(b1=0.9, b2=0.999, eps=1e-7):
    def step(w, g, st, t, lr):
        m = st["m"] = st.get("m", 0 * w) + (g - st.get("m", 0 * w)) * (1 - b1)
        u = st["u"] = np.maximum(b2 * st.get("u", 0 * w), np.abs(g))
        return w - lr * m / ((1 - b1**t) * (u + eps))

    return step


def run_reference(rule, weights, grads, lr_at, weight_decay=None):
    ws = [w.copy() for w in weights]
    shared = {}
    states = [{"shared": shared} for _ in ws]
    for k, gs in enumerate(grads):
        lr = lr_at(k)
        for i, g in enumerate(gs):
            if weight_decay is not None:
                ws[i] = ws[i] - ws[i] * weight_decay * lr
            ws[i] = rule(ws[i], g, states[i], k + 1, lr)
    return ws


def run_ours(opt, variables, grads):
    for gs in grads:
        opt.apply_gradients(zip(gs, variables))
    return [v.numpy() for v in variables]


CASES = [
    ("sgd", optimizers.SGD, {"learning_rate": 0.1}, ref_sgd()),
    ("sgd_momentum", optimizers.SGD, {"learning_rate": 0.1, "momentum": 0.9}, ref_sgd(0.9)),
    ("sgd_nesterov", optimizers.SGD, {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}, ref_sgd(0.9, True)),
    ("rmsprop", optimizers.RMSprop, {"learning_rate": 0.1}, ref_rmsprop()),
    ("rmsprop_momentum", optimizers.RMSprop, {"learning_rate": 0.1, "momentum": 0.5}, ref_rmsprop(mu=0.5)),
    ("rmsprop_centered", optimizers.RMSprop, {"learning_rate": 0.1, "centered": True}, ref_rmsprop(centered=True)),
    (
        "rmsprop_all",
        optimizers.RMSprop,
        {"learning_rate": 0.1, "rho": 0.8, "momentum": 0.3, "centered": True, "epsilon": 1e-3},
        ref_rmsprop(0.8, 0.3, 1e-3, True),
    ),
    ("adam", optimizers.Adam, {"learning_rate": 0.1}, ref_adam()),
    ("adam_amsgrad", optimizers.Adam, {"learning_rate": 0.1, "amsgrad": True}, ref_adam(amsgrad=True)),
    (
        "adam_betas",
        optimizers.Adam,
        {"learning_rate": 0.1, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 0.01},
        ref_adam(0.5, 0.9, 0.01),
    ),
    ("adagrad", optimizers.Adagrad, {"learning_rate": 0.1}, ref_adagrad()),
    ("adagrad_init", optimizers.Adagrad, {"learning_rate": 0.1, "initial_accumulator_value": 1.0}, ref_adagrad(1.0)),
    ("adadelta", optimizers.Adadelta, {"learning_rate": 1.0}, ref_adadelta()),
    ("nadam", optimizers.Nadam, {"learning_rate": 0.1}, ref_nadam()),
    ("adamax", optimizers.Adamax, {"learning_rate": 0.1}, ref_adamax()),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_update_rules_match_closed_form(case):
    _, cls, kwargs, rule = case
    variables, grads = make_vars(), grad_seq(5)
    expected = run_reference(
        rule, [v.numpy() for v in variables], grads, lambda k: float(np.float32(kwargs["learning_rate"]))
    )
    got = run_ours(cls(**kwargs), variables, grads)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_single_steps_by_hand():
    (w,) = [Variable(np.array([1.0, -2.0]))]
    optimizers.SGD(0.5).apply([np.array([2.0, 4.0])], [w])
    np.testing.assert_array_equal(w.numpy(), [0.0, -4.0])
    w = Variable(np.array([1.0]))
    opt = optimizers.Adam(0.5)
    opt.apply([np.array([3.0])], [w])
    # t=1: m = 0.3, v = 0.009, alpha = 0.5 * sqrt(0.001) / 0.1
    np.testing.assert_allclose(w.numpy(), 1.0 - 0.5 * math.sqrt(0.001) / 0.1 * 0.3 / (math.sqrt(0.009) + 1e-7))
    w = Variable(np.array([1.0]))
    sgd = optimizers.SGD(0.5, momentum=0.5)
    for _ in range(2):
        sgd.apply([np.array([1.0])], [w])
    np.testing.assert_allclose(w.numpy(), 1.0 - 0.5 - (0.25 + 0.5))  # m1 = -0.5, m2 = -0.75


def test_adamw_is_adam_with_decoupled_decay():
    variables, grads = make_vars(), grad_seq(4)
    expected = run_reference(ref_adam(), [v.numpy() for v in variables], grads, lambda k: F32, weight_decay=0.1)
    got = run_ours(optimizers.AdamW(0.1, weight_decay=0.1), variables, grads)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-12)
    assert optimizers.AdamW().weight_decay == 0.004
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)


def test_weight_decay_and_exclusions():
    variables, grads = make_vars(), grad_seq(3)
    init = [v.numpy() for v in variables]
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    run_ours(opt, variables, grads)
    decayed = run_reference(ref_sgd(), init[:1], [g[:1] for g in grads], lambda k: F32, weight_decay=0.5)
    plain = run_reference(ref_sgd(), init[1:], [g[1:] for g in grads], lambda k: F32)
    np.testing.assert_allclose(variables[0].numpy(), decayed[0], rtol=1e-12)
    np.testing.assert_allclose(variables[1].numpy(), plain[0], rtol=1e-12)
    variables = make_vars()
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[variables[0]])
    run_ours(opt, variables, grads)
    np.testing.assert_allclose(
        variables[0].numpy(), run_reference(ref_sgd(), init[:1], [g[:1] for g in grads], lambda k: F32)[0]
    )


def _clip_case(kwargs, clip):
    variables, grads = make_vars(), grad_seq(3)
    init = [v.numpy() for v in variables]
    run_ours(optimizers.SGD(1.0, **kwargs), variables, grads)
    ws = init
    for gs in grads:
        ws = [w - g for w, g in zip(ws, clip(gs))]
    for v, e in zip(variables, ws):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-12)


def test_clipnorm_clips_each_tensor():
    c = 0.7
    _clip_case({"clipnorm": c}, lambda gs: [g * c / max(np.linalg.norm(g), c) for g in gs])


def test_global_clipnorm_clips_all_together():
    c = 1.5

    def clip(gs):
        n = math.sqrt(sum(float(np.sum(g**2)) for g in gs))
        return [g * c / max(n, c) for g in gs]

    _clip_case({"global_clipnorm": c}, clip)


def test_clipvalue():
    _clip_case({"clipvalue": 0.3}, lambda gs: [np.clip(g, -0.3, 0.3) for g in gs])


def test_clipping_does_not_touch_callers_gradients_and_global_inf_gives_nan():
    w = Variable(np.ones(3))
    g = np.array([3.0, 4.0, 0.0])
    optimizers.SGD(1.0, clipnorm=1.0).apply([g], [w])
    np.testing.assert_array_equal(g, [3.0, 4.0, 0.0])
    np.testing.assert_allclose(w.numpy(), [1 - 0.6, 1 - 0.8, 1.0])
    w = Variable(np.ones(2))
    optimizers.SGD(1.0, global_clipnorm=1.0).apply([np.array([np.inf, 1.0])], [w])
    assert np.isnan(w.numpy()).all()


def test_only_one_clip_argument():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


# -- in place -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01, clipnorm=1.0),
        lambda: optimizers.RMSprop(momentum=0.5, centered=True),
        lambda: optimizers.Adam(amsgrad=True, use_ema=True),
        lambda: optimizers.AdamW(global_clipnorm=1.0),
        lambda: optimizers.Adagrad(clipvalue=0.1),
        lambda: optimizers.Adadelta(),
        lambda: optimizers.Nadam(gradient_accumulation_steps=2),
        lambda: optimizers.Adamax(),
    ],
)
def test_updates_are_in_place(make):
    variables = make_vars("float32")
    arrays = [v._value for v in variables]
    views = [a.reshape(-1) for a in arrays]  # what a compiled graph might hold
    before = [a.copy() for a in arrays]
    opt = make()
    opt.build(variables)
    slots = [s._value for s in opt.variables]
    run_ours(opt, variables, grad_seq(4, dtype="float32"))
    assert all(v._value is a for v, a in zip(variables, arrays))
    assert all(s._value is a for s, a in zip(opt.variables, slots))
    assert all(v.dtype == "float32" for v in variables)
    assert any(not np.array_equal(b, view.reshape(b.shape)) for b, view in zip(before, views))


def test_gradients_are_cast_and_checked():
    w = Variable(np.ones(3, "float32"))
    optimizers.SGD(0.5).apply([np.ones(3)], [w])  # float64 gradient, float32 weight
    assert w._value.dtype == np.float32
    np.testing.assert_allclose(w.numpy(), 0.5)
    with pytest.raises(ValueError, match="shape"):
        optimizers.SGD().apply([np.ones(4)], [w])
