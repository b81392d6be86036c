"""Layer-coverage benchmark: the Keras guide's toy ResNet, irtool vs torch.onnx, same weights.

Measures (warm, median of repeats):
  1. export time with validation (irtool.onnx.to_onnx: checker + strict shape inference) vs
     torch.onnx.export (TorchScript; --dynamo adds the dynamo exporter) of the same network;
  2. node counts of both exports;
  3. ONNX Runtime latency (CPU, default session options) of both files at batch 1 and 32.
Run:  python tools/bench_layers.py [--quick] [--dynamo]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort

import irtool as keras
from irtool import layers


def toy_resnet():
    inputs = keras.Input(shape=(32, 32, 3), name="img")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])
    x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="toy_resnet")


def torch_twin(model):
    """The same network in PyTorch (NCHW), with the irtool model's weights."""
    import torch
    from torch import nn

    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    denses = [layer for layer in model.layers if isinstance(layer, layers.Dense)]

    class ToyResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(
                nn.Conv2d(c.kernel.shape[2], c.filters, 3, padding=1 if c.padding == "same" else 0) for c in convs
            )
            self.pool = nn.MaxPool2d(3)
            self.fc1, self.fc2 = nn.Linear(64, 256), nn.Linear(256, 10)
            with torch.no_grad():
                for conv, layer in zip(self.convs, convs):
                    kernel, bias = layer.get_weights()
                    conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
                    conv.bias.copy_(torch.from_numpy(bias))
                for fc, layer in zip((self.fc1, self.fc2), denses):
                    kernel, bias = layer.get_weights()
                    fc.weight.copy_(torch.from_numpy(kernel.T.copy()))
                    fc.bias.copy_(torch.from_numpy(bias))

        def forward(self, x):
            c, relu = self.convs, torch.relu
            x = relu(c[1](relu(c[0](x))))
            b1 = self.pool(x)
            b2 = relu(c[3](relu(c[2](b1)))) + b1
            b3 = relu(c[5](relu(c[4](b2)))) + b2
            x = relu(c[6](b3)).mean(dim=(2, 3))
            return self.fc2(relu(self.fc1(x)))

    return ToyResNet().eval()


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def session(blob: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dynamo", action="store_true", help="also time torch.onnx's dynamo exporter")
    args = parser.parse_args()
    repeats = 5 if args.quick else 20
    keras.utils.set_random_seed(0)
    model = toy_resnet()
    rows = []
    t_ours = median_time(lambda: keras.onnx.to_onnx(model), repeats)
    ours = keras.onnx.to_onnx(model)
    ours_blob = ours.SerializeToString()
    try:
        import torch
    except ImportError:
        torch = None
    theirs_blob = None
    if torch is not None:
        twin = torch_twin(model)
        example = torch.rand(1, 3, 32, 32)

        def export_torch(dynamo=False):
            buffer = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    twin, (example,), buffer, dynamo=dynamo, input_names=["img"], dynamic_axes={"img": {0: "batch"}}
                )
            return buffer.getvalue()

        t_torch = median_time(export_torch, max(3, repeats // 4))
        theirs_blob = export_torch()
        rows.append(("export (s), TorchScript exporter", t_ours, t_torch, "<= 0.03 s"))
        if args.dynamo:
            t_dynamo = median_time(lambda: export_torch(True), 2)
            rows.append(("export (s), dynamo exporter", t_ours, t_dynamo, ""))
        theirs = onnx.load_from_string(theirs_blob)
        x_nhwc = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
        got = session(ours_blob).run(None, {"img": x_nhwc})[0]
        want = session(theirs_blob).run(None, {"img": x_nhwc.transpose(0, 3, 1, 2).copy()})[0]
        print(f"same weights, same outputs: max |diff| = {np.abs(got - want).max():.2e}")
        ours_nodes, theirs_nodes = len(ours.graph.node), len(theirs.graph.node)
        theirs_compute = sum(n.op_type != "Constant" for n in theirs.graph.node)
        print(
            f"nodes: irtool {ours_nodes} (incl. 1 NHWC->NCHW Transpose), torch {theirs_nodes} ({theirs_compute} without Constant)"
        )
        for batch in (1, 32):
            x = np.random.default_rng(1).random((batch, 32, 32, 3), dtype="float32")
            xt = x.transpose(0, 3, 1, 2).copy()
            s_ours, s_theirs = session(ours_blob), session(theirs_blob)
            n = repeats * (20 if batch == 1 else 2)
            t1 = median_time(lambda s=s_ours, x=x: s.run(None, {"img": x}), n)
            t2 = median_time(lambda s=s_theirs, x=xt: s.run(None, {"img": x}), n)
            rows.append((f"ORT latency batch {batch} (s)", t1, t2, "<= torch"))
    else:
        rows.append(("export (s)", t_ours, None, "<= 0.03 s"))
        print("torch not installed: peer columns empty (pip install torch==2.13.0)")
    print(f"\n{'measure':40} {'irtool':>12} {'torch':>12} {'ratio':>8}  target")
    for name, a, b, target in rows:
        ratio = f"{a / b:8.2f}" if b else "       -"
        peer = f"{b:12.5f}" if b else "           -"
        print(f"{name:40} {a:12.5f} {peer} {ratio}  {target}")


if __name__ == "__main__":
    main()
