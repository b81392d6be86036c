"""Confusion-matrix metrics (NumPy): true/false positive/negative counts, ``Precision``, ``Recall``
and ``AUC``, with Keras 3's numbers.

Like Keras, evenly spaced thresholds (``AUC``'s default 200) take the bucketed path: each
prediction falls in bucket ``ceil(p * (n - 1)) - 1`` and the counts above every threshold are
reverse cumulative sums; other thresholds compare ``p > threshold`` directly. Accumulators are
float32, as Keras' variables are.
"""

from __future__ import annotations

import numpy as np

from irtool.train.loss_functions import EPSILON, squeeze_or_expand_to_same_rank
from irtool.train.metric import Metric, _array, divide_no_nan

NEG_INF = -1e10
TP, FP, TN, FN = "tp", "fp", "tn", "fn"


def parse_init_thresholds(thresholds, default_threshold=0.5):
    if thresholds is not None:
        listed = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
        invalid = [t for t in listed if t is None or t < 0 or t > 1]
        if invalid:
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {invalid}")
    thresholds = default_threshold if thresholds is None else thresholds
    return list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]


def is_evenly_distributed_thresholds(thresholds) -> bool:
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=EPSILON))


def _filter_top_k(x, k):
    """Keep the top ``k`` entries of the last axis, push the others to ``NEG_INF``."""
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    mask = np.zeros_like(x)
    np.put_along_axis(mask, idx, 1.0, axis=-1)
    return x * mask + np.float32(NEG_INF) * (1 - mask)


def update_confusion_matrix_variables(
    variables,
    y_true,
    y_pred,
    thresholds,
    top_k=None,
    class_id=None,
    sample_weight=None,
    multi_label=False,
    label_weights=None,
    thresholds_distributed_evenly=False,
):
    """Add this batch's counts to ``variables`` (``{"tp"|"fp"|"tn"|"fn": Variable}``)."""
    dtype = next(iter(variables.values())).dtype
    y_true, y_pred = _array(y_true, dtype), _array(y_pred, dtype)
    with_epsilon = bool(thresholds[0] < 0.0 or thresholds[-1] > 1.0)
    thresholds = np.asarray(thresholds, dtype)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = np.expand_dims(_array(sample_weight, dtype), -1)
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape (num_samples, num_classes), "
                f"found shape: {y_pred.shape}"
            )
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    weights = np.ones((), dtype)
    if sample_weight is not None:
        weights = np.broadcast_to(sample_weight, y_pred.shape)
    if label_weights is not None:
        weights = weights * np.broadcast_to(np.expand_dims(_array(label_weights, dtype), 0), y_pred.shape)
    weights = np.broadcast_to(weights, y_pred.shape).astype(dtype)
    if not multi_label:
        y_true, y_pred, weights = y_true.reshape(-1), y_pred.reshape(-1), weights.reshape(-1)
    if thresholds_distributed_evenly:
        counts = _bucketed_counts(y_true, y_pred, weights, len(thresholds), multi_label, with_epsilon)
    else:
        counts = _compared_counts(y_true, y_pred, weights, thresholds, multi_label)
    for key, variable in variables.items():
        variable.assign(variable.value + counts[key])


def _bucketed_counts(y_true, y_pred, weights, num_thresholds, multi_label, with_epsilon):
    dtype = y_pred.dtype
    y_pred = np.clip(y_pred, 0.0, 1.0)
    y_true = (y_true != 0).astype(dtype)
    true_labels = y_true * weights
    false_labels = (1.0 - y_true) * weights
    buckets = np.ceil(y_pred * np.asarray(num_thresholds - 1, dtype)) - 1
    if with_epsilon:
        buckets = np.maximum(buckets, 0)
    buckets = buckets.astype(np.int64)
    keep = buckets >= 0  # a prediction of exactly 0 counts above no threshold

    def bucket_sums(labels):
        if not multi_label:
            return np.bincount(buckets[keep], labels[keep], minlength=num_thresholds).astype(dtype)
        num_labels = labels.shape[1]
        ids = buckets + np.arange(num_labels) * num_thresholds
        sums = np.bincount(ids[keep], labels[keep], minlength=num_labels * num_thresholds)
        return sums.reshape(num_labels, num_thresholds).T.astype(dtype)

    tp = np.cumsum(bucket_sums(true_labels)[::-1], axis=0, dtype=dtype)[::-1]
    fp = np.cumsum(bucket_sums(false_labels)[::-1], axis=0, dtype=dtype)[::-1]
    total_true = np.sum(true_labels, axis=0, dtype=dtype)
    total_false = np.sum(false_labels, axis=0, dtype=dtype)
    return {TP: tp, FP: fp, TN: total_false - fp, FN: total_true - tp}


