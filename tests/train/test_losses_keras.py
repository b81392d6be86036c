"""Losses against real Keras 3 (torch backend): same random inputs, every reduction and weighting."""

import numpy as np
import pytest

from irtool import losses  # noqa: E402

from ..harness import require_keras

keras = require_keras()

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(7)
N, C = 8, 5
Y = RNG.random((N, C)).astype("float32")
P = RNG.uniform(0.0, 1.0, (N, C)).astype("float32")
PROBS = (P / P.sum(-1, keepdims=True)).astype("float32")
LOGITS = (RNG.standard_normal((N, C)) * 4).astype("float32")
LABELS = RNG.integers(0, C, N)
ONE_HOT = np.eye(C, dtype="float32")[LABELS]
BIN = RNG.integers(0, 2, (N, C)).astype("float32")
P1 = RNG.random((N, 1)).astype("float32")
B1 = RNG.integers(0, 2, N).astype("float32")
SEQ_T, SEQ_P = RNG.random((N, 3, C)).astype("float32"), RNG.random((N, 3, C)).astype("float32")
WEIGHTS = {
    "none": None,
    "per_sample": RNG.uniform(0, 2, N).astype("float32"),
    "column": RNG.uniform(0, 2, (N, 1)).astype("float32"),
    "zeros": np.zeros(N, "float32"),
}

CASES = [
    ("MeanSquaredError", {}, Y, P),
    ("MeanAbsoluteError", {}, Y, P),
    ("MeanAbsolutePercentageError", {}, Y, P),
    ("MeanSquaredLogarithmicError", {}, Y, LOGITS),
    ("CosineSimilarity", {}, Y, LOGITS),
    ("CosineSimilarity", {"axis": 0}, Y, LOGITS),
    ("Huber", {}, Y, LOGITS),
    ("Huber", {"delta": 0.25}, Y, LOGITS),
    ("LogCosh", {}, Y, LOGITS),
    ("Hinge", {}, BIN, LOGITS),
    ("Hinge", {}, BIN * 2 - 1, LOGITS),
    ("SquaredHinge", {}, BIN, LOGITS),
    ("CategoricalHinge", {}, ONE_HOT, LOGITS),
    ("KLDivergence", {}, PROBS[::-1].copy(), PROBS),
    ("Poisson", {}, Y, P),
    ("BinaryCrossentropy", {}, BIN, P),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, BIN, P),
    ("BinaryCrossentropy", {"from_logits": True}, BIN, LOGITS * 10),
    ("BinaryCrossentropy", {}, B1, P1),
    ("BinaryCrossentropy", {"axis": 0}, BIN, P),
    ("CategoricalCrossentropy", {}, ONE_HOT, PROBS),
    ("CategoricalCrossentropy", {}, ONE_HOT, P),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, ONE_HOT, PROBS),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.3}, ONE_HOT, LOGITS),
    ("CategoricalCrossentropy", {"axis": 0}, ONE_HOT, PROBS),
    ("SparseCategoricalCrossentropy", {}, LABELS, PROBS),
    ("SparseCategoricalCrossentropy", {}, LABELS[:, None], P),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, LABELS, LOGITS),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 2}, LABELS, LOGITS),
    ("MeanSquaredError", {}, SEQ_T, SEQ_P),
    ("CategoricalCrossentropy", {}, SEQ_T, SEQ_P),
]
REDUCTIONS = ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none", None]


def _keras(value):
    return keras.ops.convert_to_numpy(value)


@pytest.mark.parametrize("weights", sorted(WEIGHTS))
@pytest.mark.parametrize("name, kwargs, y_true, y_pred", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_loss_classes_match_keras(name, kwargs, y_true, y_pred, weights):
    sw = WEIGHTS[weights]
    for reduction in REDUCTIONS:
        try:
            want = getattr(keras.losses, name)(reduction=reduction, **kwargs)(y_true, y_pred, sample_weight=sw)
        except (RuntimeError, ValueError):  # weights that do not broadcast to the losses
            with pytest.raises(ValueError):
                getattr(losses, name)(reduction=reduction, **kwargs)(y_true, y_pred, sample_weight=sw)
            continue
        want = _keras(want)
        got = getattr(losses, name)(reduction=reduction, **kwargs)(y_true, y_pred, sample_weight=sw)
        assert np.shape(got) == want.shape, reduction
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=str(reduction))


