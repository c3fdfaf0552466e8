"""Review packages: the pairs a reviewer should check, with reasons, and their verdicts back as labels.

A package is a folder with review.parquet (the reference export), review.csv (what a reviewer fills
in: `reviewer_verdict`, `reviewer_note`) and review.html (a self-contained page to read it).
Importing validates every reviewed row against the package before the labels file is touched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from features.io import csv_unsafe, write_table, write_text
from features.joins import PAIR_KEYS, join_pairs
from features.records import CatalogError, read_raw
from features.store import scan_features
from matching.explain import AGAINST_COLUMNS, REASON_COLUMNS, explain_pairs
from matching.labels import MULTICLASS
from matching.model import Matcher
from matching.review_html import render_review_html

Only = Literal["uncertain", "duplicates", "variants", "all"]
ONLY: tuple[str, ...] = ("uncertain", "duplicates", "variants", "all")
# Pairs at least this close to a decision threshold make the `uncertain` queue.
UNCERTAIN_FROM = 0.5
VERDICTS = MULTICLASS
REVIEW_FILES = {"parquet": "review.parquet", "csv": "review.csv", "html": "review.html"}
LABEL_COLUMNS = ("left_id", "right_id", "label", "reviewed_at", "note")
# Shown side by side, left_<name> next to right_<name>.
SIDE_BY_SIDE = ("title", "brand", "color", "size", "price", "model_number", "capacity",
                "group_id", "family_id", "group_weakest_link", "family_weakest_link")
# The bar chart of the page; review.csv leaves them out (they repeat `reasons` and `against`).
CHART_COLUMNS = ("chart_phrases", "chart_features", "chart_contributions")
# What csv_safe prepends to a cell a spreadsheet would run, and the characters that trigger it.


@dataclass
class RunFolder:
    """The parts of a run folder a review reads, loaded lazily where they can be large."""

    path: Path
    pairs: pl.LazyFrame
    features: pl.LazyFrame
    records: pl.LazyFrame
    matcher: Matcher
    groups: pl.LazyFrame | None = None


@dataclass
class ImportSummary:
    """What an import did to the labels file."""

    reviewed: int
    blank: int
    added: int
    replaced: int
    total: int


def load_run(run_dir: str | os.PathLike) -> RunFolder:
    """Open a run folder written by `dedup`, checking the files a review needs."""
    run_dir = Path(run_dir)
    for name in ("pairs.parquet", "features.parquet", "records.parquet", "run.json"):
        if not (run_dir / name).is_file():
            raise CatalogError(run_dir, f"not a run folder: {name} is missing")
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    model_dir = (info.get("model") or {}).get("model_dir") or info.get("model_dir")
    if not model_dir:
        raise CatalogError(run_dir / "run.json", "names no model folder", column="model_dir")
    model_path = Path(model_dir)
    if not model_path.is_absolute() and not model_path.exists():
        model_path = run_dir / model_path
    features = scan_features(run_dir)
    records = pl.scan_parquet(run_dir / "records.parquet")
    if "source" in records.collect_schema().names():
        # A link run namespaces record and pair ids by source; its feature rows keep catalog ids.
        features = features.with_columns((pl.lit(f"{side}:") + pl.col(f"{side}_id")).alias(f"{side}_id")
                                         for side in ("left", "right"))
    groups = pl.scan_parquet(run_dir / "groups.parquet") if (run_dir / "groups.parquet").is_file() else None
    return RunFolder(run_dir, pl.scan_parquet(run_dir / "pairs.parquet"), features, records, Matcher.load(model_path),
                     groups)


def select_queue(pairs: pl.LazyFrame, only: Only = "all", limit: int | None = None,
                 uncertain_from: float = UNCERTAIN_FROM) -> pl.DataFrame:
    """The pairs to review, most uncertain first (ties by ids, so the queue is deterministic)."""
    if only not in ONLY:
        raise ValueError(f"only must be one of {ONLY}, not {only!r}")
    chosen = {
        "uncertain": pl.col("uncertainty") >= uncertain_from,
        "duplicates": pl.col("decision").is_in(["duplicate", "match"]),
        "variants": pl.col("decision") == "variant",
        "all": pl.lit(True),
    }[only]
    queue = pairs.filter(chosen).sort(["uncertainty", "left_id", "right_id"], descending=[True, False, False])
    return (queue.head(limit) if limit is not None else queue).collect()


def _side_columns(records: pl.DataFrame, groups: pl.LazyFrame | None) -> pl.DataFrame:
    """Per record: group and family ids with their weakest links, and the catalog id."""
    def optional(names: list[str], name: str, dtype: type[pl.DataType]) -> pl.Expr:
        return (pl.col(name) if name in names else pl.lit(None)).cast(dtype)

    sides = records.select(
        "id", optional(records.columns, "duplicate_group_id", pl.String).alias("group_id"),
        optional(records.columns, "variant_family_id", pl.String).alias("family_id"),
        optional(records.columns, "source_id", pl.String).alias("catalog_id"),
    )
    if groups is None:
        return sides.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in ("group_weakest_link", "family_weakest_link"))
    names = groups.collect_schema().names()
    # A group row also carries its family's weakest link, so one join on the group id brings both.
    links = groups.select(
        pl.col("duplicate_group_id").cast(pl.String).alias("group_id"),
        optional(names, "weakest_link", pl.Float64).alias("group_weakest_link"),
        optional(names, "family_weakest_link", pl.Float64).alias("family_weakest_link"),
    ).join(sides.lazy().select("group_id").unique(), on="group_id", how="semi").collect()
    return sides.join(links, on="group_id", how="left", maintain_order="left")


def build_review(run: RunFolder, only: Only = "all", limit: int | None = None) -> pl.DataFrame:
    """One row per queued pair: ids, both records side by side, decision, reasons and empty verdicts."""
    queue = select_queue(run.pairs, only, limit)
    ids = pl.concat([queue["left_id"], queue["right_id"]]).unique().implode()
    records = run.records.filter(pl.col("id").is_in(ids)).collect()
    features = join_pairs(run.features, queue.select(PAIR_KEYS), "semi")
    explained = explain_pairs(run.matcher, queue, features, records)
    sides = _side_columns(records, run.groups)
    for which in ("left", "right"):
        explained = explained.join(sides.rename(lambda c, w=which: f"{w}_{c}"), on=f"{which}_id", how="left",
                                   maintain_order="left")
    explained = explained.with_columns(
        pl.col(f"{w}_attr_capacity").list.join("/").alias(f"{w}_capacity") for w in ("left", "right")
    )
    probabilities = [c for c in queue.columns if c.startswith("p_")]
    reasons, reason_features, reason_values = REASON_COLUMNS
    against, against_features, against_values = AGAINST_COLUMNS
    return explained.select(
        # A link run's records carry their catalog id; labels must name that, not the run's namespaced id.
        pl.coalesce("left_catalog_id", "left_id").alias("left_id"),
        pl.coalesce("right_catalog_id", "right_id").alias("right_id"),
        "decision", *probabilities, "uncertainty",
        *[pl.col(f"{w}_{c}") for c in SIDE_BY_SIDE for w in ("left", "right")],
        (pl.col("left_group_id") == pl.col("right_group_id")).alias("same_group"),
        (pl.col("left_family_id") == pl.col("right_family_id")).alias("same_family"),
        pl.col("blockers") if "blockers" in explained.columns else pl.lit(None, dtype=pl.List(pl.String)).alias("blockers"),
        pl.col(reasons).list.join("; ").alias("reasons"),
        pl.col(against).list.join("; ").alias("against"),
        "left_only_tokens", "right_only_tokens",
        # The bar chart's rows: reasons for the decision, then against it.
        pl.concat_list(reasons, against).alias("chart_phrases"),
        pl.concat_list(reason_features, against_features).alias("chart_features"),
        pl.concat_list(reason_values, against_values).alias("chart_contributions"),
        pl.lit(None, dtype=pl.String).alias("reviewer_verdict"),
        pl.lit(None, dtype=pl.String).alias("reviewer_note"),
    )


def write_review(review: pl.DataFrame, out: str | os.PathLike, heading: str = "Match review") -> dict[str, Path]:
    """Write review.parquet, review.csv and review.html into `out`; never over a CSV holding verdicts."""
    out = Path(out)
    csv_path = out / REVIEW_FILES["csv"]
    if csv_path.is_file():
        previous = read_raw(csv_path)
        filled = previous["reviewer_verdict"].drop_nulls().len() if "reviewer_verdict" in previous.columns else 0
        if filled:
            raise CatalogError(csv_path, f"already holds {filled} reviewer verdicts: import them "
                                         "(catalog-match import-reviews) and move the package away, "
                                         "or choose another --out")
    paths = {kind: out / name for kind, name in REVIEW_FILES.items()}
    write_table(review, paths["parquet"])
    write_table(review.drop(CHART_COLUMNS), paths["csv"])
    write_text(render_review_html(review, heading), paths["html"])
    return paths


def _pair_key() -> list[pl.Expr]:
    """The unordered pair, so (a, b) and (b, a) are one pair."""
    return [pl.min_horizontal("left_id", "right_id").alias("_lo"), pl.max_horizontal("left_id", "right_id").alias("_hi")]


def _resolve(path: Path, package: str | os.PathLike | None) -> tuple[Path, Path]:
    """The reviewed file and the package's reference export."""
    reviewed = path / REVIEW_FILES["csv"] if path.is_dir() else path
    folder = Path(package) if package is not None else (path if path.is_dir() else path.parent)
    reference = folder / REVIEW_FILES["parquet"]
    if not reference.is_file():
        raise CatalogError(reviewed, f"no {REVIEW_FILES['parquet']} in {folder} to check the reviewed pairs "
                                     "against (pass the package folder)")
    return reviewed, reference


