"""ONNX ``RNN``/``GRU``/``LSTM`` imported onto irtool's fused recurrent primitive.

References: PyTorch (``nn.LSTM``/``nn.GRU``/``nn.RNN`` outputs, and one SGD step), ONNX Runtime on
the original file (``onnx.helper`` graphs with attributes torch never writes: reverse direction,
``layout=1``, initial states as inputs, ``sequence_lens``, ``linear_before_reset=0``), and
``onnx.checker`` full_check on every re-export.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irtool
from irtool import importer, layers

from ..harness import run_onnx

torch = pytest.importorskip("torch")

MODULES = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}


def _torch_export(module, x, **kwargs) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        module, (torch.from_numpy(x),), buffer, input_names=["x"], dynamo=False, opset_version=17, **kwargs
    )
    return onnx.load_from_string(buffer.getvalue())


def _torch_outputs(module, x) -> list:
    y, states = module(torch.from_numpy(x))
    return [t.detach().numpy() for t in [y, *(states if isinstance(states, tuple) else [states])]]


def _check_reexport(model, proto, feeds, atol=1e-6):
    again = model.to_onnx()
    onnx.checker.check_model(again, full_check=True)
    for got, want in zip(run_onnx(again, feeds), run_onnx(proto, feeds)):
        np.testing.assert_allclose(got, want, atol=atol)
    return again


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("kind", list(MODULES))
def test_torch_two_layer_rnn_predicts_like_torch_and_reexports(kind, bidirectional, batch_first):
    torch.manual_seed(0)
    module = MODULES[kind](4, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    proto = _torch_export(module, x)
    model = importer.load(proto)
    assert sum(type(layer).__name__ == kind for layer in model.layers) == 2
    # Keras keeps one bias where torch has b_ih and b_hh, bar the GRU's reset_after bias (2, 3H).
    summed = () if kind == "GRU" else ("bias_hh",)
    assert model.count_params() == sum(p.numel() for n, p in module.named_parameters() if not n.startswith(summed))
    for got, want in zip(model.predict(x, verbose=0), _torch_outputs(module, x)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    again = _check_reexport(model, proto, {"x": x})
    # The weights are repacked back into the same native nodes, not Scans or loops.
    assert [n.op_type for n in again.graph.node if n.op_type in MODULES] == [kind, kind]


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_torch_rnn_fine_tunes_like_torch_sgd(kind):
    torch.manual_seed(1)
    module = MODULES[kind](3, 4, bidirectional=True, batch_first=True).eval()
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype("float32")
    proto = _torch_export(module, x, output_names=["y"])
    proto.graph.output.pop()  # train on Y only: drop the final states
    if kind == "LSTM":
        proto.graph.output.pop()
    target = np.random.default_rng(2).standard_normal((2, 5, 8)).astype("float32")
    model = importer.load(proto)
    model.compile(optimizer=irtool.optimizers.SGD(learning_rate=0.3), loss="mse")
    model.fit(x, target, batch_size=2, epochs=1, verbose=0, shuffle=False)

    if kind == "LSTM":
        # The import trains one bias (b_ih + b_hh); torch with b_hh frozen is that parametrization.
        for name, parameter in module.named_parameters():
            parameter.requires_grad_(not name.startswith("bias_hh"))
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.3)
    loss = ((module(torch.from_numpy(x))[0] - torch.from_numpy(target)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    np.testing.assert_allclose(model.predict(x, verbose=0), _torch_outputs(module, x)[0], atol=1e-5)
    np.testing.assert_allclose(run_onnx(model.to_onnx(), {"x": x})[0], _torch_outputs(module, x)[0], atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.LSTM(5, return_sequences=True),
        lambda: layers.GRU(5, reset_after=False, go_backwards=True),
        lambda: layers.Bidirectional(layers.GRU(4, return_sequences=True)),
        lambda: layers.SimpleRNN(3, activation="relu"),
    ],
    ids=["lstm", "gru_reset_before_backwards", "bidirectional_gru", "simple_rnn_relu"],
)
def test_irtool_rnn_round_trip(make):
    inputs = irtool.Input((6, 3), name="seq")
    original = irtool.Model(inputs, layers.Dense(2, name="head")(make()(inputs)))
    first = original.to_onnx()
    model = importer.load(first)
    x = np.random.default_rng(3).standard_normal((2, 6, 3)).astype("float32")
    want = original.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-5)
    second = _check_reexport(model, first, {"seq": x})
    assert [n.op_type for n in second.graph.node if n.op_type in MODULES] == [
        n.op_type for n in first.graph.node if n.op_type in MODULES
    ]
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, np.zeros_like(want), epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


# -- onnx.helper graphs: attributes torch does not write ---------------------------------------


def _rnn_graph(op, direction, layout, hidden, x_shape, *, with_states, with_lengths, rng, **attrs):
    dirs = 2 if direction == "bidirectional" else 1
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    features = x_shape[-1]
    batch = x_shape[1 - layout]
    inits = {
        "W": rng.standard_normal((dirs, gates * hidden, features)).astype("float32") * 0.5,
        "R": rng.standard_normal((dirs, gates * hidden, hidden)).astype("float32") * 0.5,
        "B": rng.standard_normal((dirs, 2 * gates * hidden)).astype("float32") * 0.5,
    }
    state_shape = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    names = ["x", "W", "R", "B", "", "", ""]
    if with_lengths:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [batch]))
        names[4] = "lens"
    if with_states:
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, state_shape))
        names[5] = "h0"
        if op == "LSTM":
            inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, state_shape))
            names[6] = "c0"
    while not names[-1]:
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    time = x_shape[layout]
    out_shapes = [[batch, time, dirs, hidden] if layout else [time, dirs, batch, hidden]] + [state_shape] * 2
    node = helper.make_node(op, names, outs, name="rnn", hidden_size=hidden, direction=direction, **attrs)
    if layout:
        node.attribute.append(helper.make_attribute("layout", 1))
    graph = helper.make_graph(
        [node],
        "g",
        inputs,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(outs, out_shapes)],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto, full_check=True)
    feeds = {"x": rng.standard_normal(x_shape).astype("float32")}
    if with_lengths:
        feeds["lens"] = np.array([3, 1, 2], np.int32)[:batch]
    if with_states:
        feeds["h0"] = rng.standard_normal(state_shape).astype("float32")
        if op == "LSTM":
            feeds["c0"] = rng.standard_normal(state_shape).astype("float32")
    return proto, feeds


CASES = [
    ("LSTM", "reverse", 0, {}),
    ("LSTM", "bidirectional", 1, {}),
    ("GRU", "forward", 0, {"linear_before_reset": 0}),
    ("GRU", "bidirectional", 1, {"linear_before_reset": 1}),
    ("RNN", "reverse", 1, {"activations": ["Relu"]}),
    ("LSTM", "forward", 0, {"activations": ["HardSigmoid", "Softsign", "Softsign"], "activation_alpha": [1 / 6],
                            "activation_beta": [0.5]}),
]  # fmt: skip


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "sequence_lens"])
@pytest.mark.parametrize("op,direction,layout,attrs", CASES, ids=[f"{c[0]}-{c[1]}-layout{c[2]}" for c in CASES])
def test_helper_rnn_matches_onnx_runtime(op, direction, layout, attrs, with_lengths):
    rng = np.random.default_rng(4)
    x_shape = (3, 4, 2) if layout else (4, 3, 2)  # batch 3, time 4, features 2
    proto, feeds = _rnn_graph(
        op, direction, layout, 3, x_shape, with_states=True, with_lengths=with_lengths, rng=rng, **attrs
    )
    model = importer.load(proto)
    want = _reference(proto, feeds, layout)
    # Called eagerly: with layout=0 the inputs' first axes are time and direction, not the batch.
    got = model([feeds[i.name] for i in proto.graph.input])
    assert len(got) == len(want) == len(proto.graph.output)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, atol=1e-5)
    again = model.to_onnx()
    onnx.checker.check_model(again, full_check=True)
    for g, w in zip(run_onnx(again, feeds), want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def _reference(proto, feeds, layout):
    """ONNX Runtime's outputs; for ``layout=1``, which its CPU kernels refuse, those of the same
    node with ``layout=0`` on transposed inputs, transposed back."""
    if not layout:
        return run_onnx(proto, feeds)
    time_major = onnx.ModelProto()
    time_major.CopyFrom(proto)
    node = time_major.graph.node[0]
    node.attribute.remove(next(a for a in node.attribute if a.name == "layout"))
    for value in [*time_major.graph.input, *time_major.graph.output]:
        value.type.tensor_type.ClearField("shape")
    swapped = {k: (v.transpose(1, 0, 2) if k != "lens" else v) for k, v in feeds.items()}
    y, *states = run_onnx(time_major, swapped)
    return [y.transpose(2, 0, 1, 3), *(s.transpose(1, 0, 2) for s in states)]


@pytest.mark.parametrize(
    "attrs,message",
    [
        ({"clip": 3.0}, "clip=3.0 .cell clipping. has no Keras equivalent"),
        ({"input_forget": 1}, "input_forget=1"),
        ({"activations": ["Sigmoid", "Tanh", "Relu"]}, "LSTM activations g=tanh and h=relu differ"),
        ({"activations": ["LeakyRelu", "Tanh", "Tanh"]}, r"activation LeakyRelu\(0.01, None\) has no Keras equivalent"),
    ],
)
def test_unmappable_lstm_attributes_are_refused_with_the_node_name(attrs, message):
    proto, _ = _rnn_graph(
        "LSTM", "forward", 0, 3, (4, 3, 2), with_states=False, with_lengths=False, rng=np.random.default_rng(5), **attrs
    )
    with pytest.raises(importer.OnnxImportError, match=r"ONNX node 'rnn' \(LSTM\): " + message):
        importer.load(proto)
