"""The synthetic catalog generator: determinism, truth structure and realism of the listings."""

from __future__ import annotations

import re

import polars as pl
import pytest
from typer.testing import CliRunner

from features.generate import COLOURS, OUTPUT_COLUMNS, SIZES, catalog_plan, generate_catalog
from features.io import write_table
from features.records import load_catalog

N = 4000


@pytest.fixture(scope="module")
def catalog() -> pl.DataFrame:
    return generate_catalog(N, seed=11)


@pytest.fixture(scope="module")
def truth() -> pl.DataFrame:
    return catalog_plan(N, seed=11)


def test_same_seed_same_bytes_different_seed_different_catalog(tmp_path, catalog):
    assert generate_catalog(N, seed=11).equals(catalog)
    a = write_table(generate_catalog(500, seed=3), tmp_path / "a.csv").read_bytes()
    b = write_table(generate_catalog(500, seed=3), tmp_path / "b.csv").read_bytes()
    assert a == b
    other = generate_catalog(500, seed=4)
    assert not other.equals(generate_catalog(500, seed=3))
    assert other["title"].to_list() != generate_catalog(500, seed=3)["title"].to_list()


@pytest.mark.parametrize("n", [1, 7, 999])
def test_exact_record_count_unique_opaque_ids(n):
    df = generate_catalog(n, seed=5)
    assert df.columns == list(OUTPUT_COLUMNS)
    assert df.height == n and df["id"].n_unique() == n
    assert df["id"].str.contains(r"^L\d{7,}$").all()
    assert df["product_id"].str.contains(r"^P\d{7,}$").all() and df["family_id"].str.contains(r"^F\d{7,}$").all()
    assert df["title"].null_count() == 0


def test_plan_is_row_aligned_with_the_catalog(catalog, truth):
    assert truth["product_id"].to_list() == catalog["product_id"].to_list()
    assert truth["family_id"].to_list() == catalog["family_id"].to_list()


def test_variants_in_a_family_differ_only_in_colour_or_size(truth):
    products = truth.unique("product_id")
    per_family = products.group_by("family_id").agg(
        pl.len().alias("n"),
        *[pl.col(c).n_unique().alias(c) for c in ("kind", "brand", "line", "spec", "model")],
        pl.struct("color", "size").n_unique().alias("variants"),
    )
    for c in ("kind", "brand", "line", "spec", "model"):
        assert (per_family[c] == 1).all(), c
    assert (per_family["variants"] == per_family["n"]).all()  # no two products of a family look alike
    sizes = per_family["n"]
    assert sizes.max() <= 8
    assert (sizes == 1).mean() > 0.2  # plenty of singletons
    assert ((sizes >= 2) & (sizes <= 8)).mean() > 0.4  # and many real families


def test_duplicates_share_product_and_are_written_differently(catalog, truth):
    listings = truth.group_by("product_id").agg(pl.len().alias("n"), pl.struct(pl.all().exclude("product_id")).n_unique().alias("k"))
    assert (listings["k"] == 1).all()
    assert listings["n"].max() == 3
    assert 0.25 <= (listings["n"] > 1).mean() <= 0.35
    dups = catalog.filter(pl.len().over("product_id") > 1)
    titles = dups.group_by("product_id").agg(pl.col("title").n_unique().alias("titles"), pl.len().alias("n"))
    assert (titles["titles"] == titles["n"]).mean() > 0.8
    gtins = dups.filter(pl.col("gtin").is_not_null()).with_columns(pl.col("gtin").str.strip_chars_start("0"))
    assert gtins.group_by("product_id").agg(pl.col("gtin").n_unique())["gtin"].max() == 1
    assert catalog.filter(pl.col("gtin").is_not_null()).select(pl.col("gtin").str.strip_chars_start("0").n_unique()).item() == (
        catalog.filter(pl.col("gtin").is_not_null())["product_id"].n_unique())
    # Missing brand, dropped description, price drift and model-number formats all happen.
    assert 0.1 < catalog["brand"].null_count() / N < 0.3
    assert 0.15 < catalog["description"].null_count() / N < 0.35
    spread = dups.group_by("product_id").agg((pl.col("price").max() / pl.col("price").min()).alias("r"))["r"].drop_nulls()
    assert (spread > 1.0).mean() > 0.5 and spread.max() < 1.3
    models = catalog["model_number"].drop_nulls()
    assert models.str.contains(r"^[A-Z]+-\d").any() and models.str.contains(r"^[a-z]+\d").any() and models.str.contains(r"^[A-Z]+ \d").any()


