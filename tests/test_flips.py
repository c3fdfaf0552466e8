"""Flip comparison, the promotion gate and positive-congruent training on make-believe features."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from matching.flips import (
    NEGATIVE, POSITIVE, compare_decisions, compare_models, congruent_inputs,
    congruent_targets, export_flips, gate,
)
from matching.model import train_matcher
from matching.review import import_reviews
from matching.settings import GateSettings, MatcherSettings

# Small and pinned, so that changes of the matcher's defaults do not move these fixtures.
FAST = dict(mode="binary", num_boost_round=80, early_stopping_rounds=20, num_leaves=15, feature_fraction=0.5,
            class_weight="none")


def _flipped(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.where(np.isin(np.arange(len(y)), rows), np.where(y == "match", "distinct", "match"), y)


def _frame(prefix: str, **columns: np.ndarray) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    return pl.DataFrame({
        "left_id": [f"{prefix}{i}" for i in range(n)], "right_id": [f"{prefix}r{i}" for i in range(n)],
        **{k: (v == "match").astype(np.float32) for k, v in columns.items()},
    })


@pytest.fixture(scope="module")
def known_flips():
    """Old model reads feature a, new reads feature b; each feature is the label with known rows wrong.

    On the evaluation pairs a is wrong on rows 0-59 and b on rows 50-69, so the new model is more
    accurate, fixes rows 0-49 and breaks rows 60-69 (the known negative flips).
    """
    rng = np.random.default_rng(7)
    y_train = np.where(rng.random(800) < 0.4, "match", "distinct")
    train = _frame("t", a=_flipped(y_train, rng.choice(800, 100, replace=False)),
                   b=_flipped(y_train, rng.choice(800, 30, replace=False)))
    y_eval = np.where(rng.random(400) < 0.4, "match", "distinct")
    evaluation = _frame("e", a=_flipped(y_eval, np.arange(0, 60)), b=_flipped(y_eval, np.arange(50, 70)))
    # The colour/size feature is missing everywhere, as in catalogs without variants: it never
    # splits, and the review's explanations find the variant feature they rely on.
    filler = "differs_only_color_size"
    missing = pl.lit(float("nan"), dtype=pl.Float32).alias(filler)
    train, evaluation = train.with_columns(missing), evaluation.with_columns(missing)
    old = train_matcher(train, y_train, MatcherSettings(seed=0, **FAST), feature_names=["a", filler])
    new = train_matcher(train, y_train, MatcherSettings(seed=1, **FAST), feature_names=["b", filler])
    return old, new, evaluation, y_eval


def test_new_model_more_accurate_but_flips_known_pairs(known_flips):
    old, new, evaluation, y = known_flips
    report, flips = compare_models(old, new, evaluation, y)
    assert report.pairs == 400
    assert report.new_accuracy > report.old_accuracy
    assert report.old_accuracy == pytest.approx(340 / 400)
    assert report.negative_flips == 10 and report.negative_flip_rate == pytest.approx(10 / 400)
    assert report.positive_flips == 50 and report.positive_flip_rate == pytest.approx(50 / 400)
    negative = flips.filter(pl.col("flip") == NEGATIVE)
    assert set(negative["left_id"]) == {f"e{i}" for i in range(60, 70)}
    assert set(flips.filter(pl.col("flip") == POSITIVE)["left_id"]) == {f"e{i}" for i in range(50)}
    # Every negative flip is a pair the old model decided as its label and the new one did not.
    assert (negative["old_decision"] == negative["label"]).all()
    assert (negative["new_decision"] != negative["label"]).all()
    assert (negative["new_p_match"] - negative["old_p_match"]).abs().min() > 0
    assert flips["flip"].to_list()[:10] == [NEGATIVE] * 10


def test_gate_refuses_negative_flips_and_f1_drops(known_flips):
    old, new, evaluation, y = known_flips
    report, _ = compare_models(old, new, evaluation, y)
    decision = gate(report, GateSettings())
    assert not decision.passed
    assert any("negative flip rate 2.50%" in r for r in decision.reasons)
    assert gate(report, GateSettings(max_negative_flip_rate=0.03)).passed
    # Swapped, the old model is the better one: its F1 drop is refused too.
    backwards, _ = compare_models(new, old, evaluation, y)
    reasons = gate(backwards, GateSettings(max_negative_flip_rate=1.0)).reasons
    assert any("F1 of 'match' drops" in r for r in reasons) and any("F1 of 'distinct' drops" in r for r in reasons)


def test_identical_models_have_no_flips(known_flips):
    old, _, evaluation, y = known_flips
    report, flips = compare_models(old, old, evaluation, y)
    assert report.negative_flips == report.positive_flips == 0 and flips.height == 0
    assert gate(report, GateSettings(max_negative_flip_rate=0.0, max_f1_drop=0.0)).passed


def test_compare_decisions_multiclass_and_bad_labels():
    classes = ("duplicate", "variant", "distinct")
    pairs = pl.DataFrame({"left_id": ["a", "b", "c"], "right_id": ["x", "y", "z"]})
    eye = np.eye(3)
    old_p, new_p = eye[[0, 1, 2]], eye[[1, 1, 0]]
    labels = ["duplicate", "variant", "variant"]
    report, flips = compare_decisions(pairs, labels, classes, old_p, np.array(classes)[[0, 1, 2]],
                                      new_p, np.array(classes)[[1, 1, 0]])
    assert (report.negative_flips, report.positive_flips) == (1, 0)
    assert report.old_f1["duplicate"] == 1.0 and report.new_f1["duplicate"] == 0.0
    assert flips.select("left_id", "old_decision", "new_decision").row(0) == ("a", "duplicate", "variant")
    assert flips["true_class_delta"][0] == -1.0
    with pytest.raises(ValueError, match="not classes"):
        compare_decisions(pairs, ["duplicate", "match", "variant"], classes, old_p, np.array(classes),
                          new_p, np.array(classes))


def test_congruent_targets_follow_old_model_only_where_it_was_right():
    classes = ("match", "distinct")
    old_p = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    weight, teacher = congruent_targets(["match", "distinct", "distinct"], classes, old_p,
                                        np.array(["match", "match", "distinct"]), correct_weight=3.0)
    assert weight.tolist() == [3.0, 1.0, 3.0]
    assert teacher.tolist() == [[0.9, 0.1], [0.0, 1.0], [0.2, 0.8]]


def _noisy(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Six noisy views of one latent score; a pair is a match when the score is high."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    y = np.where(z + rng.normal(scale=0.7, size=n) > 0.8, "match", "distinct")
    views = {f"f{i}": (z + rng.normal(scale=s, size=n)).astype(np.float32)
             for i, s in enumerate([0.8, 1.0, 1.2, 0.9, 1.5, 3.0])}
    return pl.DataFrame({"left_id": [f"{seed}-{i}" for i in range(n)], "right_id": [f"r{i}" for i in range(n)],
                         **views}), y


def test_congruent_training_lowers_negative_flip_rate():
    train, y_train = _noisy(1500, 1)
    evaluation, y_eval = _noisy(1500, 2)
    names = [f"f{i}" for i in range(6)]
    old = train_matcher(train[:400], y_train[:400], MatcherSettings(seed=0, **FAST), feature_names=names[:3])
    plain = train_matcher(train, y_train, MatcherSettings(seed=1, **FAST), feature_names=names)
    weight, teacher = congruent_inputs(old, train, y_train, correct_weight=5.0)
    congruent = train_matcher(train, y_train, MatcherSettings(seed=1, teacher_weight=0.5, **FAST),
                              sample_weight=weight, teacher_proba=teacher, feature_names=names)
    plain_report, _ = compare_models(old, plain, evaluation, y_eval)
    congruent_report, _ = compare_models(old, congruent, evaluation, y_eval)
    assert plain_report.negative_flips > 0
    assert congruent_report.negative_flip_rate < plain_report.negative_flip_rate


def test_flips_export_as_review_package_and_import_back(known_flips, tmp_path):
    old, new, evaluation, y = known_flips
    _, flips = compare_models(old, new, evaluation, y)
    ids = pl.concat([evaluation["left_id"], evaluation["right_id"]])
    records = pl.DataFrame({"id": ids, "title": [f"item {i}" for i in ids]}).with_columns(
        pl.when(pl.col("id") == "e60").then(pl.lit("=cmd|calc")).otherwise("title").alias("title"))
    paths = export_flips(flips, tmp_path / "flips", new, evaluation, records)
    review = pl.read_csv(paths["csv"], infer_schema_length=0)
    assert review.height == flips.height
    assert {"decision", "reasons", "label", "flip", "old_decision", "reviewer_verdict"} <= set(review.columns)
    assert review["flip"].to_list() == sorted(review["flip"].to_list())
    row = review.filter(pl.col("left_id") == "e60").row(0, named=True)
    assert row["flip"] == NEGATIVE and row["left_title"] == "'=cmd|calc"
    assert row["decision"] != row["label"] == row["old_decision"]
    assert row["reviewer_verdict"] is None and "<html" in paths["html"].read_text().lower()
    # A reviewer settles one negative flip; it comes back as a label like any review.
    filled = review.with_columns(
        pl.when(pl.col("left_id") == "e60").then(pl.lit("distinct")).otherwise(None).alias("reviewer_verdict"))
    filled.write_csv(paths["csv"])
    summary = import_reviews(tmp_path / "flips", tmp_path / "labels.csv")
    assert summary.added == 1
    labels = pl.read_csv(tmp_path / "labels.csv", infer_schema_length=0)
    assert labels.select("left_id", "right_id", "label").row(0) == ("e60", "er60", "distinct")


def test_two_source_export_keeps_sources_apart(known_flips, tmp_path):
    old, new, evaluation, y = known_flips
    _, flips = compare_models(old, new, evaluation, y)
    left = pl.DataFrame({"id": evaluation["left_id"], "title": "left " + evaluation["left_id"]})
    # The right source reuses the left ids for other records, as two real sources may.
    right = pl.DataFrame({"id": evaluation["right_id"].str.replace("r", ""),
                          "title": "right " + evaluation["right_id"]})
    shared = evaluation.with_columns(pl.col("right_id").str.replace("r", ""))
    flips = flips.with_columns(pl.col("right_id").str.replace("r", ""))
    review = pl.read_parquet(export_flips(flips, tmp_path / "flips", new, shared, left, right)["parquet"])
    row = review.filter(pl.col("left_id") == "e60").row(0, named=True)
    assert (row["right_id"], row["left_title"], row["right_title"]) == ("e60", "left e60", "right er60")
