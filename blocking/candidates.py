"""The union of all blockers: candidate pairs with the blockers that proposed them, and a report."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
from pydantic import BaseModel
from rich.progress import Progress

from blocking.ann import ann_pairs
from blocking.keys import key_blocker, sorted_neighbourhood, stacked
from blocking.metrics import candidates_per_record
from blocking.settings import BlockingSettings

KEY_COLUMNS = ["attr_title", "attr_brand", "attr_models", "attr_gtin"]
# The report lists the biggest capped keys; the count covers all of them.
CAPPED_KEYS_SHOWN = 20
PAIRS_SCHEMA = {"left_id": pl.String, "right_id": pl.String, "blockers": pl.List(pl.String), "ann_sim": pl.Float32}


class CappedKey(BaseModel):
    """A key shared by more records than ``max_block_size``: it proposed no pairs."""

    key: str
    size: int


class BlockingReport(BaseModel):
    """What each blocker proposed and how long it took."""

    n_left: int
    n_right: int | None = None
    index: str | None = None
    pairs_per_blocker: dict[str, int] = {}
    seconds: dict[str, float] = {}
    capped_counts: dict[str, int] = {}
    capped_keys: dict[str, list[CappedKey]] = {}
    total_candidates: int = 0
    candidates_per_record: float = 0.0


def generate_candidates(
    left: pl.DataFrame,
    left_emb: np.ndarray,
    settings: BlockingSettings,
    right: pl.DataFrame | None = None,
    right_emb: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[pl.DataFrame, BlockingReport]:
    """Return candidate pairs (``left_id``, ``right_id``, ``blockers``, ``ann_sim``) and a report.

    One catalog when ``right`` is None (each unordered pair once, ``left_id < right_id``), else left x right.
    """
    two_sources = right is not None
    if two_sources != (right_emb is not None):
        raise ValueError("right and right_emb go together")
    report = BlockingReport(n_left=left.height, n_right=right.height if two_sources else None)
    rows = stacked(left, right, KEY_COLUMNS)
    found: list[pl.DataFrame] = []

    def add(name: str, pairs: pl.DataFrame, started: float) -> None:
        if not two_sources:
            # Same unordered pair from either end: smaller row first.
            pairs = pairs.with_columns(
                pl.min_horizontal("left", "right").alias("left"), pl.max_horizontal("left", "right").alias("right")
            )
        if "sim" not in pairs.columns:
            pairs = pairs.with_columns(pl.lit(None, pl.Float32).alias("sim"))
        pairs = pairs.group_by("left", "right").agg(pl.col("sim").max())
        found.append(pairs.with_columns(pl.lit(name).alias("blocker")))
        report.pairs_per_blocker[name] = pairs.height
        report.seconds[name] = round(time.perf_counter() - started, 3)

    steps = (["ann"] if settings.ann else []) + list(settings.blockers)
    with Progress(disable=not progress) as bar:
        task = bar.add_task("blocking", total=len(steps))
        for name in steps:
            bar.update(task, description=f"blocking: {name}")
            started = time.perf_counter()
            if name == "ann":
                pairs, report.index = ann_pairs(left_emb, left, settings, right_emb, right, progress)
            elif name == "sorted":
                pairs = sorted_neighbourhood(rows, settings, two_sources)
            else:
                pairs, capped = key_blocker(name, rows, settings, two_sources)
                report.capped_counts[name] = capped.height
                report.capped_keys[name] = [CappedKey(**r) for r in capped.head(CAPPED_KEYS_SHOWN).iter_rows(named=True)]
            add(name, pairs, started)
            bar.advance(task)

    started = time.perf_counter()
    out = union(found, left["id"], (right if two_sources else left)["id"], two_sources)
    report.seconds["union"] = round(time.perf_counter() - started, 3)
    report.total_candidates = out.height
    report.candidates_per_record = round(candidates_per_record(out.height, left.height, report.n_right), 3)
    return out, report


def union(found: list[pl.DataFrame], left_ids: pl.Series, right_ids: pl.Series, two_sources: bool) -> pl.DataFrame:
    """Merge per-blocker row pairs into one row per pair, mapped to ids and sorted."""
    if not found:
        return pl.DataFrame(schema=PAIRS_SCHEMA)
    merged = (
        pl.concat(found)
        .group_by("left", "right")
        .agg(pl.col("blocker").unique().sort().alias("blockers"), pl.col("sim").max().cast(pl.Float32).alias("ann_sim"))
    )
    a = left_ids.gather(merged["left"]).alias("a")
    b = right_ids.gather(merged["right"]).alias("b")
    merged = merged.with_columns(a, b)
    if two_sources:
        ids = [pl.col("a").alias("left_id"), pl.col("b").alias("right_id")]
    else:
        ids = [pl.min_horizontal("a", "b").alias("left_id"), pl.max_horizontal("a", "b").alias("right_id")]
    return merged.select(*ids, "blockers", "ann_sim").sort("left_id", "right_id")
