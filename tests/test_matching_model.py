"""The matcher: training, thresholds, soft targets, save/load and its feature check; labels and metrics."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from features.pairs import FEATURE_NAMES, FEATURE_REVISION
from features.records import CatalogError
from matching import compiled
from matching.labels import read_labels, read_pairs, to_binary, truth_labels
from matching.metrics import class_report, confusion
from matching.model import Matcher, _group_split, score_pairs, train_matcher
from matching.settings import MatcherSettings

FAST = dict(num_boost_round=120, early_stopping_rounds=15)


def synthetic(n: int = 1500, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """Pairs whose class follows two features: high similarity = match, colour agreement = duplicate."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    sim, same_colour = x[:, 0], x[:, 1] > 0.5
    noisy = sim + rng.normal(scale=0.05, size=n) > 0.6
    y = np.where(noisy, np.where(same_colour, "duplicate", "variant"), "distinct")
    frame = pl.DataFrame(x, schema=list(FEATURE_NAMES), orient="row").with_columns(
        pl.Series("left_id", [f"a{i}" for i in range(n)]),
        pl.Series("right_id", [f"b{i}" for i in range(n)]),
        pl.Series("blockers", [["ann"]] * n, dtype=pl.List(pl.String)),
    )
    return frame, y


@pytest.fixture(scope="module")
def trained() -> tuple[Matcher, pl.DataFrame, np.ndarray]:
    frame, y = synthetic()
    return train_matcher(frame, y, MatcherSettings(**FAST)), frame, y


def test_multiclass_learns_and_reports_validation(trained):
    matcher, frame, y = trained
    proba = matcher.predict_proba(frame)
    assert matcher.classes == ("duplicate", "variant", "distinct")
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    decided = matcher.decide(proba)
    assert class_report(y, decided, matcher.classes, positive=("duplicate", "variant"))["macro_f1"] > 0.85
    meta = matcher.meta
    assert meta["validation_metrics"]["macro_f1"] > 0.8
    assert 0 < meta["n_valid"] < len(y) and meta["n_train"] + meta["n_valid"] == len(y)
    # The validation split is stratified: each class keeps its share.
    assert meta["class_counts"]["variant"] == int(np.sum(y == "variant"))


def test_contributions_add_up_to_the_probabilities(trained):
    matcher, frame, _ = trained
    contrib = matcher.contributions(frame.head(20))
    assert contrib.shape == (20, 3, len(FEATURE_NAMES) + 1)
    raw = contrib.sum(axis=2)
    softmax = np.exp(raw) / np.exp(raw).sum(1, keepdims=True)
    np.testing.assert_allclose(softmax, matcher.predict_proba(frame.head(20)), atol=1e-5)


def test_leaf_values_are_penalised_as_the_settings_say():
    frame, y = synthetic()
    matcher = train_matcher(frame, y, MatcherSettings(**FAST, lambda_l2=3.5))
    # LightGBM writes the parameters it trained with into the model text.
    assert "[lambda_l2: 3.5]" in matcher.booster.model_to_string()
    assert MatcherSettings().lambda_l2 > 0  # unpenalised multiclass leaves explode on large training sets


