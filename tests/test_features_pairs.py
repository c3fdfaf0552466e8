"""Pairwise features: contract, variant signals, identifier agreement and missing values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

import features.pairs as pairs_mod
from features.attributes import extract_attributes
from features.idf import TokenIdf
from features.pairs import BLOCKERS, FEATURE_NAMES, pair_features
from features.records import CatalogError, conform

RECORDS = [
    # id, title, brand, price, color, size, model_number, gtin, description
    ("n1", "Nike Air Max 90 Black EU 44", "Nike", 120.0, None, None, None, None, "classic running shoe"),
    ("n2", "Nike Air Max 90 White EU 42", "Nike", 110.0, None, None, None, None, None),
    ("i1", "iPhone 13 64GB", "Apple", 699.0, None, None, None, None, None),
    ("i2", "iPhone 13 128GB", "Apple", 799.0, None, None, None, None, None),
    ("s1", "Sony WH-1000XM3 Wireless Headphones", "Sony", 299.0, None, None, "WH-1000XM3", "4006381333931", None),
    ("s2", "Sony Noise Cancelling Headphones WH1000XM3 Black", None, 279.0, None, None, None, "04006381333931", None),
    ("s3", "Sony Noise Cancelling Headphones WH1000XM4 Black", "Sony", None, None, None, "WH1000XM4", "4006381333948", None),
    ("h1", "Chaz Kangeroo Hoodie", None, 52.0, "Black", "M", None, None, None),
    ("h2", "Chaz Kangeroo Hoodie", None, 52.0, "Gray", "L", None, None, None),
    ("h3", "Chaz Kangeroo Hoodie", None, 52.0, "Black", "M", None, None, None),
    ("c1", "Coca-Cola Zero 330ml pack of 6", "Coca-Cola", 4.5, None, None, None, None, None),
    ("c2", "Coca-Cola Zero 330ml pack of 12", "Coca-Cola", 8.0, None, None, None, None, None),
]
COLUMNS = ("id", "title", "brand", "price", "color", "size", "model_number", "gtin", "description")


@pytest.fixture(scope="module")
def attrs() -> pl.DataFrame:
    raw = pl.DataFrame([dict(zip(COLUMNS, r)) for r in RECORDS], schema={c: (pl.Float64 if c == "price" else pl.String) for c in COLUMNS})
    return extract_attributes(conform(raw))


def _unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` random unit vectors (stand-in embeddings), seeded."""
    emb = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def _pairs(rows: list[tuple[str, str]], blockers: list[list[str]] | None = None) -> pl.DataFrame:
    blockers = blockers if blockers is not None else [["ann"]] * len(rows)
    return pl.DataFrame(
        {"left_id": [a for a, _ in rows], "right_id": [b for _, b in rows], "blockers": blockers,
         "ann_sim": [0.8] * len(rows)},
        schema={"left_id": pl.String, "right_id": pl.String, "blockers": pl.List(pl.String), "ann_sim": pl.Float32},
    )


def _features(attrs: pl.DataFrame, rows: list[tuple[str, str]], **kw) -> list[dict]:
    emb = kw.pop("emb", None)
    out = pair_features(_pairs(rows, **kw), attrs, attrs, emb, emb, TokenIdf.fit(attrs["title"]))
    return out.to_dicts()


def _nan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)


