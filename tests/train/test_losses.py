"""Losses: closed-form values (plain NumPy references), reductions, sample weights, symbolic tracing,
gradients, lookup and serialization."""

import numpy as np
import pytest

import irtool as keras
from irtool import losses
from irtool.train.losses import resolve_loss

from .gradcheck import check_gradients

EPS = 1e-7
RNG = np.random.default_rng(0)
N, C = 6, 4
Y = RNG.random((N, C)).astype("float32")
P = RNG.uniform(0.05, 0.95, (N, C)).astype("float32")
PROBS = (P / P.sum(-1, keepdims=True)).astype("float32")
LOGITS = (RNG.standard_normal((N, C)) * 3).astype("float32")
LABELS = RNG.integers(0, C, N)
ONE_HOT = np.eye(C, dtype="float32")[LABELS]
BIN = RNG.integers(0, 2, (N, C)).astype("float32")
W = RNG.uniform(0.1, 2.0, N).astype("float32")


def _log_softmax(x):
    x = x.astype("float64")
    s = x - x.max(-1, keepdims=True)
    return s - np.log(np.exp(s).sum(-1, keepdims=True))


def _softplus(x):
    return np.logaddexp(0.0, x.astype("float64"))


def _hinge_labels(y):
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


def _normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPS)