def test_compiled_trees_give_lightgbm_probabilities_and_are_compiled_once(trained, tmp_path, monkeypatch):
    matcher, frame, _ = trained
    monkeypatch.setenv("CATALOG_MATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(compiled, "COMPILE_MIN_ROWS", 1_000)
    monkeypatch.setattr(compiled, "_LOADED", {})
    loaded = Matcher.load(matcher.save(tmp_path / "model"))
    lightgbm = loaded.booster.predict(frame.head(999).select(FEATURE_NAMES).to_numpy())
    # Too few rows to pay for compiling, and nothing compiled yet: LightGBM scores.
    assert compiled.compiled_trees(loaded.model_text, 999) is None
    np.testing.assert_array_equal(loaded.predict_proba(frame.head(999)), lightgbm)
    assert not (tmp_path / "cache" / "compiled").exists()
    # Enough rows: compiled, kept in the cache, with LightGBM's probabilities over every tree.
    proba = loaded.predict_proba(frame)
    kept = list((tmp_path / "cache" / "compiled").iterdir())
    assert [p.name for p in kept] == [compiled.compiled_path(loaded.model_text).name]
    np.testing.assert_allclose(proba[:999], lightgbm, rtol=0, atol=1e-12)
    # Another process finds it compiled and uses it for any number of rows, without compiling again.
    monkeypatch.setattr(compiled, "_LOADED", {})
    stamp = kept[0].stat().st_mtime_ns
    assert compiled.compiled_trees(loaded.model_text, 10) is not None
    np.testing.assert_allclose(loaded.predict_proba(frame.head(10)), lightgbm[:10], rtol=0, atol=1e-12)
    assert kept[0].stat().st_mtime_ns == stamp
    # A cache that cannot be written still scores with compiled trees, kept for this process only.
    monkeypatch.setattr(compiled, "_LOADED", {})
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    assert compiled.compiled_trees(loaded.model_text, 1_000, blocked) is not None
    assert blocked.is_file()
    # Other trees are other machine code.
    other = Matcher.load(train_matcher(*synthetic(seed=1), MatcherSettings(**FAST)).save(tmp_path / "other"))
    assert compiled.compiled_path(other.model_text) != kept[0]


def test_save_load_round_trip(trained, tmp_path):
    matcher, frame, _ = trained
    matcher.meta["embedding_model"] = "static/test/8d"
    matcher.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["metadata.json", "model.txt"]
    assert (tmp_path / "m" / "model.txt").read_text().startswith("tree")
    loaded = Matcher.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(frame), matcher.predict_proba(frame))
    assert loaded.thresholds == matcher.thresholds and loaded.classes == matcher.classes
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    for key in ("feature_names", "classes", "thresholds", "mode", "embedding_model", "library_versions",
                "training_data_sha256", "validation_metrics", "seed", "created_at"):
        assert key in meta, key


def test_load_refuses_a_different_feature_list(tmp_path):
    frame, y = synthetic(400)
    other = list(FEATURE_NAMES[:-1])
    train_matcher(frame, y, MatcherSettings(**FAST), feature_names=other).save(tmp_path / "old")
    with pytest.raises(CatalogError, match="different feature list") as err:
        Matcher.load(tmp_path / "old")
    assert FEATURE_NAMES[-1] in str(err.value) and "\n" not in str(err.value)
    # Same names in another order are refused too: columns would be read in the wrong place.
    train_matcher(frame, y, MatcherSettings(**FAST), feature_names=list(reversed(FEATURE_NAMES))).save(tmp_path / "rev")
    with pytest.raises(CatalogError, match="order differs"):
        Matcher.load(tmp_path / "rev")
    with pytest.raises(CatalogError, match="not a model folder"):
        Matcher.load(tmp_path / "missing")


def test_load_refuses_a_model_of_another_feature_revision(trained, tmp_path):
    matcher, frame, _ = trained
    matcher.save(tmp_path / "m")
    assert Matcher.load(tmp_path / "m").meta["feature_revision"] == FEATURE_REVISION
    meta_path = tmp_path / "m" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["feature_revision"]  # models written before revisions were recorded
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CatalogError, match=f"feature revision 1, this version computes revision {FEATURE_REVISION}"):
        Matcher.load(tmp_path / "m")


def test_training_is_deterministic():
    frame, y = synthetic(600, seed=3)
    a = train_matcher(frame, y, MatcherSettings(seed=7, **FAST))
    b = train_matcher(frame, y, MatcherSettings(seed=7, **FAST))
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.meta["training_data_sha256"] == b.meta["training_data_sha256"]
    assert a.thresholds == b.thresholds


