"""The catalog record contract: columns, aliases, validation and loading."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("id", "title")
OPTIONAL_COLUMNS = ("brand", "description", "price", "category", "color", "size", "model_number", "gtin")
CANONICAL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
# Ground truth travels with the records for evaluation but is never read by feature code.
TRUTH_COLUMNS = ("product_id", "family_id", "cluster_id", "label")

ALIASES: dict[str, str] = {
    "id": "id", "record_id": "id", "listing_id": "id", "offer_id": "id",
    "title": "title", "name": "title", "product_name": "title", "product_title": "title",
    "brand": "brand", "manufacturer": "brand", "maker": "brand", "brand_name": "brand",
    "description": "description", "desc": "description", "product_description": "description",
    "price": "price", "list_price": "price", "sale_price": "price",
    "category": "category", "categories": "category", "product_type": "category",
    "color": "color", "colour": "color", "color_name": "color", "colour_name": "color",
    "size": "size", "size_name": "size",
    "model_number": "model_number", "modelno": "model_number", "model_no": "model_number",
    "model": "model_number", "mpn": "model_number", "part_number": "model_number",
    "gtin": "gtin", "ean": "gtin", "upc": "gtin", "gtin13": "gtin", "gtin14": "gtin", "isbn": "gtin",
}

FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class CatalogError(ValueError):
    """Bad input, reported as one line naming file, row and column."""

    def __init__(self, file: str | os.PathLike, message: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.message = str(file), row, column, message
        where = [self.file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(": ".join([", ".join(where), message]))


def canonical_name(column: str) -> str | None:
    """Return the contract name a source column maps to, or None for a carried-through column."""
    key = column.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(key)


def map_columns(columns: list[str]) -> dict[str, str]:
    """Map source column names to contract names; an exact contract name beats an alias."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for exact_first in (True, False):
        for col in columns:
            target = canonical_name(col)
            if target is None or target in taken or col in mapping:
                continue
            if exact_first != (col.strip().lower() == target):
                continue
            mapping[col] = target
            taken.add(target)
    return mapping


