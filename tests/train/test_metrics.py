"""Metrics: accumulation over several updates with weights, reset, closed-form and documented values,
confusion-matrix metrics, lookup, serialization and compile's resolution rule."""

import numpy as np
import pytest

from irtool import losses, metrics
from irtool.train.metrics import resolve_metric

RNG = np.random.default_rng(0)
N, C = 12, 4
PROBS = RNG.random((N, C)).astype("float32")
PROBS /= PROBS.sum(-1, keepdims=True)
LABELS = RNG.integers(0, C, N)
ONE_HOT = np.eye(C, dtype="float32")[LABELS]
W = RNG.uniform(0.1, 2.0, N).astype("float32")
Y = RNG.random((N, 3)).astype("float32")
P = RNG.random((N, 3)).astype("float32")


def _updates(metric, y_true, y_pred, weights=None, parts=3):
    for idx in np.array_split(np.arange(len(y_pred)), parts):
        metric.update_state(y_true[idx], y_pred[idx], sample_weight=None if weights is None else weights[idx])
    return metric.result()


def _weighted_mean(values, weights=None):
    return values.mean() if weights is None else (values * weights).sum() / weights.sum()


def test_mean_and_sum_accumulate_with_weights_and_reset():
    m = metrics.Mean()
    m.update_state([1.0, 2.0, 3.0])
    m.update_state([4.0], sample_weight=[3.0])
    np.testing.assert_allclose(m.result(), (1 + 2 + 3 + 12) / 6)
    assert [v.name for v in m.variables] == ["total", "count"]
    np.testing.assert_allclose([v.numpy() for v in m.variables], [18.0, 6.0])
    m.reset_state()
    assert m.result() == 0.0 and m.count.numpy() == 0.0
    s = metrics.Sum()
    s.update_state([[1.0, 2.0], [3.0, 4.0]], sample_weight=[1.0, 0.5])
    s.update_state(5.0)
    np.testing.assert_allclose(s.result(), 3 + 3.5 + 5)
    assert metrics.Mean(name="m")(2.0) == 2.0


