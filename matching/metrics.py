"""Precision, recall and F1 per class, macro F1 and the confusion table of pair decisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    """Precision, recall and F1 from counts; all None when the class is neither true nor predicted."""
    if tp + fp + fn == 0:
        return {"precision": None, "recall": None, "f1": None}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def confusion(truth: Sequence[str] | np.ndarray, pred: Sequence[str] | np.ndarray, classes: Sequence[str],
              missed: Mapping[str, int] | None = None) -> dict[str, dict[str, int]]:
    """Count truth -> prediction; `missed` true pairs never scored count as predicted 'distinct'."""
    t = np.asarray(truth, dtype=object)
    p = np.asarray(pred, dtype=object)
    table = {a: {b: int(np.sum((t == a) & (p == b))) for b in classes} for a in classes}
    for cls, n in (missed or {}).items():
        table[cls]["distinct"] += int(n)
    return table


def class_report(truth: Sequence[str] | np.ndarray, pred: Sequence[str] | np.ndarray, classes: Sequence[str],
                 positive: Sequence[str], missed: Mapping[str, int] | None = None) -> dict:
    """Per-class P/R/F1 for the `positive` classes, their macro F1 and the full confusion table."""
    table = confusion(truth, pred, classes, missed)
    report: dict = {}
    for cls in positive:
        tp = table[cls][cls]
        fp = sum(table[o][cls] for o in classes if o != cls)
        fn = sum(table[cls][o] for o in classes if o != cls)
        report[cls] = {**prf(tp, fp, fn), "support": tp + fn}
    # Classes absent from both truth and predictions have no F1 and do not dilute the mean.
    f1s = [report[c]["f1"] for c in positive if report[c]["f1"] is not None]
    report["macro_f1"] = float(np.mean(f1s)) if f1s else None
    report["confusion"] = table
    return report