def parse_price(col: pl.Expr) -> pl.Expr:
    """Parse prices such as '$1,299.00', '1.299,00 EUR' or '12,50' into floats (null if unparseable)."""
    s = col.cast(pl.String).str.replace_all(r"[^0-9.,\-]", "")
    has_comma = s.str.contains(",", literal=True)
    has_dot = s.str.contains(".", literal=True)
    # Whichever separator comes last is the decimal mark when both appear.
    comma_is_decimal = (
        pl.when(has_comma & has_dot)
        .then(s.str.replace_all(r"[^,.]", "").str.slice(-1) == ",")
        .when(has_comma)
        .then(~s.str.contains(r"^-?\d{1,3}(,\d{3})+$"))
        .otherwise(False)
    )
    dot_is_thousands = ~has_comma & s.str.contains(r"^-?\d{1,3}(\.\d{3}){2,}$")
    normal = (
        pl.when(comma_is_decimal)
        .then(s.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
        .when(dot_is_thousands)
        .then(s.str.replace_all(".", "", literal=True))
        .otherwise(s.str.replace_all(",", "", literal=True))
    )
    return normal.cast(pl.Float64, strict=False)


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line_no = raw.count(b"\n", 0, exc.start) + 1
        prefix = raw[line_start:exc.start].decode("utf-8", errors="replace")
        field = len(next(csv.reader([prefix]), [""])) if path.suffix.lower() == ".csv" else None
        header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        names = next(csv.reader([header]), []) if field else []
        column = names[field - 1].strip() if field and field <= len(names) else None
        raise CatalogError(path, f"bytes are not valid UTF-8 (line {line_no})", row=max(line_no - 1, 1), column=column) from None


def _read_csv(path: Path, raw: bytes, text: str) -> pl.DataFrame:
    """Parse CSV with a strict field-count check, every column as String."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogError(path, "file is empty") from None
    width = len(header)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise CatalogError(path, "column name appears twice in the header", column=name)
        seen.add(name)
    # The C csv reader validates field counts quickly; rows are kept only if polars cannot be used.
    n_rows, blank_lines = 0, False
    start = reader.line_num + 1
    try:
        for row in reader:
            if not row:
                blank_lines = True
            elif len(row) != width:
                raise CatalogError(
                    path, f"has {len(row)} fields but the header has {width} (line {start})",
                    row=n_rows + 1, column=header[len(row)] if len(row) < width else header[-1],
                )
            else:
                n_rows += 1
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CatalogError(path, f"malformed CSV: {exc} (line {reader.line_num})", row=n_rows + 1) from None
    df = None
    if not blank_lines:  # polars reads a blank line as a row of nulls; Python's csv skips it
        try:
            df = pl.read_csv(raw, infer_schema=False, raise_if_empty=False)
        except pl.exceptions.PolarsError:
            df = None  # a quoting quirk Python's csv tolerates: use its parse
    if df is None or df.height != n_rows or df.columns != header:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row][1:]
        columns = list(zip(*rows)) if rows else [() for _ in header]
        df = pl.DataFrame({name: list(values) for name, values in zip(header, columns)}, schema={h: pl.String for h in header})
    return df.with_columns(pl.all().replace("", None))


def _read_jsonl(path: Path, text: str) -> pl.DataFrame:
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CatalogError(path, f"invalid JSON: {exc.msg} (line {line_no})", row=len(records) + 1) from None
        if not isinstance(obj, dict):
            raise CatalogError(path, f"expected a JSON object per line (line {line_no})", row=len(records) + 1)
        records.append(obj)
    if not records:
        raise CatalogError(path, "file is empty")
    return pl.from_dicts(records, infer_schema_length=None)


def read_raw(path: str | os.PathLike) -> pl.DataFrame:
    """Read a catalog file as it is, columns unmapped, raising CatalogError on unreadable input."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CatalogError(path, f"unsupported format {path.suffix!r}: use .csv, .parquet or .jsonl")
    if not path.is_file():
        raise CatalogError(path, "file not found")
    if path.stat().st_size == 0:
        raise CatalogError(path, "file is empty")
    if fmt == "parquet":
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # polars raises several error types for corrupt files
            raise CatalogError(path, f"unreadable Parquet: {str(exc).splitlines()[0]}") from None
    raw = path.read_bytes()
    text = _decode(path, raw)
    if fmt == "csv":
        return _read_csv(path, raw, text)
    return _read_jsonl(path, text)


def conform(df: pl.DataFrame, source: str | os.PathLike = "<frame>") -> pl.DataFrame:
    """Rename aliased columns, add missing optional ones and validate ids and titles."""
    mapping = map_columns(df.columns)
    # A carried-through column must not collide with a contract name after renaming.
    renames = {src: dst for src, dst in mapping.items() if src != dst and dst not in df.columns}
    df = df.rename(renames)
    for req in REQUIRED_COLUMNS:
        if req not in df.columns:
            raise CatalogError(source, f"required column is missing (columns: {', '.join(df.columns)})", row=None, column=req)
    if df.height == 0:
        raise CatalogError(source, "catalog has no records")
    text_cols = [c for c in CANONICAL_COLUMNS if c != "price"]
    df = df.with_columns(
        [pl.col(c).cast(pl.String).str.strip_chars() for c in text_cols if c in df.columns]
        + [pl.lit(None, dtype=pl.String).alias(c) for c in text_cols if c not in df.columns]
    )
    df = df.with_columns(pl.col(c).replace("", None) for c in text_cols)
    null_id = df.select(pl.col("id").is_null().arg_max()).item() if df["id"].null_count() else None
    if null_id is not None:
        raise CatalogError(source, "id is empty", row=null_id + 1, column="id")
    dup = df.select(pl.col("id").is_duplicated().arg_max()).item() if df["id"].is_duplicated().any() else None
    if dup is not None:
        value = df["id"][dup]
        first = df.select((pl.col("id") == value).arg_max()).item()
        later = df.with_row_index("_r").filter(pl.col("id") == value)["_r"][1]
        raise CatalogError(source, f"duplicate id {value!r} (first at row {first + 1})", row=later + 1, column="id")
    if df["title"].null_count():
        row = df.select(pl.col("title").is_null().arg_max()).item()
        raise CatalogError(source, "title is empty", row=row + 1, column="title")
    if "price" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias("price"))
    elif df.schema["price"] not in (pl.Float64, pl.Float32, pl.Int64, pl.Int32):
        parsed = parse_price(pl.col("price"))
        bad = df.select((pl.col("price").is_not_null() & parsed.is_null()).sum()).item()
        if bad:
            log.warning("%s: %d prices could not be parsed and were set to null", source, bad)
        df = df.with_columns(parsed.alias("price"))
    else:
        df = df.with_columns(pl.col("price").cast(pl.Float64))
    extras = [c for c in df.columns if c not in CANONICAL_COLUMNS]
    return df.select(list(CANONICAL_COLUMNS) + extras)


def load_catalog(path: str | os.PathLike) -> pl.DataFrame:
    """Load and validate a catalog file into the contract's columns plus any carried-through ones."""
    return conform(read_raw(path), source=path)


def feature_columns(df: pl.DataFrame) -> list[str]:
    """Return the columns feature code may read: everything except truth columns."""
    return [c for c in df.columns if c not in TRUTH_COLUMNS]
