"""More Keras 3.15 augmentation layers (RandomGaussianBlur, RandomColorJitter, RandomPerspective,
MixUp, CutMix, RandomElasticTransform, RandAugment, AugMix): the identity at
inference and in the export, Keras' transforms when training (against real Keras where the
factors pin the draw, or with the same draws given to both), configs, validation, gradients, a
Keras-written .keras file, and ``fit``."""

import json

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers
from irtool.ops import augmentation as aug

from ..harness import assert_onnx_parity, assert_same_config, get_keras, require_keras
from ._augmentation import assert_config_round_trips, assert_identity_at_inference
from .test_augmentation import _train_output

RNG = np.random.default_rng(13)

LAYERS = [
    ("RandomGaussianBlur", {}),
    ("RandomGaussianBlur", {"factor": (0.2, 0.9), "kernel_size": 5, "sigma": 0.4, "value_range": (0, 1), "seed": 3}),
    ("RandomGaussianBlur", {"kernel_size": (3, 5), "sigma": (0.1, 0.7), "data_format": "channels_first"}),
    ("RandomColorJitter", {}),
    ("RandomColorJitter", {"brightness_factor": 0.2, "contrast_factor": (0.1, 0.4), "seed": 2}),
    (
        "RandomColorJitter",
        {"value_range": (0, 1), "saturation_factor": (0.3, 0.8), "hue_factor": 0.2, "data_format": "channels_first"},
    ),
    ("RandomPerspective", {}),
    ("RandomPerspective", {"factor": (0.3, 0.7), "scale": 0.4, "interpolation": "nearest", "fill_value": 2.0}),
    ("RandomPerspective", {"factor": 0.5, "seed": 7, "data_format": "channels_first"}),
    ("MixUp", {}),
    ("MixUp", {"alpha": 0.7, "seed": 4, "data_format": "channels_first"}),
    ("CutMix", {}),
    ("CutMix", {"factor": (0.2, 0.6), "seed": 1, "data_format": "channels_first"}),
    ("RandomElasticTransform", {}),
    (
        "RandomElasticTransform",
        {"factor": (0.3, 0.9), "scale": 0.5, "interpolation": "nearest", "fill_mode": "mirror", "value_range": (0, 1)},
    ),
    (
        "RandomElasticTransform",
        {"fill_mode": "constant", "fill_value": 2.0, "seed": 3, "data_format": "channels_first"},
    ),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(LAYERS)]


def images(shape=(3, 8, 7, 3), high=255.0):
    return (RNG.random(shape) * high).astype("float32")


@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_identity_at_inference_and_in_onnx(name, kwargs):
    assert_identity_at_inference(name, kwargs, images(), keras_too=True)


@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_configs_round_trip_and_match_keras(name, kwargs):
    assert_config_round_trips(name, kwargs, through_json=True)


def test_validation_messages():
    with pytest.raises(ValueError, match="kernel_size must be an odd number. Received: kernel_size=4"):
        layers.RandomGaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match=r"kernel_size must be an odd number. Received: kernel_size=\(3, 4\)"):
        layers.RandomGaussianBlur(kernel_size=(3, 4))
    with pytest.raises(ValueError, match=r"`sigma` argument should be a number .* Received: factor=2"):
        layers.RandomGaussianBlur(sigma=2)
    with pytest.raises(ValueError, match=r"in the range \[0, 1\]. Received: factor=1.5"):
        layers.RandomGaussianBlur(factor=1.5)
    with pytest.raises(ValueError, match=r"in the range \[0, 1\]. Received: factor=-0.2"):
        layers.RandomColorJitter(contrast_factor=-0.2)  # RandomContrast's bounds, as in Keras
    with pytest.raises(ValueError, match="`value_range` argument should be a list of two numbers"):
        layers.RandomColorJitter(value_range=(0, 1, 2), brightness_factor=0.1)
    with pytest.raises(
        ValueError, match=r"`scale` argument should be a number in the range \[0,1\]. Received: scale=1.5"
    ):
        layers.RandomPerspective(scale=1.5)
    with pytest.raises(NotImplementedError, match="Unknown `interpolation` cubic"):
        layers.RandomPerspective(interpolation="cubic")
    with pytest.raises(NotImplementedError, match="Unknown `fill_mode` edge"):
        layers.RandomElasticTransform(fill_mode="edge")
    with pytest.raises(ValueError, match=r"`scale` argument should be a number .* Received: factor=3"):
        layers.RandomElasticTransform(scale=3)


