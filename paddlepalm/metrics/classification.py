"""Single-label and multi-label classification metrics (pure Python + numpy).

Conventions shared by every function here:

* empty input raises ``ValueError``; so do predictions and labels of different lengths/shapes;
* a ratio whose denominator is zero (no predictions, no gold items) is ``0.0``, never NaN;
* ``macro`` averages the per-class precision, recall and F1 (F1 is the mean of the per-class F1s,
  not the harmonic mean of the averaged precision and recall); ``micro`` pools the true-positive,
  false-positive and false-negative counts of all classes first.
"""
from __future__ import annotations

from typing import Dict, Hashable, List, Optional, Sequence

import numpy as np

AVERAGES = ("macro", "micro")
MULTILABEL_AVERAGES = ("macro", "micro", "samples")
_COUNT_AXIS = {"micro": None, "macro": 0, "samples": 1}  # axis to sum counts over per average


def safe_ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is zero."""
    return float(numerator) / float(denominator) if denominator else 0.0


def f1_from_counts(true_positives: float, false_positives: float,
                   false_negatives: float) -> Dict[str, float]:
    """Precision, recall and F1 from raw counts (each 0.0 when undefined)."""
    precision = safe_ratio(true_positives, true_positives + false_positives)
    recall = safe_ratio(true_positives, true_positives + false_negatives)
    return {"precision": precision, "recall": recall,
            "f1": safe_ratio(2 * precision * recall, precision + recall)}


def _check_pair(preds: Sequence, labels: Sequence) -> None:
    if len(preds) == 0 or len(labels) == 0:
        raise ValueError("cannot score empty input: got %d predictions and %d labels"
                         % (len(preds), len(labels)))
    if len(preds) != len(labels):
        raise ValueError("predictions and labels differ in length: %d vs %d"
                         % (len(preds), len(labels)))


def _check_average(average: str, allowed: Sequence[str]) -> None:
    if average not in allowed:
        raise ValueError("average must be one of %s, got %r" % (", ".join(allowed), average))


def _ordered_classes(values: Sequence[Hashable]) -> List[Hashable]:
    """Distinct values, sorted when comparable, else in order of first appearance."""
    distinct = list(dict.fromkeys(values))
    try:
        return sorted(distinct)
    except TypeError:
        return distinct


def accuracy(preds: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Fraction of positions where the prediction equals the label."""
    _check_pair(preds, labels)
    return sum(1 for p, g in zip(preds, labels) if p == g) / len(labels)


def precision_recall_f1(preds: Sequence[Hashable], labels: Sequence[Hashable],
                        average: str = "macro",
                        classes: Optional[Sequence[Hashable]] = None) -> Dict[str, object]:
    """Precision, recall and F1 of single-label predictions.

    ``classes`` restricts scoring to those classes (e.g. leave out a "none" class); by default
    every class seen in ``preds`` or ``labels`` counts. With all classes, micro F1 equals accuracy.

    Returns ``{'precision', 'recall', 'f1', 'per_class': {cls: {precision, recall, f1, support}}}``
    where ``support`` is the number of gold items of the class.
    """
    _check_pair(preds, labels)
    _check_average(average, AVERAGES)
    if classes is None:
        classes = _ordered_classes(list(labels) + list(preds))
    elif len(classes) == 0:
        raise ValueError("classes must name at least one class")
    per_class: Dict[Hashable, Dict[str, float]] = {}
    totals = np.zeros(3)
    for cls in classes:
        tp = sum(1 for p, g in zip(preds, labels) if p == cls and g == cls)
        fp = sum(1 for p, g in zip(preds, labels) if p == cls and g != cls)
        fn = sum(1 for p, g in zip(preds, labels) if p != cls and g == cls)
        totals += (tp, fp, fn)
        per_class[cls] = dict(f1_from_counts(tp, fp, fn), support=tp + fn)
    if average == "micro":
        summary = f1_from_counts(*totals)
    else:
        summary = {key: float(np.mean([scores[key] for scores in per_class.values()]))
                   for key in ("precision", "recall", "f1")}
    return dict(summary, per_class=per_class)


def _indicator_matrices(pred_matrix, gold_matrix):
    pred = np.asarray(pred_matrix)
    gold = np.asarray(gold_matrix)
    for name, matrix in (("pred_matrix", pred), ("gold_matrix", gold)):
        if matrix.ndim != 2:
            raise ValueError("%s must be 2-D (samples x labels), got shape %s"
                             % (name, matrix.shape))
        if matrix.size == 0:
            raise ValueError("cannot score empty input: %s has shape %s" % (name, matrix.shape))
        if not np.isin(matrix, (0, 1)).all():
            raise ValueError("%s must hold only 0/1 indicators" % name)
    if pred.shape != gold.shape:
        raise ValueError("pred_matrix and gold_matrix differ in shape: %s vs %s"
                         % (pred.shape, gold.shape))
    return pred.astype(bool), gold.astype(bool)


def multilabel_precision_recall_f1(pred_matrix, gold_matrix,
                                   average: str = "micro") -> Dict[str, float]:
    """Precision, recall and F1 for 0/1 indicator matrices of shape (samples, labels).

    ``micro`` pools all cells; ``macro`` averages over label columns; ``samples`` averages over
    rows (a row with neither gold nor predicted labels scores 0.0).
    Returns ``{'precision', 'recall', 'f1'}``.
    """
    _check_average(average, MULTILABEL_AVERAGES)
    pred, gold = _indicator_matrices(pred_matrix, gold_matrix)
    tp = (pred & gold).sum(axis=_COUNT_AXIS[average])
    fp = (pred & ~gold).sum(axis=_COUNT_AXIS[average])
    fn = (~pred & gold).sum(axis=_COUNT_AXIS[average])
    if average == "micro":
        return f1_from_counts(tp, fp, fn)
    scores = [f1_from_counts(*counts) for counts in zip(tp, fp, fn)]
    return {key: float(np.mean([s[key] for s in scores])) for key in ("precision", "recall", "f1")}


def multilabel_f1(pred_matrix, gold_matrix, average: str = "micro") -> float:
    """F1 of 0/1 indicator matrices; see :func:`multilabel_precision_recall_f1`."""
    return multilabel_precision_recall_f1(pred_matrix, gold_matrix, average)["f1"]


def subset_accuracy(pred_matrix, gold_matrix) -> float:
    """Fraction of samples whose predicted label set equals the gold set exactly."""
    pred, gold = _indicator_matrices(pred_matrix, gold_matrix)
    return float((pred == gold).all(axis=1).mean())