def test_mean_weight_rules_for_multi_dimensional_values():
    values = RNG.random((4, 3)).astype("float32")
    m = metrics.Mean()
    m.update_state(values)  # per-sample means, count = 4 samples
    np.testing.assert_allclose(m.result(), values.mean(), rtol=1e-6)
    sw = RNG.random((4, 3)).astype("float32")
    m = metrics.Mean()
    m.update_state(values, sample_weight=sw)
    np.testing.assert_allclose(m.result(), (values * sw).sum() / sw.sum(), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_accuracy_variants(weighted):
    w = W if weighted else None
    pred_labels = PROBS.argmax(-1)
    hits = (pred_labels == LABELS).astype("float32")
    np.testing.assert_allclose(_updates(metrics.CategoricalAccuracy(), ONE_HOT, PROBS, w), _weighted_mean(hits, w))
    np.testing.assert_allclose(_updates(metrics.SparseCategoricalAccuracy(), LABELS, PROBS, w), _weighted_mean(hits, w))
    col = LABELS[:, None]
    np.testing.assert_allclose(_updates(metrics.SparseCategoricalAccuracy(), col, PROBS, w), _weighted_mean(hits, w))
    acc = _updates(metrics.Accuracy(), LABELS.astype("float32"), pred_labels.astype("float32"), w)
    np.testing.assert_allclose(acc, _weighted_mean(hits, w))
    p1 = PROBS[:, :1] * 2
    y1 = (LABELS[:, None] % 2).astype("float32")
    match = ((p1 > 0.3).astype("float32") == y1)[:, 0].astype("float32")
    np.testing.assert_allclose(_updates(metrics.BinaryAccuracy(threshold=0.3), y1, p1, w), _weighted_mean(match, w))


def test_binary_accuracy_documented_values():
    m = metrics.BinaryAccuracy()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(0.5)


def test_top_k_accuracy_counts_ties_like_keras():
    ranks = np.argsort(-PROBS, axis=-1)
    hits = np.array([LABELS[i] in ranks[i, :2] for i in range(N)], "float32")
    np.testing.assert_allclose(
        _updates(metrics.TopKCategoricalAccuracy(k=2), ONE_HOT, PROBS, W), _weighted_mean(hits, W)
    )
    got = _updates(metrics.SparseTopKCategoricalAccuracy(k=2), LABELS, PROBS)
    np.testing.assert_allclose(got, hits.mean())
    # A target tied with the k-th largest prediction counts as a hit (in_top_k's >= rule).
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([1, 0], [[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    assert m.result() == 0.5
    assert metrics.TopKCategoricalAccuracy().k == 5


@pytest.mark.parametrize("weighted", [False, True])
def test_regression_metrics(weighted):
    w = W if weighted else None
    se, ae = ((Y - P) ** 2).mean(-1), np.abs(Y - P).mean(-1)
    np.testing.assert_allclose(_updates(metrics.MeanSquaredError(), Y, P, w), _weighted_mean(se, w), rtol=1e-6)
    np.testing.assert_allclose(_updates(metrics.MeanAbsoluteError(), Y, P, w), _weighted_mean(ae, w), rtol=1e-6)
    rmse = _updates(metrics.RootMeanSquaredError(), Y, P, w)
    np.testing.assert_allclose(rmse, np.sqrt(_weighted_mean(se, w)), rtol=1e-6)
    cos = (Y * P).sum(-1) / np.linalg.norm(Y, axis=-1) / np.linalg.norm(P, axis=-1)
    np.testing.assert_allclose(_updates(metrics.CosineSimilarity(), Y, P, w), _weighted_mean(cos, w), rtol=1e-5)


def test_loss_metrics_and_wrapper():
    got = _updates(metrics.CategoricalCrossentropy(), ONE_HOT, PROBS, W)
    np.testing.assert_allclose(got, _weighted_mean(-np.log((ONE_HOT * PROBS).sum(-1)), W), rtol=1e-5)
    sparse = metrics.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        _updates(sparse, LABELS, np.log(PROBS)), -np.log(PROBS[np.arange(N), LABELS]).mean(), rtol=1e-5
    )
    wrapper = metrics.MeanMetricWrapper(losses.mean_squared_error, name="my_mse")
    np.testing.assert_allclose(_updates(wrapper, Y, P, W), _weighted_mean(((Y - P) ** 2).mean(-1), W), rtol=1e-6)
    assert wrapper.name == "my_mse" and wrapper._direction == "down"
    assert metrics.Accuracy()._direction == "up"


def test_sparse_crossentropy_metric_ignore_class_masks_weights():
    m = metrics.SparseCategoricalCrossentropy(ignore_class=1)
    per = -np.log(PROBS[np.arange(N), LABELS])
    valid = LABELS != 1
    m.update_state(LABELS, PROBS)  # no weights: ignored entries count as 0
    np.testing.assert_allclose(m.result(), np.where(valid, per, 0).mean(), rtol=1e-5)
    m.reset_state()
    m.update_state(LABELS, PROBS, sample_weight=W)  # with weights: ignored entries weigh 0
    np.testing.assert_allclose(m.result(), (per * W)[valid].sum() / W[valid].sum(), rtol=1e-5)


# ---------------------------------------------------------------------------------------
# Confusion-matrix metrics (values from Keras' documentation, and an independent reference)


@pytest.mark.parametrize(
    "cls, y_true, y_pred, plain, weighted",
    [
        ("FalsePositives", [0, 1, 0, 0], [0, 0, 1, 1], 2.0, 1.0),
        ("FalseNegatives", [0, 1, 1, 1], [0, 1, 0, 0], 2.0, 1.0),
        ("TrueNegatives", [0, 1, 0, 0], [1, 1, 0, 0], 2.0, 1.0),
        ("TruePositives", [0, 1, 1, 1], [1, 0, 1, 1], 2.0, 1.0),
        ("Precision", [0, 1, 1, 1], [1, 0, 1, 1], 2 / 3, 1.0),
        ("Recall", [0, 1, 1, 1], [1, 0, 1, 1], 2 / 3, 1.0),
        ("AUC", [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], 0.75, 1.0),
    ],
)
def test_documented_confusion_values(cls, y_true, y_pred, plain, weighted):
    m = getattr(metrics, cls)(num_thresholds=3) if cls == "AUC" else getattr(metrics, cls)()
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(plain, rel=1e-6)
    m.reset_state()
    m.update_state(y_true, y_pred, sample_weight=[0, 0, 1, 0] if cls != "AUC" else [1, 0, 0, 1])
    assert m.result() == pytest.approx(weighted, rel=1e-6)


def test_precision_top_k_documented_values():
    m = metrics.Precision(top_k=2)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == 0.0
    m = metrics.Precision(top_k=4)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == 0.5


def _counts(y, p, w, thresholds):
    pos = p[None, :] > np.asarray(thresholds)[:, None]
    tp = (pos * (y == 1) * w).sum(1)
    fp = (pos * (y == 0) * w).sum(1)
    fn = (~pos * (y == 1) * w).sum(1)
    tn = (~pos * (y == 0) * w).sum(1)
    return tp, fp, tn, fn


def _reference_auc(y, p, w, n=200, curve="ROC"):
    thresholds = [-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + 1e-7]
    tp, fp, tn, fn = _counts(y, p, w, thresholds)
    recall = tp / np.maximum(tp + fn, 1e-30)
    if curve == "ROC":
        x, h = fp / (fp + tn), recall
    else:
        x, h = recall, np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-30), 0)
    return np.sum((x[:-1] - x[1:]) * (h[:-1] + h[1:]) / 2)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("curve, method", [("ROC", "interpolation"), ("PR", "majoring")])
def test_auc_against_reference(weighted, curve, method):
    y = RNG.integers(0, 2, 300).astype("float32")
    p = np.clip(y * 0.3 + RNG.random(300) * 0.7, 0, 1).astype("float32")
    w = RNG.uniform(0.2, 2, 300).astype("float32") if weighted else np.ones(300, "float32")
    m = metrics.AUC(curve=curve, summation_method=method)
    got = _updates(m, y, p, w if weighted else None, parts=4)
    if method == "interpolation":
        np.testing.assert_allclose(got, _reference_auc(y, p, w, curve=curve), rtol=1e-5)
    else:
        thresholds = m.thresholds
        tp, fp, tn, fn = _counts(y, p, w, thresholds)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-30), 0)
        recall = tp / (tp + fn)
        want = np.sum((recall[:-1] - recall[1:]) * np.maximum(precision[:-1], precision[1:]))
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # ROC of a perfect ranking is 1, of an inverted one 0.
    perfect = metrics.AUC()
    perfect.update_state([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert perfect.result() == pytest.approx(1.0)
    m.reset_state()
    assert all(float(v.numpy().sum()) == 0 for v in m.variables)


def test_auc_multi_label_and_explicit_thresholds():
    y = RNG.integers(0, 2, (50, 3)).astype("float32")
    p = RNG.random((50, 3)).astype("float32")
    m = metrics.AUC(multi_label=True)
    m.update_state(y, p)
    per_label = [_reference_auc(y[:, j], p[:, j], np.ones(50)) for j in range(3)]
    np.testing.assert_allclose(m.result(), np.mean(per_label), rtol=1e-5)
    assert m.true_positives.shape == (200, 3)
    explicit = metrics.AUC(thresholds=[0.25, 0.5, 0.75])
    explicit.update_state(y[:, 0], p[:, 0])
    assert explicit.num_thresholds == 5 and explicit.thresholds[0] == pytest.approx(-1e-7)
    tp, fp, tn, fn = _counts(y[:, 0], p[:, 0], np.ones(50), explicit.thresholds)
    np.testing.assert_allclose(explicit.true_positives.numpy(), tp)
    np.testing.assert_allclose(explicit.false_negatives.numpy(), fn)


def test_precision_recall_thresholds_top_k_class_id():
    y = RNG.integers(0, 2, (N, C)).astype("float32")
    thresholds = [0.1, 0.3, 0.6]
    tp, fp, tn, fn = _counts(y.reshape(-1), PROBS.reshape(-1), np.ones(N * C), thresholds)
    prec = metrics.Precision(thresholds=thresholds)
    np.testing.assert_allclose(_updates(prec, y, PROBS), tp / (tp + fp), rtol=1e-6)
    rec = metrics.Recall(thresholds=thresholds)
    np.testing.assert_allclose(_updates(rec, y, PROBS), tp / (tp + fn), rtol=1e-6)
    cls = metrics.Recall(class_id=2)
    tp, _, _, fn = _counts(y[:, 2], PROBS[:, 2], np.ones(N), [0.5])
    np.testing.assert_allclose(_updates(cls, y, PROBS), (tp / np.maximum(tp + fn, 1))[0])
    top = metrics.Precision(top_k=1)
    picked = y[np.arange(N), PROBS.argmax(-1)]
    np.testing.assert_allclose(_updates(top, y, PROBS), picked.mean(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]"):
        metrics.Precision(thresholds=[0.5, 1.5])


def test_auc_argument_errors():
    with pytest.raises(ValueError, match="Invalid AUC curve value"):
        metrics.AUC(curve="XY")
    with pytest.raises(ValueError, match="summation method"):
        metrics.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)


# ---------------------------------------------------------------------------------------
# Lookup, serialization, resolution


@pytest.mark.parametrize(
    "ident, cls",
    [
        ("mse", "MeanSquaredError"),
        ("MAE", "MeanAbsoluteError"),
        ("mape", "MeanAbsolutePercentageError"),
        ("auc", "AUC"),
        ("AUC", "AUC"),
        ("precision", "Precision"),
        ("binary_accuracy", "BinaryAccuracy"),
        ("top_k_categorical_accuracy", "TopKCategoricalAccuracy"),
        ("root_mean_squared_error", "RootMeanSquaredError"),
        ("bce", "BinaryCrossentropy"),
        ("kl_divergence", "KLDivergence"),
    ],
)
def test_get_by_name(ident, cls):
    assert type(metrics.get(ident)) is getattr(metrics, cls)


def test_get_errors_and_passthrough():
    with pytest.raises(ValueError, match="Could not interpret metric identifier: nope"):
        metrics.get("nope")
    m = metrics.AUC()
    assert metrics.get(m) is m and metrics.get(None) is None
    assert metrics.get(losses.hinge) is losses.hinge


@pytest.mark.parametrize(
    "ident, t_shape, p_shape, cls",
    [
        ("accuracy", (None, 1), (None, 1), "BinaryAccuracy"),
        ("acc", (None,), (None, 1), "BinaryAccuracy"),
        ("accuracy", (None,), (None, 10), "SparseCategoricalAccuracy"),
        ("Accuracy", (None, 1), (None, 10), "SparseCategoricalAccuracy"),
        ("acc", (None, 10), (None, 10), "CategoricalAccuracy"),
        ("accuracy", (None, 5, 10), (None, 5, 10), "CategoricalAccuracy"),
    ],
)
def test_resolve_accuracy_by_shapes_keeps_the_users_name(ident, t_shape, p_shape, cls):
    m = resolve_metric(ident, t_shape, p_shape)
    assert type(m) is getattr(metrics, cls) and m.name == ident


def test_resolve_metric_names_and_wrapping():
    assert resolve_metric("mse", (None, 1), (None, 1)).name == "mse"
    assert type(resolve_metric("mse", (None, 1), (None, 1))) is metrics.MeanSquaredError
    wrapped = resolve_metric(losses.mean_absolute_error, np.zeros((2, 1)), np.zeros((2, 1)))
    assert type(wrapped) is metrics.MeanMetricWrapper and wrapped.name == "mean_absolute_error"
    auc = metrics.AUC(name="my_auc")
    assert resolve_metric(auc, (None, 1), (None, 1)) is auc and auc.name == "my_auc"
    with pytest.raises(ValueError, match="Expected metric, received `None`"):
        resolve_metric(None, (None, 1), (None, 1))


def test_serialize_matches_keras_dicts_and_round_trips():
    assert metrics.serialize(metrics.BinaryAccuracy()) == {
        "module": "keras.metrics",
        "class_name": "BinaryAccuracy",
        "config": {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.5},
        "registered_name": None,
    }
    assert metrics.AUC().get_config() == {
        "name": "auc",
        "dtype": "float32",
        "num_thresholds": 200,
        "curve": "ROC",
        "summation_method": "interpolation",
        "multi_label": False,
        "num_labels": None,
        "label_weights": None,
        "from_logits": False,
    }
    assert metrics.Precision(thresholds=[0.3, 0.6]).get_config() == {
        "name": "precision",
        "dtype": "float32",
        "thresholds": [0.3, 0.6],
        "top_k": None,
        "class_id": None,
    }
    for m in [
        metrics.AUC(curve="PR", num_thresholds=50, name="pr"),
        metrics.TopKCategoricalAccuracy(k=3),
        metrics.Recall(thresholds=[0.2], class_id=1),
        metrics.MeanMetricWrapper(losses.mean_squared_error, name="w"),
        metrics.CategoricalCrossentropy(label_smoothing=0.1),
    ]:
        back = metrics.deserialize(metrics.serialize(m))
        assert type(back) is type(m) and back.get_config() == m.get_config()
    assert repr(metrics.Mean()) == "<Mean name=mean>"
