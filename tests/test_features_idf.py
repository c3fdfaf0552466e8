"""Token IDF: fitting, lookups and the JSON round trip."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from features.idf import RARE_AT, TokenIdf


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


def test_weights_follow_a_tokens_share_of_listings_whatever_the_catalog_size() -> None:
    # "acme" is in 1% of listings in both catalogs; the larger holds RARE_AT listings or more.
    small = TokenIdf.fit(["acme tv"] * 10 + ["other radio"] * 990)
    large = TokenIdf.fit(["acme tv"] * (RARE_AT // 100) + [f"radio r{i}" for i in range(RARE_AT - RARE_AT // 100)])
    tokens = pl.Series(["acme", "radio", "r7", "never-seen"])
    acme_small, _, _, unseen_small = small.weights(tokens)
    acme_large, common, unique, unseen_large = large.weights(tokens)
    assert acme_small == pytest.approx(acme_large, abs=0.01)
    assert 0 < common < acme_large < unique <= 1.0
    # Unseen tokens are fully rare in a catalog of RARE_AT listings or more, nearly so in a small one.
    assert unseen_large == 1.0 and 0.7 < unseen_small < 1.0
