"""Stable, opaque cluster ids across runs and the lineage events that explain how they changed."""

from __future__ import annotations

import hashlib

import polars as pl

from features.records import CatalogError

# (level name, local key column in the clusters frame, id column in records, id prefix)
LEVELS = (
    ("group", "group_key", "duplicate_group_id", "G-"),
    ("family", "family_key", "variant_family_id", "F-"),
)
EVENTS = ("new", "kept", "merged", "split", "retired")
LINEAGE_SCHEMA = {
    "level": pl.String, "event": pl.String, "id": pl.String, "previous_id": pl.String, "records": pl.Int64,
}
_ID_HEX = 16


def mint_id(prefix: str, member_ids: str, taken: set[str]) -> str:
    """Derive an opaque id from a cluster's sorted member ids, re-salting on the rare collision."""
    salt = 0
    while True:
        digest = hashlib.blake2b(f"{salt}\x1f{member_ids}".encode(), digest_size=_ID_HEX // 2).hexdigest()
        candidate = prefix + digest
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        salt += 1


def _check_previous(previous: pl.DataFrame, source: str) -> pl.DataFrame:
    for col in ("id", "duplicate_group_id", "variant_family_id"):
        if col not in previous.columns:
            raise CatalogError(source, "column is missing", column=col)
    for col in ("duplicate_group_id", "variant_family_id"):
        if previous[col].null_count():
            row = previous.select(pl.col(col).is_null().arg_max()).item()
            raise CatalogError(source, "cluster id is empty", row=row + 1, column=col)
    if previous["id"].is_duplicated().any():
        row = previous.select(pl.col("id").is_first_distinct().not_().arg_max()).item()
        raise CatalogError(source, "duplicate record id", row=row + 1, column="id")
    return previous.select(pl.col("id").cast(pl.String), pl.col("duplicate_group_id").cast(pl.String),
                           pl.col("variant_family_id").cast(pl.String))


def _greedy_overlap(overlap: pl.DataFrame) -> pl.DataFrame:
    """Pair current keys with previous ids, best overlap first, each side used at most once.

    Taking every row that is the best remaining row for both its key and its previous id, then
    dropping their ends and repeating, picks exactly what a sequential greedy pass would.
    """
    rows = overlap.sort(
        ["overlap", "prev_size", "size", "prev", "anchor"], descending=[True, True, True, False, False]
    ).with_row_index("rank")
    chosen = []
    while rows.height:
        mutual = rows.filter(
            (pl.col("rank") == pl.col("rank").min().over("key")) & (pl.col("rank") == pl.col("rank").min().over("prev"))
        )
        chosen.append(mutual.select("key", "prev"))
        rows = rows.join(mutual.select("key"), on="key", how="anti").join(mutual.select("prev"), on="prev", how="anti")
    return pl.concat(chosen) if chosen else overlap.select("key", "prev").clear()


def _level_ids(
    current: pl.DataFrame, previous: pl.DataFrame | None, level: str, prefix: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give one level's clusters ids; ``current`` has id, key and ``previous`` has id, prev."""
    clusters = current.group_by("key").agg(pl.col("id").min().alias("anchor"), pl.len().alias("size"))
    if previous is None:
        previous = pl.DataFrame(schema={"id": pl.String, "prev": pl.String})
    prev_sizes = previous.group_by("prev").agg(pl.len().alias("prev_size"))
    overlap = (
        current.join(previous, on="id", how="inner").group_by("key", "prev").agg(pl.len().alias("overlap"))
        .join(clusters.select("key", "anchor", "size"), on="key").join(prev_sizes, on="prev")
    )
    kept = _greedy_overlap(overlap)
    fresh = (
        current.join(kept, on="key", how="anti").group_by("key")
        .agg(pl.col("id").min().alias("anchor"), pl.col("id").sort().str.join("\n").alias("members"))
        .sort("anchor")
    )
    taken = set(prev_sizes["prev"].to_list())
    minted = fresh.select(
        "key", pl.Series("cluster_id", [mint_id(prefix, m, taken) for m in fresh["members"].to_list()], dtype=pl.String)
    )
    ids = clusters.select("key", "size").join(
        pl.concat([kept.select("key", pl.col("prev").alias("cluster_id")), minted]), on="key"
    )

    prev_fate = kept.rename({"key": "owner"})
    moves = (
        overlap.select("key", "prev", "overlap").join(ids.select("key", "cluster_id"), on="key")
        .join(prev_fate, on="prev", how="left")
        .select(
            pl.when(pl.col("owner") == pl.col("key")).then(pl.lit("kept"))
            .when(pl.col("owner").is_null()).then(pl.lit("merged"))
            .otherwise(pl.lit("split")).alias("event"),
            pl.col("cluster_id").alias("id"), pl.col("prev").alias("previous_id"), pl.col("overlap").alias("records"),
        )
    )
    new = ids.join(overlap.select("key"), on="key", how="anti").select(
        pl.lit("new").alias("event"), pl.col("cluster_id").alias("id"),
        pl.lit(None, dtype=pl.String).alias("previous_id"), pl.col("size").alias("records"),
    )
    retired = prev_sizes.join(overlap.select("prev"), on="prev", how="anti").select(
        pl.lit("retired").alias("event"), pl.lit(None, dtype=pl.String).alias("id"),
        pl.col("prev").alias("previous_id"), pl.col("prev_size").alias("records"),
    )
    lineage = pl.concat([
        frame.select(pl.lit(level).alias("level"), pl.all()).cast(LINEAGE_SCHEMA) for frame in (moves, new, retired)
    ])
    return ids.select("key", "cluster_id"), lineage


def assign_stable_ids(
    clusters: pl.DataFrame, previous_records: pl.DataFrame | None = None, source: str = "<previous records>"
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Turn run-local cluster keys into ids that persist across runs; return (records, groups, lineage).

    ``clusters`` is ``cluster_records`` output. A cluster keeps the previous id it shares the most
    records with (ties: larger previous cluster, larger current cluster, smaller id); other clusters
    get a fresh opaque id. Lineage rows (level, event, id, previous_id, records) say for each
    (current, previous) overlap whether the previous cluster was ``kept``, ``merged`` into another
    id or ``split`` off, plus ``new`` clusters and ``retired`` ids whose records are all gone.
    """
    previous = _check_previous(previous_records, source) if previous_records is not None else None
    records = clusters
    lineages = []
    for level, key_col, id_col, prefix in LEVELS:
        current = clusters.select("id", pl.col(key_col).alias("key"))
        prev = previous.select("id", pl.col(id_col).alias("prev")) if previous is not None else None
        ids, lineage = _level_ids(current, prev, level, prefix)
        records = records.join(ids.rename({"key": key_col, "cluster_id": id_col}), on=key_col, how="left",
                               maintain_order="left")
        lineages.append(lineage)
    records = records.select(
        "id", "duplicate_group_id", "variant_family_id", "confidence", "group_weakest_link", "family_weakest_link",
    )
    groups = (
        records.group_by("duplicate_group_id")
        .agg(
            pl.col("variant_family_id").first(), pl.len().cast(pl.Int64).alias("size"),
            pl.col("group_weakest_link").first().alias("weakest_link"), pl.col("family_weakest_link").first(),
        )
        .with_columns(pl.col("size").sum().over("variant_family_id").alias("family_size"))
        .select("duplicate_group_id", "variant_family_id", "size", "weakest_link", "family_size", "family_weakest_link")
        .sort("duplicate_group_id")
    )
    lineage = pl.concat(lineages).sort("level", "event", "id", "previous_id", nulls_last=True)
    return records.select("id", "duplicate_group_id", "variant_family_id", "confidence"), groups, lineage
