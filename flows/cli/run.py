"""Commands that run the pipeline: dedup, link, demo and serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from features.records import CatalogError
from flows.cli.app import app
from flows.settings import (
    DEFAULT_MODEL,
    SAMPLE_CATALOG,
    DedupParams,
    PipelineSettings,
    RunnerSettings,
    ServeSettings,
)

console = Console(stderr=True)

SettingsOpt = Annotated[Path | None, typer.Option(help="PipelineSettings JSON (blocking, cluster, runner).")]
ModelOpt = Annotated[Path, typer.Option(help="Model folder (model.txt + metadata.json).")]
PreviousOpt = Annotated[Path | None, typer.Option(help="Previous run folder, so ids stay stable.")]
RunnerOpt = Annotated[str | None, typer.Option(help="Task runner for heavy stages: threads or dask.")]
DaskOpt = Annotated[str | None, typer.Option(help="Dask scheduler address (tcp://host:8786); implies --runner dask.")]


def validation_message(exc: ValidationError) -> str:
    """One line per pydantic error, without pydantic's URLs."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


def build_params(**kwargs: Any) -> DedupParams:
    """Validate run parameters before any work; bad ones become a one-line CatalogError."""
    try:
        return DedupParams(**kwargs)
    except ValidationError as exc:
        raise CatalogError("parameters", validation_message(exc)) from None


def pipeline_settings(path: Path | None, runner: str | None, dask_address: str | None) -> PipelineSettings:
    """Settings from a JSON file (or defaults) with command-line overrides for the task runner."""
    try:
        settings = PipelineSettings.load(path) if path else PipelineSettings()
        if dask_address or runner:
            settings.runner = RunnerSettings(**{**settings.runner.model_dump(),
                                                "kind": "dask" if dask_address else runner,
                                                "dask_address": dask_address})
        return settings
    except ValidationError as exc:
        raise CatalogError(path or "settings", validation_message(exc)) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(path or "settings", str(exc)) from None


def print_summary(info: dict[str, Any]) -> None:
    """Counts, stage times and (with truth) quality of a finished run."""
    table = Table(title="catalog-match run", show_header=False)
    for key, value in info["counts"].items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    for stage, seconds in info["timings"].items():
        table.add_row(f"{stage} seconds", f"{seconds:.1f}")
    table.add_row("peak memory MB", f"{info['peak_rss_mb']:,.0f}")
    metrics = info.get("metrics") or {}
    if metrics:
        table.add_row("pair completeness (blocking)", str(metrics["blocking_pair_completeness"]))
        table.add_row("pair completeness (scored)", str(metrics["pair_completeness"]))
        for cls in ("duplicate", "variant"):
            table.add_row(f"{cls} pair F1", str(metrics[cls]["f1"]))
        for level, scores in metrics["clusters"].items():
            table.add_row(f"{level.replace('_', ' ')} B-cubed F1", str(scores["bcubed_f1"]))
    Console().print(table)


def _run(params: DedupParams) -> dict[str, Any]:
    from flows.dedup import run_dedup  # Prefect is imported only when a run starts

    info = run_dedup(params)
    print_summary(info)
    console.print(f"run folder: {params.out}")
    return info


@app.command()
def dedup(
    catalog: Annotated[Path, typer.Argument(help="Catalog file (.csv, .parquet, .jsonl).")],
    out: Annotated[Path, typer.Option(help="Run folder to write.")],
    model: ModelOpt = DEFAULT_MODEL,
    previous: PreviousOpt = None,
    settings: SettingsOpt = None,
    csv: Annotated[bool, typer.Option(help="Also write CSV copies of the tables.")] = False,
    runner: RunnerOpt = None,
    dask_address: DaskOpt = None,
) -> None:
    """Find duplicate groups and variant families in one catalog."""
    _run(build_params(catalog=catalog, out=out, model=model, previous=previous, csv=csv,
                      settings=pipeline_settings(settings, runner, dask_address)))


@app.command()
def link(
    left: Annotated[Path, typer.Argument(help="Left catalog.")],
    right: Annotated[Path, typer.Argument(help="Right catalog.")],
    out: Annotated[Path, typer.Option(help="Run folder to write.")],
    model: ModelOpt = DEFAULT_MODEL,
    previous: PreviousOpt = None,
    settings: SettingsOpt = None,
    csv: Annotated[bool, typer.Option(help="Also write CSV copies of the tables.")] = False,
    runner: RunnerOpt = None,
    dask_address: DaskOpt = None,
) -> None:
    """Match listings across two sources; ids are namespaced `left:` and `right:`."""
    _run(build_params(catalog=left, right=right, out=out, model=model, previous=previous, csv=csv,
                      settings=pipeline_settings(settings, runner, dask_address)))


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Where the demo writes its run and review package.")] = Path("runs/demo")) -> None:
    """Dedup the shipped sample catalog with the shipped model and write a review package."""
    from matching.review import build_review, load_run, write_review

    _run(build_params(catalog=SAMPLE_CATALOG, out=out / "run", model=DEFAULT_MODEL, csv=True))
    files = write_review(build_review(load_run(out / "run"), only="uncertain"), out / "review")
    console.print(f"review package: {', '.join(str(f) for f in files.values())}")


@app.command()
def serve(
    config: Annotated[Path, typer.Argument(help="ServeSettings JSON: catalog, output_root, model, cron.")],
    run_now: Annotated[bool, typer.Option(help="Trigger one run right after registering.")] = False,
) -> None:
    """Serve the scheduled dedup deployment on its cron schedule (no work pool needed)."""
    try:
        settings = ServeSettings.load(config)
    except ValidationError as exc:
        raise CatalogError(config, validation_message(exc)) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(config, str(exc)) from None
    from flows.serve import serve_schedule

    serve_schedule(settings, run_now=run_now)
