"""Explanations: reasons in words from contributions, consistent with the decision."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.pairs import FEATURE_NAMES
from matching.explain import PHRASES, VARIANT_FEATURES, explain_pairs
from matching.model import Matcher
from test_review import Run, build_run

CLASSES = ("duplicate", "variant", "distinct")
NAMES = list(FEATURE_NAMES)


class FixedContributions:
    """A matcher whose contributions are given, to test how they become reasons."""

    classes = CLASSES
    feature_names = NAMES

    def __init__(self, per_feature: dict[str, float], decided: str) -> None:
        self.row = np.zeros((len(CLASSES), len(NAMES) + 1))
        for name, value in per_feature.items():
            self.row[CLASSES.index(decided), NAMES.index(name)] = value

    def contributions(self, features: pl.DataFrame) -> np.ndarray:
        return np.repeat(self.row[None], features.height, axis=0)


RECORDS = pl.DataFrame({
    "id": ["a", "b", "c", "d"],
    "title": ["Acme Runner Shoe DX-123 Red 42", "ACME runner shoe DX123 blue 42",
              "Zeta Phone X2 64GB", "Zeta Phone X2 128GB"],
    "price": [100.0, 60.0, 399.0, 499.0],
    "attr_colors": [["red"], ["blue"], [], []],
    "attr_sizes": [["42"], ["42"], [], []],
    "attr_models": [["dx123"], ["dx123"], ["zx2"], ["zx2"]],
    "attr_capacity": [[], [], ["64gb"], ["128gb"]],
})


def features_for(values: dict[str, float], pairs: list[tuple[str, str]]) -> pl.DataFrame:
    """A features frame with every model feature (0 unless given) for the given pairs."""
    return pl.DataFrame({
        "left_id": [a for a, _ in pairs], "right_id": [b for _, b in pairs],
        **{n: pl.Series([values.get(n, 0.0)] * len(pairs), dtype=pl.Float32) for n in NAMES},
    })


def scored_for(pairs: list[tuple[str, str]], decision: str) -> pl.DataFrame:
    return pl.DataFrame({"left_id": [a for a, _ in pairs], "right_id": [b for _, b in pairs],
                         "decision": [decision] * len(pairs)})


def explain_one(pair: tuple[str, str], values: dict[str, float], contrib: dict[str, float], decision: str) -> dict:
    matcher = FixedContributions(contrib, decision)
    return explain_pairs(matcher, scored_for([pair], decision), features_for(values, [pair]), RECORDS).row(0, named=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return build_run(tmp_path_factory.mktemp("explain"))


def test_reasons_follow_contributions_toward_the_decided_class() -> None:
    row = explain_one(("a", "b"), {"model_agree": 1, "title_token_set": 0.96, "price_ratio": 0.6},
                      {"model_agree": 2.0, "title_token_set": 0.5, "price_ratio": -0.7}, "duplicate")
    assert row["reasons"][:2] == ["same model number DX123", "titles 96% alike (shared words)"]
    assert row["reason_features"][:2] == ["model_agree", "title_token_set"]
    assert row["reason_contributions"][:2] == pytest.approx([2.0, 0.5])
    assert row["against"] == ["price differs by 40% (100.0 vs 60.0)"]
    assert row["against_contributions"] == pytest.approx([-0.7])


def test_phrases_match_the_feature_list() -> None:
    generic = [n for n in NAMES if n not in PHRASES and not n.startswith("blocker_")]
    stale = [n for n in PHRASES if n not in NAMES]
    assert (generic, stale) == ([], [])


def test_price_phrase_states_the_gap() -> None:
    row = explain_one(("c", "d"), {"price_ratio": 0.8}, {"price_ratio": 1.0}, "variant")
    assert row["reasons"] == ["price differs by 20% (399.0 vs 499.0)"]


def test_capacity_and_colour_phrases_name_both_values() -> None:
    row = explain_one(("c", "d"), {"capacity_agree": 0}, {"capacity_agree": 1.5}, "variant")
    assert row["reasons"] == ["capacity differs: 64GB vs 128GB"]
    row = explain_one(("a", "b"), {"color_agree": 0}, {"color_agree": 1.1}, "variant")
    assert row["reasons"][0] == "colour differs: red vs blue"


@pytest.mark.skipif("differs_only_color_size" not in NAMES, reason="the feature list has no differs_only_color_size")
def test_variant_decision_lists_its_colour_difference_even_when_it_ranks_low() -> None:
    others = {n: 1.0 for n in NAMES if n not in VARIANT_FEATURES}
    row = explain_one(("a", "b"), {"differs_only_color_size": 1, "color_agree": 0}, others, "variant")
    assert row["reasons"][0] == "differ only in colour: red vs blue"
    assert row["reason_features"][0] in VARIANT_FEATURES
    # The same pair decided duplicate is explained by its contributions alone.
    row = explain_one(("a", "b"), {"differs_only_color_size": 1, "color_agree": 0}, others, "duplicate")
    assert not any("colour" in r for r in row["reasons"])


def test_title_token_diff_lists_each_sides_own_tokens() -> None:
    row = explain_one(("a", "b"), {}, {}, "distinct")
    assert row["left_only_tokens"] == ["123", "dx", "red"]
    assert row["right_only_tokens"] == ["blue", "dx123"]
    assert row["reasons"] == [] and row["against"] == []


def test_unknown_decision_or_missing_feature_row_is_an_error() -> None:
    matcher = FixedContributions({}, "variant")
    with pytest.raises(ValueError, match="not classes of the matcher"):
        explain_pairs(matcher, scored_for([("a", "b")], "maybe"), features_for({}, [("a", "b")]), RECORDS)
    with pytest.raises(ValueError, match="no feature row"):
        explain_pairs(matcher, scored_for([("a", "c")], "variant"), features_for({}, [("a", "b")]), RECORDS)


def real_explanations(run: Run) -> tuple[Matcher, pl.DataFrame, pl.DataFrame]:
    scored = pl.read_parquet(run.path / "pairs.parquet")
    features = pl.read_parquet(run.path / "features.parquet")
    records = pl.read_parquet(run.path / "records.parquet")
    matcher = Matcher.load(run.model_dir)
    return matcher, features, explain_pairs(matcher, scored, features, records)


def test_real_model_variant_explanations_state_the_colour_or_size_difference(run: Run) -> None:
    _, _, explained = real_explanations(run)
    variants = explained.filter(pl.col("decision") == "variant")
    assert variants.height > 5

    def differs(name: str) -> pl.Expr:
        left, right = pl.col(f"left_{name}"), pl.col(f"right_{name}")
        return (left.list.len() > 0) & (right.list.len() > 0) & (left.list.set_symmetric_difference(right).list.len() > 0)

    reasons = pl.col("reasons").list.join(" | ")
    colour = variants.filter(differs("attr_colors"))
    size = variants.filter(differs("attr_sizes"))
    assert colour.height > 0 and size.height > 0
    assert colour.filter(~reasons.str.contains("colour")).height == 0
    assert size.filter(~reasons.str.contains("size")).height == 0


def test_real_model_reasons_carry_the_decided_class_contributions(run: Run) -> None:
    matcher, features, explained = real_explanations(run)
    aligned = explained.select("left_id", "right_id").join(features, on=["left_id", "right_id"], maintain_order="left")
    contrib = matcher.contributions(aligned)
    decided = np.array([CLASSES.index(d) for d in explained["decision"]])
    per_pair = contrib[np.arange(len(decided)), decided]
    for i, row in enumerate(explained.head(60).iter_rows(named=True)):
        expected = [per_pair[i, NAMES.index(f)] for f in row["reason_features"]]
        assert row["reason_contributions"] == pytest.approx(expected)
        against = [per_pair[i, NAMES.index(f)] for f in row["against_features"]]
        assert row["against_contributions"] == pytest.approx(against)
        assert all(v < 0 for v in against)
    # Duplicates' reasons push toward duplicate: the largest is the row's largest contribution.
    dup = explained.with_row_index("i").filter((pl.col("decision") == "duplicate") & (pl.col("reasons").list.len() > 0))
    assert dup.height > 0
    for i, first in zip(dup["i"], dup["reason_contributions"].list.first()):
        assert first == pytest.approx(per_pair[i, : len(NAMES)].max())


def test_explanations_are_deterministic_and_chunking_changes_nothing(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = real_explanations(run)[2]
    assert whole.equals(real_explanations(run)[2])
    monkeypatch.setattr("matching.explain.CONTRIBUTION_CHUNK", 7)
    assert whole.equals(real_explanations(run)[2])