def _compared_counts(y_true, y_pred, weights, thresholds, multi_label):
    dtype = y_pred.dtype
    shape = (-1,) + (1,) * y_pred.ndim
    pred_pos = y_pred[None] > thresholds.reshape(shape)  # (thresholds, *y_pred.shape)
    label_pos = np.broadcast_to((y_true != 0)[None], pred_pos.shape)
    w = weights[None]

    def count(label, pred):
        return np.sum(np.where(label & pred, w, 0).astype(dtype), axis=1, dtype=dtype)

    return {
        TP: count(label_pos, pred_pos),
        FP: count(~label_pos, pred_pos),
        TN: count(~label_pos, ~pred_pos),
        FN: count(label_pos, ~pred_pos),
    }


class _ConfusionMatrixConditionCount(Metric):
    _condition = TP

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = parse_init_thresholds(thresholds, default_threshold=0.5)
        self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(self.thresholds)
        self.accumulator = self.add_variable((len(self.thresholds),), "zeros", name="accumulator")

    def update_state(self, y_true, y_pred, sample_weight=None):
        update_confusion_matrix_variables(
            {self._condition: self.accumulator},
            y_true,
            y_pred,
            self.thresholds,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly,
            sample_weight=sample_weight,
        )

    def result(self):
        return self.accumulator.numpy()[0] if len(self.thresholds) == 1 else self.accumulator.numpy()

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMatrixConditionCount):
    _condition = TP


class FalsePositives(_ConfusionMatrixConditionCount):
    _condition = FP


class TrueNegatives(_ConfusionMatrixConditionCount):
    _condition = TN


class FalseNegatives(_ConfusionMatrixConditionCount):
    _condition = FN


class Precision(Metric):
    """``tp / (tp + fp)`` at ``thresholds`` (default 0.5), optionally of the ``top_k`` predictions
    or of one ``class_id``."""

    _second, _second_name = FP, "false_positives"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        default = 0.5 if top_k is None else NEG_INF
        self.thresholds = parse_init_thresholds(thresholds, default_threshold=default)
        self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(self.thresholds)
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), "zeros", name="true_positives")
        setattr(self, self._second_name, self.add_variable((n,), "zeros", name=self._second_name))

    def update_state(self, y_true, y_pred, sample_weight=None):
        update_confusion_matrix_variables(
            {TP: self.true_positives, self._second: getattr(self, self._second_name)},
            y_true,
            y_pred,
            self.thresholds,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly,
            top_k=self.top_k,
            class_id=self.class_id,
            sample_weight=sample_weight,
        )

    def result(self):
        tp = self.true_positives.value
        result = divide_no_nan(tp, tp + getattr(self, self._second_name).value)
        return result[0] if len(self.thresholds) == 1 else result

    def get_config(self):
        config = {"thresholds": self.init_thresholds, "top_k": self.top_k, "class_id": self.class_id}
        return {**super().get_config(), **config}


class Recall(Precision):
    """``tp / (tp + fn)`` at ``thresholds`` (default 0.5), optionally of the ``top_k`` predictions
    or of one ``class_id``."""

    _second, _second_name = FN, "false_negatives"


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = ("interpolation", "majoring", "minoring")


