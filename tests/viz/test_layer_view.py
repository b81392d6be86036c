"""``model_to_dot``: boxes, labels, edges and clusters of the Keras guide's models, read back from the DOT text."""

from __future__ import annotations

import pytest

import irtool as keras
from irtool import layers, ops
from irtool.viz import model_to_dot, styles

from .dotparse import cell_lines, label_rows, parse_dot
from .guide_models import mnist_mlp, nested_autoencoder, shared_embedding, ticket_classifier, toy_resnet


def dot_of(model, **options):
    return parse_dot(model_to_dot(model, **options).source)


def test_mnist_mlp_boxes_edges_and_shapes():
    dot = dot_of(mnist_mlp(), show_shapes=True)
    assert list(dot.nodes) == ["img", "dense", "dense_1", "dense_2"]
    assert dot.edges == [("img", "dense"), ("dense", "dense_1"), ("dense_1", "dense_2")]
    assert dot.header("img") == "img (InputLayer)"
    assert dot.header("dense_2") == "dense_2 (Dense)"
    assert dot.cells("img") == ["Output shape (None, 784)"]  # an InputLayer has no input shape, as in Keras
    assert dot.cells("dense") == ["Input shape (None, 784)", "Output shape (None, 64)"]
    assert cell_lines(dot.nodes["dense_2"], "Output shape") == ["(None, 10)"]
    assert dot.header_color("img") == styles.FAMILY_COLORS["input"]
    assert dot.header_color("dense") == styles.FAMILY_COLORS["core"]
    assert dot.graph_attributes["rankdir"] == "TB" and dot.graph_attributes["dpi"] == "200"


def test_ticket_classifier_multi_input_multi_output():
    dot = dot_of(ticket_classifier(), show_shapes=True)
    assert set(dot.nodes) == {
        "title",
        "body",
        "tags",
        "embedding",
        "embedding_1",
        "lstm",
        "lstm_1",
        "concatenate",
        "priority",
        "department",
    }
    assert dot.edge_set == {
        ("title", "embedding"),
        ("body", "embedding_1"),
        ("embedding", "lstm"),
        ("embedding_1", "lstm_1"),
        ("lstm", "concatenate"),
        ("lstm_1", "concatenate"),
        ("tags", "concatenate"),
        ("concatenate", "priority"),
        ("concatenate", "department"),
    }
    assert len(dot.edges) == len(dot.edge_set)
    # several inputs: one line per tensor, in call order
    assert cell_lines(dot.nodes["concatenate"], "Input shape") == ["(None, 128)", "(None, 32)", "(None, 12)"]
    assert cell_lines(dot.nodes["concatenate"], "Output shape") == ["(None, 172)"]
    assert cell_lines(dot.nodes["lstm"], "Input shape") == ["(None, None, 64)"]
    assert dot.header_color("lstm") == styles.FAMILY_COLORS["recurrent"]
    assert dot.header_color("concatenate") == styles.FAMILY_COLORS["merge"]


def test_toy_resnet_residual_edges():
    model = toy_resnet()
    dot = dot_of(model)
    assert list(dot.nodes) == [op.name for op in model.operations]
    assert len(dot.nodes) == 15
    assert {
        ("max_pooling2d", "conv2d_2"),
        ("max_pooling2d", "add"),
        ("conv2d_3", "add"),
        ("add", "conv2d_4"),
        ("add", "add_1"),
        ("conv2d_5", "add_1"),
        ("add_1", "conv2d_6"),
        ("dense", "dropout"),
        ("dropout", "dense_1"),
    } <= dot.edge_set
    assert len(dot.edges) == 16  # a chain of 15 boxes plus the two skip connections, minus one
    families = {node: dot.header_color(node) for node in dot.nodes}
    assert families["conv2d"] == styles.FAMILY_COLORS["conv"]
    assert families["max_pooling2d"] == families["global_average_pooling2d"] == styles.FAMILY_COLORS["pooling"]
    assert families["add"] == styles.FAMILY_COLORS["merge"]
    assert families["dropout"] == styles.FAMILY_COLORS["activation"]