# Factors that pin the draw, so the training transform must equal Keras' exactly.
FIXED = [
    ("RandomGaussianBlur", {"factor": (1.0, 1.0), "sigma": (0.7, 0.7)}),
    ("RandomGaussianBlur", {"factor": (1.0, 1.0), "kernel_size": 5, "sigma": (0.3, 0.3)}),
    ("RandomGaussianBlur", {"factor": (1.0, 1.0), "kernel_size": 7, "sigma": (1.0, 1.0), "value_range": (0, 1)}),
    ("RandomGaussianBlur", {"factor": 0.0}),
    ("RandomColorJitter", {"brightness_factor": (0.1, 0.1)}),
    ("RandomColorJitter", {"contrast_factor": 0.0, "saturation_factor": (0.3, 0.3)}),
    ("RandomColorJitter", {"hue_factor": 0.0, "value_range": (0, 1)}),
    (
        "RandomColorJitter",
        {"brightness_factor": (-0.2, -0.2), "contrast_factor": 0.0, "saturation_factor": (0.8, 0.8), "hue_factor": 0.0},
    ),
    ("RandomPerspective", {"factor": 0.0}),
    ("RandomPerspective", {"factor": (1.0, 1.0), "scale": 0.0}),
    ("RandomPerspective", {"factor": (1.0, 1.0), "scale": 0.0, "interpolation": "nearest"}),
    ("RandomElasticTransform", {"scale": 0.0}),
    ("RandomElasticTransform", {"factor": 0.0, "value_range": (0, 1)}),
    ("RandAugment", {"num_ops": 0}),
]


# Keras' RandomColorJitter runs its steps channels-last whatever its own data_format, so its
# channels_first output is not a reference to compare with.
TRAINING_CASES = [
    (name, kwargs, data_format)
    for data_format in ("channels_last", "channels_first")
    for name, kwargs in FIXED
    if not (data_format == "channels_first" and name == "RandomColorJitter")
]


@pytest.mark.parametrize(
    "name, kwargs, data_format", TRAINING_CASES, ids=[f"{n}-{i}-{f}" for i, (n, _, f) in enumerate(TRAINING_CASES)]
)
def test_training_transform_matches_keras(name, kwargs, data_format):
    real = require_keras()
    high = 1.0 if kwargs.get("value_range") == (0, 1) else 255.0
    x = images((3, 7, 6, 3), high)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    kwargs = dict(kwargs, data_format=data_format)
    want = np.asarray(getattr(real.layers, name)(**kwargs)(x, training=True))
    atol = 1e-4 * high
    np.testing.assert_allclose(_train_output(getattr(layers, name)(**kwargs), x), want, atol=atol)
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x, training=True), want, atol=atol)  # eager
    want = np.asarray(getattr(real.layers, name)(**kwargs)(x[0], training=True))
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x[0], training=True), want, atol=atol)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_gaussian_blur_with_given_draws_matches_keras(data_format):
    """Keras draws which images are blurred and the sigmas: both get the same ones."""
    real = require_keras()
    x = images((4, 6, 5, 3))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    apply = np.array([True, False, True, True])
    sigmas = np.array([0.4, 0.9], "float32")
    layer = real.layers.RandomGaussianBlur(kernel_size=5, data_format=data_format)
    given = {
        "should_apply_blur": real.ops.convert_to_tensor(apply),
        "blur_factor": real.ops.convert_to_tensor(sigmas),
    }
    want = real.ops.convert_to_numpy(layer.transform_images(real.ops.convert_to_tensor(x), given, training=True))
    got, _ = aug.RandomGaussianBlurPrim.blur(x, apply, sigmas, (5, 5), (0, 255), data_format)
    np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_perspective_with_given_draws_matches_keras(interpolation, data_format):
    """Keras draws the corner offsets: both get the same ones (and the same images to change)."""
    real = require_keras()
    x = images((3, 7, 6, 2))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    apply = np.array([True, True, False])
    offsets = RNG.uniform(-0.4, 0.4, (3, 4, 2)).astype("float32")
    start = aug.RandomPerspectivePrim.corners(3, 7, 6)
    layer = real.layers.RandomPerspective(interpolation=interpolation, fill_value=3.0, data_format=data_format)
    t = real.ops.convert_to_tensor
    given = {
        "apply_perspective": t(apply),
        "start_points": t(start),
        "end_points": t(start + start * offsets),
        "input_shape": x.shape,
    }
    want = real.ops.convert_to_numpy(layer.transform_images(t(x), given, training=True))
    got = aug.RandomPerspectivePrim.perspective(x, apply, offsets, interpolation, 3.0, data_format)
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_mix_up_with_given_draws_matches_keras():
    """Keras draws the permutation and the weights: both get the same ones."""
    real = require_keras()
    x = images((4, 5, 6, 3))
    weights = np.array([0.1, 0.5, 0.9, 1.0], "float32")
    permutation = np.array([2, 0, 3, 1])
    layer = real.layers.MixUp()
    given = {
        "mix_weight": real.ops.convert_to_tensor(weights),
        "permutation_order": real.ops.convert_to_tensor(permutation),
    }
    want = real.ops.convert_to_numpy(layer.transform_images(real.ops.convert_to_tensor(x), given, training=True))
    np.testing.assert_allclose(aug.MixUpPrim.mix(x, weights, permutation), want, atol=1e-3)


