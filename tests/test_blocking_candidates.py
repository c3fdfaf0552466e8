"""Candidate generation: each blocker on hand-built attribute frames, the union, both modes."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from blocking.candidates import PAIRS_SCHEMA, generate_candidates
from blocking.keys import block_pairs
from blocking.settings import BlockingSettings


def attrs(rows: list[tuple[str, str, str | None, list[str], str | None]], colors: list[list[str]] | None = None) -> pl.DataFrame:
    """An attribute frame: id, attr_title (also attr_core), attr_brand, attr_models, attr_gtin, attr_colors, attr_sizes."""
    ids, titles, brands, models, gtins = zip(*rows)
    return pl.DataFrame(
        {"id": ids, "attr_title": titles, "attr_core": titles, "attr_brand": brands, "attr_models": models, "attr_gtin": gtins,
         "attr_colors": colors or [[] for _ in ids], "attr_sizes": [[] for _ in ids]},
        schema={"id": pl.String, "attr_title": pl.String, "attr_core": pl.String, "attr_brand": pl.String, "attr_models": pl.List(pl.String),
                "attr_gtin": pl.String, "attr_colors": pl.List(pl.String), "attr_sizes": pl.List(pl.String)},
    )


def unit_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Random, nearly orthogonal unit vectors: no two records are embedding neighbours by chance."""
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def pair_set(pairs: pl.DataFrame) -> dict[tuple[str, str], list[str]]:
    return {(a, b): bl for a, b, bl in pairs.select("left_id", "right_id", "blockers").iter_rows()}


CATALOG = attrs([
    ("r1", "acme drill cordless 18v", "acme", ["dx4410"], None),
    ("r2", "power tool kit", "bolt", ["dx4410"], None),            # same model as r1, unlike title
    ("r3", "garden hose green 20m", "hoseco", [], "00012345678905"),
    ("r4", "watering pipe", "other", [], "00012345678905"),       # same gtin as r3
    ("r5", "kettle steel 1.7l", "brewer", [], None),
    ("r6", "teapot ceramic", "potter", [], None),                  # embedding twin of r5 only
])


def test_keys_find_a_pair_the_embeddings_miss():
    emb = unit_vectors(len(CATALOG))
    pairs, report = generate_candidates(CATALOG, emb, BlockingSettings(k=1, min_similarity=0.9))
    found = pair_set(pairs)
    assert found[("r1", "r2")] == ["model"]
    assert found[("r3", "r4")] == ["gtin"]
    assert report.pairs_per_blocker["ann"] == 0


def test_embeddings_find_a_pair_the_keys_miss():
    emb = unit_vectors(len(CATALOG))
    emb[5] = emb[4]  # r6 is r5's embedding twin; they share no key and no title token
    pairs, _ = generate_candidates(CATALOG, emb, BlockingSettings(k=1, min_similarity=0.9))
    row = pairs.filter((pl.col("left_id") == "r5") & (pl.col("right_id") == "r6"))
    assert row["blockers"].to_list() == [["ann"]]
    assert row["ann_sim"].item() == pytest.approx(1.0, abs=1e-5)
    # A pair proposed only by keys has no embedding similarity.
    assert pairs.filter(pl.col("left_id") == "r1")["ann_sim"].is_null().all()


def test_one_catalog_contract_no_self_pairs_each_pair_once():
    emb = unit_vectors(len(CATALOG))
    emb[1] = emb[0]
    pairs, report = generate_candidates(CATALOG, emb, BlockingSettings(k=3, min_similarity=-1.0))
    assert pairs.schema == {"left_id": pl.String, "right_id": pl.String, "blockers": pl.List(pl.String), "ann_sim": pl.Float32}
    assert (pairs["left_id"] < pairs["right_id"]).all()
    assert pairs.select("left_id", "right_id").is_duplicated().sum() == 0
    # r1-r2 is proposed by the embeddings and the model key: both named, alphabetically.
    assert pair_set(pairs)[("r1", "r2")] == ["ann", "model"]
    assert report.total_candidates == pairs.height
    assert report.candidates_per_record == pytest.approx(pairs.height / len(CATALOG), abs=1e-3)