REFERENCES = {
    "MeanSquaredError": (Y, P, lambda t, p: ((t - p) ** 2).mean(-1)),
    "MeanAbsoluteError": (Y, P, lambda t, p: np.abs(t - p).mean(-1)),
    "MeanAbsolutePercentageError": (Y, P, lambda t, p: 100 * np.abs((t - p) / np.maximum(np.abs(t), EPS)).mean(-1)),
    "MeanSquaredLogarithmicError": (
        Y,
        P,
        lambda t, p: ((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2).mean(-1),
    ),
    "CosineSimilarity": (Y, LOGITS, lambda t, p: -(_normalize(t) * _normalize(p)).sum(-1)),
    "Huber": (
        Y,
        LOGITS,
        lambda t, p: np.where(np.abs(p - t) <= 1.0, 0.5 * (p - t) ** 2, np.abs(p - t) - 0.5).mean(-1),
    ),
    "LogCosh": (Y, LOGITS, lambda t, p: np.log(np.cosh(p.astype("float64") - t)).mean(-1)),
    "Hinge": (BIN, LOGITS, lambda t, p: np.maximum(1 - _hinge_labels(t) * p, 0).mean(-1)),
    "SquaredHinge": (BIN, LOGITS, lambda t, p: (np.maximum(1 - _hinge_labels(t) * p, 0) ** 2).mean(-1)),
    "CategoricalHinge": (
        ONE_HOT,
        LOGITS,
        lambda t, p: np.maximum(((1 - t) * p).max(-1) - (t * p).sum(-1) + 1, 0),
    ),
    "KLDivergence": (
        ONE_HOT,
        PROBS,
        lambda t, p: (np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) / np.clip(p, EPS, 1))).sum(-1),
    ),
    "Poisson": (Y, P, lambda t, p: (p - t * np.log(p + EPS)).mean(-1)),
    "BinaryCrossentropy": (BIN, P, lambda t, p: -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)),
    "CategoricalCrossentropy": (ONE_HOT, PROBS, lambda t, p: -(t * np.log(p / p.sum(-1, keepdims=True))).sum(-1)),
    "SparseCategoricalCrossentropy": (LABELS, PROBS, lambda t, p: -np.log(p[np.arange(len(t)), t])),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_closed_form_per_sample_and_reductions(name):
    y_true, y_pred, ref = REFERENCES[name]
    per_sample = ref(y_true, y_pred)
    cls = getattr(losses, name)
    np.testing.assert_allclose(cls(reduction="none")(y_true, y_pred), per_sample, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cls()(y_true, y_pred), per_sample.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cls(reduction="sum")(y_true, y_pred), per_sample.sum(), rtol=1e-5, atol=1e-5)
    # sum_over_batch_size divides by the number of elements, NOT by the sum of the weights.
    np.testing.assert_allclose(cls()(y_true, y_pred, sample_weight=W), (per_sample * W).sum() / N, rtol=1e-5)
    np.testing.assert_allclose(
        cls(reduction="mean_with_sample_weight")(y_true, y_pred, sample_weight=W),
        (per_sample * W).sum() / W.sum(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(cls(reduction=None)(y_true, y_pred, sample_weight=W), per_sample * W, rtol=1e-5)
    # The function form returns the per-sample values.
    fn = cls().fn
    assert fn is getattr(losses, fn.__name__)
    np.testing.assert_allclose(fn(y_true, y_pred), per_sample, rtol=1e-5, atol=1e-6)


def test_results_are_float32_numpy():
    out = losses.MeanSquaredError()(Y.astype("float64"), P.astype("float64"))
    assert isinstance(out, (np.ndarray, np.floating)) and out.dtype == np.float32
    assert losses.MeanSquaredError(dtype="float64")(Y, P).dtype == np.float64
    assert losses.mean_squared_error([[1.0, 2.0]], [[1.0, 4.0]]).dtype == np.float32


def test_sample_weight_shapes_broadcast_like_keras():
    mse = losses.MeanSquaredError()
    per_sample = ((Y - P) ** 2).mean(-1)
    np.testing.assert_allclose(mse(Y, P, sample_weight=W[:, None]), (per_sample * W).mean(), rtol=1e-6)
    np.testing.assert_allclose(mse(Y, P, sample_weight=2.0), 2 * per_sample.mean(), rtol=1e-6)
    # Per-timestep weights on sequence losses: (N, T) losses times (N, T) or (N,) weights.
    yt, yp = RNG.random((3, 5, 2)).astype("float32"), RNG.random((3, 5, 2)).astype("float32")
    steps = ((yt - yp) ** 2).mean(-1)
    sw = RNG.random((3, 5)).astype("float32")
    np.testing.assert_allclose(mse(yt, yp, sample_weight=sw), (steps * sw).sum() / steps.size, rtol=1e-6)
    np.testing.assert_allclose(mse(yt, yp, sample_weight=sw[:, :1]), (steps * sw[:, :1]).mean(), rtol=1e-6)


def test_rank_mismatch_squeezes_or_expands():
    yt, yp = RNG.random(N).astype("float32"), RNG.random((N, 1)).astype("float32")
    np.testing.assert_allclose(losses.MeanSquaredError()(yt, yp), ((yt - yp[:, 0]) ** 2).mean(), rtol=1e-6)
    labels = (yt > 0.5).astype("float32")
    want = -(labels * np.log(yp[:, 0]) + (1 - labels) * np.log(1 - yp[:, 0])).mean()
    np.testing.assert_allclose(losses.BinaryCrossentropy()(labels, yp), want, rtol=1e-5)


def test_crossentropy_clips_probabilities_by_epsilon():
    t = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    p = np.array([[0.0, 1.0], [0.0, 1.0]], "float32")
    bce = losses.BinaryCrossentropy(reduction=None)(t, p)
    hi = np.float32(1 - EPS)
    pc = np.clip(p, np.float32(EPS), hi)  # float32, as the loss computes
    want = -(t * np.log(pc) + (1 - t) * np.log(1 - pc)).mean(-1)
    np.testing.assert_allclose(bce, want, rtol=1e-6)
    assert np.all(np.isfinite(bce)) and bce[0] > 15
    cce = losses.CategoricalCrossentropy(reduction=None)(t, p)
    np.testing.assert_allclose(cce, [-np.log(np.float32(EPS)), -np.log(hi)], rtol=1e-5)
    # Unnormalised probabilities are renormalised first.
    np.testing.assert_allclose(
        losses.categorical_crossentropy(ONE_HOT, 3 * PROBS), losses.categorical_crossentropy(ONE_HOT, PROBS), rtol=1e-6
    )


def test_label_smoothing():
    ls = 0.2
    t = BIN * (1 - ls) + 0.5 * ls
    want = -(t * np.log(P) + (1 - t) * np.log(1 - P)).mean(-1)
    np.testing.assert_allclose(losses.BinaryCrossentropy(label_smoothing=ls, reduction=None)(BIN, P), want, rtol=1e-5)
    t = ONE_HOT * (1 - ls) + ls / C
    want = -(t * np.log(PROBS)).sum(-1)
    got = losses.CategoricalCrossentropy(label_smoothing=ls, reduction=None)(ONE_HOT, PROBS)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_from_logits_is_stable():
    want = (_softplus(LOGITS) - LOGITS * BIN).mean(-1)
    got = losses.BinaryCrossentropy(from_logits=True, reduction=None)(BIN, LOGITS)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    big = np.array([[1000.0, -1000.0]], "float32")
    np.testing.assert_allclose(losses.binary_crossentropy([[0.0, 1.0]], big, from_logits=True), [1000.0])
    want = -(ONE_HOT * _log_softmax(LOGITS)).sum(-1)
    np.testing.assert_allclose(losses.categorical_crossentropy(ONE_HOT, LOGITS, from_logits=True), want, rtol=1e-5)
    want = -_log_softmax(LOGITS)[np.arange(N), LABELS]
    got = losses.sparse_categorical_crossentropy(LABELS[:, None], LOGITS, from_logits=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(losses.categorical_crossentropy([[0.0, 1.0]], big, from_logits=True), [2000.0])


def test_sparse_ignore_class_averages_over_valid_entries():
    labels = np.array([0, 2, 1, 2, 3, 2])
    per = -_log_softmax(LOGITS)[np.arange(N), labels]
    valid = labels != 2
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2)
    np.testing.assert_allclose(loss(labels, LOGITS), per[valid].mean(), rtol=1e-5)
    np.testing.assert_allclose(loss(labels, LOGITS, sample_weight=W), (per * W)[valid].sum() / valid.sum(), rtol=1e-5)
    none = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2, reduction="none")
    np.testing.assert_allclose(none(labels, LOGITS), np.where(valid, per, 0), rtol=1e-5)
    fn = losses.sparse_categorical_crossentropy(labels, PROBS, ignore_class=2)
    np.testing.assert_allclose(
        fn, np.where(valid, -np.log(PROBS[np.arange(N), np.where(valid, labels, 0)]), 0), rtol=1e-5
    )


def test_huber_delta_and_hinge_non_binary_labels():
    err = LOGITS - Y
    want = np.where(np.abs(err) <= 0.5, 0.5 * err**2, 0.5 * np.abs(err) - 0.125).mean(-1)
    np.testing.assert_allclose(losses.Huber(delta=0.5, reduction=None)(Y, LOGITS), want, rtol=1e-5)
    signs = np.where(BIN > 0, 1.0, -1.0).astype("float32")  # already -1/1: used as given
    np.testing.assert_allclose(losses.hinge(signs, LOGITS), np.maximum(1 - signs * LOGITS, 0).mean(-1), rtol=1e-6)


def test_shape_errors_and_bad_reduction():
    with pytest.raises(ValueError, match="must have the same shape"):
        losses.categorical_crossentropy(ONE_HOT, PROBS[:, :3])
    with pytest.raises(ValueError, match="up until the last dimension"):
        losses.sparse_categorical_crossentropy(LABELS[:3], PROBS)
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.warns(SyntaxWarning, match="binary_crossentropy"):
        losses.categorical_crossentropy(BIN[:, :1], P[:, :1])


# ---------------------------------------------------------------------------------------
# Symbolic use: the losses trace into a graph the executor runs (and the trainer differentiates).

SYMBOLIC = [
    ("MeanSquaredError", {}, Y, P),
    ("Huber", {"delta": 0.7}, Y, LOGITS),
    ("LogCosh", {}, Y, LOGITS),
    ("CosineSimilarity", {}, Y, LOGITS),
    ("Hinge", {}, BIN, LOGITS),
    ("CategoricalHinge", {}, ONE_HOT, LOGITS),
    ("KLDivergence", {}, ONE_HOT, PROBS),
    ("Poisson", {}, Y, P),
    ("MeanAbsolutePercentageError", {}, Y, P),
    ("MeanSquaredLogarithmicError", {}, Y, P),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, BIN, P),
    ("BinaryCrossentropy", {"from_logits": True}, BIN, LOGITS),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, ONE_HOT, PROBS),
    ("CategoricalCrossentropy", {"from_logits": True}, ONE_HOT, LOGITS),
]


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", "sum", "none"])
@pytest.mark.parametrize("name, kwargs, y_true, y_pred", SYMBOLIC, ids=[f"{s[0]}{s[1]}" for s in SYMBOLIC])
def test_symbolic_matches_eager(name, kwargs, y_true, y_pred, reduction):
    loss = getattr(losses, name)(reduction=reduction, **kwargs)
    t, p, w = keras.Input((C,)), keras.Input((C,)), keras.Input(())
    out = loss(t, p, sample_weight=w)
    assert keras.ops.is_symbolic(out)
    model = keras.Model([t, p, w], out)
    got = model([y_true, y_pred, W])
    np.testing.assert_allclose(got, loss(y_true, y_pred, sample_weight=W), rtol=1e-6, atol=1e-7)
    if reduction == "none":
        np.testing.assert_allclose(model.predict([y_true, y_pred, W], verbose=0, batch_size=4), got, rtol=1e-6)


