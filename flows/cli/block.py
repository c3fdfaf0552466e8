"""`catalog-match block`: candidate pairs for one catalog or two sources, with blocking metrics."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from blocking.candidates import generate_candidates
from blocking.embed import embed_texts, load_embedder, record_texts
from blocking.metrics import blocking_metrics, truth_from_column, truth_from_file
from blocking.settings import BlockingSettings
from features.attributes import extract_attributes
from features.io import write_json, write_table
from features.records import TRUTH_COLUMNS, CatalogError, load_catalog
from flows.cli.app import app

console = Console(stderr=True)


def load_settings(path: Path | None) -> BlockingSettings:
    """Read BlockingSettings JSON, or the defaults; a bad file is a CatalogError."""
    if path is None:
        return BlockingSettings()
    try:
        return BlockingSettings.load(path)
    except (OSError, ValidationError, ValueError) as exc:
        raise CatalogError(path, f"bad blocking settings: {str(exc).splitlines()[0]}") from None


def load_truth(
    path: Path | None, left: pl.DataFrame, right: pl.DataFrame | None, singletons: list[str]
) -> pl.DataFrame | None:
    """True pairs from a matches file, else from the first truth column the catalog(s) share."""
    if path is not None:
        return truth_from_file(path, two_sources=right is not None)
    shared = [c for c in TRUTH_COLUMNS[:3] if c in left.columns and (right is None or c in right.columns)]
    if not shared:
        return None
    return truth_from_column(left, shared[0], right, tuple(singletons))


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@app.command()
def block(
    catalog: Annotated[Path, typer.Argument(help="Catalog file (.csv, .parquet, .jsonl); the left source if RIGHT is given.")],
    right: Annotated[Path | None, typer.Argument(help="Second source, to link CATALOG against.")] = None,
    truth: Annotated[Path | None, typer.Option(help="True pairs (ltable_id,rtable_id or left_id,right_id); default: truth columns in the catalog(s).")] = None,
    truth_singleton: Annotated[list[str] | None, typer.Option(help="Truth value that means 'unrelated' (e.g. WDC cluster 2432); repeatable.")] = None,
    settings: Annotated[Path | None, typer.Option(help="BlockingSettings JSON.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the candidate pairs here (.parquet, .csv, .jsonl).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report and metrics as JSON.")] = None,
) -> None:
    """Generate candidate pairs and print what each blocker found (and pair completeness with truth)."""
    cfg = load_settings(settings)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    left = extract_attributes(load_catalog(catalog))
    other = extract_attributes(load_catalog(right)) if right is not None else None
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    embedder = load_embedder(cfg)
    left_emb = embed_texts(record_texts(left), cfg)
    right_emb = embed_texts(record_texts(other), cfg) if other is not None else None
    timings["embed"] = time.perf_counter() - started

    started = time.perf_counter()
    pairs, report = generate_candidates(left, left_emb, cfg, other, right_emb)
    timings["block"] = time.perf_counter() - started
    if out is not None:
        write_table(pairs, out)

    table = Table(title=f"blocking {catalog.name}" + (f" x {right.name}" if right else ""))
    for col in ("blocker", "pairs", "seconds", "capped keys"):
        table.add_column(col)
    for name, n in report.pairs_per_blocker.items():
        table.add_row(name, f"{n:,}", f"{report.seconds[name]:.2f}", str(report.capped_counts.get(name, "")))
    console.print(table)
    console.print(
        f"embedder {embedder.model_id} ({embedder.encoded:,} texts encoded this run), index {report.index}; "
        f"{report.total_candidates:,} candidates, {report.candidates_per_record:.2f} per record; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        + f"; peak memory {peak_rss_mb():,.0f} MB"
    )
    for name, keys in report.capped_keys.items():
        if keys:
            console.print(f"capped {name} keys ({report.capped_counts[name]}): " + ", ".join(f"{k.key!r} ({k.size})" for k in keys[:5]))

    result = {"report": report.model_dump(), "seconds": timings, "peak_rss_mb": peak_rss_mb(), "model_id": embedder.model_id}
    truth_pairs = load_truth(truth, left, other, truth_singleton or [])
    if truth_pairs is not None:
        metrics = blocking_metrics(pairs, truth_pairs, left.height, other.height if other is not None else None)
        result["metrics"] = metrics.model_dump()
        completeness = ("undefined (the truth pairs no records)" if metrics.pair_completeness is None
                        else f"{metrics.pair_completeness:.4f} ({metrics.found:,}/{metrics.true_pairs:,})")
        console.print(f"pair completeness {completeness}, reduction ratio {metrics.reduction_ratio:.5f}")
        console.print("completeness per blocker: " + json.dumps(metrics.completeness_per_blocker))
        console.print("true pairs found by one blocker only: " + json.dumps(metrics.only_found_by))
    if json_out is not None:
        write_json(result, json_out)
