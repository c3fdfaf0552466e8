"""Text normalisation as polars expressions: titles, tokens, model numbers and GTINs."""

from __future__ import annotations

import polars as pl

# Placeholder that keeps a decimal point ("10.5", "2.5in") through punctuation removal.
_DECIMAL = "\u0001"


def fold(col: pl.Expr) -> pl.Expr:
    """Lower-case and strip accents ("Marrón" -> "marron"), keeping punctuation."""
    return col.cast(pl.String).str.normalize("NFKD").str.replace_all(r"\p{M}+", "").str.to_lowercase()


def normalize_text(col: pl.Expr) -> pl.Expr:
    """Lower-case, fold accents and turn punctuation into single spaces (decimal points and 55" -> 55in kept)."""
    s = fold(col)
    # An inch mark after a number is a unit, not a quote: 55" and 55'' both become 55in.
    s = s.str.replace_all(r"(\d)\s*(?:\"|''|”|″)", "${1}in ")
    # Apostrophes join rather than split: "noah's" -> "noahs".
    s = s.str.replace_all(r"['’`´]", "")
    s = s.str.replace_all(r"(\d)\.(\d)", "${1}" + _DECIMAL + "${2}")
    s = s.str.replace_all(r"[^\p{L}\p{N}" + _DECIMAL + r"]+", " ")
    return s.str.replace_all(_DECIMAL, ".", literal=True).str.strip_chars()


def tokenize(col: pl.Expr) -> pl.Expr:
    """Split normalised text into a list of tokens (empty list for empty text, null for null)."""
    return col.str.extract_all(r"[^ ]+")


def normalize_model_number(col: pl.Expr) -> pl.Expr:
    """Reduce a model number to lower-case letters and digits: DX-123, dx123 and DX 123 all give dx123."""
    s = fold(col).str.replace_all(r"[^a-z0-9]+", "")
    return pl.when(s.str.len_bytes() > 0).then(s).otherwise(None)


def normalize_gtin(col: pl.Expr) -> pl.Expr:
    """Keep the digits of a GTIN/EAN/UPC, left-pad to 14 and return null unless the check digit is valid."""
    digits = col.cast(pl.String).str.replace_all(r"\D", "")
    padded = digits.str.zfill(14)
    # GS1 check digit: weights 3,1,3,... from the left of the 14-digit form over the first 13 digits.
    weighted = pl.sum_horizontal(
        padded.str.slice(i, 1).cast(pl.Int32, strict=False) * (3 if i % 2 == 0 else 1) for i in range(13)
    )
    check = padded.str.slice(13, 1).cast(pl.Int32, strict=False)
    valid = digits.str.len_bytes().is_in([8, 12, 13, 14]) & (((10 - weighted % 10) % 10) == check)
    return pl.when(valid & (padded != "0" * 14)).then(padded).otherwise(None)