def test_symbolic_sparse_with_integer_labels_and_ignore_class():
    labels = np.array([0, 1, 2, 3, 1, 1], "int32")
    t, p = keras.Input((), dtype="int32"), keras.Input((C,))
    for kwargs in [{}, {"from_logits": True, "ignore_class": 1}]:
        loss = losses.SparseCategoricalCrossentropy(**kwargs)
        logits_or_probs = LOGITS if kwargs else PROBS
        model = keras.Model([t, p], loss(t, p))
        np.testing.assert_allclose(model([labels, logits_or_probs]), loss(labels, logits_or_probs), rtol=1e-6)


def test_symbolic_loss_of_a_model_output():
    x = keras.Input((3,))
    y = keras.layers.Dense(C, activation="softmax")(x)
    t = keras.Input((C,))
    model = keras.Model([x, t], losses.CategoricalCrossentropy()(t, y))
    xs = RNG.random((N, 3)).astype("float32")
    probs = keras.Model(x, y)(xs)
    np.testing.assert_allclose(model([xs, ONE_HOT]), losses.CategoricalCrossentropy()(ONE_HOT, probs), rtol=1e-6)


GRADIENT_CASES = [
    ("MeanSquaredError", {}, Y, P),
    ("MeanAbsolutePercentageError", {}, Y, P),
    ("MeanSquaredLogarithmicError", {}, Y, P),
    ("CosineSimilarity", {}, Y, LOGITS),
    ("Huber", {"delta": 0.3}, Y, LOGITS),
    ("LogCosh", {}, Y, LOGITS),
    ("SquaredHinge", {}, ONE_HOT, LOGITS),
    ("CategoricalHinge", {}, ONE_HOT, LOGITS),
    ("KLDivergence", {}, ONE_HOT * 0.9 + 0.02, PROBS),
    ("Poisson", {}, Y, P),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, BIN, P),
    ("BinaryCrossentropy", {"from_logits": True}, BIN, LOGITS),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, ONE_HOT, PROBS),
    ("CategoricalCrossentropy", {"from_logits": True}, ONE_HOT, LOGITS),
    ("SparseCategoricalCrossentropy", {}, LABELS, PROBS),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 1}, LABELS, LOGITS),
]


