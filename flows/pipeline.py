"""Plain stage functions of a dedup or link run; the Prefect flow in flows/dedup.py orchestrates them."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from features.attributes import ATTRIBUTE_COLUMNS
from features.io import atomic_dir, file_hash, write_json, write_table
from features.joins import PAIR_KEYS, join_pairs
from features.pairs import RecordValues, apply_gaps, record_values, values_features
from features.store import write_features
from flows.incremental import ANN_FILE, ATTRIBUTES_FILE, BESTS_FILE, BRANDS_FILE, IDF_FILE, INDEX_FILE, save_index
from matching.labels import MULTICLASS
from matching.metrics import class_report
from matching.model import Matcher, score_pairs

DISPLAY_COLUMNS = (
    "title", "brand", "color", "size", "price", "model_number",
    "attr_colors", "attr_sizes", "attr_models", "attr_capacity",
)
LINK_SOURCES = ("left", "right")


@dataclass
class Side:
    """One catalog's records with attributes and embeddings, row-aligned."""

    attrs: pl.DataFrame
    emb: np.ndarray

    def subset(self, ids: pl.Series) -> Side:
        """The rows of these ids (and only those), in catalog order."""
        # Unique first: a round names each record ~37 times (7.1 s for a million listings, 3.6 s unique).
        rows = np.flatnonzero(self.attrs["id"].is_in(ids.unique().implode()).to_numpy())
        return self if len(rows) == self.attrs.height else Side(self.attrs[rows], self.emb[rows])


@dataclass
class RunResult:
    """What a run produced, in memory, before it is written."""

    scored: pl.DataFrame
    records: pl.DataFrame
    groups: pl.DataFrame
    lineage: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # What the next run reuses (flows/incremental.py); absent for links.
    idf: Any = None
    brands: list[str] | None = None
    attributes: pl.DataFrame | None = None
    ann: pl.DataFrame | None = None
    index: Any = None
    bests: pl.DataFrame | None = None


def shard_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into consecutive [start, stop) shards of at most ``size``."""
    return [(start, min(start + size, n)) for start in range(0, n, size)] or [(0, 0)]


@functools.lru_cache(maxsize=4)
def load_matcher(model_dir: str) -> Matcher:
    """Load a model folder once per process (tasks on Dask workers reuse it)."""
    return Matcher.load(Path(model_dir))


def round_values(pairs: pl.DataFrame, left: Side, right: Side, idf: Any) -> RecordValues:
    """Per-record feature values of the records ``pairs`` name, computed once for all of a round's chunks."""
    # Taken per chunk instead, a million-listing run did each record's work in ~4 of its 33 chunks.
    if left is right:
        left = right = left.subset(pl.concat([pairs["left_id"], pairs["right_id"]]))
    else:
        left, right = left.subset(pairs["left_id"]), right.subset(pairs["right_id"])
    return record_values(left.attrs, right.attrs, left.emb, right.emb, idf)


def chunk_features(pairs: pl.DataFrame, values: RecordValues, feature_names: list[str]) -> pl.DataFrame:
    """Pair features for one chunk of candidate pairs, keeping the pair columns; the gap features are
    left NaN, to be taken where the chunk's part is read (``score_features``, the features file)."""
    return values_features(pairs, values, gaps=False).select(["left_id", "right_id", "blockers", *feature_names])