def test_mix_up_training_mixes_pairs_of_the_batch():
    x = images((6, 4, 4, 3))
    for y in (_train_output(layers.MixUp(0.5), x), layers.MixUp(0.5, seed=1)(x, training=True)):
        y = np.asarray(y)
        # each output is w x_i + (1 - w) x_j: find j and w by least squares
        for i in range(6):
            fits = []
            for j in range(6):
                d = (x[i] - x[j]).ravel()
                w = 1.0 if not d.any() else float(np.dot((y[i] - x[j]).ravel(), d) / np.dot(d, d))
                fits.append(np.abs(w * x[i] + (1 - w) * x[j] - y[i]).max())
            assert min(fits) < 1e-2


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cut_mix_with_given_draws_matches_keras(data_format):
    """Keras draws the boxes and the permutation: both get the same ones."""
    real = require_keras()
    shape = (4, 7, 6, 3) if data_format == "channels_last" else (4, 3, 7, 6)
    x = images(shape)
    corners = [
        np.array(c, "float32") for c in ([0.5, 1.2, 2.0, 0], [3.1, 4.0, 6.0, 6], [0, 2.5, 1.0, 0], [4, 6.9, 3, 7])
    ]
    permutation = np.array([3, 2, 0, 1])
    layer = real.layers.CutMix(data_format=data_format)
    t = real.ops.convert_to_tensor
    masks, _ = layer._generate_batch_mask(shape, tuple(t(c) for c in corners))
    mask = aug.RandomErasingPrim.mask(shape, corners, data_format)
    np.testing.assert_array_equal(mask, real.ops.convert_to_numpy(masks))
    given = {"permutation_order": t(permutation), "batch_masks": masks}
    want = real.ops.convert_to_numpy(layer.transform_images(t(x), given, training=True))
    np.testing.assert_array_equal(aug.CutMixPrim.cut(x, mask, permutation), want)


def test_cut_mix_training_pastes_boxes_from_the_batch():
    x = images((6, 8, 8, 3))
    real = get_keras()
    np.testing.assert_array_equal(layers.CutMix(seed=1)(x[0], training=True), x[0])  # unbatched: kept, as Keras
    if real is not None:
        np.testing.assert_array_equal(np.asarray(real.layers.CutMix(seed=1)(x[0], training=True)), x[0])
    for y in (_train_output(layers.CutMix(), x), layers.CutMix(seed=2)(x, training=True)):
        y = np.asarray(y)
        for i in range(6):
            changed = np.any(y[i] != x[i], axis=-1)
            rows, cols = np.nonzero(changed)
            if len(rows):  # one box, every pixel of it from one other image
                box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
                assert any(np.array_equal(y[i][box], x[j][box]) for j in range(6) if j != i)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", ["reflect", "mirror", "constant", "wrap", "nearest"])