FUNCTIONS = [
    ("mean_squared_error", {}, Y, P),
    ("mean_absolute_error", {}, Y, P),
    ("mean_absolute_percentage_error", {}, Y, P),
    ("mean_squared_logarithmic_error", {}, Y, P),
    ("cosine_similarity", {}, Y, LOGITS),
    ("huber", {"delta": 0.5}, Y, LOGITS),
    ("log_cosh", {}, Y, LOGITS),
    ("hinge", {}, BIN, LOGITS),
    ("squared_hinge", {}, BIN, LOGITS),
    ("categorical_hinge", {}, ONE_HOT, LOGITS),
    ("kl_divergence", {}, ONE_HOT, PROBS),
    ("poisson", {}, Y, P),
    ("binary_crossentropy", {"from_logits": True}, BIN, LOGITS),
    ("categorical_crossentropy", {"label_smoothing": 0.1}, ONE_HOT, PROBS),
    ("sparse_categorical_crossentropy", {"from_logits": True}, LABELS, LOGITS),
]


@pytest.mark.parametrize("name, kwargs, y_true, y_pred", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_loss_functions_match_keras(name, kwargs, y_true, y_pred):
    want = _keras(getattr(keras.losses, name)(y_true, y_pred, **kwargs))
    np.testing.assert_allclose(getattr(losses, name)(y_true, y_pred, **kwargs), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("alias", ["mse", "MSE", "mae", "MAE", "mape", "MAPE", "msle", "MSLE", "kld", "KLD", "bce"])
def test_aliases_match_keras(alias):
    ours, theirs = losses.get(alias), keras.losses.get(alias)
    assert ours.__name__ == theirs.__name__
    t, p = (BIN, P) if alias == "bce" else (PROBS[::-1].copy(), PROBS)
    np.testing.assert_allclose(ours(t, p), _keras(theirs(t, p)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "loss",
    [
        "BinaryCrossentropy",
        "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy",
        "MeanSquaredError",
        "Huber",
        "KLDivergence",
        "CosineSimilarity",
    ],
)
def test_configs_and_names_match_keras(loss):
    ours, theirs = getattr(losses, loss)(), getattr(keras.losses, loss)()
    assert ours.name == theirs.name
    theirs_config = theirs.get_config()
    ours_config = ours.get_config()
    # Keras drops Huber's delta and CosineSimilarity's axis from the config (they do not round-trip);
    # irtool keeps them.
    extra = {"delta", "axis"} if loss in ("Huber", "CosineSimilarity") else set()
    assert {k: v for k, v in ours_config.items() if k not in extra} == theirs_config
    assert losses.serialize(ours)["class_name"] == keras.losses.serialize(theirs)["class_name"]


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none"])
def test_masked_predictions_match_keras(reduction):
    """A Keras mask on y_pred (as Embedding(mask_zero=True) leaves) reweights the reduction."""
    import torch
    from keras.src.backend import set_keras_mask

    import irtool

    mask = np.array([[True, True, False, False], [True, True, True, False]])
    yt, yp = RNG.random((2, 4, 3)).astype("float32"), RNG.random((2, 4, 3)).astype("float32")
    sw = RNG.random((2, 4)).astype("float32")
    theirs = torch.tensor(yp)
    set_keras_mask(theirs, torch.tensor(mask))
    want = _keras(keras.losses.MeanSquaredError(reduction=reduction)(yt, theirs, sample_weight=sw))
    # irtool: the mask rides on the symbolic prediction.
    t, p, m, w = (irtool.Input((4, 3)), irtool.Input((4, 3)), irtool.Input((4,), dtype="bool"), irtool.Input((4,)))
    p2 = irtool.ops.multiply(p, 1.0)
    p2._keras_mask = m
    model = irtool.Model([t, p, m, w], losses.MeanSquaredError(reduction=reduction)(t, p2, sample_weight=w))
    np.testing.assert_allclose(model([yt, yp, mask, sw]), want, rtol=1e-6, atol=1e-6)