def part_bests(path: Path, bests: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """``bests`` of just the records the pairs in one features file name."""
    ids = pl.read_parquet(path, columns=PAIR_KEYS)
    if bests["left"] is bests["right"]:
        one = bests["left"].join(pl.concat([ids["left_id"], ids["right_id"]]).to_frame("id"), on="id", how="semi")
        return {"left": one, "right": one}
    return {side: bests[side].join(ids.select(pl.col(f"{side}_id").alias("id")), on="id", how="semi")
            for side in ("left", "right")}


def score_features(path: Path, model_dir: Path, bests: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Class probabilities and decisions for the pairs in one features file, with the features that
    compare a pair with its records' other pairs taken against ``bests``."""
    return score_pairs(load_matcher(str(model_dir)), apply_gaps(pl.read_parquet(path), bests))


def namespace_link(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """Prefix ids with their source so ids of two catalogs cannot collide in one clustering."""
    return frame.with_columns(
        (pl.lit(f"{source}:") + pl.col(col)).alias(col) for col, source in columns.items()
    )


def link_records(left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """Stack two attribute frames with namespaced ids and a `source` column."""
    parts = []
    for source, frame in zip(LINK_SOURCES, (left, right)):
        parts.append(
            namespace_link(frame.with_columns(pl.col("id").alias("source_id"), pl.lit(source).alias("source")),
                           {"id": source})
        )
    return pl.concat(parts, how="diagonal_relaxed")


def display_records(attrs: pl.DataFrame, assigned: pl.DataFrame) -> pl.DataFrame:
    """Join stable cluster ids with the columns a reviewer needs to see."""
    keep = ["id", *[c for c in (*DISPLAY_COLUMNS, "source", "source_id") if c in attrs.columns]]
    return assigned.join(attrs.select(keep), on="id", how="left")


def truth_metrics(attrs: pl.DataFrame, candidates: pl.DataFrame, scored: pl.DataFrame,
                  records: pl.DataFrame) -> dict[str, Any]:
    """Pair completeness of blocking's candidates and of all scored pairs (with the two-hop round), pair
    P/R/F1 per class and B-cubed scores, when the catalog carries truth."""
    from flows.benchmark import bcubed_report, true_pairs

    if "product_id" not in attrs.columns:
        return {}
    truth = true_pairs(attrs)
    if truth.is_empty():
        return {}
    decisions = scored.select("left_id", "right_id", pl.col("decision").replace("match", "duplicate"))
    joined = join_pairs(truth, decisions, "full", coalesce=True).with_columns(
        pl.col("label").fill_null("distinct"), pl.col("decision").fill_null("distinct"))
    report = class_report(joined["label"], joined["decision"], MULTICLASS,
                          positive=("duplicate", "variant"))
    def completeness(pairs: pl.DataFrame) -> float:
        found = join_pairs(truth, pairs.select(PAIR_KEYS), "semi").height
        return round(found / truth.height, 4)

    clusters = records.select("id", pl.col("duplicate_group_id").alias("group_key"),
                              pl.col("variant_family_id").alias("family_key"))
    return {
        "pair_completeness": completeness(scored),
        "blocking_pair_completeness": completeness(candidates),
        **{c: {k: round(report[c][k] or 0.0, 4) for k in ("precision", "recall", "f1")} for c in ("duplicate", "variant")},
        "clusters": bcubed_report(clusters, attrs),
    }


def count_summary(n_records: int, result: RunResult) -> dict[str, int]:
    """Counts shown in the run's table artifact and run.json."""
    decisions = result.scored["decision"].value_counts() if result.scored.height else None
    by_class = dict(zip(decisions["decision"], decisions["count"])) if decisions is not None else {}
    groups = result.records["duplicate_group_id"].n_unique()
    families = result.records["variant_family_id"].n_unique()
    return {
        "records": n_records,
        "candidates": result.scored.height,
        "duplicate_pairs": int(by_class.get("duplicate", 0) + by_class.get("match", 0)),
        "variant_pairs": int(by_class.get("variant", 0)),
        "duplicate_groups": groups,
        "multi_record_groups": int(result.groups.filter(pl.col("size") > 1).height) if "size" in result.groups.columns else 0,
        "variant_families": families,
    }


def write_run(
    out: Path,
    result: RunResult,
    run_info: dict[str, Any],
    features: list[pl.LazyFrame],
    csv: bool,
    carried: tuple[Path, pl.Series] | None = None,
) -> Path:
    """Write the run folder atomically: a killed run leaves the previous folder untouched. ``features`` are
    the run's own feature rows; ``carried`` the previous run folder and the numbers of its feature rows
    taken over (``features.store``)."""
    with atomic_dir(out) as tmp:
        tables = {"pairs": result.scored, "records": result.records, "groups": result.groups, "lineage": result.lineage}
        for name, frame in tables.items():
            write_table(frame, tmp / f"{name}.parquet")
            if csv:
                write_table(frame, tmp / f"{name}.csv")
        if features or carried is not None:
            write_features(tmp, features, carried)
        if result.idf is not None:
            result.idf.save(tmp / IDF_FILE)
        if result.brands is not None:
            write_json(result.brands, tmp / BRANDS_FILE)
        if result.attributes is not None:
            write_table(result.attributes.select("id", *ATTRIBUTE_COLUMNS), tmp / ATTRIBUTES_FILE)
        if result.ann is not None:
            write_table(result.ann, tmp / ANN_FILE)
        if result.bests is not None:
            # Sorted: grouping leaves rows in no set order, and a run's files should not differ between runs.
            write_table(result.bests.sort("id"), tmp / BESTS_FILE)
        if result.index is not None:
            save_index(result.index, tmp / INDEX_FILE)
        write_json(run_info, tmp / "run.json")
    return out


def input_info(path: Path) -> dict[str, Any]:
    """Path, size and content hash of an input file, for run.json."""
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_hash(path)}


def model_info(model_dir: Path) -> dict[str, Any]:
    """Model folder, id and training metrics, for run.json."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    return {"model_dir": str(model_dir), "model_id": meta.get("model_id"), "classes": meta.get("classes"),
            "metrics": meta.get("metrics")}


def utc_stamp() -> str:
    """A sortable UTC timestamp for run folder names."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


