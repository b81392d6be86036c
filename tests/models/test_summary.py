"""``model.summary()``: Keras 3's table, byte for byte (research/keras.md §1.10, §1.6, §1.7).

The fixtures were checked against rich's own rendering of Keras' table (same columns, widths
and ``show_lines``), so wrapping and ``…`` cropping follow rich as Keras prints them.
"""

import re

import pytest

import irtool as keras
from irtool import layers, ops
from irtool.models.summary import _readable_size, format_summary

MNIST = """\
Model: "mnist_model"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│ input_layer (InputLayer)             │ (None, 784)                 │               0 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense (Dense)                        │ (None, 64)                  │          50,240 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_1 (Dense)                      │ (None, 64)                  │           4,160 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_2 (Dense)                      │ (None, 10)                  │             650 │
└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘
 Total params: 55,050 (215.04 KB)
 Trainable params: 55,050 (215.04 KB)
 Non-trainable params: 0 (0.00 B)
"""

ADD = """\
Model: "functional"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                  ┃ Output Shape              ┃         Param # ┃ Connected to               ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ a (InputLayer)                │ (None, 4)                 │               0 │ -                          │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ da (Dense)                    │ (None, 4)                 │              20 │ a[0][0]                    │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ b (InputLayer)                │ (None, 4)                 │               0 │ -                          │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ add (Add)                     │ (None, 4)                 │               0 │ da[0][0], b[0][0]          │
└───────────────────────────────┴───────────────────────────┴─────────────────┴────────────────────────────┘
 Total params: 20 (80.00 B)
 Trainable params: 20 (80.00 B)
 Non-trainable params: 0 (0.00 B)
"""

# Narrow table: words move to the next line, a word wider than its cell is cut with "…".
NARROW = """\
Model: "functional"
┏━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)    ┃ Output Shape ┃ Param # ┃ Connected to  ┃
┡━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ x (InputLayer)  │ (None, 4, 6) │       0 │ -             │
├─────────────────┼──────────────┼─────────┼───────────────┤
│ get_item        │ (None, 2, 6) │       0 │ x[0][0]       │
│ (GetItem)       │              │         │               │
├─────────────────┼──────────────┼─────────┼───────────────┤
│ multiply        │ (None, 2, 6) │       0 │ get_item[0][… │
│ (Multiply)      │              │         │               │
├─────────────────┼──────────────┼─────────┼───────────────┤
│ get_item_1      │ (None, 2, 6) │       0 │ x[0][0]       │
│ (GetItem)       │              │         │               │
├─────────────────┼──────────────┼─────────┼───────────────┤
│ add (Add)       │ (None, 2, 6) │       0 │ multiply[0][… │
│                 │              │         │ get_item_1[0… │
├─────────────────┼──────────────┼─────────┼───────────────┤
│ sum (Sum)       │ (None)       │       0 │ add[0][0]     │
└─────────────────┴──────────────┴─────────┴───────────────┘
 Total params: 0 (0.00 B)
 Trainable params: 0 (0.00 B)
 Non-trainable params: 0 (0.00 B)
"""


def mnist_model():
    inputs = keras.Input(shape=(784,))
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def add_model():
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    return keras.Model([a, b], layers.Add()([layers.Dense(4, name="da")(a), b]))


def summary_text(model, **kwargs) -> str:
    captured = []
    model.summary(print_fn=captured.append, **kwargs)
    assert len(captured) == 1  # Keras calls print_fn once with the whole text
    return captured[0]


