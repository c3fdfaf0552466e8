"""Two-level clustering: chaining resistance, attribute and brand constraints, determinism, B-cubed."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from features.records import CatalogError
from matching.bcubed import bcubed
from matching.cluster import cluster_records, components
from matching.settings import ClusterSettings

LIST = pl.List(pl.String)
ATTR_SCHEMA = {
    "id": pl.String, "attr_brand": pl.String, "attr_colors": LIST, "attr_sizes": LIST,
    "attr_capacity": LIST, "attr_models": LIST,
}


def attrs(*rows: dict) -> pl.DataFrame:
    """Attribute frame from dicts with id and any of brand/colors/sizes/capacity/models."""
    return pl.DataFrame(
        [
            {
                "id": r["id"], "attr_brand": r.get("brand", "acme"), "attr_colors": r.get("colors", []),
                "attr_sizes": r.get("sizes", []), "attr_capacity": r.get("capacity", []),
                "attr_models": r.get("models", []),
            }
            for r in rows
        ],
        schema=ATTR_SCHEMA,
    )


def scored(*edges: tuple[str, str, float, float]) -> pl.DataFrame:
    """Scored pairs from (left, right, p_duplicate, p_variant)."""
    left, right, dup, var = zip(*edges)
    return pl.DataFrame({
        "left_id": left, "right_id": right, "p_duplicate": dup, "p_variant": var,
        "p_distinct": [1 - d - v for d, v in zip(dup, var)],
    })


def partition(frame: pl.DataFrame, key: str) -> set[frozenset[str]]:
    """The clustering as a set of member-id sets, independent of key values."""
    return {frozenset(g["id"].to_list()) for _, g in frame.group_by(key)}


def test_strong_chain_through_conflicting_colour_is_not_one_group():
    recs = attrs({"id": "a", "colors": ["black"]}, {"id": "b"}, {"id": "c", "colors": ["white"]})
    # a-c was never compared: only the colours tell that a and c differ.
    pairs = scored(("a", "b", 0.95, 0.03), ("b", "c", 0.9, 0.05))
    assert partition(cluster_records(recs, pairs, ClusterSettings(conflict_attributes=[])), "group_key") == {
        frozenset("abc")}
    out = cluster_records(recs, pairs, ClusterSettings())
    # b has no colour so it may join either side, and goes with its stronger link.
    assert partition(out, "group_key") == {frozenset({"a", "b"}), frozenset({"c"})}
    assert partition(out, "family_key") == {frozenset({"a", "b", "c"})}
    absolute = ClusterSettings(conflict_override=1.0)
    sure_pair = pairs.vstack(scored(("a", "c", 0.9, 0.05)))
    assert partition(cluster_records(recs, sure_pair, absolute), "group_key") == {frozenset("ab"), frozenset("c")}


def test_long_chain_of_weak_links_is_not_merged():
    ids = [f"r{i:02d}" for i in range(12)]
    recs = attrs(*({"id": i} for i in ids))
    chain = scored(*((x, y, 0.62, 0.2) for x, y in itertools.pairwise(ids)))
    # Plain connected components would put the whole chain in one cluster.
    assert len(set(components(len(ids), np.arange(11), np.arange(1, 12)).tolist())) == 1
    out = cluster_records(recs, chain, ClusterSettings())
    group_sizes = out.group_by("group_key").len()["len"]
    assert group_sizes.max() <= 2 and group_sizes.len() >= 6
    # Family evidence (0.82 per link) is stronger and unproposed pairs weigh less there, but a chain
    # still stops after a few links.
    family_sizes = out.group_by("family_key").len()["len"]
    assert family_sizes.max() <= 4 and family_sizes.len() >= 3


def test_chain_with_low_scored_cross_pairs_splits_at_the_weak_side():
    recs = attrs(*({"id": i} for i in "abcd"))
    # a-b and c-d are tight; b-c is strong but every other cross pair says "different product".
    pairs = scored(("a", "b", 0.97, 0.02), ("c", "d", 0.96, 0.02), ("b", "c", 0.9, 0.05),
                   ("a", "c", 0.05, 0.1), ("a", "d", 0.05, 0.1), ("b", "d", 0.05, 0.1))
    out = cluster_records(recs, pairs, ClusterSettings())
    assert partition(out, "group_key") == {frozenset("ab"), frozenset("cd")}


def test_complete_group_with_one_unproposed_pair_still_merges():
    recs = attrs(*({"id": i} for i in "abc"))
    out = cluster_records(recs, scored(("a", "b", 0.95, 0.03), ("b", "c", 0.95, 0.03)), ClusterSettings())
    assert partition(out, "group_key") == {frozenset("abc")}


@pytest.mark.parametrize("column", ["colors", "sizes", "capacity", "models"])
def test_conflicting_attribute_splits_a_tight_component(column):
    values = {"colors": ("black", "white"), "sizes": ("m", "xl"), "capacity": ("64gb", "128gb"),
              "models": ("dx100", "dx200")}[column]
    recs = attrs(*({"id": f"{v}{i}", column: [v]} for v in values for i in range(2)), {"id": "unknown"})
    members = recs["id"].to_list()
    every = ClusterSettings(conflict_attributes=["attr_colors", "attr_sizes", "attr_capacity", "attr_models"],
                            conflict_override=1.0)
    out = cluster_records(recs, scored(*((x, y, 0.9, 0.08) for x, y in itertools.combinations(members, 2))), every)
    groups = partition(out, "group_key")
    assert frozenset({f"{values[0]}0", f"{values[0]}1"}) <= max(groups, key=lambda g: f"{values[0]}0" in g)
    for group in groups:
        known = {v for v in values if any(m.startswith(v) for m in group)}
        assert len(known) <= 1, group
    assert partition(out, "family_key") == {frozenset(members)}


def test_model_numbers_veto_only_when_configured():
    recs = attrs({"id": "a", "models": ["pm1327bk"]}, {"id": "b", "models": ["pm1327"]})
    pairs = scored(("a", "b", 0.9, 0.05))
    assert partition(cluster_records(recs, pairs, ClusterSettings()), "group_key") == {frozenset("ab")}
    strict = ClusterSettings(conflict_attributes=["attr_models"], conflict_override=1.0)
    assert partition(cluster_records(recs, pairs, strict), "group_key") == {frozenset("a"), frozenset("b")}


def test_confident_pair_overrides_an_attribute_slip_but_not_a_weaker_conflict():
    recs = attrs({"id": "a", "colors": ["blk"]}, {"id": "b", "colors": ["black"]}, {"id": "c", "colors": ["white"]})
    # The matcher vouches for a-b despite the spelling; b-c is merely likely, so white still vetoes it.
    pairs = scored(("a", "b", 0.95, 0.03), ("b", "c", 0.85, 0.1))
    assert partition(cluster_records(recs, pairs, ClusterSettings(conflict_override=0.9)), "group_key") == {
        frozenset("ab"), frozenset("c")}
    assert partition(cluster_records(recs, pairs, ClusterSettings(conflict_override=1.0)), "group_key") == {
        frozenset("a"), frozenset("b"), frozenset("c")}


def test_sizes_are_compared_in_one_system():
    # A dress listed as US 12 in one shop and EU 44 in another is one size; US 14 is another.
    recs = attrs({"id": "a", "sizes": ["us12"]}, {"id": "b", "sizes": ["eu44"]}, {"id": "c", "sizes": ["us14"]})
    strict = ClusterSettings(conflict_override=1.0)
    pairs = scored(("a", "b", 0.9, 0.05), ("b", "c", 0.9, 0.05), ("a", "c", 0.9, 0.05))
    assert partition(cluster_records(recs, pairs, strict), "group_key") == {frozenset("ab"), frozenset("c")}


def test_overlapping_colour_lists_do_not_conflict():
    recs = attrs({"id": "a", "colors": ["black", "white"]}, {"id": "b", "colors": ["white"]})
    out = cluster_records(recs, scored(("a", "b", 0.9, 0.05)), ClusterSettings())
    assert partition(out, "group_key") == {frozenset("ab")}


def test_family_never_spans_brands_unless_overwhelming():
    recs = attrs({"id": "a", "brand": "acme"}, {"id": "b", "brand": "acme"}, {"id": "c", "brand": "globex"},
                 {"id": "d", "brand": None})
    pairs = scored(("a", "b", 0.1, 0.85), ("a", "c", 0.1, 0.85), ("b", "c", 0.1, 0.85), ("c", "d", 0.1, 0.85))
    out = cluster_records(recs, pairs, ClusterSettings())
    families = partition(out, "family_key")
    assert frozenset("ab") in families
    assert not any({"a", "c"} <= f for f in families)
    # A record without a known brand can join either brand's family.
    assert frozenset("cd") in families
    triangle = pairs.head(3)
    assert frozenset("c") in partition(cluster_records(recs, triangle, ClusterSettings()), "family_key")
    lenient = cluster_records(recs, triangle, ClusterSettings(cross_brand_threshold=0.9))
    assert frozenset("abc") in partition(lenient, "family_key")


def test_duplicate_group_never_spans_brands_unless_overwhelming():
    recs = attrs({"id": "a", "brand": "acme"}, {"id": "b", "brand": "globex"}, {"id": "c", "brand": "initech"},
                 {"id": "d", "brand": "hooli"})
    out = cluster_records(recs, scored(("a", "b", 0.9, 0.05), ("c", "d", 0.99, 0.005)), ClusterSettings())
    assert partition(out, "group_key") == {frozenset("a"), frozenset("b"), frozenset("cd")}


def random_catalog(seed: int, n: int = 300, m: int = 3000) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    colours = ["black", "white", "red", None]
    recs = attrs(*(
        {"id": f"r{i:04d}", "brand": ["acme", "globex", None][i % 3],
         "colors": [c] if (c := colours[rng.integers(4)]) else [], "sizes": ["m"] if rng.random() < 0.2 else []}
        for i in range(n)
    ))
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, 6, m)) % n  # nearby ids, so components overlap and chain
    dup = rng.beta(2, 2, m)
    pairs = pl.DataFrame({
        "left_id": recs["id"].gather(np.minimum(a, b)), "right_id": recs["id"].gather(np.maximum(a, b)),
        "p_duplicate": dup, "p_variant": (1 - dup) * rng.random(m),
    }).unique(["left_id", "right_id"], keep="first", maintain_order=True)
    return recs, pairs.with_columns((1 - pl.col("p_duplicate") - pl.col("p_variant")).alias("p_distinct"))


def test_invariants_hold_on_a_contested_random_graph():
    recs, pairs = random_catalog(seed=1)
    # Make both vetoes absolute so that the invariants are exact.
    out = cluster_records(recs, pairs, ClusterSettings(cross_brand_threshold=1.0, conflict_override=1.0))
    assert out["id"].to_list() == recs["id"].to_list()
    assert out.group_by("group_key").agg(pl.col("family_key").n_unique())["family_key"].max() == 1
    joined = out.join(recs, on="id")
    for _, group in joined.group_by("group_key"):
        colours = {c for cs in group["attr_colors"].to_list() for c in cs}
        brands = set(group["attr_brand"].drop_nulls().to_list())
        assert len(colours) <= 1 and len(brands) <= 1
    for _, family in joined.group_by("family_key"):
        assert family["attr_brand"].drop_nulls().n_unique() <= 1
    assert out["confidence"].is_between(0, 1).all()
    assert out.filter(pl.col("group_key").is_duplicated())["group_weakest_link"].min() >= 0.0
    assert out.group_by("group_key").len()["len"].max() > 1


def test_result_does_not_depend_on_row_order():
    recs, pairs = random_catalog(seed=2)
    first = cluster_records(recs, pairs, ClusterSettings())
    flipped = pairs.rename({"left_id": "right_id", "right_id": "left_id"})
    second = cluster_records(recs.sample(fraction=1.0, shuffle=True, seed=3),
                             flipped.sample(fraction=1.0, shuffle=True, seed=4), ClusterSettings())
    for key in ("group_key", "family_key"):
        assert partition(first, key) == partition(second, key)
    assert first.sort("id").equals(second.sort("id"))


def test_confidence_and_weakest_links():
    recs = attrs(*({"id": i} for i in "abcde"))
    pairs = scored(("a", "b", 0.9, 0.05), ("a", "c", 0.8, 0.1), ("b", "c", 0.7, 0.2),
                   ("c", "d", 0.1, 0.8), ("a", "d", 0.05, 0.55), ("d", "e", 0.3, 0.1))
    out = cluster_records(recs, pairs, ClusterSettings()).sort("id")
    assert partition(out, "group_key") == {frozenset("abc"), frozenset("d"), frozenset("e")}
    assert partition(out, "family_key") == {frozenset("abcd"), frozenset("e")}
    assert out["confidence"].to_list() == pytest.approx([0.85, 0.8, 0.75, 0.7, 0.7])
    assert out["group_weakest_link"].to_list()[:3] == pytest.approx([0.7] * 3)
    assert out["group_weakest_link"].to_list()[3:] == [None, None]
    # d joins the family on linkage (0.9 + 0.6 + 0.25 unproposed) / 3 = 0.58; its weakest pair is a-d.
    assert out["family_weakest_link"].to_list()[:4] == pytest.approx([0.6] * 4)
    assert out["family_weakest_link"].to_list()[4] is None


def test_binary_scores_cluster_both_levels_on_match_probability():
    recs = attrs(*({"id": i} for i in "abc"))
    pairs = pl.DataFrame({"left_id": ["a", "b"], "right_id": ["b", "c"], "p_match": [0.9, 0.2],
                          "p_distinct": [0.1, 0.8]})
    out = cluster_records(recs, pairs, ClusterSettings())
    assert partition(out, "group_key") == partition(out, "family_key") == {frozenset("ab"), frozenset("c")}


def test_bad_inputs_raise_catalog_error():
    recs = attrs({"id": "a"}, {"id": "b"})
    with pytest.raises(CatalogError, match="'zz' is not in the records"):
        cluster_records(recs, scored(("a", "zz", 0.9, 0.0)), ClusterSettings())
    with pytest.raises(CatalogError, match="p_duplicate"):
        cluster_records(recs, pl.DataFrame({"left_id": ["a"], "right_id": ["b"]}), ClusterSettings())
    with pytest.raises(CatalogError, match="attr_sizes"):
        cluster_records(recs.drop("attr_sizes"), scored(("a", "b", 0.9, 0.0)), ClusterSettings())


def test_bcubed_hand_computed():
    # Predicted {1,2} {3,4,5}; truth {1,2,3} {4,5}.
    # Precision per record: 1, 1, 1/3, 2/3, 2/3; recall: 2/3, 2/3, 1/3, 1, 1.
    got = bcubed(pl.Series([1, 1, 2, 2, 2]), pl.Series(["x", "x", "x", "y", "y"]))
    assert got["bcubed_precision"] == pytest.approx(11 / 15, abs=1e-6)
    assert got["bcubed_recall"] == pytest.approx(11 / 15, abs=1e-6)
    assert got["bcubed_f1"] == pytest.approx(11 / 15, abs=1e-6)
    assert bcubed(["a", "b", "c"], ["x", "y", "z"])["bcubed_f1"] == 1.0
    # Everything in one cluster against all singletons: precision 1/3, recall 1.
    lumped = bcubed(["a", "a", "a"], ["x", "y", "z"])
    assert lumped["bcubed_precision"] == pytest.approx(1 / 3, abs=1e-6)
    assert lumped["bcubed_recall"] == 1.0
    assert lumped["bcubed_f1"] == pytest.approx(0.5, abs=1e-6)


def test_bcubed_null_labels_are_singletons():
    got = bcubed(["a", None, None], ["x", "x", None])
    # Records 2 and 3 are predicted apart; record 3's truth is its own cluster.
    assert got["bcubed_precision"] == 1.0
    assert got["bcubed_recall"] == pytest.approx((0.5 + 0.5 + 1) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="labels"):
        bcubed([1, 2], [1])
