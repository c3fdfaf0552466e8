"""Regression-free model updates: compare two matchers pair by pair, gate promotion on negative
flips, and build positive-congruent training targets (Yan et al., CVPR 2021)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from features.joins import PAIR_KEYS, join_pairs
from matching.labels import BINARY, to_binary
from matching.metrics import class_report
from matching.model import Matcher, score_pairs
from matching.review import RunFolder, build_review, write_review
from matching.settings import GateSettings

NEGATIVE = "negative"  # the old model was right and the new one is wrong
POSITIVE = "positive"  # the old model was wrong and the new one is right


class FlipReport(BaseModel):
    """Two models scored on the same labelled pairs: quality of each and the flips between them."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    old_model: str | None = None
    new_model: str | None = None
    holdout_sha256: str | None = None  # the evaluated pairs and labels (features.io.frame_hash)
    pairs: int
    classes: list[str]
    old_accuracy: float
    new_accuracy: float
    old_f1: dict[str, float | None]
    new_f1: dict[str, float | None]
    negative_flips: int
    positive_flips: int
    negative_flip_rate: float
    positive_flip_rate: float


class GateDecision(BaseModel):
    """Whether a new model may replace the old one, and every reason it may not."""

    passed: bool
    reasons: list[str]


def class_f1(labels: np.ndarray, decisions: np.ndarray, classes: Sequence[str]) -> dict[str, float | None]:
    """One-vs-rest F1 per class; None where the class is neither in the labels nor predicted."""
    report = class_report(labels, decisions, classes, positive=classes)
    return {c: report[c]["f1"] for c in classes}