def read_reviews(path: str | os.PathLike, package: str | os.PathLike | None = None) -> pl.DataFrame:
    """The rows of a package's reviewed CSV/Parquet, validated: _row, left_id, right_id, label, note.

    A blank verdict (label null) is not a review and is not checked. Any unknown verdict or id of a
    reviewed row raises one CatalogError naming the first bad row and counting the rest.
    """
    reviewed_path, reference_path = _resolve(Path(path), package)
    raw = read_raw(reviewed_path)
    for column in ("left_id", "right_id", "reviewer_verdict"):
        if column not in raw.columns:
            raise CatalogError(reviewed_path, f"required column is missing (columns: {', '.join(raw.columns)})",
                               column=column)
    if "reviewer_note" not in raw.columns:
        raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias("reviewer_note"))
    verdict = pl.col("reviewer_verdict").cast(pl.String)
    rows = raw.with_row_index("_row", offset=1).select(
        "_row", csv_unsafe("left_id"), csv_unsafe("right_id"),
        verdict.str.strip_chars().str.to_lowercase().replace("", None).alias("label"),
        csv_unsafe("reviewer_note").alias("note"), verdict.alias("_verdict"),
    )
    reference = pl.read_parquet(reference_path, columns=["left_id", "right_id"])
    known_ids = pl.concat([reference["left_id"], reference["right_id"]]).unique().implode()
    known_pairs = reference.select(_pair_key()).with_columns(pl.lit(True).alias("_known"))
    checked = rows.filter(pl.col("label").is_not_null()).with_columns(_pair_key()).join(
        known_pairs, on=["_lo", "_hi"], how="left", maintain_order="left")

    def problem(column: str, message: pl.Expr) -> pl.Expr:
        return pl.struct(pl.lit(column).alias("column"), message.alias("message"))

    unknown_id = "unknown id '{}' (not in the review package)"
    found = (
        pl.when(pl.col("left_id").is_null()).then(problem("left_id", pl.lit("id is empty")))
        .when(~pl.col("left_id").is_in(known_ids)).then(problem("left_id", pl.format(unknown_id, "left_id")))
        .when(pl.col("right_id").is_null()).then(problem("right_id", pl.lit("id is empty")))
        .when(~pl.col("right_id").is_in(known_ids)).then(problem("right_id", pl.format(unknown_id, "right_id")))
        .when(pl.col("_known").is_null()).then(problem(
            "right_id", pl.format("pair ('{}', '{}') is not in the review package", "left_id", "right_id")))
        .when(~pl.col("label").is_in(VERDICTS)).then(problem(
            "reviewer_verdict", pl.format(f"unknown verdict '{{}}' (use {', '.join(VERDICTS)})", "_verdict")))
    )
    bad = checked.with_columns(found.alias("_problem")).filter(pl.col("_problem").is_not_null())
    if bad.height:
        first = bad.row(0, named=True)
        listed = ", ".join(map(str, bad["_row"].head(10))) + (", ..." if bad.height > 10 else "")
        more = f" ({bad.height} bad rows: {listed})" if bad.height > 1 else ""
        raise CatalogError(reviewed_path, first["_problem"]["message"] + more, row=first["_row"],
                           column=first["_problem"]["column"])
    return rows.drop("_verdict")


