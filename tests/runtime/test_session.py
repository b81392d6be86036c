"""``irtool.runtime.Session``: checked feeds, verified providers, warm-up, batching and IO binding.

References we did not write: a raw ``onnxruntime.InferenceSession`` on the same bytes, and the
model's NumPy executor. CUDA tests skip where ``CUDAExecutionProvider`` is not available.
"""

from __future__ import annotations

import importlib.metadata
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

import irtool as keras
from irtool import layers
from irtool.runtime import InputError, ProviderError, Session, providers
from irtool.runtime.feeds import format_shape
from irtool.runtime.inspection import describe

from ..harness import one_node_onnx

HAS_CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider is not available on this machine")


def _mlp():
    inputs = keras.Input((6,), name="x")
    hidden = layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, layers.Dense(3, name="y")(hidden), name="mlp")


def _two_inputs():
    """A float input and an int64 token input, two outputs."""
    features = keras.Input((4,), name="features")
    tokens = keras.Input((5,), dtype="int64", name="tokens")
    embedded = layers.GlobalAveragePooling1D()(layers.Embedding(10, 4)(tokens))
    joined = layers.Concatenate()([features, embedded])
    first = layers.Dense(2, name="first")(joined)
    second = layers.Dense(1, name="second")(joined)
    return keras.Model([features, tokens], [first, second], name="two")


@pytest.fixture(scope="module")
def mlp():
    keras.utils.set_random_seed(0)
    model = _mlp()
    return model, model.to_onnx()


@pytest.fixture(scope="module")
def session(mlp):
    return Session(mlp[1])


def _x(rows=4, seed=1):
    return np.random.default_rng(seed).standard_normal((rows, 6)).astype("float32")


def _raw(proto):
    return onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


# -- what a session declares -------------------------------------------------------------------------
def test_inputs_outputs_and_metadata(session):
    assert [(i.name, i.dtype, i.shape) for i in session.inputs] == [("x", np.dtype("float32"), ("batch", 6))]
    assert [(o.name, o.dtype, o.shape) for o in session.outputs] == [("y", np.dtype("float32"), ("batch", 3))]
    meta = session.metadata
    assert (meta.producer, meta.opset, meta.ir_version, meta.graph_name) == ("irtool", 21, 10, "mlp")
    assert meta.props["irtool.model_name"] == "mlp"
    assert session.providers == ["CPUExecutionProvider"]
    assert "x: float32[batch, 6]" in repr(session)


def test_sources_path_bytes_and_proto_agree(mlp, tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp[1], path)
    x = _x()
    results = [Session(src).run(x)["y"] for src in (path, str(path), mlp[1].SerializeToString(), mlp[1])]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