def test_output_is_pairs_plus_feature_names_in_order(attrs: pl.DataFrame) -> None:
    pairs = _pairs([("n1", "n2"), ("i1", "i2")])
    out = pair_features(pairs, attrs, attrs, None, None, TokenIdf.fit(attrs["title"]))
    assert out.columns == pairs.columns + FEATURE_NAMES
    assert all(out.schema[name] == pl.Float32 for name in FEATURE_NAMES)
    assert out.select("left_id", "right_id").equals(pairs.select("left_id", "right_id"))
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_differs_only_in_colour_or_size(attrs: pl.DataFrame) -> None:
    shoes, phones, hoodies, same = _features(attrs, [("n1", "n2"), ("i1", "i2"), ("h1", "h2"), ("h1", "h3")])
    assert shoes["differs_only_color_size"] == 1.0
    assert shoes["color_agree"] == 0.0 and shoes["size_agree"] == 0.0
    assert shoes["core_jaccard"] == 1.0
    assert phones["differs_only_color_size"] == 0.0
    assert phones["capacity_agree"] == 0.0
    # Identical titles whose colour/size columns differ are variants too; identical listings are not.
    assert hoodies["differs_only_color_size"] == 1.0
    assert hoodies["color_agree"] == 0.0 and hoodies["size_agree"] == 0.0
    assert same["differs_only_color_size"] == 0.0
    assert same["color_agree"] == 1.0 and same["size_agree"] == 1.0


def test_model_number_and_gtin_agreement(attrs: pl.DataFrame) -> None:
    same, conflict, no_models = _features(attrs, [("s1", "s2"), ("s2", "s3"), ("n1", "n2")])
    assert same["model_agree"] == 1.0 and same["model_in_other_title"] == 1.0
    assert same["gtin_agree"] == 1.0
    assert conflict["model_agree"] == 0.0 and conflict["model_in_other_title"] == 0.0
    assert conflict["gtin_agree"] == 0.0
    assert _nan(no_models["model_agree"]) and _nan(no_models["model_in_other_title"]) and _nan(no_models["gtin_agree"])


def test_missing_values_are_nan(attrs: pl.DataFrame) -> None:
    (row,) = _features(attrs, [("s2", "s3")])
    assert _nan(row["price_ratio"])  # s3 has no price
    assert _nan(row["brand_sim"])  # s2 has no brand
    assert row["brand_in_title"] == 1.0  # s3's brand "sony" is in s2's title
    assert _nan(row["emb_cosine"])  # no embeddings given
    assert _nan(row["desc_jaccard"]) and _nan(row["title_in_other_desc"])
    assert _nan(row["quantity_agree"]) and _nan(row["capacity_agree"]) and _nan(row["size_agree"])
    assert row["color_agree"] == 1.0


def test_quantity_price_and_blockers(attrs: pl.DataFrame) -> None:
    (row,) = _features(attrs, [("c1", "c2")], blockers=[["brand_title", "sorted"]])
    assert row["quantity_agree"] == 0.0 and row["capacity_agree"] == 1.0
    assert row["price_ratio"] == pytest.approx(4.5 / 8.0)
    assert {b: row[f"blocker_{b}"] for b in BLOCKERS} == {"ann": 0, "model": 0, "gtin": 0, "brand_title": 1, "brand_words": 0, "sorted": 1}
    assert row["ann_cosine"] == pytest.approx(0.8)


def test_pairs_without_blocking_columns_give_nan_blockers(attrs: pl.DataFrame) -> None:
    pairs = pl.DataFrame({"left_id": ["n1"], "right_id": ["n2"]})
    out = pair_features(pairs, attrs, attrs, None, None, TokenIdf.fit(attrs["title"]))
    assert all(_nan(out[f"blocker_{b}"][0]) for b in BLOCKERS) and _nan(out["ann_cosine"][0])


def test_rare_shared_tokens_weigh_more() -> None:
    titles = [f"widget holder {i}" for i in range(30)] + ["zx9000 gadget", "zx9000 frame", "widget alpha", "widget beta"]
    recs = conform(pl.DataFrame({"id": [f"r{i}" for i in range(len(titles))], "title": titles}))
    attrs = extract_attributes(recs)
    rare, common = _features(attrs, [("r30", "r31"), ("r32", "r33")])
    assert rare["title_jaccard"] == common["title_jaccard"] == pytest.approx(1 / 3)
    assert rare["title_idf_max_shared"] > common["title_idf_max_shared"]
    assert rare["title_idf_jaccard"] > common["title_idf_jaccard"]


