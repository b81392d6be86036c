"""GPU check: irtool's exports on ONNX Runtime's CUDA provider, against NumPy and PyTorch eager.

Exports the Keras guide's toy ResNet, the multi-input ticket model (examples/multi_io.py) and an
MNIST MLP with irtool, then for each measures

- parity with irtool's NumPy executor: max |diff| with TF32 off (must be within 1e-5, atol and
  rtol) and, on CUDA, with TF32 on (reported only);
- latency (p50) and throughput at batch 1, 32 and 256 with ``Session.run`` (host arrays: a copy
  in and out per run) and with IO binding (inputs and outputs stay on the device);
- PyTorch eager on the same network and weights (toy ResNet and MLP), when torch is installed,
  on CUDA with TF32 off as well (``torch.backends.cudnn.allow_tf32 = False``).

It prints one table. On the GPU machine (see /work/shared/tools/gpu/README.md: the ORT GPU wheel
installed into /tmp/site; ``tools/gpu_deps.sh`` brings irtool's few pure-Python/h5py deps there):

    PYTHONPATH=/tmp/site:$PWD python tools/gpu_check.py --markdown

On a CPU machine, ``--providers cpu`` runs the same measurements on the CPU provider (a test runs
it with ``--models mlp --batches 1,2 --runs 3``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

#: Modules ``import irtool`` needs beyond numpy, networkx, onnx and onnxruntime.
NEEDED = ("numpy", "networkx", "onnx", "onnxruntime", "graphviz", "h5py", "threadpoolctl")
missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(
        f"gpu_check: missing Python packages {', '.join(missing)}; run tools/gpu_deps.sh where a registry is "
        "reachable and install .gpu/deps/*.whl with pip install --no-index --no-deps --target /tmp/site"
    )

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_layers import torch_twin, toy_resnet  # noqa: E402

import irtool as keras  # noqa: E402
from irtool import layers  # noqa: E402
from irtool.loading import load_model, numpy_reference  # noqa: E402
from irtool.runtime import Session, random_inputs  # noqa: E402
from irtool.runtime.benchmark import benchmark  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mnist_mlp():
    inputs = keras.Input((784,), name="img")
    x = layers.Dense(512, activation="relu")(inputs)
    x = layers.Dense(512, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(10)(x), name="mnist_mlp")


def torch_mlp(model):
    """The MLP in PyTorch with the irtool model's weights."""
    import torch  # import here: torch is optional on the GPU machine

    denses = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    modules = []
    for k, layer in enumerate(denses):
        kernel, bias = layer.get_weights()
        linear = torch.nn.Linear(*kernel.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
        modules.append(linear)
        if k < len(denses) - 1:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules).eval()


def models(names):
    keras.utils.set_random_seed(0)
    built = {
        "resnet": lambda: (toy_resnet(), torch_twin, lambda x: x.transpose(0, 3, 1, 2)),
        "tickets": lambda: (load_model(os.path.join(ROOT, "examples", "multi_io.py")), None, None),
        "mlp": lambda: (mnist_mlp(), torch_mlp, lambda x: x),
    }
    for name in names:
        yield name, *built[name]()


def parity(session, model, feeds):
    """max |ORT - NumPy| over the outputs, and whether all are within atol = rtol = 1e-5."""
    got = session.run_list(feeds)
    want = numpy_reference(model)([feeds[n] for n in session.input_names])
    worst, ok = 0.0, True
    for g, w in zip(got, want):
        diff = np.abs(g.astype(np.float64) - w)
        worst = max(worst, float(diff.max()))
        ok = ok and bool(np.all(diff <= 1e-5 + 1e-5 * np.abs(w)))
    return worst, ok


def torch_timing(twin, to_torch, feeds, device, runs):
    import torch  # import here: torch is optional on the GPU machine

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    net = twin.to(device)
    x = torch.from_numpy(np.ascontiguousarray(to_torch(next(iter(feeds.values()))))).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        with torch.inference_mode():
            net(x)
        sync()

    return benchmark(step, runs, len(x))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", default="cuda", choices=("cuda", "cpu"), help="where to run (default cuda)")
    parser.add_argument("--models", default="resnet,tickets,mlp", help="comma-separated: resnet, tickets, mlp")
    parser.add_argument("--batches", default="1,32,256", help="batch sizes (default 1,32,256)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per measurement (default 50)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cuda = args.providers == "cuda"
    device = "cuda" if cuda else "cpu"
    providers = ["cuda"] if cuda else ["cpu"]
    batches = [int(b) for b in args.batches.split(",")]
    try:
        import torch
    except ImportError:
        torch = None
    torch_ok = torch is not None and (not cuda or torch.cuda.is_available())
    print(f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())}); numpy {np.__version__}; "
          f"torch {torch.__version__ if torch is not None else 'not installed'}")  # fmt: skip
    if cuda and torch is not None and torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    header = [
        "model", "batch", "max|diff| TF32 off", "ok", "max|diff| TF32 on",
        "run p50 ms", "run samples/s", "iobind p50 ms", "iobind samples/s",
        "torch p50 ms", "torch samples/s", "iobind/torch",
    ]  # fmt: skip
    rows = []
    for name, model, twin_of, to_torch in models(args.models.split(",")):
        proto = model.to_onnx()
        session = Session(proto, providers=providers, warmup=batches)
        fast = (
            Session(proto, providers=providers, provider_options={"cuda": {"tf32": True}}, warmup=False)
            if cuda
            else None
        )
        twin = twin_of(model) if torch_ok and twin_of is not None else None
        for batch in batches:
            feeds = dict(zip(session.input_names, random_inputs(session.inputs, batch, seed=1)))
            diff, ok = parity(session, model, feeds)
            diff_tf32 = f"{parity(fast, model, feeds)[0]:.1e}" if fast is not None else "—"
            plain = benchmark(lambda s=session, f=feeds: s.run_list(f), args.runs, batch)
            binding = session.bind(feeds, device=device)
            bound = benchmark(binding.run, args.runs, batch)
            if twin is not None:
                theirs = torch_timing(twin, to_torch, feeds, device, args.runs)
                torch_cols = [f"{theirs.p50_ms:.3f}", f"{theirs.throughput:,.0f}",
                              f"{bound.throughput / theirs.throughput:.2f}"]  # fmt: skip
            else:
                torch_cols = ["—", "—", "—"]
            rows.append([
                name, str(batch), f"{diff:.1e}", "yes" if ok else "NO", diff_tf32,
                f"{plain.p50_ms:.3f}", f"{plain.throughput:,.0f}", f"{bound.p50_ms:.3f}", f"{bound.throughput:,.0f}",
                *torch_cols,
            ])  # fmt: skip
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print(f"providers: {', '.join(session.providers)}; {time.perf_counter() - started:.0f} s")
    return 0 if all(row[3] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
