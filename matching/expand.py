"""Second-round candidates: pairs two scored links apart, so that members of one family that blocking
never put side by side get a score of their own instead of the clustering's guess for unscored pairs."""

from __future__ import annotations

import polars as pl

from matching.settings import ExpandSettings

BLOCKER = "two_hop"


def two_hop_pairs(scored: pl.DataFrame, settings: ExpandSettings) -> pl.DataFrame:
    """Pairs (``left_id < right_id``, ``blockers``, ``ann_sim``) whose records both have a strong link to
    one record, not yet in ``scored``.

    A link is strong when p_duplicate + p_variant reaches ``min_probability``; each record contributes
    only its ``partners`` strongest links, so a hub cannot add pairs quadratic in its degree.
    """
    strong = scored.filter(pl.col("p_duplicate") + pl.col("p_variant") >= settings.min_probability).select(
        "left_id", "right_id", (pl.col("p_duplicate") + pl.col("p_variant")).alias("p"))
    ends = pl.concat([
        strong.select(pl.col("left_id").alias("hub"), pl.col("right_id").alias("id"), "p"),
        strong.select(pl.col("right_id").alias("hub"), pl.col("left_id").alias("id"), "p"),
    ])
    # Ties broken by id so the result does not depend on row order.
    top = ends.sort(["hub", "p", "id"], descending=[False, True, False]).group_by("hub", maintain_order=True).head(
        settings.partners)
    pairs = top.join(top, on="hub", suffix="_b").filter(pl.col("id") < pl.col("id_b")).select(
        pl.col("id").alias("left_id"), pl.col("id_b").alias("right_id")).unique()
    return pairs.join(scored.select("left_id", "right_id"), on=["left_id", "right_id"], how="anti").sort(
        "left_id", "right_id").with_columns(
        pl.lit([BLOCKER], dtype=pl.List(pl.String)).alias("blockers"), pl.lit(None, pl.Float32).alias("ann_sim"))