def test_embedding_cosine_is_row_dot(attrs: pl.DataFrame) -> None:
    emb = _unit_vectors(attrs.height, 16, seed=3)
    (row,) = _features(attrs, [("n1", "i2")], emb=emb)
    assert row["emb_cosine"] == pytest.approx(float(emb[0] @ emb[3]), abs=1e-5)


def test_two_sources_and_chunking_agree(attrs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    left, right = attrs.head(6), attrs.slice(6)
    rows = [(a, b) for a in left["id"] for b in right["id"]]
    idf = TokenIdf.fit(attrs["title"])
    whole = pair_features(_pairs(rows), left, right, None, None, idf)
    monkeypatch.setattr(pairs_mod, "CHUNK_PAIRS", 7)
    chunked = pair_features(_pairs(rows), left, right, None, None, idf)
    assert whole.height == len(rows)
    assert whole.equals(chunked)


def test_unknown_id_is_an_input_error(attrs: pl.DataFrame) -> None:
    with pytest.raises(CatalogError, match="right_id"):
        pair_features(_pairs([("n1", "nope")]), attrs, attrs, None, None, TokenIdf.fit(attrs["title"]))


def _catalog(titles: list[str]) -> pl.DataFrame:
    return extract_attributes(conform(pl.DataFrame({"id": [f"r{i}" for i in range(len(titles))], "title": titles})))


def test_differs_only_in_colour_or_size_survives_rewording() -> None:
    # Filler listings make "shirt", "slim", "fit" and "mens" common words, as in a real catalog.
    filler = [f"Brand{i} Slim Fit Mens Shirt Basic" for i in range(30)]
    attrs = _catalog([
        "Alpine Flannel Slim Fit Shirt, Olive, XL", "Alpine Flannel Slim-Fit Mens Shirt - Black - S",
        "Alpine Poplin Regular Shirt, Black, S", *filler,
    ])
    reworded, other_line = _features(attrs, [("r0", "r1"), ("r0", "r2")])
    assert reworded["differs_only_color_size"] == 1.0
    assert reworded["color_agree"] == 0.0 and reworded["size_agree"] == 0.0
    assert reworded["core_idf_jaccard"] > other_line["core_idf_jaccard"]
    assert other_line["differs_only_color_size"] == 0.0
    assert other_line["core_idf_max_unshared"] > reworded["core_idf_max_unshared"]


def test_versions_editions_and_model_stems() -> None:
    attrs = _catalog([
        "PrintMaster Platinum v 17.0", "print master platinum v17", "Math Success Deluxe 2007",
        "Math Success Deluxe 2008", "Office 2004 Standard Upgrade", "Office 2004 Std Upgrade",
        "Office 2004 Professional",
        "Sheet Set CB49251", "Sheet Set CB49252", "Sheet Set XY10000",
    ])
    same_v, years, std, pro, stem, other = _features(
        attrs, [("r0", "r1"), ("r2", "r3"), ("r4", "r5"), ("r4", "r6"), ("r7", "r8"), ("r7", "r9")])
    assert same_v["core_numbers_containment"] == 1.0 and years["core_numbers_containment"] == 0.0
    assert std["edition_agree"] == 1.0 and pro["edition_agree"] == 0.0
    assert _nan(same_v["edition_agree"])  # no edition named
    assert stem["model_prefix"] == pytest.approx(6 / 7) and other["model_prefix"] == 0.0


def test_scores_relative_to_each_records_best_candidate(attrs: pl.DataFrame) -> None:
    emb = _unit_vectors(attrs.height, 8, seed=5)
    rows = [("s1", "s2"), ("s1", "s3"), ("n1", "s1"), ("h1", "h2")]
    out = pair_features(_pairs(rows), attrs, attrs, emb, emb, TokenIdf.fit(attrs["title"]))
    cos = out["emb_cosine"].to_numpy()
    # One catalog: s1's pairs are the three it is on either side of.
    best_s1 = cos[:3].max()
    assert out["emb_cosine_gap_left"].to_numpy()[:2] == pytest.approx(cos[:2] - best_s1, abs=1e-6)
    assert out["emb_cosine_gap_right"][2] == pytest.approx(cos[2] - best_s1, abs=1e-6)
    assert out["emb_cosine_gap_left"][3] == 0.0 and out["emb_cosine_gap_right"][3] == 0.0
    assert (out.select(pl.col("^.*_gap_.*$")).to_numpy() <= 1e-6).all()
    # Two sources: a record's pairs are those of its own side only.
    left, right = attrs.filter(pl.col("id").is_in(["s1", "n1"])), attrs.filter(pl.col("id").is_in(["s2", "s3"]))
    link = pair_features(_pairs([("s1", "s2"), ("s1", "s3"), ("n1", "s2")]), left, right, None, None,
                         TokenIdf.fit(attrs["title"]))
    sim = link["title_token_set"].to_numpy()
    assert link["title_token_set_gap_left"].to_numpy()[:2] == pytest.approx(sim[:2] - sim[:2].max(), abs=1e-6)
    assert link["title_token_set_gap_right"][0] == pytest.approx(sim[0] - max(sim[0], sim[2]), abs=1e-6)
    assert link["title_token_set_gap_left"][2] == 0.0


def test_gaps_over_separately_computed_chunks_equal_gaps_over_all(attrs: pl.DataFrame) -> None:
    from features.pairs import apply_gaps, pair_features, record_bests

    ids = attrs["id"].to_list()
    rows = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    idf = TokenIdf.fit(attrs["attr_title"].to_list())
    whole = pair_features(_pairs(rows), attrs, attrs, None, None, idf)
    chunks = [pair_features(_pairs(part), attrs, attrs, None, None, idf) for part in (rows[:3], rows[3:])]
    bests = record_bests(pl.concat([c.lazy() for c in chunks]), one_catalog=True)
    rejoined = pl.concat([apply_gaps(c, bests) for c in chunks])
    assert len(rows) > 3
    assert rejoined.select(pl.col("^.*_gap_.*$")).equals(whole.select(pl.col("^.*_gap_.*$")))


def test_values_over_more_records_give_the_same_features(attrs: pl.DataFrame) -> None:
    """A dedup round computes record values once for all its chunks, over all of the round's records."""
    from features.pairs import record_values, values_features

    emb = _unit_vectors(attrs.height, 8, seed=5)
    rows = [("s1", "s2"), ("h1", "h2"), ("n1", "i2")]
    named = attrs["id"].is_in([i for pair in rows for i in pair]).to_numpy()
    few, few_emb = attrs.filter(pl.Series(named)), emb[named]
    idf = TokenIdf.fit(attrs["title"])
    from_all = values_features(_pairs(rows), record_values(attrs, attrs, emb, emb, idf))
    from_few = pair_features(_pairs(rows), few, few, few_emb, few_emb, idf)
    assert few.height == 6 < attrs.height
    assert from_all.equals(from_few)


def test_a_chunks_own_values_give_the_same_features(attrs: pl.DataFrame) -> None:
    """A Dask task is sent the values of its chunk's records only; its features are those from all."""
    from features.pairs import record_values, values_features

    emb = _unit_vectors(attrs.height, 8, seed=6)
    rows = [("s1", "s2"), ("h1", "h2"), ("n1", "i2"), ("s2", "h1")]
    idf = TokenIdf.fit(attrs["title"])
    for right in (attrs, attrs.clone()):  # one catalog, then two sources
        values = record_values(attrs, right, emb, emb.copy(), idf)
        own = values.only(_pairs(rows))
        # In one catalog a record is on either side of its pairs; across two sources, on its own side.
        lefts = {i for pair in rows for i in pair} if right is attrs else {a for a, _ in rows}
        assert own.left_rows.ids.to_list() == sorted(lefts)
        assert len(own.left_emb) == len(lefts) < attrs.height
        assert values_features(_pairs(rows), own).equals(values_features(_pairs(rows), values))
    with pytest.raises(CatalogError, match="not in the left records"):
        values.only(_pairs([("nope", "s1")]))
