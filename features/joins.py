"""Joins of pair tables on their keys (``left_id``, ``right_id``)."""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

PAIR_KEYS = ["left_id", "right_id"]

JoinHow = Literal["inner", "left", "full", "semi", "anti"]


def join_pairs(left: pl.DataFrame | pl.LazyFrame, right: pl.DataFrame | pl.LazyFrame, how: JoinHow,
               **options: Any) -> pl.DataFrame:
    """``left`` joined with ``right`` on the pair keys, in ``left``'s row order; a full join's rows come
    in no set order.

    Runs on polars' streaming engine: at a million listings (16M pairs, two string keys) a semi join
    took 17 s in memory and 4 s streaming on two cores; a full join there took 11.3 s and 3.7 GB of
    memory with its order kept, 2.3 s and 1.5 GB without.
    """
    order = "none" if how == "full" else "left"
    return left.lazy().join(right.lazy(), on=PAIR_KEYS, how=how, maintain_order=order, **options).collect(
        engine="streaming")