def test_elastic_transform_with_given_draws_matches_keras(fill_mode, interpolation, data_format, monkeypatch):
    """Keras' torch backend draws the displacement fields from torch's global generator: both get
    the same fields (torch.normal patched to return them), images to change and distortion."""
    real = require_keras()
    import torch

    x = images((3, 9, 8, 2))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    dx, dy = RNG.standard_normal((2, 3, 9, 8)).astype("float32")
    fields = [torch.tensor(dx), torch.tensor(dy)]
    monkeypatch.setattr(torch, "normal", lambda *args, **kwargs: fields.pop(0))
    layer = real.layers.RandomElasticTransform(
        interpolation=interpolation, fill_mode=fill_mode, fill_value=3.0, data_format=data_format
    )
    apply = np.array([True, False, True])
    t = real.ops.convert_to_tensor
    given = {"apply_transform": t(apply), "distortion_factor": t(np.float32(0.7)), "seed": None}
    want = real.ops.convert_to_numpy(layer.transform_images(t(x), given, training=True))
    assert not fields and (interpolation == "nearest" or not np.allclose(want, x))
    got = aug.RandomElasticTransformPrim.elastic(
        x, apply, 0.7, dx, dy, interpolation, fill_mode, 3.0, (0, 255), data_format
    )
    np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("value_range", [(0, 255), (0, 1)])
def test_rand_augment_each_choice_matches_keras(value_range, data_format):
    """With factor 0 every operation's draw is pinned; Keras' choice of operations is given to
    both (every operation, alone, twice, and after another)."""
    real = require_keras()
    x = images((3, 7, 6, 3), value_range[1])
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = real.layers.RandAugment(value_range=value_range, factor=0.0, data_format=data_format)
    t = real.ops.convert_to_tensor
    transformation = layer.get_random_transformation(t(x), training=True)
    seeds = np.arange(len(aug.RAND_AUGMENT_OPS))
    for i in range(len(aug.RAND_AUGMENT_OPS)):
        for choices in ([i, i], [i, (i + 3) % 11], [(i + 5) % 11, i]):
            transformation["layer_idxes"] = t(np.array(choices))
            want = real.ops.convert_to_numpy(layer.transform_images(t(x), transformation, training=True))
            got = aug.RandAugmentPrim.augment(x, choices, seeds, value_range, (0.0, 0.0), "bilinear", data_format)
            np.testing.assert_allclose(got, want, atol=2e-3 * value_range[1], err_msg=str(choices))


def test_rand_augment_repeats_an_operations_draw():
    """As in Keras an operation chosen twice applies its one draw twice."""
    x = images((2, 6, 6, 3))
    seeds = np.array([5] * 11)
    once = aug.RandAugmentPrim.augment(x, [3], seeds, (0, 255), (0.2, 0.4), "bilinear", "channels_last")
    twice = aug.RandAugmentPrim.augment(x, [3, 3], seeds, (0, 255), (0.2, 0.4), "bilinear", "channels_last")
    again = aug.RandAugmentPrim.augment(once, [3], seeds, (0, 255), (0.2, 0.4), "bilinear", "channels_last")
    np.testing.assert_allclose(twice, again, atol=1e-4)
    assert not np.allclose(once, x)
    y = _train_output(layers.RandAugment(num_ops=3, factor=0.4), x)
    assert y.shape == x.shape and not np.allclose(y, x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("value_range", [(0, 255), (0, 1)])
def test_aug_mix_with_given_chains_matches_keras(value_range, data_format):
    """Keras chooses the operations with Python's random: both get the same chains, weights and
    mix, with factor 0 pinning every operation's draw."""
    real = require_keras()
    # Its own images, not the module's shared stream: which values sit on a step must not depend
    # on which tests ran before.
    x = (np.random.default_rng(29).random((3, 7, 6, 3)) * value_range[1]).astype("float32")
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = real.layers.AugMix(value_range=value_range, factor=0.0, data_format=data_format)
    t = real.ops.convert_to_tensor
    names = aug.AUG_MIX_OPS_ALL
    chains = [list(names[:4]), list(names[4:8]), list(names[8:]) + [names[0]], []]
    weights = np.array([0.1, 0.2, 0.3, 0.4], "float32")
    given = {
        "chain_mixing_weights": t(weights),
        "weight_sample": t(np.float32(0.35)),
        "chain_transforms": [
            [{"layer_name": n, "transformation": getattr(layer, n).get_random_transformation(t(x))} for n in chain]
            for chain in chains
        ],
    }
    want = real.ops.convert_to_numpy(layer.transform_images(t(x), given, training=True))
    steps = [[(n, 1) for n in chain] for chain in chains]
    got = aug.AugMixPrim.augmix(x, weights, 0.35, steps, value_range, (0.0, 0.0), "bilinear", data_format)
    # the chains end in step functions (posterization, equalization's lookup): a value on a step
    # in float32 may land on the other side of it, so a very few values may differ by a step
    close = np.isclose(got, want, rtol=0, atol=2e-3 * value_range[1])
    assert close.mean() > 0.98, np.abs(got - want).max()


def test_aug_mix_training():
    x = images((2, 6, 6, 3))
    y = _train_output(layers.AugMix(factor=0.4), x)
    assert y.shape == x.shape and not np.allclose(y, x) and y.min() >= 0 and y.max() <= 255
    y = layers.AugMix(all_ops=False, seed=3)(x[0], training=True)
    assert y.shape == x[0].shape


def test_random_draws():
    x = images((200, 5, 5, 3))
    y = _train_output(layers.RandomGaussianBlur((0.5, 0.5)), x)
    kept = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
    assert 60 < kept.sum() < 140
    x = 50 + images((200, 5, 5, 3), 150.0)  # a shift of at most 0.1 * 255 is never clipped
    shifts = (_train_output(layers.RandomColorJitter(brightness_factor=0.1), x) - x).reshape(200, -1)
    np.testing.assert_allclose(shifts, shifts[:, :1] + 0 * shifts, atol=1e-3)  # one shift per image
    assert len(set(np.round(shifts[:, 0], 3).tolist())) > 150 and np.abs(shifts).max() <= 25.5 + 1e-3
    for layer in (layers.RandomPerspective((0.5, 0.5), scale=0.5), layers.RandomElasticTransform((0.5, 0.5))):
        y = _train_output(layer, x)
        kept = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
        assert 60 < kept.sum() < 140


def test_gradients():
    from irtool.train.autodiff import GradientProgram

    x = images((4, 5, 5, 3), 1.0)
    for layer in (
        layers.RandomGaussianBlur(0.7, value_range=(-9, 9)),
        layers.RandomGaussianBlur(0.7, kernel_size=5, value_range=(-9, 9), data_format="channels_first"),
        layers.RandomColorJitter(value_range=(-9, 9), brightness_factor=0.1, contrast_factor=0.5),
        layers.MixUp(0.5),
        layers.CutMix(),
    ):
        inputs = keras.Input((5, 5, 3))
        model = keras.Model(inputs, layers.Dense(1)(layer(inputs)))
        program = GradientProgram(model.graph, model.graph.inputs, training=True, rng=np.random.default_rng(1))
        _, (g,) = program.run([x])
        v = RNG.standard_normal(x.shape)
        eps = 1e-3

        def loss(z, model=model):
            (y,), _ = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(1)).run([z])
            return float(np.sum(y))

        numeric = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
        np.testing.assert_allclose(np.sum(g * v), numeric, rtol=3e-2, atol=3e-2, err_msg=type(layer).__name__)


