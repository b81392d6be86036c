"""The models of Keras' functional-API guide that the plotting tests and ``docs/images`` draw."""

from __future__ import annotations

import irtool as keras
from irtool import layers

from ..models.test_guide_models import ticket_classifier, toy_resnet


def mnist_mlp():
    inputs = keras.Input(shape=(784,), name="img")
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def nested_autoencoder():
    """The guide's autoencoder made of an encoder model and a decoder model, each called once."""
    encoder_input = keras.Input(shape=(28, 28, 1), name="original_img")
    x = layers.Conv2D(16, 3, activation="relu")(encoder_input)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    encoder_output = layers.GlobalMaxPooling2D()(x)
    encoder = keras.Model(encoder_input, encoder_output, name="encoder")

    decoder_input = keras.Input(shape=(16,), name="encoded_img")
    x = layers.Reshape((4, 4, 1))(decoder_input)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu")(x)
    x = layers.UpSampling2D(3)(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    decoder_output = layers.Conv2DTranspose(1, 3, activation="relu")(x)
    decoder = keras.Model(decoder_input, decoder_output, name="decoder")

    autoencoder_input = keras.Input(shape=(28, 28, 1), name="img")
    encoded_img = encoder(autoencoder_input)
    decoded_img = decoder(encoded_img)
    return keras.Model(autoencoder_input, decoded_img, name="autoencoder")


def shared_embedding():
    """The guide's shared layer: one Embedding applied to two text inputs."""
    embedding = layers.Embedding(1000, 128)
    text_input_a = keras.Input(shape=(None,), dtype="int32")
    text_input_b = keras.Input(shape=(None,), dtype="int32")
    encoded_a = embedding(text_input_a)
    encoded_b = embedding(text_input_b)
    return keras.Model([text_input_a, text_input_b], [encoded_a, encoded_b], name="shared_embedding")


GUIDE_MODELS = {
    "mnist_mlp": mnist_mlp,
    "ticket_classifier": ticket_classifier,
    "toy_resnet": toy_resnet,
    "nested_autoencoder": nested_autoencoder,
    "shared_embedding": shared_embedding,
}

__all__ = ["GUIDE_MODELS", "mnist_mlp", "nested_autoencoder", "shared_embedding", "ticket_classifier", "toy_resnet"]
