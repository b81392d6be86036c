"""The models of the Keras functional-API guide: build, run, export with parity, count transposes."""

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops

from ..conftest import assert_onnx_parity

RNG = np.random.default_rng(11)


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


def test_toy_resnet_exports_with_parity_and_one_transpose():
    model = toy_resnet()
    assert model.count_params() == 223242
    x = RNG.random((2, 32, 32, 3), dtype="float32")
    proto = assert_onnx_parity(model, x, atol=1e-4)
    op_types = [n.op_type for n in proto.graph.node]
    assert op_types.count("Transpose") == 1  # at the image input only; pooling ends the image part
    # torch.onnx (TorchScript, NCHW input) gives 21 compute nodes + 1 Constant; irtool gives the
    # same 21 (Dense -> Gemm) + the NHWC->NCHW Transpose that a channels-last interface needs.
    assert len(proto.graph.node) == 22
    assert op_types.count("Gemm") == 2 and op_types.count("Conv") == 7


def autoencoder():
    encoder_input = keras.Input(shape=(28, 28, 1), name="img")
    x = layers.Conv2D(16, 3, activation="relu")(encoder_input)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    encoder_output = layers.GlobalMaxPooling2D()(x)
    encoder = keras.Model(encoder_input, encoder_output, name="encoder")
    x = layers.Reshape((4, 4, 1))(encoder_output)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu")(x)
    x = layers.UpSampling2D(3)(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    decoder_output = layers.Conv2DTranspose(1, 3, activation="relu")(x)
    return encoder, keras.Model(encoder_input, decoder_output, name="autoencoder")


def test_conv_autoencoder_and_its_encoder():
    encoder, model = autoencoder()
    assert model.output_shape == (None, 28, 28, 1)
    assert encoder.count_params() == 18672 and model.count_params() == 28241
    x = RNG.random((2, 28, 28, 1), dtype="float32")
    proto = assert_onnx_parity(model, x, atol=1e-4)
    assert [n.op_type for n in proto.graph.node].count("Transpose") <= 3
    assert_onnx_parity(encoder, x, atol=1e-4)


def ticket_classifier():
    num_tags, num_words, num_departments = 12, 10000, 4
    title_input = keras.Input(shape=(None,), name="title")
    body_input = keras.Input(shape=(None,), name="body")
    tags_input = keras.Input(shape=(num_tags,), name="tags")
    title_features = layers.Embedding(num_words, 64)(title_input)
    body_features = layers.Embedding(num_words, 64)(body_input)
    title_features = layers.LSTM(128)(title_features)
    body_features = layers.LSTM(32)(body_features)
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(num_departments, name="department")(x)
    return keras.Model(
        inputs=[title_input, body_input, tags_input],
        outputs={"priority": priority_pred, "department": department_pred},
    )


@pytest.mark.parametrize("lengths", [(3, 7), (10, 4)])
def test_ticket_classifier_on_variable_length_text(lengths):
    model = ticket_classifier()
    title = RNG.integers(0, 10000, (2, lengths[0])).astype("float32")
    body = RNG.integers(0, 10000, (2, lengths[1])).astype("float32")
    tags = RNG.integers(0, 2, (2, 12)).astype("float32")
    out = model.predict([title, body, tags], verbose=0)
    assert out["priority"].shape == (2, 1) and out["department"].shape == (2, 4)
    proto = assert_onnx_parity(model, [title, body, tags], atol=1e-4)
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 2


class CustomRNN(layers.Layer):
    def __init__(self):
        super().__init__()
        self.units = 32
        self.projection_1 = layers.Dense(units=32, activation="tanh")
        self.projection_2 = layers.Dense(units=32, activation="tanh")
        self.classifier = layers.Dense(1)

    def call(self, inputs):
        outputs = []
        state = ops.zeros(shape=(inputs.shape[0], self.units))
        for t in range(inputs.shape[1]):
            x = inputs[:, t, :]
            h = self.projection_1(x)
            y = h + self.projection_2(state)
            state = y
            outputs.append(y)
        features = ops.stack(outputs, axis=1)
        return self.classifier(features)


def test_custom_rnn_with_conv1d():
    inputs = keras.Input(batch_shape=(16, 10, 5))
    x = layers.Conv1D(32, 3)(inputs)
    outputs = CustomRNN()(x)
    model = keras.Model(inputs, outputs)
    assert outputs.shape == (16, 8, 1) and len(model.weights) == 8
    assert_onnx_parity(model, RNG.random((16, 10, 5), dtype="float32"), atol=1e-5)