def test_pairs_follow_id_order_whatever_the_row_order():
    """Pairs are merged as integer codes of id ranks: rows in reverse id order give the same frame."""
    emb = unit_vectors(len(CATALOG))
    emb[5] = emb[4]
    settings = BlockingSettings(k=2, min_similarity=-1.0)
    pairs, _ = generate_candidates(CATALOG, emb, settings)
    reversed_pairs, _ = generate_candidates(CATALOG.reverse(), emb[::-1].copy(), settings)
    assert_frame_equal(reversed_pairs, pairs)
    assert pairs.equals(pairs.sort("left_id", "right_id")) and (pairs["left_id"] < pairs["right_id"]).all()
    # A blocker named twice proposes its pairs once and keeps its own name.
    twice, _ = generate_candidates(CATALOG, emb, settings.model_copy(update={"blockers": ["model", "model", "gtin"]}))
    once, _ = generate_candidates(CATALOG, emb, settings.model_copy(update={"blockers": ["model", "gtin"]}))
    assert_frame_equal(twice, once)
    assert "gtin" in pair_set(once)[("r3", "r4")]


def test_two_sources_pairs_run_left_to_right_only():
    left = CATALOG.slice(0, 3)
    right = attrs([
        ("x1", "cordless drill acme", "acme", ["dx4410"], None),
        ("x2", "hose pipe", "hoseco", [], "00012345678905"),
        ("r1", "unrelated lamp", "lumo", [], None),  # same id as a left record: ids are per source
    ])
    left_emb, right_emb = unit_vectors(3, seed=1), unit_vectors(3, seed=2)
    right_emb[2] = left_emb[2]
    settings = BlockingSettings(k=1, min_similarity=0.9, blockers=["model", "gtin"])
    pairs, report = generate_candidates(left, left_emb, settings, right, right_emb)
    expected = {("r1", "x1"): ["model"], ("r2", "x1"): ["model"], ("r3", "x2"): ["gtin"], ("r3", "r1"): ["ann"]}
    assert pair_set(pairs) == expected
    assert set(pairs["left_id"]) <= set(left["id"]) and set(pairs["right_id"]) <= set(right["id"])
    assert report.n_right == 3


def test_oversized_block_is_capped_and_reported():
    big = attrs([(f"b{i:02d}", f"item {i}", "acme", ["common1"], None) for i in range(12)])
    pairs, report = generate_candidates(
        big, unit_vectors(12), BlockingSettings(k=1, min_similarity=0.99, blockers=["model"], max_block_size=10)
    )
    assert pairs.height == 0
    assert report.capped_counts["model"] == 1
    assert report.capped_keys["model"][0].key == "common1" and report.capped_keys["model"][0].size == 12
    # Under the cap the same key pairs everyone up.
    pairs, report = generate_candidates(
        big, unit_vectors(12), BlockingSettings(k=1, min_similarity=0.99, blockers=["model"], max_block_size=12)
    )
    assert pairs.height == 12 * 11 // 2 and report.capped_counts["model"] == 0


def test_sorted_neighbourhood_pairs_near_identical_titles_only():
    frame = attrs([
        ("a", "zeta phone 12 pro max", None, [], None),
        ("b", "zeta phone 12 pro max", None, [], None),
        ("c", "zeta phone 12 pro mac", None, [], None),
        ("d", "zzz totally different words", None, [], None),
    ])
    settings = BlockingSettings(ann=False, blockers=["sorted"], sorted_window=3, sorted_min_score=90)
    pairs, _ = generate_candidates(frame, unit_vectors(4), settings)
    assert set(pair_set(pairs)) == {("a", "b"), ("a", "c"), ("b", "c")}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_catalog_no_larger_than_the_sorted_window(n):
    """Fewer titles than the window (an analyst's tiny extract): every pair is compared once, and a lone
    record yields an empty candidate frame with the usual columns."""
    frame = attrs([(f"r{i}", "zeta phone 12 pro max", None, [], None) for i in range(n)])
    settings = BlockingSettings(blockers=["sorted", "model", "brand_title", "brand_words"], sorted_window=4)
    pairs, _ = generate_candidates(frame, unit_vectors(n), settings, progress=False)
    assert set(pair_set(pairs)) == {(f"r{i}", f"r{j}") for i in range(n) for j in range(i + 1, n)}
    assert pairs.schema == PAIRS_SCHEMA