def test_binary_mode_maps_classes_and_picks_an_f1_optimal_threshold():
    frame, y = synthetic(1200, seed=1)
    valid, yv = synthetic(400, seed=8)
    matcher = train_matcher(frame, y, MatcherSettings(mode="binary", **FAST), valid_features=valid, valid_labels=yv)
    assert matcher.classes == ("match", "distinct")
    assert matcher.contributions(frame.head(5)).shape == (5, 2, len(FEATURE_NAMES) + 1)
    p_match = matcher.predict_proba(valid)[:, 0]
    truth = to_binary(yv)

    def f1_at(t: float) -> float:
        pred = np.where(p_match >= t, "match", "distinct")
        return class_report(truth, pred, matcher.classes, positive=("match",))["match"]["f1"]

    chosen = matcher.thresholds["match_threshold"]
    assert set(matcher.decide(matcher.predict_proba(valid))) <= {"match", "distinct"}
    assert matcher.meta["validation_metrics"]["match"]["f1"] == pytest.approx(f1_at(chosen))
    assert f1_at(chosen) > 0.85
    assert all(f1_at(chosen) >= f1_at(t) for t in np.linspace(0.05, 0.95, 19))


def test_explicit_validation_set_is_used_for_thresholds():
    frame, y = synthetic(800, seed=2)
    valid, yv = synthetic(300, seed=9)
    matcher = train_matcher(frame, y, MatcherSettings(mode="binary", **FAST), valid_features=valid, valid_labels=yv)
    assert matcher.meta["n_train"] == 800 and matcher.meta["n_valid"] == 300
    assert matcher.meta["validation_metrics"]["match"]["support"] == int(np.sum(yv != "distinct"))


def test_group_split_holds_out_whole_groups():
    frame, y = synthetic(600, seed=6)
    groups = np.repeat([f"g{i}" for i in range(60)], 10)
    train, valid = _group_split(groups, 0.2, seed=0)
    assert not set(groups[train]) & set(groups[valid])
    assert len(train) + len(valid) == len(groups) and 60 <= len(valid) <= 120
    matcher = train_matcher(frame, y, MatcherSettings(**FAST), groups=groups)
    assert matcher.meta["n_valid"] == len(valid)


def test_teacher_probabilities_pull_the_model_towards_the_teacher():
    frame, y = synthetic(900, seed=4)
    settings = MatcherSettings(teacher_weight=1.0, **FAST)
    plain = train_matcher(frame, y, MatcherSettings(**FAST), teacher_proba=None)
    assert plain.booster.model_to_string() == train_matcher(frame, y, MatcherSettings(**FAST)).booster.model_to_string()
    # A teacher that calls every pair distinct, followed fully, wipes out the matches.
    teacher = np.tile([0.02, 0.02, 0.96], (len(y), 1))
    taught = train_matcher(frame, y, settings, teacher_proba=teacher)
    assert taught.predict_proba(frame)[:, 2].mean() > plain.predict_proba(frame)[:, 2].mean() + 0.2
    with pytest.raises(ValueError, match="teacher_proba must have shape"):
        train_matcher(frame, y, settings, teacher_proba=teacher[:, :2])


def test_sample_weight_changes_what_is_learned():
    frame, y = synthetic(900, seed=5)
    weight = np.where(y == "variant", 0.0, 1.0)
    unweighted = train_matcher(frame, y, MatcherSettings(class_weight="none", **FAST))
    weighted = train_matcher(frame, y, MatcherSettings(class_weight="none", **FAST), sample_weight=weight)
    variant_rows = frame.filter(pl.Series(y == "variant"))
    assert weighted.predict_proba(variant_rows)[:, 1].mean() < unweighted.predict_proba(variant_rows)[:, 1].mean() - 0.3


