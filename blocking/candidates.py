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

KEY_COLUMNS = ["attr_title", "attr_brand", "attr_core", "attr_models", "attr_gtin"]
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
    ann_found: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, BlockingReport]:
    """Return candidate pairs (``left_id``, ``right_id``, ``blockers``, ``ann_sim``) and a report.

    One catalog when ``right`` is None (each unordered pair once, ``left_id < right_id``), else left x right.
    ``ann_found``: nearest-neighbour row pairs (``left``, ``right``, ``sim``) found earlier, used instead
    of searching (an incremental run keeps most of its previous run's).
    """
    two_sources = right is not None
    if two_sources != (right_emb is not None):
        raise ValueError("right and right_emb go together")
    report = BlockingReport(n_left=left.height, n_right=right.height if two_sources else None)
    rows = stacked(left, right, KEY_COLUMNS)
    right_ids = (right if two_sources else left)["id"]
    # A blocker named twice runs once: union() counts on each blocker proposing a pair once.
    steps = list(dict.fromkeys((["ann"] if settings.ann else []) + list(settings.blockers)))
    coder = PairCoder(left["id"], right_ids, two_sources)
    found: list[pl.DataFrame] = []

    def add(name: str, pairs: pl.DataFrame, started: float) -> None:
        sim = pairs["sim"] if "sim" in pairs.columns else pl.lit(None, pl.Float32)
        coded = (
            pl.DataFrame({"code": coder.encode(pairs["left"], pairs["right"])}).with_columns(sim.alias("sim"))
            .group_by("code").agg(pl.col("sim").max())
        )
        found.append(coded.with_columns(pl.lit(1 << sorted(steps).index(name), pl.UInt32).alias("bit")))
        report.pairs_per_blocker[name] = coded.height
        report.seconds[name] = round(time.perf_counter() - started, 3)

    with Progress(disable=not progress) as bar:
        task = bar.add_task("blocking", total=len(steps))
        for name in steps:
            bar.update(task, description=f"blocking: {name}")
            started = time.perf_counter()
            if name == "ann" and ann_found is not None:
                pairs = ann_found
            elif name == "ann":
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
    out = union(found, coder, sorted(steps))
    report.seconds["union"] = round(time.perf_counter() - started, 3)
    report.total_candidates = out.height
    report.candidates_per_record = round(candidates_per_record(out.height, left.height, report.n_right), 3)
    return out, report


class PairCoder:
    """Row pairs as one integer each, ordered as their ids are: ``rank(left_id) * n_right + rank(right_id)``
    (in one catalog the smaller id first), so that merging and sorting millions of pairs never
    compares strings."""

    def __init__(self, left_ids: pl.Series, right_ids: pl.Series, two_sources: bool):
        self.left_rank = (left_ids.rank("ordinal") - 1).cast(pl.UInt64)
        self.right_rank = (right_ids.rank("ordinal") - 1).cast(pl.UInt64)
        self.left_sorted, self.right_sorted = left_ids.sort(), right_ids.sort()
        self.n_right, self.two_sources = len(right_ids), two_sources

    def encode(self, left_rows: pl.Series, right_rows: pl.Series) -> pl.Series:
        """Codes of row pairs (``left_rows[i]``, ``right_rows[i]``)."""
        a, b = self.left_rank.gather(left_rows), self.right_rank.gather(right_rows)
        if not self.two_sources:
            a, b = a.zip_with(a <= b, b), b.zip_with(a <= b, a)
        return a * self.n_right + b

    def decode(self, codes: pl.Series) -> tuple[pl.Series, pl.Series]:
        """``left_id`` and ``right_id`` of pair codes."""
        return (self.left_sorted.gather(codes // self.n_right).alias("left_id"),
                self.right_sorted.gather(codes % self.n_right).alias("right_id"))


def union(found: list[pl.DataFrame], coder: PairCoder, names: list[str]) -> pl.DataFrame:
    """Merge per-blocker coded pairs (``code``, ``sim``, ``bit``: 1 << the blocker's place in ``names``)
    into one row per pair with its ids and sorted blockers, sorted by ids."""
    found = [pairs for pairs in found if not pairs.is_empty()]
    if not found:  # also keeps the schema: a replace over no masks would leave the bits' integer type
        return pl.DataFrame(schema=PAIRS_SCHEMA)
    merged = (
        pl.concat(found)
        .group_by("code")
        # Each blocker proposes a pair once, so the sum of its bits is their union.
        .agg(pl.col("bit").sum().alias("mask"), pl.col("sim").max().cast(pl.Float32).alias("ann_sim"))
        .sort("code")
    )
    masks = merged["mask"].unique().to_list()
    lists = {m: [name for i, name in enumerate(names) if m >> i & 1] for m in masks}
    left_id, right_id = coder.decode(merged["code"])
    blockers = merged["mask"].replace_strict(lists, return_dtype=pl.List(pl.String)).alias("blockers")
    return pl.DataFrame([left_id, right_id, blockers, merged["ann_sim"]])
