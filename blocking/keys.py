"""Fuzzy-key blockers over attribute frames: model number, GTIN, brand + leading title tokens, brand +
adjacent title word pairs, and a sorted-neighbourhood pass over normalised titles.

Every blocker returns row pairs ``left``, ``right`` (row positions in the left and right frames; in one
catalog both index the same frame, with ``left < right``). Rows are numbered across both frames by a
``side`` column (0 left, 1 right) so one catalog and two sources share one code path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from blocking.settings import BlockingSettings
from features.attributes import listed_brands
from features.text import tokenize

PAIR_SCHEMA = {"left": pl.Int64, "right": pl.Int64}


class KeyPairs(NamedTuple):
    """Pairs proposed by one key blocker and the keys it refused because their block was too big."""

    pairs: pl.DataFrame
    capped: pl.DataFrame  # key, size; largest first


def stacked(left: pl.DataFrame, right: pl.DataFrame | None, columns: list[str]) -> pl.DataFrame:
    """Return ``side``, ``row`` and ``columns`` of the left frame, with the right frame's rows below."""
    frames = [left.select(columns).with_row_index("row").with_columns(pl.lit(0, pl.Int8).alias("side"))]
    if right is not None:
        frames.append(right.select(columns).with_row_index("row").with_columns(pl.lit(1, pl.Int8).alias("side")))
    return pl.concat(frames).with_columns(pl.col("row").cast(pl.Int64))


