"""The record contract: validation errors, column aliases, round trips, prices and awkward text."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from features.io import write_table
from features.records import CANONICAL_COLUMNS, CatalogError, load_catalog

# name, file name, bytes (None: file absent), message fragment, row, column
BAD_INPUTS = [
    ("missing_file", "absent.csv", None, "file not found", None, None),
    ("empty_file", "empty.csv", b"", "file is empty", None, None),
    ("header_only", "header.csv", b"id,title\n", "no records", None, None),
    ("missing_id", "no_id.csv", b"title,brand\nLamp,Acme\n", "required column is missing", None, "id"),
    ("missing_title", "no_title.csv", b"id,brand\nA1,Acme\n", "required column is missing", None, "title"),
    ("duplicate_ids", "dup.csv", b"id,title\nA1,Lamp\nA2,Desk\nA1,Chair\n", "duplicate id 'A1' (first at row 1)", 3, "id"),
    ("null_id", "null_id.csv", b"id,title\nA1,Lamp\n,Desk\n", "id is empty", 2, "id"),
    ("null_id_jsonl", "null_id.jsonl", b'{"id": "A1", "title": "Lamp"}\n{"id": null, "title": "Desk"}\n', "id is empty", 2, "id"),
    ("empty_title", "no_title_value.csv", b"id,title\nA1,Lamp\nA2,  \n", "title is empty", 2, "title"),
    ("undecodable", "latin1.csv", b"id,title,brand\nA1,Lamp,Acme\nA2,Caf\xe9 Table,Acme\n", "not valid UTF-8", 2, "title"),
    ("ragged_short", "short.csv", b"id,title,brand\nA1,Lamp,Acme\nA2,Desk\n", "2 fields but the header has 3 (line 3)", 2, "brand"),
    ("ragged_long", "long.csv", b"id,title\nA1,Lamp\nA2,Desk\nA3,Chair,extra\n", "3 fields but the header has 2 (line 4)", 3, "title"),
    ("duplicate_header", "twice.csv", b"id,title,title\nA1,Lamp,Desk\n", "appears twice", None, "title"),
    ("bad_json", "bad.jsonl", b'{"id": "A1", "title": "Lamp"}\n{"id": "A2", "title": \n', "invalid JSON", 2, None),
    ("unknown_format", "catalog.xlsx", b"id,title\nA1,Lamp\n", "unsupported format", None, None),
]


def _write_bad(tmp_path: Path, name: str, data: bytes | None) -> Path:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_one_line_error_naming_file_row_and_column(tmp_path, case):
    _, name, data, fragment, row, column = case
    path = _write_bad(tmp_path, name, data)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    err = info.value
    text = str(err)
    assert "\n" not in text
    assert text.startswith(str(path))
    assert fragment in text
    assert (err.row, err.column) == (row, column)
    if row is not None:
        assert f"row {row}" in text
    if column is not None:
        assert f"column '{column}'" in text


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_cli_rejects_bad_input_with_exit_2_and_writes_nothing(tmp_path, case, monkeypatch, capsys):
    from flows.cli import main

    _, name, data, fragment, _, _ = case
    path = _write_bad(tmp_path, name, data)
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.setattr(sys, "argv", ["catalog-match", "validate", str(path)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and fragment in lines[0]
    assert sorted(tmp_path.rglob("*")) == before


def test_console_script_reports_ragged_row_on_one_line(tmp_path):
    exe = shutil.which("catalog-match")
    assert exe, "the catalog-match console script is not installed"
    bad = _write_bad(tmp_path, "bad.csv", b"id,title,price\nA1,Lamp,10\nA2,Desk\n")
    result = subprocess.run([exe, "validate", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: {bad}, row 2, column 'price': has 2 fields but the header has 3 (line 3)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_generate_rejects_unknown_output_format_and_writes_nothing(tmp_path):
    from flows.cli.app import app

    result = CliRunner().invoke(app, ["generate", "--records", "10", "--out", str(tmp_path / "out.xlsx")])
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_blank_lines_and_quoting_quirks_load_like_pythons_csv(tmp_path):
    path = tmp_path / "quirky.csv"
    path.write_bytes(b'\xef\xbb\xbfid,title,brand\r\nA1,Lamp,Acme\r\n\r\nA2,"Desk"x,\r\nA3,"Chair, ""Oak""\nbeige",Oakly\r\n')
    records = load_catalog(path)
    assert records["id"].to_list() == ["A1", "A2", "A3"]
    assert records["title"].to_list() == ["Lamp", "Deskx", 'Chair, "Oak"\nbeige']
    assert records["brand"].to_list() == ["Acme", None, "Oakly"]


def test_aliases_map_case_insensitively_and_extras_are_carried(tmp_path):
    path = tmp_path / "aliases.csv"
    path.write_text(
        "Listing_ID,Name,MANUFACTURER,modelNo,Colour,Size,Seller,product_id\n"
        "A1,Trail Runner,Stridex,SX-10,Navy,10.5,shop-a,P1\n"
        "A2,Trail Runner GTX,Stridex,SX-11,azul marino,EU 44,shop-b,P2\n",
        encoding="utf-8",
    )
    records = load_catalog(path)
    assert records.columns == [*CANONICAL_COLUMNS, "Seller", "product_id"]
    assert records["title"].to_list() == ["Trail Runner", "Trail Runner GTX"]
    assert records["brand"].to_list() == ["Stridex", "Stridex"]
    assert records["model_number"].to_list() == ["SX-10", "SX-11"]
    assert records["color"].to_list() == ["Navy", "azul marino"]
    assert records["size"].to_list() == ["10.5", "EU 44"]
    assert records["id"].to_list() == ["A1", "A2"]
    assert records["description"].null_count() == 2 and records["price"].dtype == pl.Float64


def test_exact_contract_name_beats_an_alias(tmp_path):
    path = tmp_path / "both.csv"
    path.write_text("id,title,name,brand\nA1,Real Title,Other Name,Acme\n", encoding="utf-8")
    records = load_catalog(path)
    assert records["title"].to_list() == ["Real Title"]
    assert records["name"].to_list() == ["Other Name"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_extra_columns_survive_load_write_load(tmp_path, fmt):
    source = pl.DataFrame({
        "ID": ["A1", "A2", "A3"],
        "Name": ["Desk Lamp", "Floor Lamp", "Desk, Oak"],
        "Manufacturer": ["Acme", None, "Oakly"],
        "list_price": ["$1,299.00", "15", None],
        "seller": ["shop-a", "shop-b", "shop-c"],
        "warehouse_note": ["aisle 3", None, 'says "fragile"\nsecond line'],
        "family_id": ["F1", "F1", "F2"],
    })
    first_path = write_table(source, tmp_path / f"source.{fmt}")
    first = load_catalog(first_path)
    assert first.columns == [*CANONICAL_COLUMNS, "seller", "warehouse_note", "family_id"]
    assert first["warehouse_note"].to_list() == source["warehouse_note"].to_list()
    assert first["price"].to_list() == [1299.0, 15.0, None]
    second = load_catalog(write_table(first, tmp_path / f"again.{fmt}"))
    assert second.equals(first)


def test_prices_parse_and_unparseable_ones_become_null_with_a_warning(tmp_path, caplog):
    from flows.cli.app import app

    path = tmp_path / "prices.csv"
    path.write_text(
        "id,title,price\n"
        'A1,Laptop,"$1,299.00"\nA2,Laptop,"1.299,00 EUR"\nA3,Towel,"12,50"\nA4,Mug,call us\n'
        "A5,Pan,\nA6,Pan,€ 7\nA7,Sofa,1.299.000\nA8,Sofa,n/a\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="features.records"):
        records = load_catalog(path)
    assert records["price"].to_list() == [1299.0, 1299.0, 12.5, None, None, 7.0, 1299000.0, None]
    assert any("2 prices could not be parsed" in r.getMessage() for r in caplog.records)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "8 records" in result.stdout and "unparsed prices: 2" in result.stdout


AWKWARD = {
    "id": ["U1", "U2", "U3", "U4"],
    "title": ["Headphones 🎧 Noise-Cancelling ✨", "سماعات رأس لاسلكية", "אוזניות אלחוטיות, שחור", "Mug <b>bold</b> & \"quoted\""],
    "description": [
        "<div class=\"desc\">" + ("<p>Long, long text — with commas, \"quotes\" and\nnewlines 😀</p>" * 1700) + "</div>",
        "وصف المنتج: سماعات بلوتوث مع ميكروفون",
        "<ul><li>סוללה ל-30 שעות</li><li>Bluetooth 5.3</li></ul>",
        "<script>alert('x')</script><p>Ceramic &amp; glaze</p>",
    ],
    "color": ["Negro", "أسود", "שחור", "Crème brûlée"],
}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_long_fields_emoji_rtl_and_html_load_unchanged(tmp_path, fmt):
    assert len(AWKWARD["description"][0].encode()) > 100_000
    path = write_table(pl.DataFrame(AWKWARD), tmp_path / f"awkward.{fmt}")
    records = load_catalog(path)
    for column, values in AWKWARD.items():
        assert records[column].to_list() == values
