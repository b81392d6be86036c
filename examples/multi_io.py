"""A model with several inputs and outputs, after the Keras guide's ticket classifier.

The guide embeds the ticket's title and body with Embedding + LSTM; here they arrive as
bag-of-words vectors and are encoded with Dense layers. The model ranks a ticket's
priority (one score) and picks the department that should handle it (four logits).

    python examples/multi_io.py
    irtool export examples/multi_io.py -o out/tickets.onnx --check

Extras: none.
"""

import numpy as np

import irtool as keras
from irtool import layers

keras.utils.set_random_seed(0)

num_tags = 12  # number of unique issue tags
num_words = 1000  # size of the vocabulary of the bag-of-words vectors
num_departments = 4  # number of departments for predictions

title_input = keras.Input(shape=(num_words,), name="title")
body_input = keras.Input(shape=(num_words,), name="body")
tags_input = keras.Input(shape=(num_tags,), name="tags")

title_features = layers.Dense(64, activation="relu", name="title_encoder")(title_input)
body_features = layers.Dense(32, activation="relu", name="body_encoder")(body_input)
x = layers.concatenate([title_features, body_features, tags_input])
x = layers.Dropout(0.2)(x)

priority_pred = layers.Dense(1, name="priority")(x)
department_pred = layers.Dense(num_departments, name="department")(x)

model = keras.Model(
    inputs=[title_input, body_input, tags_input],
    outputs={"priority": priority_pred, "department": department_pred},
    name="ticket_classifier",
)

if __name__ == "__main__":
    print(f"{model.name}: {len(model.inputs)} inputs, {len(model.outputs)} outputs, {model.count_params():,} params")
    rng = np.random.default_rng(0)
    title_data = (rng.random((5, num_words)) < 0.01).astype("float32")
    body_data = (rng.random((5, num_words)) < 0.05).astype("float32")
    tags_data = (rng.random((5, num_tags)) < 0.2).astype("float32")
    predictions = model.predict({"title": title_data, "body": body_data, "tags": tags_data}, verbose=0)
    print(f"priority scores: {[round(float(p), 3) for p in predictions['priority'][:, 0]]}")
    print(f"departments:     {predictions['department'].argmax(axis=-1).tolist()}")
