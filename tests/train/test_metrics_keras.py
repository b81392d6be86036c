"""Metrics against real Keras 3 (torch backend): same inputs, several weighted updates, then reset."""

import numpy as np
import pytest

from irtool import metrics  # noqa: E402
from irtool.train.metrics import resolve_metric  # noqa: E402

from ..harness import require_keras

keras = require_keras()

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(11)
N, C = 60, 5
PROBS = RNG.random((N, C)).astype("float32")
PROBS /= PROBS.sum(-1, keepdims=True)
LABELS = RNG.integers(0, C, N)
ONE_HOT = np.eye(C, dtype="float32")[LABELS]
P1 = RNG.random((N, 1)).astype("float32")
B1 = RNG.integers(0, 2, (N, 1)).astype("float32")
BM = RNG.integers(0, 2, (N, C)).astype("float32")
Y = RNG.random((N, 3)).astype("float32")
P = RNG.random((N, 3)).astype("float32")
W = RNG.uniform(0, 2, N).astype("float32")

CASES = [
    ("Accuracy", {}, LABELS.astype("float32"), PROBS.argmax(-1).astype("float32")),
    ("BinaryAccuracy", {}, B1, P1),
    ("BinaryAccuracy", {"threshold": 0.3}, B1[:, 0], P1),
    ("CategoricalAccuracy", {}, ONE_HOT, PROBS),
    ("SparseCategoricalAccuracy", {}, LABELS, PROBS),
    ("SparseCategoricalAccuracy", {}, LABELS[:, None], PROBS),
    ("TopKCategoricalAccuracy", {"k": 2}, ONE_HOT, PROBS),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, LABELS, PROBS),
    ("MeanSquaredError", {}, Y, P),
    ("MeanAbsoluteError", {}, Y, P),
    ("RootMeanSquaredError", {}, Y, P),
    ("MeanAbsolutePercentageError", {}, Y, P),
    ("MeanSquaredLogarithmicError", {}, Y, P),
    ("CosineSimilarity", {}, Y, P),
    ("LogCoshError", {}, Y, P),
    ("Hinge", {}, BM, PROBS),
    ("SquaredHinge", {}, BM, PROBS),
    ("CategoricalHinge", {}, ONE_HOT, PROBS),
    ("KLDivergence", {}, ONE_HOT, PROBS),
    ("Poisson", {}, Y, P),
    ("BinaryCrossentropy", {}, B1, P1),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, BM, PROBS * 8 - 4),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, ONE_HOT, PROBS),
    ("SparseCategoricalCrossentropy", {}, LABELS, PROBS),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 2}, LABELS, PROBS),
    ("AUC", {}, B1, P1),
    ("AUC", {"curve": "PR"}, B1, P1),
    ("AUC", {"curve": "PR"}, BM, PROBS),
    ("AUC", {"num_thresholds": 17, "summation_method": "minoring"}, B1, P1),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, BM, PROBS),
    ("AUC", {"curve": "PRGAIN"}, B1, P1),
    ("AUC", {"thresholds": [0.2, 0.5, 0.7]}, B1, P1),
    ("AUC", {"thresholds": [0.25, 0.5, 0.75]}, B1, P1),
    ("AUC", {"multi_label": True}, BM, PROBS),
    ("AUC", {"multi_label": True, "curve": "PR", "num_labels": C}, BM, PROBS),
    ("AUC", {"from_logits": True, "label_weights": [1, 2, 3, 4, 5]}, BM, PROBS * 4 - 2),
    ("Precision", {}, B1, P1),
    ("Recall", {}, B1, P1),
    ("Precision", {"thresholds": [0.1, 0.5, 0.9]}, BM, PROBS),
    ("Recall", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, BM, PROBS),
    ("Precision", {"top_k": 2}, BM, PROBS),
    ("Recall", {"top_k": 2, "class_id": 1}, BM, PROBS),
    ("Precision", {"class_id": 3}, BM, PROBS),
    ("TruePositives", {}, B1, P1),
    ("FalsePositives", {"thresholds": [0.3, 0.6]}, B1, P1),
    ("TrueNegatives", {}, BM, PROBS),
    ("FalseNegatives", {}, BM, PROBS),
]


def _run(metric, y_true, y_pred, weights):
    for idx in np.array_split(np.arange(N), 3):
        metric.update_state(y_true[idx], y_pred[idx], sample_weight=None if weights is None else weights[idx])
    return keras.ops.convert_to_numpy(metric.result()) if isinstance(metric, keras.metrics.Metric) else metric.result()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name, kwargs, y_true, y_pred", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_metrics_match_keras(name, kwargs, y_true, y_pred, weighted):
    w = W if weighted else None
    theirs, ours = getattr(keras.metrics, name)(**kwargs), getattr(metrics, name)(**kwargs)
    want = _run(theirs, y_true, y_pred, w)
    np.testing.assert_allclose(_run(ours, y_true, y_pred, w), want, rtol=1e-6, atol=1e-6)
    if not hasattr(theirs, "thresholds"):  # the confusion metrics are auto-numbered (auc_1, ...)
        assert ours.name == theirs.name
    assert [v.name for v in ours.variables] == [v.name for v in theirs.variables]
    # After a reset, a second round gives the same value again.
    ours.reset_state()
    np.testing.assert_allclose(_run(ours, y_true, y_pred, w), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "ident, t_shape, p_shape",
    [
        ("accuracy", (8, 1), (8, 1)),
        ("acc", (8,), (8, 1)),
        ("accuracy", (8,), (8, 10)),
        ("acc", (8, 1), (8, 10)),
        ("accuracy", (8, 10), (8, 10)),
        ("mse", (8, 1), (8, 1)),
        ("AUC", (8, 1), (8, 1)),
    ],
)
def test_resolution_matches_keras_compile(ident, t_shape, p_shape):
    from keras.src.trainers.compile_utils import get_metric

    theirs = get_metric(ident, np.zeros(t_shape, "float32"), np.zeros(p_shape, "float32"))
    ours = resolve_metric(ident, t_shape, p_shape)
    assert type(ours).__name__ == type(theirs).__name__ and ours.name == theirs.name


@pytest.mark.parametrize("name", ["AUC", "Precision", "BinaryAccuracy", "TopKCategoricalAccuracy", "MeanSquaredError"])
def test_configs_match_keras(name):
    ours, theirs = getattr(metrics, name)(name="m"), getattr(keras.metrics, name)(name="m")
    assert metrics.serialize(ours) == keras.metrics.serialize(theirs)