# -- running -----------------------------------------------------------------------------------------
def test_run_matches_raw_onnxruntime_and_numpy(mlp, session):
    model, proto = mlp
    x = _x()
    got = session.run(x)
    assert list(got) == ["y"]
    np.testing.assert_array_equal(got["y"], _raw(proto).run(None, {"x": x})[0])
    np.testing.assert_allclose(got["y"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_run_takes_a_dict_a_list_or_one_array(session):
    x = _x()
    want = session.run(x)["y"]
    for data in ({"x": x}, [x], (x,), x.tolist()):
        np.testing.assert_array_equal(session.run(data)["y"], want)
    np.testing.assert_array_equal(session.run_list(x)[0], want)


def test_multi_input_by_name_and_position_and_output_subsets():
    keras.utils.set_random_seed(3)
    model = _two_inputs()
    session = Session.from_model(model)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((3, 4)).astype("float32")
    tokens = rng.integers(0, 10, (3, 5))
    by_name = session.run({"tokens": tokens, "features": features})
    by_position = session.run_list([features, tokens])
    want = model.predict([features, tokens], verbose=0)
    for k, name in enumerate(["first", "second"]):
        np.testing.assert_array_equal(by_name[name], by_position[k])
        np.testing.assert_allclose(by_name[name], want[k], rtol=1e-5, atol=1e-6)
    only = session.run([features, tokens], outputs="second")
    assert list(only) == ["second"]
    np.testing.assert_array_equal(only["second"], by_name["second"])
    with pytest.raises(InputError, match=r"unknown output name 'third': the model's outputs are 'first', 'second'"):
        session.run([features, tokens], outputs=["third"])
    with pytest.raises(InputError, match=r"the model has 2 inputs \('features', 'tokens'\); pass a dict"):
        session.run(features)
    with pytest.raises(InputError, match=r"expected 2 input arrays \('features', 'tokens'\), received 1"):
        session.run([features])


def test_errors_say_what_was_expected_and_received(session):
    with pytest.raises(InputError) as info:
        session.run(np.zeros((2, 5)))
    assert str(info.value).startswith("input 'x': expected shape (None, 6) float32, received (2, 5) float64")
    with pytest.raises(InputError, match=r"received \(2, 5\) float32 \(axis 1 has size 5, the model wants 6\)"):
        session.run(np.zeros((2, 5), "float32"))
    with pytest.raises(InputError, match=r"received \(6,\) float32 \(rank 1, the model wants rank 2\)"):
        session.run(np.zeros(6, "float32"))
    with pytest.raises(InputError, match=r"casting float64 to float32 could change values; pass x.astype"):
        session.run(np.zeros((2, 6)))
    with pytest.raises(InputError, match=r"unknown input name 'img'; missing 'x': the model's inputs are 'x'"):
        session.run({"img": _x()})
    with pytest.raises(InputError, match=r"unknown input name 'extra': the model's inputs are 'x'"):
        session.run({"x": _x(), "extra": _x()})


def test_only_lossless_casts_are_made():
    keras.utils.set_random_seed(3)
    session = Session.from_model(_two_inputs())
    features = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    tokens = np.arange(10).reshape(2, 5) % 10
    want = session.run([features, tokens])
    # int32 -> int64 and float16 -> float32 are safe; the float16 values are then exactly representable
    half = features.astype("float16")
    cast = session.run([half, tokens.astype("int32")])
    np.testing.assert_array_equal(cast["first"], session.run([half.astype("float32"), tokens])["first"])
    # Python lists take the declared dtype when nothing is lost
    np.testing.assert_array_equal(session.run([features.tolist(), tokens.tolist()])["first"], want["first"])
    with pytest.raises(InputError, match=r"input 'tokens': .* \(casting float32 to int64 could change values"):
        session.run([features, tokens.astype("float32")])
    with pytest.raises(InputError, match=r"input 'tokens': .* \(values of kind float64 do not fit int64\)"):
        session.run([features, (tokens + 0.5).tolist()])
    with pytest.raises(InputError, match=r"input 'tokens': .* \(casting uint64 to int64 could change values"):
        session.run([features, tokens.astype("uint64")])


def test_a_list_of_ints_beyond_the_dtype_range_is_refused():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])],
        "ident",
        [helper.make_tensor_value_info("a", TensorProto.INT8, ["n"])],
        [helper.make_tensor_value_info("b", TensorProto.INT8, ["n"])],
    )
    session = Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), warmup=False)
    assert session.run([1, -2, 127])["b"].tolist() == [1, -2, 127]
    with pytest.raises(InputError, match="values outside int8's range"):
        session.run([1, 300])
    # an empty list has no values to lose: it is an empty int8 input, not NumPy's float64 default
    empty = session.run({"a": []})["b"]
    assert empty.shape == (0,) and empty.dtype == np.int8


def test_string_inputs_reach_the_model_as_text_in_any_form():
    """ONNX Runtime reads a bytes element as its repr ("b'abc'") and a bytes_ array as its raw
    buffer; the session decodes both as UTF-8 (as tritonclient and TensorFlow encode text)."""
    session = Session(one_node_onnx("Identity", TensorProto.STRING))
    text = ["héllo", "", "b"]
    for given in [
        text,
        np.array(text),
        np.array([t.encode() for t in text]),  # bytes_, fixed width: ORT would run the buffer together
        np.array([t.encode() for t in text], dtype=object),  # what Triton's BYTES carry
        np.array(text, dtype=object),
    ]:
        out = session.run(given)["y"]
        assert out.dtype == object and out.tolist() == text, given
    with pytest.raises(InputError, match=r"input 'x': expected shape \(None,\) string, .*not UTF-8 at index \[1\]"):
        session.run(np.array([b"ok", b"\xff"], dtype=object))
    with pytest.raises(InputError, match=r"expected shape \(None,\) string, .*dtype float64"):
        session.run(np.zeros(2))


