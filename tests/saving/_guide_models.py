"""The Keras guide's models, written once against a ``keras`` module argument.

``build(keras)`` gives the same architecture in real Keras 3 and in irtool, so a file one writes
can be checked in the other. Sizes are small (the files in ``tests/data`` are made from these by
``tests/data/make_keras_files.py``); ``sample_inputs`` gives deterministic inputs.
"""

from __future__ import annotations

import numpy as np


def mnist_mlp(keras, features=64, units=32):
    """The guide's first model (784 -> 64 -> 64 -> 10 there)."""
    layers = keras.layers
    inputs = keras.Input(shape=(features,), name="img")
    x = layers.Dense(units, activation="relu")(inputs)
    x = layers.Dense(units, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def ticket_classifier(keras, num_words=100, embed=8):
    """Several inputs (variable-length text, tags) and outputs (a dict), LSTMs over embeddings."""
    layers = keras.layers
    title_input = keras.Input(shape=(None,), name="title")
    body_input = keras.Input(shape=(None,), name="body")
    tags_input = keras.Input(shape=(12,), name="tags")
    title_features = layers.LSTM(16)(layers.Embedding(num_words, embed)(title_input))
    body_features = layers.LSTM(8)(layers.Embedding(num_words, embed)(body_input))
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(4, name="department")(x)
    return keras.Model(
        inputs=[title_input, body_input, tags_input],
        outputs={"priority": priority_pred, "department": department_pred},
        name="ticket_classifier",
    )


def toy_resnet(keras, size=16, filters=8):
    """Residual blocks of Conv2D + BatchNormalization (the guide's toy ResNet, narrower)."""
    layers = keras.layers
    inputs = keras.Input(shape=(size, size, 3), name="img")
    x = layers.Conv2D(filters, 3, activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    block_1_output = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(filters, 3, activation="relu", padding="same")(block_1_output)
    x = layers.BatchNormalization()(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(filters, 3, activation="relu", padding="same")(block_2_output)
    block_3_output = layers.add([x, block_2_output])
    x = layers.GlobalAveragePooling2D()(block_3_output)
    x = layers.Dense(16, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="toy_resnet")


def nested_autoencoder(keras):
    """An encoder model and a Sequential decoder, nested in an autoencoder model."""
    layers = keras.layers
    encoder_input = keras.Input(shape=(8, 8, 1), name="original_img")
    x = layers.Conv2D(4, 3, activation="relu")(encoder_input)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    encoder_output = layers.GlobalMaxPooling2D()(x)
    encoder = keras.Model(encoder_input, encoder_output, name="encoder")
    decoder = keras.Sequential(
        [
            keras.Input(shape=(8,), name="encoded_img"),
            layers.Reshape((2, 2, 2)),
            layers.Conv2DTranspose(4, 3, activation="relu"),
            layers.UpSampling2D(2),
            layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid"),
        ],
        name="decoder",
    )
    autoencoder_input = keras.Input(shape=(8, 8, 1), name="img")
    decoded_img = decoder(encoder(autoencoder_input))
    return keras.Model(autoencoder_input, decoded_img, name="autoencoder")


def shared_embedding(keras, num_words=50):
    """One Embedding and one LSTM, each shared by two text inputs."""
    layers = keras.layers
    shared_embedding = layers.Embedding(num_words, 8)
    shared_lstm = layers.LSTM(4)
    text_input_a = keras.Input(shape=(None,), name="text_a")
    text_input_b = keras.Input(shape=(None,), name="text_b")
    encoded_a = shared_lstm(shared_embedding(text_input_a))
    encoded_b = shared_lstm(shared_embedding(text_input_b))
    merged = layers.concatenate([encoded_a, encoded_b])
    return keras.Model([text_input_a, text_input_b], layers.Dense(1, activation="sigmoid")(merged), name="shared")


def recurrent(keras):
    """LSTM, GRU and a Bidirectional SimpleRNN stacked."""
    layers = keras.layers
    inputs = keras.Input(shape=(6, 5), name="sequence")
    x = layers.LSTM(4, return_sequences=True)(inputs)
    x = layers.GRU(4, return_sequences=True)(x)
    x = layers.Bidirectional(layers.SimpleRNN(3))(x)
    return keras.Model(inputs, layers.Dense(2)(x), name="recurrent")


def transformer_block(keras):
    """MultiHeadAttention with a residual, LayerNormalization and an EinsumDense projection."""
    layers = keras.layers
    inputs = keras.Input(shape=(5, 8), name="tokens")
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    x = layers.LayerNormalization()(layers.add([inputs, attended]))
    x = layers.EinsumDense("abc,cd->abd", output_shape=(None, 6), bias_axes="d", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3)(x), name="transformer_block")


BUILDERS = {
    "mnist_mlp": mnist_mlp,
    "ticket_classifier": ticket_classifier,
    "toy_resnet": toy_resnet,
    "nested_autoencoder": nested_autoencoder,
    "shared_embedding": shared_embedding,
    "recurrent": recurrent,
    "transformer_block": transformer_block,
}


def sample_inputs(model, batch=3, seed=0) -> list:
    """Deterministic float32 inputs for ``model`` (word ids for the text inputs, length 7)."""
    rng = np.random.default_rng(seed)
    out = []
    for tensor in model.inputs:
        shape = (batch,) + tuple(7 if d is None else d for d in tensor.shape[1:])
        if tensor.name in ("title", "body", "text_a", "text_b"):
            out.append(rng.integers(1, 50, shape).astype("float32"))
        else:
            out.append(rng.random(shape, dtype="float32"))
    return out
