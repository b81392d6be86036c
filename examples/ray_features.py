"""Feature extraction over an image dataset with Ray Data: a CNN cut at its pooled features, run
by two actors, each with its own ONNX Runtime session.

python examples/ray_features.py          # starts a local Ray cluster (2 CPUs), 20,000 synthetic images

The images are synthetic (32x32 RGB: noise plus one of four stripe patterns, the "class"), so the
example needs no download. The classifier is an irtool model; `features` is a submodel of it (the
same layers and weights, output at the global pooling), exported to ONNX in memory and handed to
`irtool.runtime.ray.map_batches`. The result is checked against the same submodel run in process.

Extras: ray (`pip install -e '.[ray]'`).
"""

import time

import numpy as np
import ray

import irtool as keras
from irtool import layers
from irtool.runtime import Session
from irtool.runtime.ray import map_batches, onnx_bytes

SIZE = 32


def synthetic_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` RGB images in [0, 1] and their pattern labels (0-3)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    patterns = np.stack([rows % 8 < 4, cols % 8 < 4, (rows + cols) % 8 < 4, (rows - cols) % 8 < 4]).astype("float32")
    images = 0.5 * rng.random((count, SIZE, SIZE, 3), dtype=np.float32) + 0.5 * patterns[labels][..., None]
    return images, labels


def build_models():
    """The classifier and its feature extractor (a submodel sharing its weights)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Conv2D(16, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    pooled = layers.GlobalAveragePooling2D(name="features")(x)
    outputs = layers.Dense(4, activation="softmax", name="classes")(pooled)
    classifier = keras.Model(inputs, outputs, name="classifier")
    return classifier, keras.Model(classifier.input, classifier.get_layer("features").output, name="extractor")


def extract_features(images: np.ndarray, concurrency: int = 2, batch_size: int = 500) -> np.ndarray:
    """The extractor's features for ``images``, computed by Ray Data actors, in the images' order."""
    _, extractor = build_models()
    dataset = ray.data.from_numpy(images).repartition(4 * concurrency)
    features = map_batches(
        dataset, extractor, columns={"image": "data"}, batch_size=batch_size, concurrency=concurrency, num_cpus=0.5
    )
    return np.concatenate([b["features"] for b in features.iter_batches(batch_size=None, batch_format="numpy")])


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    images, labels = synthetic_images(20_000)
    started = time.perf_counter()
    features = extract_features(images)
    seconds = time.perf_counter() - started
    print(
        f"{len(features):,} images -> features {features.shape[1:]} in {seconds:.1f} s ({len(features) / seconds:,.0f} rows/s)"
    )
    in_process = Session(onnx_bytes(build_models()[1])).predict({"image": images}, batch_size=500)["features"]
    print(f"same as in process: {np.array_equal(features, in_process)}")
    print(f"mean feature per pattern: {[round(float(features[labels == k].mean()), 4) for k in range(4)]}")
    ray.shutdown()