def rows(text: str) -> list[list[str]]:
    """The cells of each single-line body row."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def header(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("┃"))
    return [c.strip() for c in line.split("┃")[1:-1]]


# -- verbatim fixtures ------------------------------------------------------------------------------


def test_mnist_fixture_verbatim(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # default width 88 = min(88, columns - 4)
    model = mnist_model()
    assert summary_text(model) == MNIST
    assert summary_text(model, line_length=88) == MNIST
    assert model.summary(print_fn=lambda s: None) is None


def test_summary_prints_to_stdout_without_print_fn(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    mnist_model().summary()
    assert capsys.readouterr().out == MNIST


def test_width_follows_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    text = summary_text(mnist_model())
    assert {len(line) for line in text.splitlines()[1:-3]} == {56}
    monkeypatch.setenv("COLUMNS", "10")
    with pytest.raises(ValueError, match="Insufficient console width to print summary."):
        mnist_model().summary(print_fn=print)


def test_non_sequential_fixture():
    model = add_model()
    text = summary_text(model, line_length=108)
    assert text == ADD
    assert rows(text) == [
        ["a (InputLayer)", "(None, 4)", "0", "-"],
        ["da (Dense)", "(None, 4)", "20", "a[0][0]"],
        ["b (InputLayer)", "(None, 4)", "0", "-"],
        ["add (Add)", "(None, 4)", "0", "da[0][0], b[0][0]"],
    ]


def test_narrow_table_wraps_and_crops_like_rich():
    x = keras.Input((4, 6), name="x")
    y = x[:, 1:3] * 2.0 + x[:, 0:2]
    model = keras.Model(x, ops.sum(y, axis=(1, 2)))
    assert summary_text(model, line_length=60) == NARROW


# -- rows ---------------------------------------------------------------------------------------------


def test_raw_ops_are_rows():
    x = keras.Input((4, 6), name="x")
    y = ops.matmul(x[:, 1:3] * 2.0, ops.ones((6, 2)))
    text = summary_text(keras.Model(x, y), line_length=88)
    assert header(text) == ["Layer (type)", "Output Shape", "Param #"]  # still a chain
    assert rows(text) == [
        ["x (InputLayer)", "(None, 4, 6)", "0"],
        ["get_item (GetItem)", "(None, 2, 6)", "0"],
        ["multiply (Multiply)", "(None, 2, 6)", "0"],
        ["matmul (Matmul)", "(None, 2, 2)", "0"],
    ]


def test_sequential_hides_its_input_layer():
    model = keras.Sequential([layers.Input((5,)), layers.Dense(3), layers.Dense(1)], name="seq")
    text = summary_text(model, line_length=88)
    assert text.splitlines()[0] == 'Model: "seq"'
    assert rows(text) == [["dense (Dense)", "(None, 3)", "18"], ["dense_1 (Dense)", "(None, 1)", "4"]]
    assert text.endswith(
        " Total params: 22 (88.00 B)\n Trainable params: 22 (88.00 B)\n Non-trainable params: 0 (0.00 B)\n"
    )


def test_unbuilt_layers():
    model = keras.Sequential([layers.Dense(3), layers.Dense(1)])
    assert rows(summary_text(model, line_length=88)) == [
        ["dense (Dense)", "?", "0 (unbuilt)"],
        ["dense_1 (Dense)", "?", "0 (unbuilt)"],
    ]


def test_shared_layer_connections_use_call_indices():
    shared = layers.Dense(2, name="shared")
    a = keras.Input((3,), name="a")
    b = keras.Input((3,), name="b")
    model = keras.Model([a, b], layers.Add(name="sum")([shared(a), shared(b)]))
    text = summary_text(model, line_length=108)
    assert header(text)[-1] == "Connected to"
    assert rows(text)[2:] == [
        ["shared (Dense)", "(None, 2)", "8", "a[0][0], b[0][0]"],
        ["sum (Add)", "(None, 2)", "0", "shared[0][0], shared[1][0]"],
    ]
    # Another model shows only its own calls, under their global index (Keras' raw node_index).
    c = keras.Input((2,), name="c")
    reused = keras.Model([b, c], layers.Add(name="sum2")([shared(b), c]))
    assert rows(summary_text(reused, line_length=108))[1:] == [
        ["shared (Dense)", "(None, 2)", "8", "b[0][0]"],
        ["c (InputLayer)", "(None, 2)", "0", "-"],
        ["sum2 (Add)", "(None, 2)", "0", "shared[2][0], c[0][0]"],
    ]


def test_unused_input_makes_the_table_non_sequential():
    a = keras.Input((3,), name="a")
    b = keras.Input((3,), name="b")
    model = keras.Model([a, b], layers.Dense(2, name="d")(a))
    text = summary_text(model, line_length=108)
    assert header(text) == ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    assert [r[0] for r in rows(text)] == ["a (InputLayer)", "b (InputLayer)", "d (Dense)"]


def nested_model():
    inner_in = keras.Input((3,), name="ii")
    h = layers.Dense(4, name="bn_like")(inner_in)
    inner = keras.Model(inner_in, [layers.Dense(2, name="d2")(h), layers.Dense(3, name="d3")(h)], name="sub")
    a = keras.Input((3,), name="a")
    b = keras.Input((3,), name="b")
    o1, o2 = inner(a)
    p1, p2 = inner(b)
    return keras.Model([a, b], layers.Concatenate(name="cat")([o1, o2, p1, p2]), name="outer")


def test_nested_model_is_one_row():
    model = nested_model()
    text = summary_text(model, line_length=200)
    assert rows(text) == [
        ["a (InputLayer)", "(None, 3)", "0", "-"],
        ["b (InputLayer)", "(None, 3)", "0", "-"],
        ["sub (Functional)", "[(None, 2), (None, 3)]", "41", "a[0][0], b[0][0]"],
        ["cat (Concatenate)", "(None, 10)", "0", "sub[0][0], sub[0][1], sub[1][0], sub[1][1]"],
    ]
    assert " Total params: 41 (164.00 B)" in text


def test_expand_nested():
    text = summary_text(nested_model(), line_length=200, expand_nested=True)
    assert rows(text) == [
        ["a (InputLayer)", "(None, 3)", "0", "-"],
        ["b (InputLayer)", "(None, 3)", "0", "-"],
        ["sub (Functional)", "[(None, 2), (None, 3)]", "41", "a[0][0], b[0][0]"],
        ["└ ii (InputLayer)", "(None, 3)", "0", "-"],
        ["└ bn_like (Dense)", "(None, 4)", "16", "-"],
        ["└ d2 (Dense)", "(None, 2)", "10", "-"],
        ["└ d3 (Dense)", "(None, 3)", "15", "-"],
        ["cat (Concatenate)", "(None, 10)", "0", "sub[0][0], sub[0][1], sub[1][0], sub[1][1]"],
    ]
    assert "│    └ bn_like (Dense) " in text
    # Two levels: the prefix grows by three spaces per level.
    x = keras.Input((3,), name="x")
    outer2 = keras.Sequential([layers.Input((3,)), nested_model().get_layer("sub")], name="wrap")
    outer3 = keras.Model(x, outer2(x), name="top")
    names = [r[0] for r in rows(summary_text(outer3, line_length=120, expand_nested=True))]
    assert names[:3] == ["x (InputLayer)", "wrap (Sequential)", "└ sub (Functional)"]
    assert "│       └ d2 (Dense)" in summary_text(outer3, line_length=120, expand_nested=True)


def test_show_trainable():
    a = keras.Input((3,), name="a")
    frozen = layers.Dense(2, name="frozen")
    frozen.trainable = False
    y = layers.Dense(2, name="live")(frozen(a))
    model = keras.Model(a, y + 1.0)
    text = summary_text(model, line_length=120, show_trainable=True)
    assert header(text) == ["Layer (type)", "Output Shape", "Param #", "Trainable"]
    # rich crops a header wider than its column, as in Keras' narrow tables.
    assert header(summary_text(model, line_length=100, show_trainable=True))[-1] == "Traina…"
    assert [(r[0], r[-1]) for r in rows(text)] == [
        ("a (InputLayer)", "-"),
        ("frozen (Dense)", "N"),
        ("live (Dense)", "Y"),
        ("add (Add)", "-"),
    ]
    assert text.endswith(
        " Total params: 14 (56.00 B)\n Trainable params: 6 (24.00 B)\n Non-trainable params: 8 (32.00 B)\n"
    )


def test_show_trainable_default_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    sequential = summary_text(mnist_model(), show_trainable=True).splitlines()
    assert {len(line) for line in sequential[1:-3]} == {100}  # 88 + 12
    assert header("\n".join(sequential))[-1] == "Traina…"
    keras.backend.clear_session()
    graph = summary_text(add_model(), show_trainable=True).splitlines()
    assert {len(line) for line in graph[1:-3]} == {120}  # 108 + 12
    assert rows("\n".join(graph))[1] == ["da (Dense)", "(None, 4)", "20", "a[0][0]", "Y"]


def test_layer_range():
    model = mnist_model()
    text = summary_text(model, line_length=88, layer_range=("dense", "dense_1"))
    assert [r[0] for r in rows(text)] == ["dense (Dense)", "dense_1 (Dense)"]
    text = summary_text(model, line_length=88, layer_range=("dense_1", "input"))  # reversed: still a range
    assert [r[0] for r in rows(text)] == ["input_layer (InputLayer)", "dense (Dense)", "dense_1 (Dense)"]
    text = summary_text(model, line_length=88, layer_range=["dense_2", "dense_2"])
    assert [r[0] for r in rows(text)] == ["dense_2 (Dense)"]
    assert " Total params: 55,050 (215.04 KB)" in text  # totals stay the model's
    with pytest.raises(ValueError, match=re.escape("Passed layer_names do not match the layer names in the model.")):
        model.summary(print_fn=print, layer_range=("nope", "dense"))
    with pytest.raises(ValueError, match="layer_range must be a list or tuple of length 2"):
        model.summary(print_fn=print, layer_range=("dense",))
    with pytest.raises(ValueError, match="layer_range should contain string type only"):
        model.summary(print_fn=print, layer_range=(0, 1))


def test_readable_sizes():
    assert _readable_size(0) == "0.00 B"
    assert _readable_size(1023) == "1023.00 B"
    assert _readable_size(1024) == "1.00 KB"
    assert _readable_size(55050 * 4) == "215.04 KB"
    assert _readable_size(3 * 1024**2) == "3.00 MB"
    assert _readable_size(5 * 1024**3) == "5.00 GB"


def test_float64_weights_count_eight_bytes():
    a = keras.Input((3,), dtype="float64")
    model = keras.Model(a, layers.Dense(2, dtype="float64")(a))
    assert " Total params: 8 (64.00 B)" in summary_text(model, line_length=88)


def test_ten_thousand_layer_chain():
    x = inputs = keras.Input((2,))
    for _ in range(10_000):
        x = layers.Dense(2)(x)
    text = format_summary(keras.Model(inputs, x), line_length=88)
    assert text.count("(Dense)") == 10_000
    assert " Total params: 60,000 (234.38 KB)" in text