def block_pairs(keys: pl.DataFrame, max_block_size: int, two_sources: bool, min_shared: int = 1) -> KeyPairs:
    """Pair up rows sharing at least ``min_shared`` keys (``side``, ``row``, ``key``), skipping keys held
    by more than the cap."""
    # Rows of both frames numbered in one range, the right frame's after the left's.
    n_left = int(keys.filter(pl.col("side") == 0)["row"].max() or 0) + 1
    blocks = (
        keys.filter(pl.col("key").is_not_null() & (pl.col("key") != ""))
        .group_by("key").agg((pl.col("row") + pl.col("side").cast(pl.Int64) * n_left).unique().sort().alias("rows"),
                             (pl.col("side").n_unique() == 2).alias("both"))
        .with_columns(pl.col("rows").list.len().alias("size"))
    )
    capped = blocks.filter(pl.col("size") > max_block_size).select("key", "size").sort(["size", "key"], descending=[True, False])
    # Two sources: a block of one source's rows holds none of the pairs wanted.
    useful = pl.col("size").is_between(2, max_block_size) & (pl.col("both") | (not two_sources))
    members = blocks.filter(useful).select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("block"), "rows").explode("rows")
    block, rows = members["block"].to_numpy(), members["rows"].to_numpy().astype(np.uint64)
    # Each block's rows lie side by side in ascending order, so the pairs d apart are its (i, i + d): d
    # runs up to the cap instead of a self-join making every pair twice and each row's pair with itself.
    n = np.uint64(rows.max() + 1 if len(rows) else 1)
    codes = [np.empty(0, np.uint64)]
    for d in range(1, max_block_size):
        same = block[d:] == block[:-d]
        if not same.any():
            break
        codes.append(rows[:-d][same] * n + rows[d:][same])
    # Each pair as one integer, sorted: a pair shared by m keys is then m equal codes in a row (a sort
    # took a ninth of the time of grouping the 34M pairs that brand + word pairs give a million listings).
    codes = pl.Series(np.concatenate(codes)).sort()
    if min_shared > 1:
        codes = codes.filter(codes == codes.shift(min_shared - 1))
    codes = codes.unique(maintain_order=True)
    pairs = pl.DataFrame({"left": (codes // n).cast(pl.Int64), "right": (codes % n).cast(pl.Int64)})
    if two_sources:  # a left row, then a right row
        pairs = pairs.filter((pl.col("left") < n_left) & (pl.col("right") >= n_left)).with_columns(pl.col("right") - n_left)
    return KeyPairs(pairs, capped)


def model_keys(rows: pl.DataFrame, settings: BlockingSettings) -> pl.DataFrame:
    """Each normalised model number long enough to be specific, and its stem without trailing letters
    (colour and edition suffixes: ``ap83391bk`` and ``ap83391`` share the key ``ap83391``)."""
    models = rows.select("side", "row", pl.col("attr_models").alias("key")).explode("key")
    stems = models.with_columns(pl.col("key").str.replace(r"[a-z]+$", "")).filter(pl.col("key").str.contains(r"\d"))
    return pl.concat([models, stems]).filter(pl.col("key").str.len_chars() >= settings.min_model_length)


def gtin_keys(rows: pl.DataFrame, settings: BlockingSettings) -> pl.DataFrame:
    """The normalised GTIN."""
    return rows.select("side", "row", pl.col("attr_gtin").alias("key"))


def brand_title_keys(rows: pl.DataFrame, settings: BlockingSettings) -> pl.DataFrame:
    """Brand plus the first title tokens after a leading brand (no brand: one title token more)."""
    n = settings.brand_title_tokens
    brand = pl.col("attr_brand").fill_null("")
    # Titles often open with the brand, which is already the first part of the key.
    title = pl.col("attr_title").fill_null("")
    body = title.str.strip_prefix(pl.concat_str([brand, pl.lit(" ")])).str.split(" ")
    body = body.list.eval(pl.element().filter(pl.element() != ""))
    key = pl.when(brand != "").then(pl.concat_str([brand, body.list.head(n).list.join(" ")], separator="|"))
    key = key.otherwise(pl.concat_str([pl.lit("|"), body.list.head(n + 1).list.join(" ")]))
    return rows.select("side", "row", key.alias("key"), body.list.len().alias("n_tokens")).filter(
        pl.col("n_tokens") >= n
    ).drop("n_tokens")


def brand_words_keys(rows: pl.DataFrame, settings: BlockingSettings) -> pl.DataFrame:
    """The listing's brand (its own, else the one its title names) plus each two adjacent words of its
    title without colours, sizes and the brand's own words, wherever they stand in the title."""
    # Sellers put the product type before the line name ("Tenis Olvix Pace 35", "Olvix Sneakers Pace 35")
    # or leave it out, so a key on the title's first words misses them; the line's words stay adjacent.
    brand = listed_brands(rows)
    words = (
        rows.select("side", "row", brand.alias("brand"), tokenize(pl.col("attr_core").fill_null("")).alias("word"))
        .filter(pl.col("brand").is_not_null())
        .with_columns(tokenize(pl.col("brand")).alias("brand_words"))
        .explode("word")
        .filter(pl.col("word").is_not_null() & ~pl.col("word").is_in(pl.col("brand_words")))
    )
    # The next word of the same title (exploded titles lie one after another).
    same = (pl.col("row").shift(-1) == pl.col("row")) & (pl.col("side").shift(-1) == pl.col("side"))
    nxt = pl.when(same).then(pl.col("word").shift(-1))
    return words.select("side", "row", pl.concat_str([pl.col("brand"), pl.lit("|"), pl.col("word"), pl.lit(" "), nxt]).alias("key"))


KEY_FUNCTIONS = {"model": model_keys, "gtin": gtin_keys, "brand_title": brand_title_keys, "brand_words": brand_words_keys}


def key_blocker(name: str, rows: pl.DataFrame, settings: BlockingSettings, two_sources: bool) -> KeyPairs:
    """Run one exact-key blocker (``model``, ``gtin``, ``brand_title`` or ``brand_words``) over stacked rows."""
    min_shared = settings.brand_words_min_shared if name == "brand_words" else 1
    return block_pairs(KEY_FUNCTIONS[name](rows, settings), settings.max_block_size, two_sources, min_shared)


def sorted_neighbourhood(rows: pl.DataFrame, settings: BlockingSettings, two_sources: bool) -> pl.DataFrame:
    """Pair each title with the next ``sorted_window`` titles in sort order, kept if rapidfuzz agrees."""
    order = rows.select("side", "row", pl.col("attr_title").fill_null("").alias("title")).sort(["title", "side", "row"])
    # A catalog of w rows or fewer has fewer than w titles after any title.
    window = min(settings.sorted_window, order.height - 1)
    if window < 1:
        return pl.DataFrame(schema=PAIR_SCHEMA)
    offsets = []
    for offset in range(1, window + 1):
        a, b = order.slice(0, order.height - offset), order.slice(offset)
        offsets.append(pl.concat([a, b.rename(lambda c: c + "_b")], how="horizontal"))
    cand = pl.concat(offsets).filter((pl.col("title") != "") & (pl.col("title_b") != ""))
    if two_sources:
        cand = cand.filter(pl.col("side") != pl.col("side_b"))
    if cand.height == 0:
        return pl.DataFrame(schema=PAIR_SCHEMA)
    scores = cpdist(cand["title"].to_list(), cand["title_b"].to_list(), scorer=fuzz.token_sort_ratio, workers=-1)
    cand = cand.filter(pl.Series(scores) >= settings.sorted_min_score)
    # Put the left-frame row first (two sources), or the smaller row first (one catalog).
    first_is_left = (pl.col("side") < pl.col("side_b")) if two_sources else (pl.col("row") < pl.col("row_b"))
    return cand.select(
        pl.when(first_is_left).then(pl.col("row")).otherwise(pl.col("row_b")).alias("left"),
        pl.when(first_is_left).then(pl.col("row_b")).otherwise(pl.col("row")).alias("right"),
    ).unique()
