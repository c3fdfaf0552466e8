"""Inverse document frequency of title tokens, fitted on the catalog(s) being processed."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

from features.io import write_text
from features.text import normalize_text, tokenize


# Weights are capped at the IDF of a token unseen among RARE_AT listings: tokens about that rare or rarer
# all count as fully rare. A weight then follows a token's share of listings, not the catalog's size, so a
# model trained on one catalog reads another of any size alike.
RARE_AT = 10_000
_RARE_IDF = math.log(RARE_AT) + 1.0


class TokenIdf:
    """Smoothed IDF per normalised token: ln((n_docs + 1) / (df + 1)) + 1; unseen tokens get the maximum."""

    def __init__(self, doc_freq: dict[str, int], n_docs: int):
        self.doc_freq = doc_freq
        self.n_docs = n_docs
        self._frame = pl.DataFrame(
            {"token": list(doc_freq), "df": list(doc_freq.values())}, schema={"token": pl.String, "df": pl.Int64}
        ).with_columns(self._idf(pl.col("df")).alias("idf"))

    def _idf(self, df: pl.Expr) -> pl.Expr:
        return ((self.n_docs + 1) / (df + 1)).log() + 1.0

    @property
    def unseen_idf(self) -> float:
        """IDF of a token that occurs in no fitted document (the largest possible value)."""
        return math.log(self.n_docs + 1) + 1.0

    @classmethod
    def fit(cls, texts: Iterable[str] | pl.Series) -> TokenIdf:
        """Count in how many texts each normalised token occurs."""
        texts = texts if isinstance(texts, pl.Series) else pl.Series("text", list(texts), dtype=pl.String)
        counts = (
            pl.select(tokenize(normalize_text(pl.lit(texts.fill_null("")))).list.unique().alias("token"))
            .explode("token", empty_as_null=False)
            .group_by("token")
            .len()
            .sort("token")
        )
        return cls(dict(zip(counts["token"].to_list(), counts["len"].to_list())), texts.len())

    def lookup(self, tokens: pl.Series) -> np.ndarray:
        """IDF of each token (float32, aligned with ``tokens``)."""
        joined = pl.DataFrame({"token": tokens.cast(pl.String)}).join(
            self._frame, on="token", how="left", maintain_order="left"
        )
        return joined["idf"].fill_null(self.unseen_idf).to_numpy().astype(np.float32)

    def weights(self, tokens: pl.Series) -> np.ndarray:
        """Each token's IDF as a share of a fully rare token's, in [0, 1] (float64, aligned with ``tokens``)."""
        return np.minimum(self.lookup(tokens).astype(np.float64), _RARE_IDF) / _RARE_IDF

    def to_json(self) -> str:
        """Serialise document frequencies and document count as JSON."""
        return json.dumps({"n_docs": self.n_docs, "doc_freq": self.doc_freq}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TokenIdf:
        """Rebuild from ``to_json`` output."""
        obj = json.loads(text)
        return cls({str(k): int(v) for k, v in obj["doc_freq"].items()}, int(obj["n_docs"]))

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically as JSON."""
        return write_text(self.to_json() + "\n", path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenIdf:
        """Read a file written by ``save``."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
