"""Later-round candidates: pairs two scored links apart, so that members of one family that blocking
never put side by side get a score of their own instead of the clustering's guess for unscored pairs;
and, for records left with no strong link, their likeliest partners among the few listings of the
same brand, colours and sizes."""

from __future__ import annotations

import polars as pl
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from features.attributes import comparable_sizes, listed_brands
from features.joins import PAIR_KEYS, join_pairs
from features.text import tokenize
from matching.settings import ExpandSettings

TWO_HOP = "two_hop"
RESCUE = "rescue"


def _strong_links(scored: pl.DataFrame, settings: ExpandSettings) -> pl.DataFrame:
    """Scored pairs with p_duplicate + p_variant of at least ``min_probability`` (``left_id``, ``right_id``, ``p``)."""
    return scored.filter(pl.col("p_duplicate") + pl.col("p_variant") >= settings.min_probability).select(
        "left_id", "right_id", (pl.col("p_duplicate") + pl.col("p_variant")).alias("p"))


def _unscored(pairs: pl.DataFrame, scored: pl.DataFrame, blocker: str) -> pl.DataFrame:
    """``pairs`` not in ``scored``, sorted, with the round's ``blockers`` and a null ``ann_sim``."""
    return join_pairs(pairs, scored.select(PAIR_KEYS), "anti").sort(PAIR_KEYS).with_columns(
        pl.lit([blocker], dtype=pl.List(pl.String)).alias("blockers"), pl.lit(None, pl.Float32).alias("ann_sim"))


def two_hop_pairs(scored: pl.DataFrame, settings: ExpandSettings) -> pl.DataFrame:
    """Pairs (``left_id < right_id``, ``blockers``, ``ann_sim``) whose records both have a strong link to
    one record, not yet in ``scored``.

    A link is strong when p_duplicate + p_variant reaches ``min_probability``; each record contributes
    only its ``partners`` strongest links, so a hub cannot add pairs quadratic in its degree.
    """
    strong = _strong_links(scored, settings)
    # Records as their rank among the linked ids: integer joins and sorts, in the ids' own order (at a
    # million listings a round took 10.5 s on the string ids, 8.1 s on ranks).
    names = pl.concat([strong["left_id"], strong["right_id"]]).unique().sort()
    left, right = names.search_sorted(strong["left_id"]), names.search_sorted(strong["right_id"])
    ends = pl.DataFrame({"hub": pl.concat([left, right]), "id": pl.concat([right, left]),
                         "p": pl.concat([strong["p"], strong["p"]])})
    # Ties broken by id so the result does not depend on row order.
    top = ends.sort(["hub", "p", "id"], descending=[False, True, False]).group_by("hub", maintain_order=True).head(
        settings.partners)
    n = max(names.len(), 1)
    key = top.join(top, on="hub", suffix="_b").filter(pl.col("id") < pl.col("id_b")).select(
        (pl.col("id").cast(pl.UInt64) * n + pl.col("id_b")).alias("key")).unique()["key"]
    pairs = pl.DataFrame({"left_id": names.gather(key // n), "right_id": names.gather(key % n)})
    return _unscored(pairs, scored, TWO_HOP)


def rescue_pairs(scored: pl.DataFrame, attrs: pl.DataFrame, settings: ExpandSettings) -> pl.DataFrame:
    """Pairs (as ``two_hop_pairs``) of each record with no strong link and its ``rescue_matches`` most similar
    listings of its brand, colours and sizes, by the token set ratio (>= ``rescue_min_score``) of their core
    titles without the brand.

    Duplicates share brand, colour and size, so these blocks hold a missed duplicate if there is one;
    a record without a brand, or in a block over ``rescue_max_block`` listings, is left alone.
    """
    strong = _strong_links(scored, settings)
    linked = pl.concat([strong["left_id"], strong["right_id"]]).unique()
    block = pl.concat_str([
        pl.col("brand"), pl.col("attr_colors").list.sort().list.join(","), pl.col("sizes").list.join(","),
    ], separator="/")
    # Within a block brand, colours and sizes agree by construction; the rest of the title is what tells.
    words = tokenize(pl.col("attr_core").fill_null("")).list.set_difference(tokenize(pl.col("brand")))
    rows = attrs.select("id", "attr_core", "attr_colors", listed_brands(attrs), comparable_sizes(attrs).alias("sizes"))
    rows = rows.select("id", words.list.sort().list.join(" ").alias("text"), block.alias("block")).filter(
        pl.col("block").is_not_null())
    rows = rows.filter(pl.len().over("block").is_between(2, settings.rescue_max_block))
    queries = rows.filter(~pl.col("id").is_in(linked.implode()))
    cand = queries.join(rows, on="block", suffix="_b").filter(pl.col("id") != pl.col("id_b"))
    score = cpdist(cand["text"].to_list(), cand["text_b"].to_list(), scorer=fuzz.token_set_ratio, workers=-1,
                   score_cutoff=settings.rescue_min_score)
    # Ties broken by id so the result does not depend on row order.
    best = (
        cand.select("id", "id_b", pl.Series("score", score)).filter(pl.col("score") >= settings.rescue_min_score)
        .sort(["id", "score", "id_b"], descending=[False, True, False])
        .group_by("id", maintain_order=True).head(settings.rescue_matches)
    )
    pairs = best.select(pl.min_horizontal("id", "id_b").alias("left_id"),
                        pl.max_horizontal("id", "id_b").alias("right_id")).unique()
    return _unscored(pairs, scored, RESCUE)


def round_pairs(scored: pl.DataFrame, attrs: pl.DataFrame, settings: ExpandSettings, rescue: bool) -> pl.DataFrame:
    """One expansion round's pairs: two hops over strong links, and (``rescue``, when enabled) the
    likeliest partners of records with no strong link.

    The two never share a pair: a two-hop pair joins two records with a strong link each, a rescue pair
    holds a record with none.
    """
    found = [two_hop_pairs(scored, settings)]
    if rescue and settings.rescue:
        found.append(rescue_pairs(scored, attrs, settings))
    return pl.concat(found).sort(PAIR_KEYS)