def _existing_labels(labels_path: Path) -> pl.DataFrame:
    """The labels file as String columns (an absent file is empty)."""
    empty = pl.DataFrame(schema={c: pl.String for c in LABEL_COLUMNS})
    if not labels_path.exists():
        return empty
    raw = read_raw(labels_path)
    for column in ("left_id", "right_id", "label"):
        if column not in raw.columns:
            raise CatalogError(labels_path, f"required column is missing (columns: {', '.join(raw.columns)})",
                               column=column)
    raw = raw.with_columns(csv_unsafe(c) for c in raw.columns)
    return pl.concat([empty, raw], how="diagonal_relaxed")


def import_reviews(path: str | os.PathLike, labels_path: str | os.PathLike,
                   package: str | os.PathLike | None = None, now: dt.datetime | None = None) -> ImportSummary:
    """Append a package's verdicts to a labels file (left_id,right_id,label,reviewed_at,note).

    A pair reviewed again replaces its earlier label, whichever order its ids were written in;
    the labels file is rewritten atomically only after every reviewed row has been validated.
    """
    labels_path = Path(labels_path)
    everything = read_reviews(path, package)
    rows = everything.filter(pl.col("label").is_not_null())
    stamp = (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    new = rows.select("left_id", "right_id", "label", pl.lit(stamp).alias("reviewed_at"), "note")
    existing = _existing_labels(labels_path)
    combined = pl.concat([existing, new], how="diagonal_relaxed").with_columns(_pair_key())
    kept = combined.unique(subset=["_lo", "_hi"], keep="last", maintain_order=True)
    before = existing.select(_pair_key()).unique()
    touched = new.select(_pair_key()).unique()
    replaced = touched.join(before, on=["_lo", "_hi"], how="semi").height
    if rows.height:
        write_table(kept.drop("_lo", "_hi"), labels_path)
    return ImportSummary(reviewed=rows.height, blank=everything.height - rows.height,
                         added=touched.height - replaced, replaced=replaced, total=kept.height)
