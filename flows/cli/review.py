"""Review commands: export a run's pairs with explanations, and import the reviewers' verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from flows.cli.app import app
from matching.review import UNCERTAIN_FROM, Only, build_review, import_reviews, load_run, write_review

console = Console(stderr=True)


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by dedup/link.")],
    out: Annotated[Path, typer.Option(help="Folder for review.parquet, review.csv and review.html.")],
    only: Annotated[Only, typer.Option(help=f"Pairs to queue: uncertain (uncertainty >= {UNCERTAIN_FROM}), "
                                            "those decided duplicate or variant, or all.")] = "all",
    limit: Annotated[int, typer.Option(help="At most this many pairs, most uncertain first (0 = no limit).", min=0)] = 1000,
) -> None:
    """Write a review package: each pair's decision, probabilities, reasons and records side by side."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("loading the run folder and model", total=3)
        run = load_run(run_dir)
        progress.update(task, advance=1, description="explaining the queued pairs")
        review = build_review(run, only, limit or None)
        progress.update(task, advance=1, description="writing the review package")
        paths = write_review(review, out, heading=f"Match review of {run_dir.name} ({only})")
        progress.update(task, advance=1)
    console.print(f"{review.height} pairs to review ({only}, most uncertain first)")
    for path in paths.values():
        console.print(f"  {path}")


@app.command("import-reviews")
def import_reviews_command(
    path: Annotated[Path, typer.Argument(help="Reviewed review.csv/.parquet, or the review package folder.")],
    labels: Annotated[Path, typer.Option(help="Labels file to append to (left_id,right_id,label,...); created if absent.")],
    package: Annotated[Path | None, typer.Option(help="Review package folder, when PATH lies elsewhere.")] = None,
) -> None:
    """Append reviewers' verdicts (duplicate / variant / distinct) to a labels file `train` reads."""
    summary = import_reviews(path, labels, package)
    console.print(
        f"{summary.reviewed} reviewed rows ({summary.blank} left blank): {summary.added} new labels, "
        f"{summary.replaced} replaced; {labels} now holds {summary.total} labelled pairs"
    )
