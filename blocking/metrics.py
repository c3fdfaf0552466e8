"""Blocking quality: true pairs from truth columns or a matches file, pair completeness, reduction ratio."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from features.joins import PAIR_KEYS, join_pairs
from features.records import CatalogError, read_raw

TRUTH_PAIR_COLUMNS = (("ltable_id", "rtable_id"), ("left_id", "right_id"), ("id1", "id2"))


class BlockingMetrics(BaseModel):
    """How many true pairs the candidates keep, at what cost."""

    true_pairs: int
    found: int
    pair_completeness: float | None  # None: no true pairs, so nothing to find
    candidates: int
    candidates_per_record: float
    reduction_ratio: float
    completeness_per_blocker: dict[str, float | None]
    only_found_by: dict[str, int]


def candidates_per_record(n_pairs: int, n_left: int, n_right: int | None = None) -> float:
    """Candidate pairs per input record (the records of both sources when linking)."""
    return n_pairs / max(n_left + (n_right or 0), 1)


def reduction_ratio(n_pairs: int, n_left: int, n_right: int | None = None) -> float:
    """One minus the share of all possible pairs that are candidates."""
    total = n_left * (n_left - 1) / 2 if n_right is None else n_left * n_right
    return 1.0 - n_pairs / total if total else 0.0


def canonical(pairs: pl.DataFrame, two_sources: bool) -> pl.DataFrame:
    """Return unique ``left_id``, ``right_id``; in one catalog the smaller id first."""
    pairs = pairs.select(pl.col("left_id").cast(pl.String), pl.col("right_id").cast(pl.String))
    if not two_sources:
        pairs = pairs.select(
            pl.min_horizontal("left_id", "right_id").alias("left_id"), pl.max_horizontal("left_id", "right_id").alias("right_id")
        ).filter(pl.col("left_id") != pl.col("right_id"))
    return pairs.unique()


def truth_from_column(
    left: pl.DataFrame, column: str, right: pl.DataFrame | None = None, singletons: tuple[str, ...] = ()
) -> pl.DataFrame:
    """All pairs sharing a truth value (``product_id``, ``cluster_id``...); ``singletons`` values pair with nothing."""
    def side(df: pl.DataFrame) -> pl.DataFrame:
        if column not in df.columns:
            raise CatalogError("<catalog>", f"no truth column {column!r}", column=column)
        truth = df.select("id", pl.col(column).cast(pl.String).alias("truth"))
        return truth.filter(pl.col("truth").is_not_null() & ~pl.col("truth").is_in(list(singletons)))

    a = side(left)
    b = side(right) if right is not None else a
    pairs = a.join(b, on="truth").select(pl.col("id").alias("left_id"), pl.col("id_right").alias("right_id"))
    if right is None:
        pairs = pairs.filter(pl.col("left_id") < pl.col("right_id"))
    return pairs.unique().sort("left_id", "right_id")


def truth_from_file(path: str | os.PathLike, two_sources: bool) -> pl.DataFrame:
    """Read true pairs from a matches file (``ltable_id,rtable_id``, ``left_id,right_id`` or ``id1,id2``).

    A ``label`` column, when present, keeps only rows labelled 1 or a match class.
    """
    df = read_raw(path)
    names = next((c for c in TRUTH_PAIR_COLUMNS if set(c) <= set(df.columns)), None)
    if names is None:
        raise CatalogError(Path(path), f"needs columns ltable_id,rtable_id (or left_id,right_id); has {','.join(df.columns)}")
    if "label" in df.columns:
        df = df.filter(pl.col("label").cast(pl.String).is_in(["1", "duplicate", "match"]))
    pairs = df.select(pl.col(names[0]).alias("left_id"), pl.col(names[1]).alias("right_id"))
    return canonical(pairs, two_sources).sort("left_id", "right_id")


def blocking_metrics(
    pairs: pl.DataFrame, truth: pl.DataFrame, n_left: int, n_right: int | None = None
) -> BlockingMetrics:
    """Pair completeness overall and per blocker, candidates per record and reduction ratio."""
    two_sources = n_right is not None
    truth = canonical(truth, two_sources)
    hits = join_pairs(truth, pairs.select(*PAIR_KEYS, "blockers"), "inner")
    blockers = sorted(set(pairs["blockers"].explode().drop_nulls().unique().to_list()))

    def share(found: int) -> float | None:
        return round(found / truth.height, 4) if truth.height else None

    per_blocker = {b: share(hits.filter(pl.col("blockers").list.contains(b)).height) for b in blockers}
    alone = pl.col("blockers").list.len() == 1
    only = {b: hits.filter(alone & pl.col("blockers").list.contains(b)).height for b in blockers}
    return BlockingMetrics(
        true_pairs=truth.height,
        found=hits.height,
        pair_completeness=share(hits.height),
        candidates=pairs.height,
        candidates_per_record=round(candidates_per_record(pairs.height, n_left, n_right), 3),
        reduction_ratio=round(reduction_ratio(pairs.height, n_left, n_right), 6),
        completeness_per_blocker=per_blocker,
        only_found_by=only,
    )
