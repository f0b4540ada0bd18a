"""Classification metrics of the OFA tasks: accuracy (SNLI-VE, ImageNet, GLUE), and the binary Matthews
correlation (CoLA) and F1 (MRPC, QQP) from true/false positive/negative counts (reference §5.10).

Labels are answer strings ("yes"/"no", "positive"/"negative", class names). For the binary metrics the
`positive` answer is the positive class and every other answer is negative, as the official counts do.
The count-based functions exist for training-time validation, which sums counts over batches and
computes the metric once at the end.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import NamedTuple


class BinaryCounts(NamedTuple):
    """True positives, false positives, true negatives and false negatives."""

    tp: int
    fp: int
    tn: int
    fn: int


def _check_lengths(preds: Sequence[Hashable], labels: Sequence[Hashable]) -> None:
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions but {len(labels)} labels")
    if len(preds) == 0:
        raise ValueError("no predictions to score")


def accuracy(preds: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Fraction of predictions equal to their label."""
    _check_lengths(preds, labels)
    return sum(pred == label for pred, label in zip(preds, labels)) / len(preds)


def binary_counts(preds: Sequence[Hashable], labels: Sequence[Hashable], positive: Hashable = "yes") -> BinaryCounts:
    """TP/FP/TN/FN with `positive` as the positive class and any other answer as negative."""
    _check_lengths(preds, labels)
    tp = fp = tn = fn = 0
    for pred, label in zip(preds, labels):
        predicted, actual = pred == positive, label == positive
        tp += predicted and actual
        fp += predicted and not actual
        tn += not predicted and not actual
        fn += not predicted and actual
    return BinaryCounts(tp, fp, tn, fn)


def mcc_from_counts(tp: float, fp: float, tn: float, fn: float) -> float:
    """Matthews correlation coefficient; 0 when undefined (a row or column of the table is empty)."""
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator > 0 else 0.0


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """F1 of the positive class, 2TP / (2TP + FP + FN); 0 when undefined (no positives at all)."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator > 0 else 0.0


def matthews_corrcoef(preds: Sequence[Hashable], labels: Sequence[Hashable], positive: Hashable = "yes") -> float:
    """Binary Matthews correlation coefficient (CoLA's metric) with `positive` as the positive class."""
    return mcc_from_counts(*binary_counts(preds, labels, positive))


def binary_f1(preds: Sequence[Hashable], labels: Sequence[Hashable], positive: Hashable = "yes") -> float:
    """F1 of the `positive` class (MRPC's and QQP's metric)."""
    tp, fp, _, fn = binary_counts(preds, labels, positive)
    return f1_from_counts(tp, fp, fn)
