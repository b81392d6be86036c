"""Trainer benchmark: irtool's NumPy training step vs PyTorch CPU, same model, batch and optimizer.

Measures the median time of one training step (forward, backward, SGD update) after warm-up:
  - MLP 784-256-256-10 (relu), batch 128, softmax cross-entropy — target: irtool <= 1.3x torch;
  - the Keras guide's toy ResNet (32x32x3 input), batch 64 — target: irtool <= 2.5x torch — with the
    default ONNX Runtime convolution kernels and with the NumPy ones (``irtool.ops.fast_kernels``);
and the achieved GFLOP/s of the MLP step against NumPy's float32 matmul peak on this machine.
Run:  python tools/bench_trainer.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__)))


def median_time(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def irtool_step(model, x, y):
    config, (train_program, _) = model._prepare([y])
    feeds = config.feeds([x], [y], [None])
    trainable = config.trainable

    def step():
        _, grads = train_program.run(feeds)
        model.optimizer.apply(grads, trainable)

    return step


def mlp_irtool():
    import irtool as keras
    from irtool import layers

    inputs = keras.Input((784,))
    x = layers.Dense(256, activation="relu")(inputs)
    x = layers.Dense(256, activation="relu")(x)
    model = keras.Model(inputs, layers.Dense(10)(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def mlp_torch(model):
    import torch
    from torch import nn

    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        dense = [layer for layer in model.layers if layer.weights]
        for linear, layer in zip([m for m in net if isinstance(m, nn.Linear)], dense):
            kernel, bias = layer.get_weights()
            linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
    return net


def torch_step(net, x, y):
    import torch

    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(xt), yt)
        loss.backward()
        optimizer.step()

    return step


def resnet_torch(model):
    from bench_layers import torch_twin

    return torch_twin(model).train()


def conv_training_flops(model, batch: int) -> int:
    """Multiply-adds x 2 of one training step's convolutions and matmuls: the forward product,
    the weight gradient and (except for a layer reading the model input) the input gradient."""
    total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        out_shape = layer.output.shape
        positions = batch * int(np.prod([d for d in out_shape[1:-1]] or [1]))
        forward = 2 * positions * int(np.prod(kernel.shape))
        reads_input = any(t is model.inputs[0] for t in layer._inbound_nodes[0].input_tensors)
        total += forward * (2 if reads_input else 3)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    repeats = 10 if args.quick else 30
    rng = np.random.default_rng(0)
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    import irtool as keras

    # NumPy's float32 matmul peak, measured first (torch's and ORT's threads spin after use).
    a, b = rng.standard_normal((1024, 1024)).astype("float32"), rng.standard_normal((1024, 1024)).astype("float32")
    peak = 2 * 1024**3 / median_time(lambda: a @ b, 10)
    keras.utils.set_random_seed(0)
    rows = []

    # MLP 784-256-256-10, batch 128
    x = rng.standard_normal((128, 784)).astype("float32")
    y = rng.integers(0, 10, 128).astype("int64")
    model = mlp_irtool()
    mlp_ours, mlp_peer = irtool_step(model, x, y), (torch_step(mlp_torch(model), x, y) if torch else None)
    ours_times, peer_times = [], []
    for _ in range(5):  # alternating rounds: a load change on the machine hits both sides
        ours_times.append(median_time(mlp_ours, repeats))
        if mlp_peer:
            peer_times.append(median_time(mlp_peer, repeats))
    t_ours = statistics.median(ours_times)
    t_peer = statistics.median(peer_times) if mlp_peer else None
    rows.append(("MLP 784-256-256-10, batch 128", t_ours, t_peer, 1.3))
    # forward, weight gradients, and input gradients of all but the first layer
    flops = 2 * 128 * (3 * (784 * 256 + 256 * 256 + 256 * 10) - 784 * 256)
    achieved = flops / t_ours

    # toy ResNet, batch 64: rounds alternate irtool (ONNX Runtime conv kernels), irtool (NumPy
    # kernels) and torch, so load changes on the machine hit all three alike.
    from bench_layers import toy_resnet

    from irtool.ops import fast_kernels

    resnet = toy_resnet()
    resnet.compile(
        optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    xr = rng.random((64, 32, 32, 3), dtype="float32")
    yr = rng.integers(0, 10, 64).astype("int64")
    ours_step = irtool_step(resnet, xr, yr)
    peer_step = torch_step(resnet_torch(resnet), xr.transpose(0, 3, 1, 2).copy(), yr) if torch else None
    default_kernels = fast_kernels.kernels()
    times: dict = {"ort": [], "numpy": [], "torch": []}
    for _ in range(3 if args.quick else 8):
        for kind in ("onnxruntime", "numpy"):
            fast_kernels.set_kernels(kind)
            times["ort" if kind == "onnxruntime" else "numpy"].append(median_time(ours_step, 3, warmup=1))
        if peer_step:
            times["torch"].append(median_time(peer_step, 3, warmup=1))
    fast_kernels.set_kernels(default_kernels)
    t_peer_r = statistics.median(times["torch"]) if peer_step else None
    rows.append(("toy ResNet, batch 64", statistics.median(times["ort"]), t_peer_r, 2.5))
    rows.append(("  (NumPy conv kernels)", statistics.median(times["numpy"]), t_peer_r, 2.5))
    resnet_flops = conv_training_flops(resnet, len(xr))

    print(f"{'training step':34} {'irtool (ms)':>12} {'torch (ms)':>11} {'ratio':>7} {'target':>7}")
    for name, ours, peer, target in rows:
        o = f"{ours * 1e3:12.2f}" if ours else "           -"
        p = f"{peer * 1e3:11.2f}" if peer else "          -"
        r = f"{ours / peer:7.2f}" if ours and peer else "      -"
        print(f"{name:34} {o} {p} {r} {'<= ' + str(target):>7}")
    print(
        f"\nMLP step: {achieved / 1e9:.1f} GFLOP/s achieved; NumPy float32 matmul peak {peak / 1e9:.1f} GFLOP/s "
        f"({achieved / peak:.0%} of peak)"
    )
    t_resnet = statistics.median(times["ort"])
    print(
        f"toy ResNet step: {resnet_flops / 1e9:.2f} GFLOP in its convolutions and Dense layers, "
        f"{resnet_flops / t_resnet / 1e9:.1f} GFLOP/s achieved ({resnet_flops / t_resnet / peak:.0%} of the matmul peak)"
    )


if __name__ == "__main__":
    main()