def _as_classes(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Labels as the model's class names: duplicate/variant read as match for a binary model."""
    y = np.asarray(labels, dtype=object)
    if tuple(classes) == BINARY:
        y = to_binary(y)
    y = y.astype(str)
    unknown = sorted(set(np.unique(y).tolist()) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of the model {list(classes)}")
    return y


def compare_decisions(
    pairs: pl.DataFrame,
    labels: Sequence[str],
    classes: Sequence[str],
    old_proba: np.ndarray,
    old_decision: np.ndarray,
    new_proba: np.ndarray,
    new_decision: np.ndarray,
) -> tuple[FlipReport, pl.DataFrame]:
    """Compare two models' decisions on the same labelled pairs; return the report and the flipped pairs."""
    y = _as_classes(labels, classes)
    old_d, new_d = np.asarray(old_decision).astype(str), np.asarray(new_decision).astype(str)
    if not (len(y) == len(old_d) == len(new_d) == pairs.height == len(old_proba) == len(new_proba)):
        raise ValueError("pairs, labels, probabilities and decisions must have the same length")
    if len(y) == 0:
        raise ValueError("no labelled pairs to compare the models on")
    old_ok, new_ok = old_d == y, new_d == y
    negative, positive = old_ok & ~new_ok, ~old_ok & new_ok
    n = len(y)
    report = FlipReport(
        pairs=n,
        classes=list(classes),
        old_accuracy=float(old_ok.mean()),
        new_accuracy=float(new_ok.mean()),
        old_f1=class_f1(y, old_d, classes),
        new_f1=class_f1(y, new_d, classes),
        negative_flips=int(negative.sum()),
        positive_flips=int(positive.sum()),
        negative_flip_rate=float(negative.sum() / n),
        positive_flip_rate=float(positive.sum() / n),
    )
    label_col = (y[:, None] == np.asarray(classes)[None, :]).argmax(axis=1)
    rows = np.arange(n)
    frame = pl.DataFrame(
        {
            "left_id": pairs["left_id"].cast(pl.String),
            "right_id": pairs["right_id"].cast(pl.String),
            "label": y,
            "flip": np.where(negative, NEGATIVE, POSITIVE),
            "old_decision": old_d,
            "new_decision": new_d,
            # How much the probability of the true class moved: the reviewer's sort key.
            "true_class_delta": (new_proba[rows, label_col] - old_proba[rows, label_col]).astype(np.float64),
        }
        | {f"old_p_{c}": old_proba[:, i].astype(np.float64) for i, c in enumerate(classes)}
        | {f"new_p_{c}": new_proba[:, i].astype(np.float64) for i, c in enumerate(classes)}
    )
    flips = frame.filter(pl.Series(negative | positive)).sort(["flip", "true_class_delta", "left_id", "right_id"])
    return report, flips


def compare_models(
    old: Matcher, new: Matcher, features: pl.DataFrame, labels: Sequence[str]
) -> tuple[FlipReport, pl.DataFrame]:
    """Score the same labelled feature rows with both models and compare their decisions."""
    if tuple(old.classes) != tuple(new.classes):
        raise ValueError(f"the models predict different classes: {list(old.classes)} vs {list(new.classes)}")
    old_proba, new_proba = old.predict_proba(features), new.predict_proba(features)
    return compare_decisions(
        features.select("left_id", "right_id"), labels, old.classes,
        old_proba, old.decide(old_proba), new_proba, new.decide(new_proba),
    )


def gate(report: FlipReport, settings: GateSettings) -> GateDecision:
    """Refuse a new model whose negative flip rate or per-class F1 drop exceeds the settings."""
    reasons = []
    if report.negative_flip_rate > settings.max_negative_flip_rate:
        reasons.append(
            f"negative flip rate {report.negative_flip_rate:.2%} ({report.negative_flips} of {report.pairs} pairs)"
            f" exceeds {settings.max_negative_flip_rate:.2%}"
        )
    for c in report.classes:
        old_f1, new_f1 = report.old_f1.get(c), report.new_f1.get(c)
        if old_f1 is not None and old_f1 - (new_f1 or 0.0) > settings.max_f1_drop:
            reasons.append(
                f"F1 of '{c}' drops from {old_f1:.4f} to {new_f1 or 0.0:.4f} (more than {settings.max_f1_drop:.4f})"
            )
    return GateDecision(passed=not reasons, reasons=reasons)


def congruent_targets(
    labels: Sequence[str],
    classes: Sequence[str],
    old_proba: np.ndarray,
    old_decision: np.ndarray,
    correct_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample weights and teacher probabilities for positive-congruent training.

    Pairs the old model gets right weigh ``correct_weight`` and are distilled toward the old
    model's probabilities; elsewhere the teacher is the label itself, so the new model is never
    pulled toward the old model's mistakes.
    """
    y = _as_classes(labels, classes)
    correct = np.asarray(old_decision).astype(str) == y
    weight = np.where(correct, correct_weight, 1.0)
    teacher = (y[:, None] == np.asarray(classes)[None, :]).astype(np.float64)
    teacher[correct] = np.asarray(old_proba, dtype=np.float64)[correct]
    return weight, teacher


def congruent_inputs(
    old: Matcher, features: pl.DataFrame, labels: Sequence[str], correct_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Score the training pairs with the old model and return (sample_weight, teacher_proba)."""
    proba = old.predict_proba(features)
    return congruent_targets(labels, old.classes, proba, old.decide(proba), correct_weight)


def export_flips(
    flips: pl.DataFrame, out: str | os.PathLike, new: Matcher, features: pl.DataFrame,
    left_records: pl.DataFrame, right_records: pl.DataFrame | None = None, heading: str = "Flipped pairs",
) -> dict[str, Path]:
    """Write the flipped pairs as a review package (matching.review) explained by the new model.

    Each row also carries the label, the flip direction and the old model's decision and
    probabilities; reviewers' verdicts come back through `import-reviews` like any review.
    """
    rows = join_pairs(features, flips.select(PAIR_KEYS), "semi")
    if right_records is None:
        records = left_records
    else:
        # Both sources may use the same ids, so the package tells them apart by prefix.
        rows = rows.with_columns(("left:" + pl.col("left_id")).alias("left_id"),
                                 ("right:" + pl.col("right_id")).alias("right_id"))
        records = pl.concat([
            frame.with_columns(pl.col("id").alias("source_id"), pl.lit(src).alias("source"),
                               (f"{src}:" + pl.col("id")).alias("id"))
            for src, frame in (("left", left_records), ("right", right_records))
        ], how="diagonal_relaxed")
    run = RunFolder(Path(out), score_pairs(new, rows).lazy(), rows.lazy(), records.lazy(), new)
    review = join_pairs(
        build_review(run), flips.select(*PAIR_KEYS, "label", "flip", "old_decision", pl.col("^old_p_.*$")), "left",
    ).sort("flip", maintain_order=True)
    return write_review(review, out, heading)