def test_nested_autoencoder_collapsed_is_one_box_per_model():
    dot = dot_of(nested_autoencoder(), show_shapes=True)
    assert list(dot.nodes) == ["img", "encoder", "decoder"]
    assert dot.edges == [("img", "encoder"), ("encoder", "decoder")]
    assert dot.clusters == {}
    assert dot.header("encoder") == "encoder (Functional)"
    assert dot.header_color("encoder") == styles.FAMILY_COLORS["model"]
    assert cell_lines(dot.nodes["encoder"], "Input shape") == ["(None, 28, 28, 1)"]
    assert cell_lines(dot.nodes["encoder"], "Output shape") == ["(None, 16)"]
    assert cell_lines(dot.nodes["decoder"], "Output shape") == ["(None, 28, 28, 1)"]


def test_nested_autoencoder_expanded_into_labelled_clusters():
    dot = dot_of(nested_autoencoder(), expand_nested=True)
    assert set(dot.clusters) == {"cluster_encoder", "cluster_decoder"}
    assert dot.cluster_labels == {"cluster_encoder": "encoder (Functional)", "cluster_decoder": "decoder (Functional)"}
    assert dot.clusters["cluster_encoder"] == [
        "encoder/original_img",
        "encoder/conv2d",
        "encoder/conv2d_1",
        "encoder/max_pooling2d",
        "encoder/conv2d_2",
        "encoder/conv2d_3",
        "encoder/global_max_pooling2d",
    ]
    assert dot.clusters["cluster_decoder"][0] == "decoder/encoded_img"
    assert len(dot.clusters["cluster_decoder"]) == 7
    assert "encoder" not in dot.nodes and "decoder" not in dot.nodes
    assert set(dot.nodes) == {"img", *dot.clusters["cluster_encoder"], *dot.clusters["cluster_decoder"]}
    # edges into a model end at its InputLayer; edges out of it start at the layer producing its output
    assert ("img", "encoder/original_img") in dot.edge_set
    assert ("encoder/global_max_pooling2d", "decoder/encoded_img") in dot.edge_set
    assert ("encoder/conv2d_3", "encoder/global_max_pooling2d") in dot.edge_set
    assert len(dot.edges) == 2 + 6 + 6
    assert dot.header("encoder/conv2d") == "conv2d (Conv2D)"


def test_shared_embedding_is_one_box_with_two_edges():
    dot = dot_of(shared_embedding(), show_shapes=True, show_dtype=True)
    assert list(dot.nodes) == ["input_layer", "input_layer_1", "embedding"]
    assert dot.edges == [("input_layer", "embedding"), ("input_layer_1", "embedding")]
    # both calls agree, so each cell shows their shapes once
    assert cell_lines(dot.nodes["embedding"], "Input shape") == ["(None, None)"]
    assert cell_lines(dot.nodes["embedding"], "Output shape") == ["(None, None, 128)"]
    assert cell_lines(dot.nodes["input_layer"], "Output dtype") == ["int32"]
    assert cell_lines(dot.nodes["embedding"], "Output dtype") == ["float32"]


def test_shared_layer_with_different_shapes_and_raw_ops():
    a = keras.Input((3,), name="a")
    b = keras.Input((7, 3), name="b")
    shared = layers.Dense(4, name="shared")
    y = shared(a) + ops.mean(shared(b), axis=1)
    model = keras.Model([a, b], y[:, 1:3])
    dot = dot_of(model, show_shapes=True)
    assert list(dot.nodes) == ["a", "b", "shared", "mean", "add", "get_item"]
    assert dot.edge_set == {
        ("a", "shared"),
        ("b", "shared"),
        ("shared", "mean"),
        ("shared", "add"),
        ("mean", "add"),
        ("add", "get_item"),
    }
    assert cell_lines(dot.nodes["shared"], "Input shape") == ["call 0: (None, 3)", "call 1: (None, 7, 3)"]
    assert cell_lines(dot.nodes["shared"], "Output shape") == ["call 0: (None, 4)", "call 1: (None, 7, 4)"]
    assert dot.header("add") == "add (Add)" and dot.header("get_item") == "get_item (GetItem)"
    assert dot.header_color("add") == styles.FAMILY_COLORS["op"]


def test_a_layer_shared_with_another_model_draws_only_this_models_calls():
    x = keras.Input((4,), name="x")
    dense = layers.Dense(4, name="dense")
    first = keras.Model(x, dense(x), name="first")
    y = keras.Input((4,), name="y")
    second = keras.Model(y, layers.Dense(2, name="head")(dense(y)), name="second")
    assert dot_of(first).edges == [("x", "dense")]
    assert dot_of(second).edges == [("y", "dense"), ("dense", "head")]


