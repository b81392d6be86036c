"""Optimizers against ``torch.optim`` where the two libraries' formulas coincide.

Where they differ (all a matter of epsilon placement unless noted), the comparison sets epsilon to
0 in both, which makes the formulas identical:

- Adam/AdamW: Keras divides by ``sqrt(v) + eps`` with the bias correction folded into the step
  size, PyTorch by ``sqrt(v / (1 - beta_2**t)) + eps``, i.e. Keras' eps is PyTorch's eps times
  ``sqrt(1 - beta_2**t)``.
- RMSprop and Adagrad: Keras ``sqrt(v + eps)``, PyTorch ``sqrt(v) + eps``.
- Adamax: Keras ``u + eps`` in the denominator, PyTorch ``max(beta_2 * u, |g| + eps)``.
- Adadelta: identical with the same eps.
- Not compared: Nadam (PyTorch's momentum schedule is ``0.96 ** (0.004 t)``, Keras' ``0.96 ** t``)
  and SGD's ``weight_decay`` (coupled L2 in PyTorch, decoupled in Keras).

SGD's momentum buffers differ in scale (Keras ``m = mu m - lr g``, PyTorch ``b = mu b + g``,
``w -= lr b``), which is the same update for a constant learning rate.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import irtool.optimizers as optimizers  # noqa: E402
from irtool.ops.variable import Variable  # noqa: E402

STEPS = 10
SHAPES = [(6, 5), (5,)]


def _data(seed=3):
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s).astype("float32") for s in SHAPES]
    grads = [[rng.normal(size=s).astype("float32") for s in SHAPES] for _ in range(STEPS)]
    return init, grads


def _run_torch(make, init, grads):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in init]
    opt = make(params)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def _run_ours(opt, init, grads):
    variables = [Variable(w.copy()) for w in init]
    for gs in grads:
        opt.apply(gs, variables)
    return [v.numpy() for v in variables]


T = torch.optim
CASES = {
    "sgd": (lambda p: T.SGD(p, lr=0.1), lambda: optimizers.SGD(0.1)),
    "sgd_momentum": (lambda p: T.SGD(p, lr=0.1, momentum=0.9), lambda: optimizers.SGD(0.1, momentum=0.9)),
    "sgd_nesterov": (
        lambda p: T.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    ),
    "adam": (lambda p: T.Adam(p, lr=0.01, eps=0.0), lambda: optimizers.Adam(0.01, epsilon=0.0)),
    "adam_betas": (
        lambda p: T.Adam(p, lr=0.01, betas=(0.5, 0.9), eps=0.0),
        lambda: optimizers.Adam(0.01, beta_1=0.5, beta_2=0.9, epsilon=0.0),
    ),
    "adam_amsgrad": (
        lambda p: T.Adam(p, lr=0.01, eps=0.0, amsgrad=True),
        lambda: optimizers.Adam(0.01, epsilon=0.0, amsgrad=True),
    ),
    "adamw": (
        lambda p: T.AdamW(p, lr=0.01, eps=0.0, weight_decay=0.1),
        lambda: optimizers.AdamW(0.01, epsilon=0.0, weight_decay=0.1),
    ),
    "rmsprop": (lambda p: T.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0), lambda: optimizers.RMSprop(0.01, epsilon=0.0)),
    "rmsprop_centered_momentum": (
        lambda p: T.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0, momentum=0.5, centered=True),
        lambda: optimizers.RMSprop(0.01, epsilon=0.0, momentum=0.5, centered=True),
    ),
    "adagrad": (
        lambda p: T.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=0.0),
        lambda: optimizers.Adagrad(0.1, epsilon=0.0),
    ),
    "adadelta": (lambda p: T.Adadelta(p, lr=1.0, rho=0.95, eps=1e-7), lambda: optimizers.Adadelta(1.0)),
    "adamax": (lambda p: T.Adamax(p, lr=0.01, eps=0.0), lambda: optimizers.Adamax(0.01, epsilon=0.0)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name):
    make_torch, make_ours = CASES[name]
    init, grads = _data()
    want = _run_torch(make_torch, init, grads)
    got = _run_ours(make_ours(), init, grads)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_adam_default_epsilon_differs_from_torch_only_by_its_placement():
    """With the default epsilons the trajectories differ, and a PyTorch eps of
    ``keras_eps / sqrt(1 - beta_2**t)`` at each step would reproduce Keras: check one step exactly."""
    init, grads = _data()
    want = _run_torch(lambda p: T.Adam(p, lr=0.01, eps=1e-7 / np.sqrt(1 - 0.999)), init, grads[:1])
    got = _run_ours(optimizers.Adam(0.01), init, grads[:1])
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