def test_fit_and_keras_written_model(tmp_path):
    real = require_keras()
    inputs = real.Input((8, 8, 3))
    h = real.layers.RandomGaussianBlur(0.5, kernel_size=5, sigma=(0.2, 0.8), seed=1)(inputs)
    h = real.layers.RandomColorJitter(brightness_factor=0.2, contrast_factor=0.3, saturation_factor=0.5)(h)
    h = real.layers.RandomColorJitter(value_range=(0, 255), hue_factor=0.1, seed=4)(h)
    h = real.layers.RandomPerspective(0.5, scale=0.3, fill_value=1.0)(h)
    h = real.layers.MixUp(0.3, seed=2)(h)
    h = real.layers.CutMix(0.5)(h)
    h = real.layers.RandomElasticTransform(0.5, scale=0.4, fill_mode="nearest")(h)
    h = real.layers.RandAugment(num_ops=2, factor=0.3, seed=5)(h)
    h = real.layers.AugMix(num_chains=2, factor=0.2, all_ops=False)(h)
    h = real.layers.Conv2D(4, 3)(h)
    theirs = real.Model(inputs, real.layers.Dense(2, activation="softmax")(real.layers.GlobalAveragePooling2D()(h)))
    theirs.save(tmp_path / "aug.keras")
    ours = irtool.models.load_model(tmp_path / "aug.keras")
    x = images((4, 8, 8, 3))
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    for mine, keras_layer in zip(ours.layers[1:10], theirs.layers[1:10]):
        as_json = json.loads(json.dumps(keras_layer.get_config()))
        assert_same_config(json.loads(json.dumps(mine.get_config())), as_json, ignore=("dtype",))
    assert_onnx_parity(ours, x, atol=1e-4)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = ours.fit(images((16, 8, 8, 3)), RNG.integers(0, 2, 16), epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert_onnx_parity(ours, x, atol=1e-4)