def test_sequential_hides_its_input_layer_like_keras():
    model = keras.Sequential(
        [keras.Input((8,)), layers.Dense(4, name="d1"), layers.Dropout(0.1, name="drop"), layers.Dense(2, name="d2")],
        name="seq",
    )
    dot = dot_of(model, show_shapes=True)
    assert list(dot.nodes) == ["d1", "drop", "d2"]
    assert dot.edges == [("d1", "drop"), ("drop", "d2")]
    assert cell_lines(dot.nodes["d1"], "Input shape") == ["(None, 8)"]


def test_nested_sequential_expanded_and_collapsed():
    inner = keras.Sequential([keras.Input((8,)), layers.Dense(4, name="d1"), layers.Dense(2, name="d2")], name="seq")
    inputs = keras.Input((8,), name="i")
    model = keras.Model(inputs, layers.Dense(1, name="head")(inner(inputs)), name="outer")
    assert dot_of(model).edges == [("i", "seq"), ("seq", "head")]
    dot = dot_of(model, expand_nested=True)
    assert dot.clusters == {"cluster_seq": ["seq/d1", "seq/d2"]}
    assert dot.cluster_labels == {"cluster_seq": "seq (Sequential)"}
    assert dot.edge_set == {("i", "seq/d1"), ("seq/d1", "seq/d2"), ("seq/d2", "head")}


def test_two_levels_of_nesting_and_a_nested_model_called_twice():
    x = keras.Input((4,), name="x")
    leaf = keras.Model(x, layers.Dense(4, name="leaf_dense")(x), name="leaf")
    y = keras.Input((4,), name="y")
    middle = keras.Model(y, layers.Dense(4, name="mid_dense")(leaf(y)), name="middle")
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    merged = layers.add([middle(a), middle(b)], name="sum")
    model = keras.Model([a, b], merged, name="top")
    collapsed = dot_of(model)
    assert collapsed.edges == [("a", "middle"), ("b", "middle"), ("middle", "sum")]
    dot = dot_of(model, expand_nested=True)
    assert dot.clusters["cluster_middle"] == ["middle/y", "middle/leaf/x", "middle/leaf/leaf_dense", "middle/mid_dense"]
    assert dot.clusters["cluster_middle/leaf"] == ["middle/leaf/x", "middle/leaf/leaf_dense"]
    assert dot.cluster_labels["cluster_middle/leaf"] == "leaf (Functional)"
    assert dot.edge_set == {
        ("a", "middle/y"),
        ("b", "middle/y"),
        ("middle/y", "middle/leaf/x"),
        ("middle/leaf/x", "middle/leaf/leaf_dense"),
        ("middle/leaf/leaf_dense", "middle/mid_dense"),
        ("middle/mid_dense", "sum"),
    }


def test_subclassed_model_is_one_box():
    class Classifier(keras.Model):
        def __init__(self):
            super().__init__(name="classifier")
            self.dense = layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    model = Classifier()
    model(keras.Input((4,)))
    dot = dot_of(model, show_shapes=True)
    assert list(dot.nodes) == ["classifier"] and dot.edges == []
    assert dot.header("classifier") == "classifier (Classifier)"
    assert cell_lines(dot.nodes["classifier"], "Output shape") == ["(None, 3)"]


def test_label_options():
    inputs = keras.Input((4,), name="x")
    hidden = layers.Dense(8, activation="relu", name="hidden")
    frozen = layers.Dense(2, name="frozen")
    frozen.trainable = False
    model = keras.Model(inputs, frozen(layers.Dropout(0.5, name="drop")(hidden(inputs))))
    plain = dot_of(model, show_layer_names=False)
    assert [plain.header(n) for n in plain.nodes] == ["InputLayer", "Dense", "Dropout", "Dense"]
    assert all(plain.cells(n) == [] for n in plain.nodes)
    dot = dot_of(model, show_layer_activations=True, show_trainable=True, show_dtype=True)
    assert dot.cells("hidden") == ["Activation: relu", "Output dtype float32", "Trainable"]
    assert dot.cells("frozen") == ["Activation: linear", "Output dtype float32", "Non-trainable"]
    assert dot.cells("drop") == ["Output dtype float32"]  # no activation, no weights: no mark
    assert dot.cells("x") == ["Output dtype float32"]
    assert label_rows(dot.nodes["hidden"])[2] == ["Output dtype float32", "Trainable"]


