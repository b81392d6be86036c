"""Training trajectories against PyTorch: same initial weights, same batches, 20 steps.

The loss after each SGD or Adam step must follow PyTorch's within 1e-4. Adam uses epsilon=0
on both sides because Keras and PyTorch place epsilon differently (otherwise identical).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import irtool as keras  # noqa: E402
from irtool import layers  # noqa: E402

RNG = np.random.default_rng(0)
STEPS = 20


def optimizers(kind):
    if kind == "sgd":
        return keras.optimizers.SGD(0.05, momentum=0.9), lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9)
    return keras.optimizers.Adam(0.01, epsilon=0.0), lambda params: torch.optim.Adam(params, lr=0.01, eps=0.0)


def trajectories(model, net, kind, x, y, to_torch_input):
    ours_opt, make_theirs = optimizers(kind)
    model.compile(optimizer=ours_opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    theirs_opt = make_theirs(net.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    ours, theirs = [], []
    for step in range(STEPS):
        batch = slice((step * 16) % len(x), (step * 16) % len(x) + 16)
        ours.append(float(model.train_on_batch(x[batch], y[batch])))
        theirs_opt.zero_grad()
        loss = loss_fn(net(to_torch_input(x[batch])), torch.from_numpy(y[batch]))
        loss.backward()
        theirs_opt.step()
        theirs.append(float(loss.detach()))
    return np.array(ours), np.array(theirs)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_mlp_follows_pytorch(kind):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((20,))
    h = layers.Dense(32, activation="relu")(inputs)
    h = layers.Dense(32, activation="tanh")(h)
    model = keras.Model(inputs, layers.Dense(4)(h))
    net = torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)
    )
    with torch.no_grad():
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for linear, layer in zip(linears, [layer for layer in model.layers if layer.weights]):
            kernel, bias = layer.get_weights()
            linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
    x = RNG.standard_normal((64, 20)).astype("float32")
    y = RNG.integers(0, 4, 64).astype("int64")
    ours, theirs = trajectories(model, net, kind, x, y, torch.from_numpy)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert ours[-1] < ours[0]


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_small_cnn_follows_pytorch(kind):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 3))
    h = layers.Conv2D(6, 3, activation="relu")(inputs)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, layers.Dense(4)(h))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv2d(3, 6, 3), torch.nn.Conv2d(6, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
            return self.fc(torch.relu(self.c2(x)).mean(dim=(2, 3)))

    net = Net()
    with torch.no_grad():
        convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
        for conv, layer in zip((net.c1, net.c2), convs):
            kernel, bias = layer.get_weights()
            conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(bias))
        kernel, bias = model.layers[-1].get_weights()
        net.fc.weight.copy_(torch.from_numpy(kernel.T.copy()))
        net.fc.bias.copy_(torch.from_numpy(bias))
    x = RNG.standard_normal((64, 8, 8, 3)).astype("float32")
    y = RNG.integers(0, 4, 64).astype("int64")
    ours, theirs = trajectories(model, net, kind, x, y, lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
