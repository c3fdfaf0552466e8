"""Attribute extraction on real-looking English and Spanish listings."""

from __future__ import annotations

import polars as pl
import pytest

from features.attributes import ATTRIBUTE_COLUMNS, comparable_sizes, extract_attributes, listed_brands
from features.records import conform
from features.text import normalize_gtin, normalize_model_number, normalize_text

# title, color column, size column, model column, expected colours, sizes, models, capacity, quantity
CASES = [
    ("Nike Air Max 90 Black EU 44", None, None, None, ["black"], ["eu44"], [], [], None),
    ("Nike Air Max 90 White EU 42", None, None, None, ["white"], ["eu42"], [], [], None),
    ("iPhone 13 64GB", None, None, None, [], [], [], ["64gb"], None),
    ("Apple iPhone 13 128 GB Azul Marino", None, None, None, ["navy"], [], [], ["128gb"], None),
    ("Sony Wireless Headphones - Black | WH1000XM3B", None, None, None, ["black"], [], ["wh1000xm3b"], [], None),
    ("Sony WH-1000XM3 Wireless Noise Cancelling Headphones", None, None, "WH-1000XM3", [], [], ["wh1000xm3"], [], None),
    ("Jabra Evolve 75 UC Stereo Headset | 7599-838-199", None, None, None, [], [], ["7599838199"], [], None),
    ("sony turntable pslx350h", None, None, None, [], [], ["pslx350h"], [], None),
    ("bose acoustimass 5 series iii speaker system am53bk", None, None, None, [], [], ["am53bk"], [], None),
    ("Chaz Kangeroo Hoodie-XS-Black", "Black", "XS", None, ["black"], ["xs"], [], [], None),
    ("Chaz Kangeroo Hoodie-M-Gray", None, None, None, ["grey"], ["m"], [], [], None),
    ("Camiseta básica talla M gris", None, None, None, ["grey"], ["m"], [], [], None),
    ("Camiseta básica", "Gris oscuro", "Talla L", None, ["charcoal"], ["l"], [], [], None),
    ("Dockers Chinos W32 L34 Navy Blue", None, None, None, ["navy"], ["32x34"], [], [], None),
    ("Vaqueros Corte Slim, Azul Oscuro, 32x34", None, None, None, ["dark wash"], ["32x34"], [], [], None),
    ("Pantalón chino 32x34 beige", None, None, None, ["beige"], ["32x34"], [], [], None),
    ("Baby Bodysuit 6-12 Months Rosa", None, None, None, ["pink"], ["6-12m"], [], [], None),
    ("Body bebé algodón", "Blanco", "6-12M", None, ["white"], ["6-12m"], [], [], None),
    ("Pelele bebé 0-3 meses azul claro", None, None, None, ["light blue"], ["0-3m"], [], [], None),
    ('Samsung 55" QLED TV QN55Q60T', None, None, None, [], [], ["qn55q60t"], ["55in"], None),
    ("Coca-Cola Zero 500ml pack of 6", None, None, None, [], [], [], ["500ml"], 6),
    ("ca international arcserve lap/desktop oem 30pk", None, None, None, [], [], [], [], 30),
    ("Agua mineral 1.5 L paquete de 12", None, None, None, [], [], [], ["1.5l"], 12),
    ("Duracell AA batteries 24 count", None, None, None, [], [], [], [], 24),
    ("Zapatillas Adidas Ultraboost talla 42 negro", None, None, None, ["black"], ["42"], [], [], None),
    ("Men's Running Shoe US 10.5 Grey/Black", None, None, None, ["black", "grey"], ["us10.5"], [], [], None),
    ("Running shoe", "Gray", "UK 8", None, ["grey"], ["uk8"], [], [], None),
    ("Dell XPS 13 Laptop 16GB RAM 512GB SSD Silver", None, None, None, ["silver"], [], [], ["16gb", "512gb"], None),
    ("T-Shirt Extra Large blanco", None, None, None, ["white"], ["xl"], [], [], None),
    ("Sudadera X-Large Azul Oscuro", None, None, None, ["navy"], ["xl"], [], [], None),
    ("Polo shirt", "Rojo", "XXL", None, ["red"], ["xxl"], [], [], None),
    ("Vestido largo", "Verde", "Mediano", None, ["green"], ["m"], [], [], None),
    ("Black & Decker 20V drill LDX120C", None, None, None, [], [], ["ldx120c"], ["20v"], None),
    ("Corsair Carbide SPEC-01 Mid-Tower Case | CC-9011050-WW", None, None, None, [], [], ["cc9011050ww", "spec01"], [], None),
    ("Kingston DataTraveler G4 16GB USB3.0 Flash Drive DTIG4/16GB", None, None, None, [], [], ["dtig4"], ["16gb"], None),
    ("Belkin Lightning to USB cable 1.2m black", None, None, None, ["black"], [], [], ["1.2m"], None),
    ("Nintendo DS Lite Crimson / Black", None, None, None, ["black", "red"], [], [], [], None),
    ("Quickbooks Pro 2007 5-user", None, None, None, [], [], [], [], None),
    ("Sofa cover", "Midnight", "King", None, ["midnight"], ["king"], [], [], None),
    ("Ubiquiti UniFi Switch US-24-500W", None, None, None, [], [], ["us24500w"], ["500w"], None),
    ("Five-Pocket Straight Jeans", "Blk", "32/30", None, ["black"], ["32x30"], [], [], None),
    ("Slim Jeans Light Wash", None, "30W x 34L", None, ["light wash"], ["30x34"], [], [], None),
    ("Pantalón Corte Slim Lavado Oscuro Cintura 30 Largo 34", None, None, None, ["dark wash"], ["30x34"], [], [], None),
    ("Trail Shoes", "WHT", "9 1/2", None, ["white"], ["9.5"], [], [], None),
    ("Sheet Set 400 TC", "Beis", "Queen Size", None, ["beige"], ["queen"], [], [], None),
    ("Toalla algodón turco", "Borgoña", "Toalla de Mano", None, ["burgundy"], ["hand towel"], [], [], None),
    ("Camisa Oxford", "Verde azulado", "XG", None, ["teal"], ["xl"], [], [], None),
    ("Infant Onesie, 7-Pack", None, "0-1 Months", None, [], ["newborn"], [], [], 7),
    ("Frying Pan", "Gray", "30 cm", None, ["grey"], ["30cm"], [], [], None),
    # a title part holding only colours and a size names the size, however bare
    ("Premium Percale Sheets, 600TC, Dark Gray, Full", None, None, None, ["charcoal"], ["full"], [], [], None),
    ("Riveted Straight Jeans | black | 32W x 30L", None, None, None, ["black"], ["32x30"], [], [], None),
    ("Kinetica Road 4 Sneakers, Mens, 11", None, None, None, [], ["11"], [], [], None),
    ("Camisa Slim Fit, Verde Oliva, CH", None, None, None, ["olive"], ["s"], [], [], None),
    ("Sheet Set 600TC Off-White Full by Hearth & Home", None, None, None, ["ivory"], ["full"], [], [], None),
    ("Hard-Anodized Frying Pan - black 30 cm", None, None, None, ["black"], ["30cm"], [], ["30cm"], None),
    # a model number written with a space is one model number, not a brand-wide code ("gdh3")
    ("Smartphone Astra 40 Mini 256gb LM 43462", None, None, None, [], [], ["lm43462"], ["256gb"], None),
    ("Stride 8 SE Sneakers GDH3 94970", None, None, None, [], [], ["gdh394970"], [], None),
    ("NEW 2024 Edition Stand Mixer", None, None, None, [], [], [], [], None),
]