def test_score_pairs_columns_and_uncertainty(trained):
    matcher, frame, _ = trained
    scored = score_pairs(matcher, frame)
    assert scored.columns == ["left_id", "right_id", "blockers", "p_duplicate", "p_variant", "p_distinct",
                              "decision", "uncertainty"]
    u = scored["uncertainty"].to_numpy()
    assert u.min() >= 0 and u.max() <= 1
    t = matcher.thresholds["match_threshold"]
    on_threshold = np.array([[t * 0.5, t * 0.5, 1 - t]])
    far = np.array([[0.0, 0.0, 1.0]])
    assert matcher.uncertainty(on_threshold)[0] == pytest.approx(1.0)
    assert matcher.uncertainty(far)[0] == pytest.approx(0.0)


def test_truth_labels():
    records = pl.DataFrame({
        "id": ["1", "2", "3", "4", "5"],
        "product_id": ["p1", "p1", "p2", "p3", "p4"],
        "family_id": ["f1", "f1", "f1", None, None],
    })
    pairs = pl.DataFrame({"left_id": ["1", "1", "3", "4"], "right_id": ["2", "3", "4", "5"]})
    assert truth_labels(pairs, records, records).to_list() == ["duplicate", "variant", "distinct", "distinct"]
    with pytest.raises(CatalogError, match="product_id"):
        truth_labels(pairs, records.drop("product_id"), records)


def test_read_labels_accepts_names_and_digits(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("ltable_id,rtable_id,label\n1,2,1\n3,4,0\n5,6,Variant\n7,8,duplicate\n")
    frame = read_labels(path)
    assert frame["label"].to_list() == ["match", "distinct", "variant", "duplicate"]
    assert frame.columns == ["left_id", "right_id", "label"] and frame.schema["left_id"] == pl.String
    assert read_pairs(path).columns == ["left_id", "right_id"]
    path.write_text("left_id,right_id,label\n1,2,1\n3,4,maybe\n")
    with pytest.raises(CatalogError, match=r"row 2, column 'label': unknown label 'maybe'"):
        read_labels(path)
    path.write_text("left_id,label\n1,1\n")
    with pytest.raises(CatalogError, match="right_id"):
        read_labels(path)


def test_class_report_counts_missed_pairs_as_false_negatives():
    truth = np.array(["duplicate", "duplicate", "variant", "distinct", "variant"], dtype=object)
    pred = np.array(["duplicate", "variant", "variant", "duplicate", "variant"], dtype=object)
    report = class_report(truth, pred, ("duplicate", "variant", "distinct"), positive=("duplicate", "variant"),
                          missed={"duplicate": 2})
    assert report["confusion"]["duplicate"] == {"duplicate": 1, "variant": 1, "distinct": 2}
    assert report["duplicate"]["precision"] == pytest.approx(0.5)
    assert report["duplicate"]["recall"] == pytest.approx(0.25)
    assert report["variant"]["precision"] == pytest.approx(2 / 3) and report["variant"]["recall"] == 1.0
    assert report["macro_f1"] == pytest.approx((1 / 3 + 0.8) / 2)
    # A class absent from truth and predictions has no F1 and does not dilute the mean.
    only_dup = class_report(truth[:2], truth[:2], ("duplicate", "variant", "distinct"), positive=("duplicate", "variant"))
    assert only_dup["variant"]["f1"] is None and only_dup["macro_f1"] == 1.0


@pytest.mark.parametrize("as_input", [list, np.asarray, pl.Series], ids=["list", "array", "series"])
def test_confusion_counts_each_truth_and_decision_whatever_holds_them(as_input):
    classes = ("duplicate", "variant", "distinct")
    rng = np.random.default_rng(3)
    truth = rng.choice([*classes, "match", None], 2_000).tolist()
    pred = rng.choice(classes, 2_000).tolist()
    table = confusion(as_input(truth), as_input(pred), classes)
    for a in classes:
        for b in classes:
            assert table[a][b] == sum(t == a and p == b for t, p in zip(truth, pred))
    # Labels outside the classes (and nulls) are in no cell.
    assert sum(map(sum, (row.values() for row in table.values()))) == sum(t in classes for t in truth)
