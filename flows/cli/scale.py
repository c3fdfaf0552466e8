"""`bench-scale`: time and peak memory per stage, with quality, on seeded catalogs of growing size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from features.records import CatalogError
from flows.cli.app import app
from flows.cli.run import pipeline_settings
from flows.scale import TRAIN_RECORDS


def parse_sizes(text: str) -> list[int]:
    """Comma-separated record counts, e.g. ``10000,100000``."""
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CatalogError("--records", f"{text!r} is not a comma-separated list of record counts") from None
    if not sizes or min(sizes) < 10:
        raise CatalogError("--records", f"{text!r}: give one or more sizes of at least 10 records")
    return sizes


@app.command("bench-scale")
def bench_scale(
    records: Annotated[str, typer.Option(help="Comma-separated catalog sizes.")] = "10000,100000,1000000",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    incremental_fraction: Annotated[float | None, typer.Option(
        help="Also time an incremental run on the largest size with this fraction new or changed.")] = None,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    work: Annotated[Path, typer.Option(help="Folder for catalogs, run folders and caches.")] = Path("runs/bench-scale"),
    settings: Annotated[Path | None, typer.Option(
        help="PipelineSettings JSON for every run; default: the static embedder.")] = None,
    train_records: Annotated[int, typer.Option(
        help="Listings of the generated catalog the model is trained on (when the shipped model does not fit).")] = TRAIN_RECORDS,
) -> None:
    """Generate catalogs, run dedup on each in its own process, report seconds, memory and quality."""
    from flows.scale import bench_scale as run_bench

    sizes = parse_sizes(records)
    if incremental_fraction is not None and not 0 < incremental_fraction < 1:
        raise CatalogError("--incremental-fraction", f"{incremental_fraction} is not between 0 and 1")
    report = run_bench(sizes, work, seed=seed, incremental_fraction=incremental_fraction,
                       settings=pipeline_settings(settings, None, None) if settings else None, json_path=json_path,
                       train_records=train_records)
    table = Table(title=f"bench-scale (model: {report['model']})")
    for col in ("records", "total s", "peak MB", "completeness", "dup F1", "variant F1"):
        table.add_column(col, justify="right")
    for run in report["runs"]:
        table.add_row(f"{run['records']:,}", f"{run['seconds']['total']:.1f}", f"{run['peak_rss_mb']:,.0f}",
                      str(run["pair_completeness"]), str(run["duplicate_f1"]), str(run["variant_f1"]))
    Console().print(table)
    Console().print_json(json.dumps({"stages": {r["records"]: r["seconds"] for r in report["runs"]},
                                     "incremental": report["incremental"]}))