@pytest.mark.parametrize("name, kwargs, y_true, y_pred", GRADIENT_CASES, ids=[f"{g[0]}{g[1]}" for g in GRADIENT_CASES])
def test_gradients_wrt_predictions(name, kwargs, y_true, y_pred):
    arrays = [y_true.astype("float64") if y_true.dtype.kind == "f" else y_true, y_pred.astype("float64"), W[:, None]]
    arrays[2] = arrays[2].astype("float64")[:, 0]

    def build(t, p, w):
        return getattr(losses, name)(dtype="float64", **kwargs)(t, p, sample_weight=w)

    check_gradients(build, arrays, wrt=[1])


# ---------------------------------------------------------------------------------------
# Names, lookup, serialization


def test_names_and_auto_naming():
    assert losses.Loss().name == "loss" and losses.Loss().name == "loss_1"
    assert losses.MeanSquaredError().name == "mean_squared_error"
    assert losses.Huber().name == "huber_loss"
    assert losses.LogCosh(name="lc").name == "lc"


@pytest.mark.parametrize(
    "alias, fn",
    [
        ("mse", losses.mean_squared_error),
        ("MSE", losses.mean_squared_error),
        ("mae", losses.mean_absolute_error),
        ("MAE", losses.mean_absolute_error),
        ("mape", losses.mean_absolute_percentage_error),
        ("msle", losses.mean_squared_logarithmic_error),
        ("kld", losses.kl_divergence),
        ("bce", losses.binary_crossentropy),
        ("BCE", losses.binary_crossentropy),
        ("categorical_crossentropy", losses.categorical_crossentropy),
        ("sparse_categorical_crossentropy", losses.sparse_categorical_crossentropy),
        ("huber", losses.huber),
        ("log_cosh", losses.log_cosh),
    ],
)
def test_get_aliases(alias, fn):
    assert losses.get(alias) is fn
    assert getattr(losses, alias, fn) is fn


def test_get_classes_instances_callables_and_errors():
    assert isinstance(losses.get("Huber"), losses.Huber)
    assert isinstance(losses.get(losses.Poisson), losses.Poisson)
    inst = losses.BinaryCrossentropy(from_logits=True)
    assert losses.get(inst) is inst
    assert losses.get(None) is None

    def custom(t, p):
        return keras.ops.mean(t * p, axis=-1)

    assert losses.get(custom) is custom
    cfg = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    assert losses.get(cfg).from_logits is True
    with pytest.raises(ValueError, match="Could not interpret loss identifier: nope"):
        losses.get("nope")