def test_layout_options_and_argument_errors():
    model = mnist_mlp()
    dot = dot_of(model, rankdir="LR", dpi=96, splines="polyline")
    assert dot.graph_attributes["rankdir"] == "LR"
    assert dot.graph_attributes["dpi"] == "96"
    assert dot.graph_attributes["splines"] == "polyline"
    with pytest.raises(ValueError, match="`rankdir` must be one of TB, LR, BT, RL. Received: rankdir='XY'"):
        model_to_dot(model, rankdir="XY")
    with pytest.raises(ValueError, match="`dpi` must be a positive number. Received: dpi=0"):
        model_to_dot(model, dpi=0)
    with pytest.raises(ValueError, match="`layer_range` is no longer supported"):
        model_to_dot(model, layer_range=["dense", "dense_1"])
    with pytest.raises(ValueError, match="Unrecognized keyword arguments: {'colour': 'red'}"):
        model_to_dot(model, colour="red")
    with pytest.raises(TypeError, match="`model` must be a Model"):
        model_to_dot(layers.Dense(2))
    with pytest.raises(ValueError, match="has not yet been built"):
        model_to_dot(keras.Sequential([layers.Dense(2)]))


def test_subgraph_returns_a_cluster():
    cluster = model_to_dot(mnist_mlp(), subgraph=True)
    assert cluster.name == "cluster_mnist_model"
    assert cluster.graph_attr["label"] == "mnist_model"
    outer = model_to_dot(mnist_mlp())
    outer.subgraph(cluster)
    assert "subgraph cluster_mnist_model {" in outer.source


def test_names_that_need_escaping():
    inputs = keras.Input((4,), name="in<put>")
    model = keras.Model(inputs, layers.Dense(2, name="a:b&c")(inputs), name='m "1"')
    source = model_to_dot(model).source
    dot = parse_dot(source)
    assert list(dot.nodes) == ["in<put>", "a%3Ab&c"]  # ':' would name a port in an edge
    assert dot.edges == [("in<put>", "a%3Ab&c")]
    assert dot.header("a%3Ab&c") == "a:b&c (Dense)"
    assert "&lt;put&gt;" in dot.nodes["in<put>"]


def test_colour_families():
    class MyDense(layers.Dense):
        pass

    class Custom(layers.Layer):
        def call(self, x):
            return x * 2.0

    x = keras.Input((8, 4), name="x")
    seq = layers.Reshape((8, 4, 1))(x)
    conv = layers.Conv2D(2, 3, padding="same")(seq)
    norm = layers.BatchNormalization()(conv)
    pooled = layers.GlobalAveragePooling2D()(norm)
    attended = layers.MultiHeadAttention(2, 4)(x, x)
    recurrent = layers.GRU(3)(attended)
    merged = layers.concatenate([pooled, recurrent, MyDense(2)(layers.Flatten()(x))])
    out = Custom()(layers.ReLU()(merged))
    model = keras.Model(x, out)
    expected = {
        "Reshape": "reshape",
        "Conv2D": "conv",
        "BatchNormalization": "normalization",
        "GlobalAveragePooling2D": "pooling",
        "MultiHeadAttention": "attention",
        "GRU": "recurrent",
        "Concatenate": "merge",
        "MyDense": "core",
        "Flatten": "reshape",
        "ReLU": "activation",
        "Custom": "custom",
        "InputLayer": "input",
    }
    dot = dot_of(model)
    seen = {}
    for node in dot.nodes:
        class_name = dot.header(node).split(" (")[1].rstrip(")")
        seen[class_name] = dot.header_color(node)
    assert seen == {name: styles.FAMILY_COLORS[family] for name, family in expected.items()}
    assert styles.family_of_class_name("ConvTranspose") == "conv"
    assert styles.family_of_class_name("Sigmoid") == "activation"
    assert styles.family_of_class_name("ReduceMean") == "pooling"
    assert styles.family_of_class_name("Frobnicate", default="op") == "op"


def test_dot_text_is_deterministic_across_sessions():
    first = model_to_dot(ticket_classifier(), show_shapes=True, expand_nested=True).source
    again = model_to_dot(ticket_classifier(), show_shapes=True, expand_nested=True).source  # new names: _2, _3...
    keras.backend.clear_session()
    fresh = model_to_dot(ticket_classifier(), show_shapes=True, expand_nested=True).source
    assert fresh == first
    assert again != first  # the second build's layers have other names, and the text says so
    model = nested_autoencoder()
    assert model_to_dot(model, expand_nested=True).source == model_to_dot(model, expand_nested=True).source