def _catalog(rows: list[tuple]) -> pl.DataFrame:
    return conform(pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(rows))],
            "title": [r[0] for r in rows],
            "color": [r[1] for r in rows],
            "size": [r[2] for r in rows],
            "model_number": [r[3] for r in rows],
        },
        schema={c: pl.String for c in ("id", "title", "color", "size", "model_number")},
    ))


@pytest.fixture(scope="module")
def extracted() -> pl.DataFrame:
    return extract_attributes(_catalog(CASES))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0][:40] for c in CASES])
def test_attribute_table(extracted: pl.DataFrame, i: int) -> None:
    title, _, _, _, colors, sizes, models, capacity, quantity = CASES[i]
    row = extracted.row(i, named=True)
    assert row["attr_colors"] == colors, title
    assert row["attr_sizes"] == sizes, title
    assert row["attr_models"] == models, title
    assert row["attr_capacity"] == capacity, title
    assert row["attr_quantity"] == quantity, title


def test_contract_columns_and_types(extracted: pl.DataFrame) -> None:
    assert [c for c in extracted.columns if c.startswith("attr_")] == list(ATTRIBUTE_COLUMNS)
    assert extracted.height == len(CASES)
    schema = extracted.schema
    for c in ("attr_colors", "attr_sizes", "attr_models", "attr_capacity"):
        assert schema[c] == pl.List(pl.String)
    for c in ("attr_title", "attr_brand", "attr_gtin", "attr_core"):
        assert schema[c] == pl.String
    assert schema["attr_quantity"] == pl.Int64