def test_serialize_matches_keras_dicts():
    got = losses.serialize(losses.BinaryCrossentropy(from_logits=True))
    assert got == {
        "module": "keras.losses",
        "class_name": "BinaryCrossentropy",
        "config": {
            "name": "binary_crossentropy",
            "reduction": "sum_over_batch_size",
            "from_logits": True,
            "label_smoothing": 0.0,
            "axis": -1,
        },
        "registered_name": None,
    }
    assert losses.serialize(losses.mean_squared_error) == {
        "module": "builtins",
        "class_name": "function",
        "config": "mean_squared_error",
        "registered_name": "function",
    }
    sparse = losses.SparseCategoricalCrossentropy(ignore_class=3).get_config()
    assert sparse == {
        "name": "sparse_categorical_crossentropy",
        "reduction": "sum_over_batch_size",
        "from_logits": False,
        "ignore_class": 3,
    }
    wrapped = losses.serialize(losses.LossFunctionWrapper(losses.huber, name="h", delta=2.0))
    assert wrapped["class_name"] == "LossFunctionWrapper" and wrapped["config"]["delta"] == 2.0
    assert wrapped["config"]["fn"]["config"] == "huber"


@pytest.mark.parametrize(
    "loss",
    [
        losses.Huber(delta=2.5, reduction="sum"),
        losses.CategoricalCrossentropy(label_smoothing=0.1, name="cce"),
        losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
        losses.LossFunctionWrapper(losses.huber, name="h", delta=2.0),
    ],
)
def test_round_trip(loss):
    back = losses.deserialize(losses.serialize(loss))
    assert type(back) is type(loss) and back.get_config() == loss.get_config()
    y_true, y_pred = (LABELS, LOGITS) if isinstance(loss, losses.SparseCategoricalCrossentropy) else (ONE_HOT, PROBS)
    np.testing.assert_allclose(back(y_true, y_pred), loss(y_true, y_pred))


def test_deserialize_names_and_functions():
    assert losses.deserialize("mse") is losses.mean_squared_error
    assert losses.deserialize(losses.serialize(losses.poisson)) is losses.poisson
    assert isinstance(losses.deserialize("Poisson"), losses.Poisson)


@pytest.mark.parametrize(
    "ident, t_shape, p_shape, fn",
    [
        ("crossentropy", (None, 1), (None, 1), "binary_crossentropy"),
        ("ce", (None,), (None, 5), "sparse_categorical_crossentropy"),
        ("CE", (None, 1), (None, 5), "sparse_categorical_crossentropy"),
        ("crossentropy", (None, 5), (None, 5), "categorical_crossentropy"),
    ],
)
def test_resolve_loss_crossentropy_by_shapes(ident, t_shape, p_shape, fn):
    loss = resolve_loss(ident, t_shape, p_shape)
    assert isinstance(loss, losses.LossFunctionWrapper)
    assert loss.fn is getattr(losses, fn) and loss.name == ident


def test_resolve_loss_wraps_functions_and_keeps_instances():
    assert resolve_loss(None, (1,), (1,)) is None
    mse = resolve_loss("mse", (None, 1), (None, 1))
    assert mse.name == "mse" and mse.fn is losses.mean_squared_error
    inst = losses.Huber()
    assert resolve_loss(inst, (None, 1), (None, 1)) is inst
    assert isinstance(resolve_loss("Huber", (None, 1), (None, 1)), losses.Huber)
    named = resolve_loss(losses.log_cosh, np.zeros((2, 1)), np.zeros((2, 1)))
    assert named.name == "log_cosh" and named.reduction == "sum_over_batch_size"


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_masked_predictions_count_only_valid_entries(reduction):
    x = keras.Input((5,), dtype="int32")
    y = keras.layers.Dense(4)(keras.layers.Embedding(10, 3, mask_zero=True)(x))
    assert y._keras_mask is not None
    t, w = keras.Input((5,), dtype="int32"), keras.Input((5,))
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
    model = keras.Model([x, t, w], [loss(t, y, sample_weight=w), y])
    xs = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 0, 0]])
    ts = np.array([[1, 2, 0, 0, 0], [3, 1, 2, 0, 0]])
    ws = np.arange(1.0, 11.0, dtype="float32").reshape(2, 5)
    got, logits = model([xs, ts, ws])
    per = -_log_softmax(logits)[np.arange(2)[:, None], np.arange(5), ts] * ws
    valid = xs != 0
    want = {
        "sum_over_batch_size": per[valid].mean(),
        "sum": per[valid].sum(),
        "mean_with_sample_weight": per[valid].sum() / ws[valid].sum(),
    }[reduction]
    np.testing.assert_allclose(got, want, rtol=1e-5)
