"""`generate` writes a seeded synthetic catalog; `validate` loads a catalog and summarises it."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from features.generate import generate_catalog
from features.io import write_table
from features.records import CANONICAL_COLUMNS, FORMATS, TRUTH_COLUMNS, conform, map_columns, read_raw
from flows.cli.app import app

_console = Console(stderr=True)


@app.command()
def generate(
    records: int = typer.Option(3000, "--records", "-n", min=1, help="Number of listings to write."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical output."),
    out: Path = typer.Option(..., "--out", help="Output file: .csv, .parquet or .jsonl."),
) -> None:
    """Write a synthetic catalog with truth columns product_id and family_id."""
    if out.suffix.lower() not in FORMATS:
        raise typer.BadParameter(f"{out}: use a .csv, .parquet or .jsonl file", param_hint="--out")
    start = time.perf_counter()
    catalog = generate_catalog(records, seed, progress=True)
    with _console.status(f"writing {out}"):
        write_table(catalog, out)
    typer.echo(
        f"{out}: {catalog.height} listings, {catalog['product_id'].n_unique()} products, "
        f"{catalog['family_id'].n_unique()} families (seed {seed}, {time.perf_counter() - start:.1f} s)"
    )


@app.command()
def validate(catalog: Path = typer.Argument(..., help="Catalog file: .csv, .parquet or .jsonl.")) -> None:
    """Load a catalog through the record contract and print a one-line summary."""
    start = time.perf_counter()
    with _console.status(f"loading {catalog}"):
        raw = read_raw(catalog)
        records = conform(raw, source=catalog)
    # The same renames conform applies: an exact contract name wins over an alias.
    renamed = {src: dst for src, dst in map_columns(raw.columns).items() if src != dst and dst not in raw.columns}
    price_source = "price" if "price" in raw.columns else next((s for s, d in renamed.items() if d == "price"), None)
    # Prices present in the source but null after parsing are the ones conform warned about.
    bad_prices = raw[price_source].count() - records["price"].count() if price_source else 0
    extras = [c for c in records.columns if c not in CANONICAL_COLUMNS and c not in TRUTH_COLUMNS]
    truth = [c for c in records.columns if c in TRUTH_COLUMNS]
    typer.echo(
        f"{catalog}: {records.height} records, {len(records.columns)} columns; "
        f"mapped: {', '.join(f'{s}->{d}' for s, d in renamed.items()) or 'none'}; "
        f"extra: {', '.join(extras) or 'none'}; truth: {', '.join(truth) or 'none'}; "
        f"unparsed prices: {bad_prices} ({time.perf_counter() - start:.1f} s)"
    )
