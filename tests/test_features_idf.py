"""Token IDF: fitting, lookups and the JSON round trip."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from features.idf import TokenIdf


def test_fit_counts_documents_not_occurrences() -> None:
    idf = TokenIdf.fit(["Sony TV sony", "SONY radio", "Apple iPhone", None])
    assert idf.n_docs == 4
    assert idf.doc_freq["sony"] == 2 and idf.doc_freq["apple"] == 1
    rare, common, unseen = idf.lookup(pl.Series(["apple", "sony", "never-seen"]))
    assert unseen == pytest.approx(idf.unseen_idf) and unseen > rare > common
    assert common == pytest.approx(math.log(5 / 3) + 1)


def test_json_and_file_round_trip(tmp_path: Path) -> None:
    idf = TokenIdf.fit(pl.Series(["Café crème 500ml", "cafe noir", "thé vert"]))
    assert idf.doc_freq["cafe"] == 2  # accents folded before counting
    again = TokenIdf.from_json(idf.to_json())
    assert again.doc_freq == idf.doc_freq and again.n_docs == idf.n_docs
    loaded = TokenIdf.load(idf.save(tmp_path / "idf.json"))
    tokens = pl.Series(["cafe", "500ml", "x"])
    assert (loaded.lookup(tokens) == idf.lookup(tokens)).all()