class AUC(Metric):
    """Area under the ROC or PR curve, by a Riemann sum over ``num_thresholds`` thresholds."""

    def __init__(
        self,
        num_thresholds=200,
        curve="ROC",
        summation_method="interpolation",
        name=None,
        dtype=None,
        thresholds=None,
        multi_label=False,
        num_labels=None,
        label_weights=None,
        from_logits=False,
    ):
        self._direction = "up"
        curve_key = str(getattr(curve, "value", curve))
        if curve_key.lower() not in _CURVES or curve_key not in (curve_key.lower(), curve_key.upper()):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        summation = str(getattr(summation_method, "value", summation_method))
        if summation.lower() not in _SUMMATIONS or summation not in (summation.lower(), summation.capitalize()):
            raise ValueError(
                f'Invalid AUC summation method value: "{summation_method}". '
                'Expected values are ["interpolation", "majoring", "minoring"]'
            )
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            self.num_thresholds = len(thresholds) + 2
            thresholds = sorted(thresholds)
            self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(np.array([0.0] + thresholds + [1.0]))
        else:
            if num_thresholds <= 1:
                raise ValueError(
                    f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={num_thresholds}"
                )
            self.num_thresholds = num_thresholds
            thresholds = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._thresholds_distributed_evenly = True
        self._thresholds = np.array([0.0 - EPSILON] + thresholds + [1.0 + EPSILON])
        self.curve = _CURVES[curve_key.lower()]
        self.summation_method = summation.lower()
        super().__init__(name=name, dtype=dtype)
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, self.dtype)
        self._from_logits = from_logits
        self._built = False
        if multi_label:
            if num_labels:
                self._build((None, num_labels))
        elif num_labels:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        else:
            self._build(None)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def _build(self, shape):
        if self.multi_label:
            if len(shape) != 2:
                raise ValueError(
                    f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {len(shape)}. "
                    f"Full shape received for `y_pred`: {shape}"
                )
            self._num_labels = shape[1]
            variable_shape = (self.num_thresholds, self._num_labels)
        else:
            variable_shape = (self.num_thresholds,)
        for name in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            setattr(self, name, self.add_variable(variable_shape, "zeros", name=name))
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _array(y_pred)
        if not self._built:
            self._build(y_pred.shape)
        if self._from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-y_pred.astype(self.dtype)))
        update_confusion_matrix_variables(
            {TP: self.true_positives, TN: self.true_negatives, FP: self.false_positives, FN: self.false_negatives},
            y_true,
            y_pred,
            self._thresholds,
            thresholds_distributed_evenly=self._thresholds_distributed_evenly,
            sample_weight=sample_weight,
            multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights,
        )

    def _by_label(self, terms):
        if not self.multi_label:
            return np.sum(terms, dtype=self.dtype)
        by_label = np.sum(terms, axis=0, dtype=self.dtype)
        if self.label_weights is None:
            return np.mean(by_label, dtype=self.dtype)
        return divide_no_nan(np.sum(by_label * self.label_weights), np.sum(self.label_weights))[()]

    def interpolate_pr_auc(self):
        n = self.num_thresholds
        tp, fp, fn = self.true_positives.value, self.false_positives.value, self.false_negatives.value
        dtp = tp[: n - 1] - tp[1:]
        p = tp + fp
        dp = p[: n - 1] - p[1:]
        prec_slope = divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        both = (p[: n - 1] > 0) & (p[1:] > 0)
        safe_p_ratio = np.where(both, divide_no_nan(p[: n - 1], np.maximum(p[1:], 0)), np.ones_like(p[1:]))
        safe_log = np.log(np.where(safe_p_ratio > 0, safe_p_ratio, 1)).astype(self.dtype)
        increment = divide_no_nan(prec_slope * (dtp + intercept * safe_log), np.maximum(tp[1:] + fn[1:], 0))
        return self._by_label(increment)

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc()
        tp, fp = self.true_positives.value, self.false_positives.value
        tn, fn = self.true_negatives.value, self.false_negatives.value
        recall = divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, divide_no_nan(tp, tp + fp)
        else:
            scaling = divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.where(tp == 0, 0.0, 1.0 - scaling * divide_no_nan(fn, tp)).astype(self.dtype)
            precision_gain = np.where(tp == 0, 1.0, 1.0 - scaling * divide_no_nan(fp, tp)).astype(self.dtype)
            x, y = np.maximum(recall_gain, 0.0), precision_gain
        n = self.num_thresholds
        if self.summation_method == "interpolation":
            heights = (y[: n - 1] + y[1:]) / np.asarray(2.0, self.dtype)
        elif self.summation_method == "minoring":
            heights = np.minimum(y[: n - 1], y[1:])
        else:
            heights = np.maximum(y[: n - 1], y[1:])
        return self._by_label((x[: n - 1] - x[1:]) * heights)

    def reset_state(self):
        if self._built:
            super().reset_state()

    def get_config(self):
        config = {
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return {**super().get_config(), **config}