def test_a_model_that_random_inputs_fail_still_opens_with_one_warning():
    """Gather on a 3-row table: random int64 indices are out of range, real ones are fine."""
    table = helper.make_tensor("t", TensorProto.FLOAT, [3, 2], np.arange(6, dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("Gather", ["t", "ids"], ["b"])],
        "gather",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 2])],
        [table],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.warns(
        UserWarning, match=r"warm-up skipped: the model fails on random inputs \(.*out of data bounds"
    ) as caught:
        session = Session(proto)
    assert len(caught) == 1 and session.warmed_up == []
    assert session.run(np.array([2, 0]))["b"].tolist() == [[4, 5], [0, 1]]


def test_inspection_counts_the_ops_inside_subgraphs():
    """``describe`` walks If/Loop/Scan bodies: the op histogram has their nodes, the parameters
    their initializers."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "w"], ["s2"]), helper.make_node("Identity", ["s2"], ["y"])],
        "body",
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("s2", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])],
    )
    scan = helper.make_node("Scan", ["init", "xs"], ["final", "ys"], body=body, num_scan_inputs=1)
    graph = helper.make_graph(
        [scan, helper.make_node("Relu", ["final"], ["out"])],
        "scanned",
        [
            helper.make_tensor_value_info("init", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("xs", TensorProto.FLOAT, [3, 2]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])],
    )
    report = describe(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert report.op_counts == {"Scan": 1, "Relu": 1, "Add": 1, "Identity": 1}
    assert report.parameters == 2 and report.initializers == 1


def test_predict_splits_and_concatenates(session):
    x = _x(rows=11)
    whole = session.run(x)["y"]
    for batch_size in (1, 4, 11, 50):
        np.testing.assert_array_equal(session.predict(x, batch_size=batch_size)["y"], whole)
    with pytest.raises(ValueError, match="batch_size: expected a positive integer, received 0"):
        session.predict(x, batch_size=0)


def test_predict_refuses_inputs_with_different_sample_counts():
    keras.utils.set_random_seed(3)
    session = Session.from_model(_two_inputs())
    with pytest.raises(InputError, match="inputs disagree on the number of samples \\(axis 0\\): 'features' has 3"):
        session.predict([np.zeros((3, 4), "float32"), np.zeros((2, 5), "int64")], batch_size=2)


def test_format_shape():
    assert format_shape(("batch", 784)) == "(None, 784)"
    assert format_shape((5,)) == "(5,)"
    assert format_shape(None) == "(unknown rank)"


# -- warm-up -----------------------------------------------------------------------------------------
def test_warmup_runs_each_declared_shape_once(mlp):
    assert Session(mlp[1]).warmed_up == ["x (1, 6)"]
    assert Session(mlp[1], warmup=(1, 8, 8)).warmed_up == ["x (1, 6)", "x (8, 6)"]
    assert Session(mlp[1], warmup=False).warmed_up == []
    with pytest.raises(ValueError, match="warmup: expected positive batch sizes"):
        Session(mlp[1], warmup=[0])


def test_warmup_calls_onnxruntime_once_per_shape(mlp, monkeypatch):
    calls = []
    original = Session._warm_up

    def counting(self, sizes):
        real = self._run
        self._run = lambda names, feeds, options: (
            calls.append({k: v.shape for k, v in feeds.items()}) or real(names, feeds, options)
        )
        original(self, sizes)
        self._run = real

    monkeypatch.setattr(Session, "_warm_up", counting)
    Session(mlp[1], warmup=(2, 2, 3))
    assert calls == [{"x": (2, 6)}, {"x": (3, 6)}]


# -- providers ---------------------------------------------------------------------------------------
def test_aliases_and_options_resolve():
    assert providers.resolve("cpu") == [("CPUExecutionProvider", {})]
    cuda = providers.resolve(["cuda", "cpu"], {"cuda": {"device_id": 1, "memory_limit": 2**30, "tf32": True}})
    assert cuda == [
        (
            "CUDAExecutionProvider",
            {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "1", "device_id": "1", "gpu_mem_limit": "1073741824"},
        ),
        ("CPUExecutionProvider", {}),
    ]
    pair = providers.resolve(("CUDAExecutionProvider", {"cudnn_conv_algo_search": "exhaustive"}))
    assert pair[0][1]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert providers.cuda_options(device_id=2, memory_limit=100, cuda_graph=True) == {
        "device_id": "2",
        "cudnn_conv_algo_search": "HEURISTIC",
        "use_tf32": "0",
        "gpu_mem_limit": "100",
        "enable_cuda_graph": "1",
    }
    # "cuda" alone: heuristic convolution search, TF32 off (parity with the CPU); cuda_options()
    # with no arguments names the first GPU
    assert providers.resolve("cuda") == [
        ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"})
    ]
    assert providers.cuda_options() == {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
    with pytest.raises(ProviderError, match="unknown execution provider 'cdua': expected one of"):
        providers.resolve("cdua")
    with pytest.raises(ProviderError, match="listed twice"):
        providers.resolve(["cpu", "CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="provider_options name CUDAExecutionProvider, which is not among"):
        providers.resolve("cpu", {"cuda": {}})
    with pytest.raises(ProviderError, match="expected 'HEURISTIC', 'EXHAUSTIVE' or 'DEFAULT', received 'fast'"):
        providers.resolve("cuda", {"cuda": {"conv_algo_search": "fast"}})


def test_provider_options_reach_onnxruntime(mlp, monkeypatch):
    """ONNX Runtime's CPU provider reports no options back (``get_provider_options()`` is ``{}``),
    so what reaches ``InferenceSession`` is recorded on the way in."""
    seen = []
    real = onnxruntime.InferenceSession

    def recording(source, options, providers, provider_options):
        seen.append((providers, provider_options))
        return real(source, options, providers=providers, provider_options=provider_options)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    session = Session(mlp[1], providers=[("cpu", {"use_arena": 0})], warmup=False)
    assert seen == [(["CPUExecutionProvider"], [{"use_arena": "0"}])]
    assert session.provider_options == {"CPUExecutionProvider": {}}
    seen.clear()
    Session(mlp[1], providers=["cuda", "cpu"], strict=False, warmup=False)
    names = [name for name in seen[0][0]]
    if HAS_CUDA:
        assert seen[0][1][0] == {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
    else:  # left out rather than handed to ONNX Runtime, which would warn a second time
        assert names == ["CPUExecutionProvider"]


def test_session_options_threads_and_optimization(mlp):
    session = Session(mlp[1], threads=1, optimization="disable")
    options = session.ort_session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    with pytest.raises(ValueError, match="optimization: expected one of disable, basic, extended, all, received 'max'"):
        Session(mlp[1], optimization="max")


@pytest.mark.skipif(HAS_CUDA, reason="checks the error of a machine without CUDA")
def test_a_missing_provider_is_an_error_or_exactly_one_warning(mlp):
    with pytest.raises(ProviderError) as info:
        Session(mlp[1], providers=["cuda", "cpu"])
    message = str(info.value)
    assert message.startswith("asked for CUDAExecutionProvider, CPUExecutionProvider, but no session was made")
    assert "Fix: pip uninstall -y onnxruntime && pip install onnxruntime-gpu" in message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = Session(mlp[1], providers=["cuda", "cpu"], strict=False)
    assert [w.category for w in caught] == [RuntimeWarning]
    assert str(caught[0].message).startswith(
        "asked for CUDAExecutionProvider, CPUExecutionProvider, but the session runs on CPUExecutionProvider"
    )
    assert session.providers == ["CPUExecutionProvider"]
    np.testing.assert_array_equal(session.run(_x())["y"], Session(mlp[1]).run(_x())["y"])


def test_cuda_preloads_the_pip_cuda_libraries(mlp, monkeypatch):
    calls = []
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda: calls.append(1), raising=False)
    Session(mlp[1], providers=["cuda", "cpu"], strict=False, warmup=False)
    assert calls == [1]
    Session(mlp[1], warmup=False)
    assert calls == [1]


def test_both_onnxruntime_distributions_installed_is_detected(monkeypatch):
    installed = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}

    def version(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert providers.installed_runtimes() == ["onnxruntime", "onnxruntime-gpu"]
    message = providers.conflict_message(providers.installed_runtimes())
    assert message == (
        "onnxruntime and onnxruntime-gpu are both installed; they share the 'onnxruntime' module, so neither "
        "works reliably. Fix: pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
    )
    problem = providers.check_active([("CUDAExecutionProvider", {})], ["CPUExecutionProvider"])
    assert "onnxruntime and onnxruntime-gpu are both installed" in problem
    assert problem.endswith("Fix: pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")
    del installed["onnxruntime-gpu"]
    assert providers.conflict_message(providers.installed_runtimes()) is None


def test_from_model_needs_a_to_onnx_method():
    with pytest.raises(TypeError, match="Session.from_model expects a model with a to_onnx\\(\\) method"):
        Session.from_model(object())


# -- IO binding ---------------------------------------------------------------------------------------
def test_binding_on_cpu_matches_run_and_reuses_its_buffers(session):
    x = _x(rows=3)
    keep = x.copy()
    binding = session.bind(x)
    assert binding.preallocated == ["y"]  # ('batch', 3) follows from the input's batch
    binding.run()
    np.testing.assert_array_equal(binding.numpy()["y"], session.run(x)["y"])
    (value,) = binding.outputs()
    assert isinstance(value, onnxruntime.OrtValue) and value.shape() == [3, 3] and value.device_name() == "cpu"
    pointer = value.data_ptr()
    binding.update(2 * x)
    binding.run()
    np.testing.assert_array_equal(binding.numpy()["y"], session.run(2 * x)["y"])
    assert binding.outputs()[0].data_ptr() == pointer  # same output buffer: no allocation per run
    np.testing.assert_array_equal(x, keep)  # the caller's array was copied, never written
    binding.update(_x(rows=5))
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.numpy()["y"], session.run(_x(rows=5))["y"])


def test_binding_lets_onnxruntime_allocate_outputs_of_unknown_shape():
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["a"], ["b"])],
            "relu",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 2])],
            [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    session = Session(model)
    binding = session.bind(np.array([[-1.0, 2.0]], "float32"))
    assert binding.preallocated == []
    binding.run()
    assert binding.numpy()["b"].tolist() == [[0.0, 2.0]]


def test_binding_refuses_cuda_on_a_cpu_session(session):
    with pytest.raises(ValueError, match="device='cuda' needs a session on CUDAExecutionProvider"):
        session.bind(_x(), device="cuda")
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda', received 'gpu'"):
        session.bind(_x(), device="gpu")


# -- CUDA (skipped without a GPU) ---------------------------------------------------------------------
@needs_cuda
def test_cuda_parity_and_device_binding(mlp):
    model, proto = mlp
    session = Session(proto, providers=["cuda"])
    assert session.providers[0] == "CUDAExecutionProvider"
    assert session.provider_options["CUDAExecutionProvider"]["use_tf32"] == "0"
    x = _x(rows=32)
    np.testing.assert_allclose(session.run(x)["y"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    binding = session.bind(x, device="cuda")
    binding.run()
    assert binding.outputs()[0].device_name() == "cuda"
    np.testing.assert_allclose(binding.numpy()["y"], session.run(x)["y"], rtol=1e-6, atol=1e-6)


def test_a_file_with_external_data_runs_and_inspects_without_reading_it(mlp, tmp_path):
    model, proto = mlp
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    path = tmp_path / "mlp.onnx"
    onnx.save_model(copy, path, save_as_external_data=True, location="mlp.onnx.data", size_threshold=0)
    assert (tmp_path / "mlp.onnx.data").stat().st_size > 0
    np.testing.assert_array_equal(Session(path).run(_x())["y"], Session(proto).run(_x())["y"])
    report = describe(onnx.load(path, load_external_data=False))
    assert report.parameters == model.count_params() == 6 * 8 + 8 + 8 * 3 + 3
    assert report.op_counts == {"Gemm": 2, "Relu": 1}