def test_capacity_and_spec_siblings_are_different_families(truth):
    products = truth.unique("product_id")
    lines = products.group_by("kind", "brand", "line").agg(
        pl.col("spec").n_unique().alias("specs"), pl.col("family_id").n_unique().alias("families"),
        pl.col("model").n_unique().alias("models"))
    siblings = lines.filter(pl.col("specs") > 1)
    assert siblings.height > 20
    assert (siblings["families"] == siblings["specs"]).all()
    assert (siblings["models"] == siblings["specs"]).all()
    phones = products.filter(pl.col("kind") == "phone").group_by("brand", "line").agg(pl.col("spec").n_unique())
    assert (phones["spec"] > 1).sum() > 5  # e.g. 64GB vs 128GB of one phone
    tvs = products.filter(pl.col("kind") == "tv").group_by("brand", "line").agg(pl.col("spec").n_unique())
    assert (tvs["spec"] > 1).any()


def _mentions(text: str | None, spellings: tuple[str, ...]) -> bool:
    if text is None:
        return False
    low = text.lower()
    return any(re.search(rf"(?<![\w.]){re.escape(s.lower())}(?![\w.])", low) for s in spellings)


def test_colour_and_size_are_in_title_column_or_both_in_many_spellings(catalog, truth):
    rows = catalog.select("title", "color", "size").with_columns(truth.select(key_color="color", key_size="size"))
    places = {"title": 0, "column": 0, "both": 0, "nowhere": 0}
    for title, color, _, key, _ in rows.iter_rows():
        en, es = COLOURS[key][1]
        in_title = _mentions(title, en + es)
        places["both" if in_title and color else "column" if color else "title" if in_title else "nowhere"] += 1
        if color is not None:
            assert color in en + es
    assert min(places["title"], places["column"], places["both"]) > 0.15 * N, places
    assert places["nowhere"] < 0.05 * N, places  # only typos and abbreviations hide a title-only colour
    sized = rows.filter(pl.col("size").is_not_null())
    for _, _, size, _, key in sized.iter_rows():
        assert size in SIZES[key][0] + SIZES[key][1]
    spellings = set(catalog["color"].drop_nulls()) | set(catalog["size"].drop_nulls())
    for expected in ("Navy", "navy blue", "Azul Marino", "Grey", "Gray", "Negro", "XL", "Extra Large", "10.5"):
        assert expected in spellings, expected
    assert catalog["size"].str.starts_with("EU ").any()
    assert catalog["title"].str.contains(r"\d+x\d+|W\d+ L\d+").any()  # jeans waist x length
    assert catalog["title"].str.contains(r"(?i)meses|months").any()  # baby wear


def test_catalog_covers_departments_and_languages(truth, catalog):
    kinds = set(truth["kind"])
    assert {"phone", "laptop", "headphones", "tv", "shirt", "jeans", "dress", "babywear", "shoes", "towel",
            "bedding", "cookware"} <= kinds
    spanish = catalog["title"].str.contains(r"(?i)teléfono|camisa|vestido|toalla|sartén|sábanas|audífonos|tenis|pañalero")
    assert 0.05 < spanish.mean() < 0.3
    assert catalog["description"].str.contains("<li>").any()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_cli_output_loads_through_the_contract(tmp_path, fmt):
    from flows.cli.app import app

    out = tmp_path / f"gen.{fmt}"
    result = CliRunner().invoke(app, ["generate", "--records", "300", "--seed", "9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = load_catalog(out)
    assert records.height == 300
    assert records.columns[-2:] == ["product_id", "family_id"]
    expected = generate_catalog(300, seed=9)
    assert records["title"].to_list() == expected["title"].to_list()
    assert records["price"].to_list() == expected["price"].to_list()