def test_brand_title_key_ignores_a_leading_brand():
    frame = attrs([
        ("a", "acme rocket skates red", "acme", [], None),
        ("b", "rocket skates blue", "acme", [], None),
        ("c", "acme rocket boots", "acme", [], None),
    ])
    settings = BlockingSettings(ann=False, blockers=["brand_title"], brand_title_tokens=2)
    pairs, _ = generate_candidates(frame, unit_vectors(3), settings)
    assert set(pair_set(pairs)) == {("a", "b")}


def test_brand_words_key_finds_the_line_wherever_the_title_puts_it():
    frame = attrs([
        ("a", "tenis olvix pace 35 lite mujer", None, [], None),  # brand only in the title, after the noun
        ("b", "olvix pace 35 lite womens running shoes", "olvix", [], None),
        ("c", "olvix trail 9 gtx mens hiking boots", "olvix", [], None),
        ("d", "zapatillas pace 35 lite hombre", "corvix", [], None),  # the same words under another brand
        ("e", "olvix pace 35", "olvix", [], None),  # shares one word pair with a and b
    ])
    settings = BlockingSettings(ann=False, blockers=["brand_words"])
    pairs, _ = generate_candidates(frame, unit_vectors(5), settings)
    assert pair_set(pairs) == {("a", "b"): ["brand_words"]}
    leading, _ = generate_candidates(frame, unit_vectors(5), settings.model_copy(update={"blockers": ["brand_title"]}))
    assert ("a", "b") not in pair_set(leading)
    one, _ = generate_candidates(frame, unit_vectors(5), settings.model_copy(update={"brand_words_min_shared": 1}))
    assert set(pair_set(one)) == {("a", "b"), ("a", "e"), ("b", "e")}
    # Linking two sources: a left listing names its brand in the title only, the right one in its column.
    linked, _ = generate_candidates(frame.slice(0, 1), unit_vectors(1), settings,
                                    right=frame.slice(1, 4), right_emb=unit_vectors(4, seed=1))
    assert pair_set(linked) == {("a", "b"): ["brand_words"]}


@pytest.mark.parametrize("two_sources", [False, True])
@pytest.mark.parametrize("min_shared", [1, 2])
def test_key_blocks_pair_exactly_the_rows_sharing_enough_uncapped_keys(two_sources, min_shared):
    rng = np.random.default_rng(3)
    n, cap = 400, 6
    keys = pl.DataFrame({"side": rng.integers(0, 2 if two_sources else 1, n).astype(np.int8),
                         "row": rng.integers(0, 40, n), "key": rng.choice([f"k{i}" for i in range(120)] + [""], n)})
    held = keys.filter(pl.col("key") != "").unique()
    sizes = held.group_by("key").len()
    useful = held.join(sizes.filter(pl.col("len") <= cap), on="key", how="semi")
    # By definition: count each pair's shared useful keys.
    shared = useful.join(useful, on="key").filter(
        (pl.col("side") < pl.col("side_right")) if two_sources
        else (pl.col("side") == pl.col("side_right")) & (pl.col("row") < pl.col("row_right")))
    expected = shared.group_by("row", "row_right").len().filter(pl.col("len") >= min_shared).select(
        pl.col("row").alias("left"), pl.col("row_right").alias("right")).sort("left", "right")
    found = block_pairs(keys, cap, two_sources, min_shared)
    assert expected.height > 0
    assert_frame_equal(found.pairs, expected, check_dtypes=False)
    assert set(found.capped["key"]) == set(sizes.filter(pl.col("len") > cap)["key"])
