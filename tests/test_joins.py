"""Joins of pair tables on their keys."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.joins import PAIR_KEYS, join_pairs, sort_pairs

LEFT = pl.DataFrame({"left_id": ["c", "a", "b", "a"], "right_id": ["d", "z", "c", "b"], "x": [1, 2, 3, 4]})
RIGHT = pl.DataFrame({"left_id": ["a", "c", "q"], "right_id": ["b", "d", "r"], "y": [10, 20, 30]})


@pytest.mark.parametrize("lazy", [False, True])
def test_semi_and_anti_keep_the_left_rows_in_order(lazy):
    left = LEFT.lazy() if lazy else LEFT
    assert join_pairs(left, RIGHT, "semi")["x"].to_list() == [1, 4]
    assert join_pairs(left, RIGHT, "anti")["x"].to_list() == [2, 3]


def test_left_join_matches_on_both_keys_in_left_order():
    joined = join_pairs(LEFT, RIGHT, "left")
    assert joined["x"].to_list() == [1, 2, 3, 4]
    assert joined["y"].to_list() == [20, None, None, 10]


def test_full_join_keeps_unmatched_rows_of_both_sides():
    # A full join's row order is not set: compare sorted.
    joined = join_pairs(LEFT, RIGHT, "full", coalesce=True)
    assert joined.height == 5
    assert joined.filter(pl.col("left_id") == "q")["y"].to_list() == [30]
    assert joined.sort("x", nulls_last=True)["x"].to_list() == [1, 2, 3, 4, None]


@pytest.mark.parametrize("how", ["inner", "left", "semi", "anti", "full"])
def test_joins_on_the_pair_key_equal_joins_on_both_id_columns(how):
    # Ids that share a left or a right id, or swap them: only both ids together make a pair.
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(40)]

    def pairs(n: int, value: str) -> pl.DataFrame:
        return pl.DataFrame({"left_id": rng.choice(ids, n), "right_id": rng.choice(ids, n),
                             value: rng.integers(0, 100, n)}).unique(PAIR_KEYS)

    left, right = pairs(600, "x"), pairs(600, "y").with_columns(pl.col("y").alias("x"))
    options = {"suffix": "_prev"} if how == "full" else {}
    expected = left.join(right, on=PAIR_KEYS, how=how, coalesce=True, **options)
    got = join_pairs(left, right, how, **options)
    assert got.columns == expected.columns
    assert 0 < got.height < left.height + right.height
    assert got.sort(got.columns, nulls_last=True).equals(expected.sort(expected.columns, nulls_last=True))


def test_sort_pairs_gives_the_order_of_the_two_id_strings():
    # Ids whose string order is not their numbers' ("r10" < "r9"), a pair's ids in either order, and ids
    # the pairs do not name.
    rng = np.random.default_rng(1)
    ids = pl.Series([f"r{i}" for i in range(120)])
    pairs = pl.DataFrame({"left_id": rng.choice(ids[:100], 500), "right_id": rng.choice(ids[:100], 500),
                          "blockers": [["ann", "model"][: i % 3] for i in range(500)]}).unique(PAIR_KEYS)
    got = sort_pairs(pairs.sample(fraction=1.0, shuffle=True, seed=2), ids.sample(fraction=1.0, shuffle=True, seed=3))
    assert got.equals(pairs.sort(PAIR_KEYS))
    with pytest.raises(pl.exceptions.InvalidOperationError):
        sort_pairs(pairs, ids[:50])  # an id outside ``ids`` is an error, not a wrong order
