"""Pair labels: derived from truth columns, read from labelled pair files, mapped between modes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import polars as pl

from features.io import csv_unsafe
from features.records import CatalogError, read_raw

MULTICLASS = ("duplicate", "variant", "distinct")
BINARY = ("match", "distinct")
# Accepted spellings in labelled pair files, mapped to class names.
_LABEL_ALIASES = {"1": "match", "0": "distinct", "1.0": "match", "0.0": "distinct",
                  **{c: c for c in MULTICLASS + BINARY}}
_ID_ALIASES = {"left_id": "left_id", "ltable_id": "left_id", "right_id": "right_id", "rtable_id": "right_id"}


def truth_labels(pairs: pl.DataFrame, left: pl.DataFrame, right: pl.DataFrame) -> pl.Series:
    """Label each pair duplicate (same product_id), variant (same family_id only) or distinct."""
    for side, frame in (("left", left), ("right", right)):
        if "product_id" not in frame.columns:
            raise CatalogError(f"<{side} records>", "truth column is missing", column="product_id")

    def truth(frame: pl.DataFrame, suffix: str) -> pl.DataFrame:
        family = pl.col("family_id") if "family_id" in frame.columns else pl.lit(None, dtype=pl.String)
        return frame.select(
            pl.col("id").alias(f"{suffix}_id"),
            pl.col("product_id").cast(pl.String).alias(f"p_{suffix}"),
            family.cast(pl.String).alias(f"f_{suffix}"),
        )

    joined = (
        pairs.select("left_id", "right_id")
        .join(truth(left, "left"), on="left_id", how="left", maintain_order="left")
        .join(truth(right, "right"), on="right_id", how="left", maintain_order="left")
    )
    label = (
        pl.when(pl.col("p_left") == pl.col("p_right")).then(pl.lit("duplicate"))
        .when(pl.col("f_left") == pl.col("f_right")).then(pl.lit("variant"))
        .otherwise(pl.lit("distinct"))
    )
    return joined.select(label.alias("label"))["label"]


def to_binary(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    """Map duplicate/variant to match, keeping distinct."""
    arr = np.asarray(labels, dtype=object)
    return np.where(np.isin(arr, ("duplicate", "variant", "match")), "match", "distinct").astype(object)


def _read_ids(path: str | os.PathLike, extra: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read a pairs file, mapping ltable_id/rtable_id to left_id/right_id; return (raw, String ids + extra)."""
    raw = read_raw(path)
    raw = raw.rename({c: _ID_ALIASES[c.strip().lower()] for c in raw.columns if c.strip().lower() in _ID_ALIASES})
    for col in ("left_id", "right_id") + extra:
        if col not in raw.columns:
            raise CatalogError(path, f"required column is missing (columns: {', '.join(raw.columns)})", column=col)
    # Labels files we export went through csv_safe; ids like "-77" come back quoted.
    frame = raw.select(csv_unsafe("left_id"), csv_unsafe("right_id"), *extra)
    for col in ("left_id", "right_id"):
        if frame[col].null_count():
            raise CatalogError(path, "is empty", row=frame.select(pl.col(col).is_null().arg_max()).item() + 1, column=col)
    return raw, frame


def read_pairs(path: str | os.PathLike) -> pl.DataFrame:
    """Read a `left_id,right_id` file (ltable_id/rtable_id accepted) into String columns."""
    return _read_ids(path, ())[1]


def read_labels(path: str | os.PathLike) -> pl.DataFrame:
    """Read a `left_id,right_id,label` file (label a class name or 1/0) into String columns."""
    raw, frame = _read_ids(path, ("label",))
    frame = frame.with_columns(
        pl.col("label").cast(pl.String).str.strip_chars().str.to_lowercase()
        .replace_strict(_LABEL_ALIASES, default=None).alias("label")
    )
    if frame["label"].null_count():
        row = frame.select(pl.col("label").is_null().arg_max()).item()
        value = raw["label"][row]
        what = "is empty" if value is None else f"unknown label {value!r} (use a class name or 1/0)"
        raise CatalogError(path, what, row=row + 1, column="label")
    return frame