def test_core_title_drops_colour_and_size(extracted: pl.DataFrame) -> None:
    cores = extracted["attr_core"].to_list()
    assert cores[0] == cores[1] == "nike air max 90"
    assert cores[2] == "iphone 13 64gb"
    assert cores[11] == cores[12] == "camiseta basica"


def test_normalize_text_folds_accents_and_punctuation() -> None:
    s = pl.Series(["Café  Marrón, TALLA-M!", "Noah's Ark 2.5\" (DVD)", ""])
    assert pl.select(normalize_text(pl.lit(s))).to_series().to_list() == ["cafe marron talla m", "noahs ark 2.5in dvd", ""]


def test_model_number_forms_agree() -> None:
    s = pl.Series(["DX-123", "dx123", "DX 123", "dx_123", " - "])
    assert pl.select(normalize_model_number(pl.lit(s))).to_series().to_list() == ["dx123"] * 4 + [None]


def test_gtin_padding_and_check_digit() -> None:
    s = pl.Series(["4006381333931", "400-638-133-3931", "036000291452", "4006381333932", "12345", None])
    out = pl.select(normalize_gtin(pl.lit(s))).to_series().to_list()
    assert out == ["04006381333931", "04006381333931", "00036000291452", None, None, None]


def test_brand_normalised_and_null_when_missing() -> None:
    df = extract_attributes(conform(pl.DataFrame({"id": ["a", "b"], "title": ["x", "y"], "brand": ["Bang & Olufsen", None]})))
    assert df["attr_brand"].to_list() == ["bang olufsen", None]


def test_listed_brand_is_the_brand_column_or_the_longest_known_brand_a_title_names() -> None:
    df = extract_attributes(conform(pl.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f"],
        "title": ["Wynen Co Astra 6", "Astra 6 Ultra Cell Phone by Wynen Co", "Co Astra 6 Wynen Co", "Astra 6",
                  "Nova 3 Phone", "Wynen Nova 3"],
        "brand": ["Wynen Co", None, None, "Wynen", None, "Acme"],
    })))
    # c names "wynen co" and "wynen"; the longer wins. e names no brand another listing carries;
    # f keeps its own brand although its title names another.
    assert listed_brands(df).to_list() == ["wynen co", "wynen co", "wynen co", "wynen", None, "acme"]


def test_colour_words_of_brand_names_are_not_colours() -> None:
    df = conform(pl.DataFrame({
        "id": ["a", "b", "c"],
        "title": ["Blue Mesa Slim Jeans Grey 32x30", "BLUE MESA Slim Jeans gray", "Slim Jeans Blue"],
        "brand": ["Blue Mesa", None, None],
    }))
    assert extract_attributes(df)["attr_colors"].to_list() == [["grey"], ["grey"], ["blue"]]


def test_comparable_sizes_put_spellings_in_one_system() -> None:
    rows = [
        ("Running Shoes EU 42", None), ("Trainers", "US 8.5"), ("Tenis Talla 42", None), ("Trainers UK 7.5", None),
        ("Dress EU 38", None), ("Vestido", "Talla 38"), ("Dress", "6"),
        ("Frying Pan", "30 cm"), ("Towel", "16 x 28 in"), ("Shirt XL", None), ("Plain thing", None),
    ]
    df = extract_attributes(conform(pl.DataFrame(
        {"id": [str(i) for i in range(len(rows))], "title": [r[0] for r in rows], "size": [r[1] for r in rows]}
    )))
    assert comparable_sizes(df).to_list() == [
        ["8.5"], ["8.5"], ["8.5"], ["8.5"], ["6"], ["6"], ["6"], ["12in"], ["hand towel"], ["xl"], [],
    ]
