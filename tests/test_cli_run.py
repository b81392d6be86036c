"""``irtool run`` and ``irtool inspect`` on real files (tmp_path), mostly through ``irtool.cli.main``.

References: the model's NumPy executor (``predict``) and a raw ``onnxruntime.InferenceSession``;
bad inputs end in one ``irtool: error:`` line, exit 2 (usage) or 1 (model), and write nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from irtool.cli import main
from irtool.loading import load_model
from irtool.runtime import Session

from ._model_sources import TINY
from .harness import one_node_onnx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = ROOT / "tests" / "data"
HAS_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()

TWO_INPUTS = """
import irtool as keras
from irtool import layers

features = keras.Input((4,), name="features")
tokens = keras.Input((5,), dtype="int64", name="tokens")
embedded = layers.GlobalAveragePooling1D()(layers.Embedding(10, 4)(tokens))
joined = layers.Concatenate()([features, embedded])
model = keras.Model([features, tokens], [layers.Dense(2, name="first")(joined), layers.Dense(1, name="second")(joined)])
"""


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    return _write(tmp_path, "tiny.py", TINY)


@pytest.fixture
def tiny_onnx(tiny, tmp_path, capsys) -> Path:
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(tiny), "-o", str(out)]) == 0
    capsys.readouterr()
    return out


def _x(rows=2, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, 4)).astype("float32")


# -- run: success paths -------------------------------------------------------------------------------
def test_run_an_onnx_file_writes_outputs_equal_to_onnxruntime(tiny_onnx, tmp_path, capsys):
    np.save(tmp_path / "x.npy", _x())
    out = tmp_path / "preds"
    assert main(["run", str(tiny_onnx), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # an ONNX file has its weights: no note
    assert captured.out.splitlines() == [
        "ran tiny.onnx on CPUExecutionProvider",
        f"out: (2, 3) float32 -> {out / 'out.npy'}",
    ]
    raw = onnxruntime.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(np.load(out / "out.npy"), raw.run(None, {"x": _x()})[0])
    assert files_under(out) == ["out.npy"]


def test_run_prints_a_preview_and_json(tiny_onnx, tmp_path, capsys):
    np.save(tmp_path / "x.npy", _x())
    assert main(["run", str(tiny_onnx), "--input", str(tmp_path / "x.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    raw = onnxruntime.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    assert lines[1].startswith("out: (2, 3) float32 [")
    shown = [float(v) for v in lines[1].split("[", 1)[1].rstrip("]").split(", ")]
    np.testing.assert_allclose(shown, raw.run(None, {"x": _x()})[0].reshape(-1), atol=5e-5)
    np.save(tmp_path / "x.npy", _x(rows=5))  # 15 values: the preview shows six
    assert main(["run", str(tiny_onnx), "--input", str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith(", ...]")
    np.save(tmp_path / "x.npy", _x())
    assert main(["run", str(tiny_onnx), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["provider"] == "CPUExecutionProvider"
    (output,) = report["outputs"]
    assert (output["name"], output["shape"], output["dtype"]) == ("out", [2, 3], "float32")
    np.testing.assert_array_equal(np.array(output["data"], "float32"), raw.run(None, {"x": _x()})[0])


def test_run_a_model_py_with_weights_uses_them(tiny, tmp_path, capsys):
    model = load_model(tiny)
    for k, weight in enumerate(model.weights):
        weight.assign(np.linspace(-1, 1, int(np.prod(weight.shape))).reshape(weight.shape).astype("float32") * (k + 1))
    model.save_weights(tmp_path / "trained.weights.h5")
    model.save(tmp_path / "trained.keras")
    np.save(tmp_path / "x.npy", _x())
    want = model.predict(_x(), verbose=0)
    for weights in ("trained.weights.h5", "trained.keras"):
        out = tmp_path / f"out-{weights}"
        argv = ["run", str(tiny), "--weights", str(tmp_path / weights), "--input", str(tmp_path / "x.npy")]
        assert main([*argv, "--output-dir", str(out)]) == 0
        captured = capsys.readouterr()
        assert captured.err == ""
        np.testing.assert_allclose(np.load(out / "out.npy"), want, rtol=1e-6, atol=1e-6)
    # without --weights the model.py's weights are fresh, and the CLI says so once
    assert main(["run", str(tiny), "--random"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("irtool: note: model 'tiny' has freshly initialised weights (tiny.py holds no trained")


def test_export_with_weights_writes_the_trained_weights(tiny, tmp_path, capsys):
    model = load_model(tiny)
    model.weights[0].assign(np.full(model.weights[0].shape, 0.25, "float32"))
    model.save_weights(tmp_path / "w.weights.h5")
    out = tmp_path / "t.onnx"
    assert main(["export", str(tiny), "-o", str(out), "--weights", str(tmp_path / "w.weights.h5")]) == 0
    assert capsys.readouterr().err == ""
    raw = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(raw.run(None, {"x": _x()})[0], model.predict(_x(), verbose=0), rtol=1e-6, atol=1e-6)


def test_run_a_keras_file_and_multi_input_files(tmp_path, capsys):
    source = _write(tmp_path, "two.py", TWO_INPUTS)
    model = load_model(source)
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(1)
    features = rng.standard_normal((3, 4)).astype("float32")
    tokens = rng.integers(0, 10, (3, 5))
    want = model.predict([features, tokens], verbose=0)
    np.savez(tmp_path / "both.npz", features=features, tokens=tokens)
    (tmp_path / "tokens.json").write_text(json.dumps(tokens.tolist()))
    np.save(tmp_path / "features.npy", features)
    inputs = {
        "npz": ["--input", str(tmp_path / "both.npz")],
        "npy+json": [
            "--input",
            f"features={tmp_path / 'features.npy'}",
            "--input",
            f"tokens={tmp_path / 'tokens.json'}",
        ],
    }
    for label, argv in inputs.items():
        out = tmp_path / label
        assert main(["run", str(tmp_path / "two.keras"), *argv, "--output-dir", str(out)]) == 0, label
        for k, name in enumerate(["first", "second"]):
            np.testing.assert_allclose(np.load(out / f"{name}.npy"), want[k], rtol=1e-5, atol=1e-6)
    (tmp_path / "both.json").write_text(json.dumps({"features": features.tolist(), "tokens": tokens.tolist()}))
    assert main(["run", str(tmp_path / "two.keras"), "--input", str(tmp_path / "both.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    np.testing.assert_allclose(np.array(report["outputs"][0]["data"]), want[0], rtol=1e-5, atol=1e-6)


def test_benchmark_reports_percentiles_throughput_and_the_provider(tiny_onnx, capsys):
    assert main(["run", str(tiny_onnx), "--benchmark", "20", "--batch-size", "4"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("benchmark tiny.onnx on CPUExecutionProvider: 20 runs of batch 4: p50 ")
    assert " p90 " in line and " p99 " in line and line.endswith(" samples/s")
    assert main(["run", str(tiny_onnx), "--benchmark", "10", "--json"]) == 0
    timing = json.loads(capsys.readouterr().out)
    assert (timing["runs"], timing["batch_size"], timing["provider"]) == (10, 1, "CPUExecutionProvider")
    assert 0 < timing["min_ms"] <= timing["p50_ms"] <= timing["p90_ms"] <= timing["p99_ms"]
    assert timing["throughput"] == pytest.approx(1e3 / timing["mean_ms"])


def test_run_through_a_subprocess(tiny_onnx, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "irtool", "run", str(tiny_onnx), "--random", "--batch-size", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("out: (3, 3) float32 [")
    assert done.stderr == ""


# -- inspect -------------------------------------------------------------------------------------------
def test_inspect_prints_what_the_file_declares(tmp_path, capsys):
    out = tmp_path / "mlp.onnx"
    assert main(["export", str(EXAMPLES / "mnist_mlp.py"), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    proto = onnx.load(out)
    params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    assert params == load_model(EXAMPLES / "mnist_mlp.py").count_params()
    assert text.splitlines() == [
        "model: mlp.onnx (graph 'mnist_model')",
        "producer: irtool 0.1.0; IR version 10; opset ai.onnx 21",
        "inputs:",
        "  img: float32 [batch, 784]",
        "outputs:",
        "  dense_2: float32 [batch, 10]",
        "metadata:",
        "  irtool.version: 0.1.0",
        "  irtool.model_name: mnist_model",
        "ops (5 nodes): Gemm 3, Relu 2",
        f"parameters: {params:,} in 6 initializers",
    ]
    assert main(["inspect", str(EXAMPLES / "mnist_mlp.py"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["op_counts"] == {"Gemm": 3, "Relu": 2}
    assert report["inputs"] == [{"name": "img", "dtype": "float32", "shape": ["batch", 784]}]
    assert (report["parameters"], report["ir_version"], report["opsets"]) == (params, 10, {"ai.onnx": 21})


# -- bad input: one line, exit 2 (usage) or 1 (model), no traceback, nothing written ------------------
BAD = {
    "missing model": (1, lambda d: [str(d / "none.onnx"), "--random"], "no such file: "),
    "not onnx": (1, lambda d: [str(d / "text.onnx"), "--random"], "text.onnx is not a readable ONNX model"),
    "truncated onnx": (1, lambda d: [str(d / "cut.onnx"), "--random"], "cut.onnx is not a readable ONNX model"),
    "unknown input name": (1, lambda d: [str(d / "tiny.onnx"), "--input", f"img={d / 'x.npy'}"], "unknown input name 'img'"),
    "wrong rank": (1, lambda d: [str(d / "tiny.onnx"), "--input", str(d / "rank1.npy")], "(rank 1, the model wants rank 2)"),
    "wrong dtype": (1, lambda d: [str(d / "tiny.onnx"), "--input", str(d / "f64.npy")], "casting float64 to float32"),
    "wrong shape npy": (1, lambda d: [str(d / "tiny.onnx"), "--input", str(d / "wide.npy")], "received (2, 5) float32"),
    "provider not installed": (1, lambda d: [str(d / "tiny.onnx"), "--random", "--providers", "tensorrt,cpu"], "TensorrtExecutionProvider is not in this ONNX Runtime"),
    "unknown provider": (2, lambda d: [str(d / "tiny.onnx"), "--random", "--providers", "cdua"], "unknown execution provider 'cdua'"),
    "missing input file": (2, lambda d: [str(d / "tiny.onnx"), "--input", str(d / "nope.npy")], "no such input file: "),
    "input file format": (2, lambda d: [str(d / "tiny.onnx"), "--input", str(d / "text.onnx")], "expected a .npy, .npz or .json file"),
    "corrupt npy": (2, lambda d: [str(d / "tiny.onnx"), "--input", str(d / "bad.npy")], "cannot read the input file"),
    "json nested too deeply": (2, lambda d: [str(d / "tiny.onnx"), "--input", str(d / "deep.json")], "deep.json: its JSON is nested too deeply"),
    "no inputs": (2, lambda d: [str(d / "tiny.onnx")], "no inputs: pass --input NAME=FILE"),
    "input and random": (2, lambda d: [str(d / "tiny.onnx"), "--random", "--input", str(d / "x.npy")], "exclude each other"),
    "batch size with input": (2, lambda d: [str(d / "tiny.onnx"), "--batch-size", "2", "--input", str(d / "x.npy")], "--batch-size applies to --random"),
    "zero benchmark": (2, lambda d: [str(d / "tiny.onnx"), "--benchmark", "0"], "expected a positive integer"),
    "weights for onnx": (1, lambda d: [str(d / "tiny.onnx"), "--random", "--weights", str(d / "w.weights.h5")], "--weights loads weights into a model.py"),
    "weights not found": (1, lambda d: [str(d / "tiny.py"), "--random", "--weights", str(d / "none.weights.h5")], "no such weights file"),
    "weights of another model": (1, lambda d: [str(d / "tiny.py"), "--random", "--weights", str(DATA / "mnist_mlp.weights.h5")], "cannot load the weights"),
    "weights not h5": (1, lambda d: [str(d / "tiny.py"), "--random", "--weights", str(d / "x.npy")], "--weights expects a .weights.h5 file or a .keras archive"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD), ids=lambda c: c.replace(" ", "-"))
def test_bad_input_is_one_line_and_writes_nothing(case, tiny_onnx, tiny, tmp_path, capsys):
    if case == "provider not installed" and "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("TensorRT is installed here")
    (tmp_path / "text.onnx").write_text("not a model")
    (tmp_path / "cut.onnx").write_bytes(tiny_onnx.read_bytes()[:60])
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # past Python's recursion limit
    (tmp_path / "w.weights.h5").write_bytes(b"")
    np.save(tmp_path / "x.npy", _x())
    np.save(tmp_path / "rank1.npy", np.zeros(4, "float32"))
    np.save(tmp_path / "f64.npy", np.zeros((2, 4)))
    np.save(tmp_path / "wide.npy", np.zeros((2, 5), "float32"))
    before = files_under(tmp_path)
    code, argv, message = BAD[case]
    assert main(["run", *argv(tmp_path), "--output-dir", str(tmp_path / "out")]) == code
    captured = capsys.readouterr()
    assert captured.err.startswith("irtool: error: ") and captured.err.count("\n") == 1
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert captured.out == ""
    assert files_under(tmp_path) == before


def test_debug_shows_the_traceback(tiny_onnx, tmp_path, capsys):
    np.save(tmp_path / "wide.npy", np.zeros((2, 5), "float32"))
    assert main(["run", str(tiny_onnx), "--input", str(tmp_path / "wide.npy")]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["run", str(tiny_onnx), "--input", str(tmp_path / "wide.npy"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider is not available on this machine")
def test_run_on_cuda(tiny_onnx, capsys):
    assert main(["run", str(tiny_onnx), "--random", "--providers", "cuda,cpu"]) == 0
    assert capsys.readouterr().out.startswith("ran tiny.onnx on CUDAExecutionProvider")


def test_output_names_become_safe_file_names(tmp_path, capsys):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["scores/relu"]), helper.make_node("Neg", ["a"], ["../neg"])],
        "two_outputs",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 2])],
        [
            helper.make_tensor_value_info("scores/relu", TensorProto.FLOAT, ["n", 2]),
            helper.make_tensor_value_info("../neg", TensorProto.FLOAT, ["n", 2]),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    (tmp_path / "a.json").write_text("[[-1.5, 2], [3, -4]]")
    out = tmp_path / "out"
    argv = ["run", str(tmp_path / "m.onnx"), "--input", f"a={tmp_path / 'a.json'}", "--threads", "1"]
    assert main([*argv, "--output-dir", str(out)]) == 0
    assert files_under(out) == ["_neg.npy", "scores_relu.npy"]
    assert np.load(out / "scores_relu.npy").tolist() == [[0.0, 2.0], [3.0, 0.0]]
    assert np.load(out / "_neg.npy").tolist() == [[1.5, -2.0], [-3.0, 4.0]]
    assert capsys.readouterr().out.splitlines()[1] == f"scores/relu: (2, 2) float32 -> {out / 'scores_relu.npy'}"


def test_a_string_model_runs_on_text_from_json_and_bytes_npy(tmp_path, capsys):
    onnx.save(one_node_onnx("Identity", TensorProto.STRING), tmp_path / "echo.onnx")
    (tmp_path / "s.json").write_text('["a", "bé"]')
    np.save(tmp_path / "s.npy", np.array([b"a", "bé".encode()]))  # bytes_: ORT alone would read the raw buffer
    for name in ("s.json", "s.npy"):
        out = tmp_path / name.replace(".", "_")
        assert (
            main(["run", str(tmp_path / "echo.onnx"), "--input", str(tmp_path / name), "--output-dir", str(out)]) == 0
        )
        assert np.load(out / "y.npy").tolist() == ["a", "bé"], name  # a str_ array: no pickle
    capsys.readouterr()


def test_warnings_are_one_line(tmp_path, capsys, monkeypatch):
    """A library warning during a command (here the session's) prints as the CLI's own one line."""
    import irtool.cli.run as run_module

    def warn_and_open(*args, **kwargs):
        warnings.warn("something to know\nover two lines", UserWarning, stacklevel=2)
        return Session(*args, **kwargs)

    onnx.save(one_node_onnx("Relu", TensorProto.FLOAT), tmp_path / "relu.onnx")
    monkeypatch.setattr(run_module, "Session", warn_and_open)
    assert main(["run", str(tmp_path / "relu.onnx"), "--random"]) == 0
    assert capsys.readouterr().err == "irtool: warning: something to know over two lines\n"
