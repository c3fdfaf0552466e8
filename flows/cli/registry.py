"""Commands `promote`, `compare` and `registry list`: model versions, their flips and the promotion gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from features.records import CatalogError
from flows.cli.app import app
from matching.settings import GateSettings

console = Console()
registry_app = typer.Typer(help="Inspect a model registry folder.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")

RegistryOpt = Annotated[Path, typer.Option("--registry", help="Model registry folder.")]
MaxFlipOpt = Annotated[float | None, typer.Option(
    help="Refuse above this share of negative flips (default: GateSettings, 0.01).")]
MaxDropOpt = Annotated[float | None, typer.Option(
    help="Refuse when any class's F1 drops by more than this (default: GateSettings, 0.01).")]


def gate_settings(max_negative_flip_rate: float | None, max_f1_drop: float | None) -> GateSettings:
    """GateSettings with command-line overrides; invalid values are a one-line error."""
    given = {k: v for k, v in (("max_negative_flip_rate", max_negative_flip_rate), ("max_f1_drop", max_f1_drop))
             if v is not None}
    try:
        return GateSettings(**given)
    except ValidationError as exc:
        raise CatalogError("gate settings", "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None


@app.command()
def compare(
    old: Annotated[str, typer.Argument(help="Old version: 'current', 'v0003' or '3'.")],
    new: Annotated[str, typer.Argument(help="New version.")],
    registry: RegistryOpt,
    labels: Annotated[Path, typer.Option(help="Held-out labelled pairs: left_id,right_id,label.")],
    catalog: Annotated[Path, typer.Option(help="Catalog the labelled ids refer to (the left source with --right).")],
    right: Annotated[Path | None, typer.Option(help="Right source when the pairs span two sources.")] = None,
    export: Annotated[Path | None, typer.Option(help="Folder for a review package of the flipped pairs.")] = None,
    max_negative_flip_rate: MaxFlipOpt = None,
    max_f1_drop: MaxDropOpt = None,
) -> None:
    """Score held-out pairs with two versions; report accuracy, F1, flips and the gate's verdict."""
    from flows.model_update import compare_versions, comparison_markdown, labelled_pairs, load_version
    from matching.flips import export_flips, gate
    from matching.registry import Registry

    settings = gate_settings(max_negative_flip_rate, max_f1_drop)
    reg = Registry(registry)
    old_version, new_version = reg.resolve(old), reg.resolve(new)
    holdout = labelled_pairs(labels, catalog, right)
    report, flips = compare_versions(reg, old_version, new_version, holdout)
    typer.echo(comparison_markdown(report, gate(report, settings)))
    if export is not None:
        paths = export_flips(flips, export, load_version(reg, new_version), holdout.features, holdout.left,
                             holdout.right, heading=f"Pairs {old_version} -> {new_version} would flip")
        typer.echo(f"{flips.height} flipped pairs written for review to {paths['html']} and {paths['csv']}")


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Version to make current: 'v0003' or '3'.")],
    registry: RegistryOpt,
    force: Annotated[bool, typer.Option(help="Promote even if the gate refuses (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in registry.json.")] = None,
    max_negative_flip_rate: MaxFlipOpt = None,
    max_f1_drop: MaxDropOpt = None,
) -> None:
    """Make a version current if its comparison with the current model passes the gate."""
    from matching.registry import PromotionRefused, Registry

    settings = gate_settings(max_negative_flip_rate, max_f1_drop)
    reg = Registry(registry)
    stored = reg.comparison(version)
    try:
        promotion = reg.promote(version, settings, report=stored[0] if stored else None, force=force, reason=reason)
    except PromotionRefused as exc:
        typer.echo(f"refused: {exc.version} stays unpromoted", err=True)
        for r in exc.decision.reasons:
            typer.echo(f"  - {r}", err=True)
        typer.echo("promote with --force --reason TEXT to override; the refusal is logged", err=True)
        raise typer.Exit(1) from None
    note = f" (forced: {promotion.reason})" if promotion.outcome == "forced" else ""
    typer.echo(f"{promotion.version} is current (was {promotion.previous or 'none'}){note}")


@registry_app.command("list")
def list_versions(registry: RegistryOpt) -> None:
    """List versions with parent, data hash, validation F1 and flips against their parent."""
    from matching.registry import Registry

    reg = Registry(registry)
    current = reg.current()
    table = Table("version", "current", "created", "parent", "data sha256", "valid macro F1", "vs", "neg flips",
                  "pos flips", title=str(registry))
    for version in reg.versions():
        entry = reg.entry(version)
        stored = reg.comparison(version)
        f1 = entry.metrics.get("macro_f1")
        report = stored[0] if stored else None
        table.add_row(
            version, "*" if version == current else "", entry.created_at, entry.parent or "",
            (entry.training_data_hash or "")[:12], "" if f1 is None else f"{f1:.4f}",
            report.old_model if report else "", f"{report.negative_flip_rate:.2%}" if report else "",
            f"{report.positive_flip_rate:.2%}" if report else "",
        )
    console.print(table)
    for p in reg.history():
        reason = f": {p.reason}" if p.reason else ""
        console.print(f"{p.at} {p.outcome:8} {p.version} (was {p.previous or 'none'}){reason}")


@app.command("compare-runs")
def compare_runs_command(
    run_a: Annotated[Path, typer.Argument(help="Earlier run folder (e.g. with the current model).")],
    run_b: Annotated[Path, typer.Argument(help="Later run folder on the same catalog (e.g. with a new model).")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the counts here as JSON.")] = None,
) -> None:
    """Groups and families of run A that run B kept, merged, split, newly formed or retired."""
    from features.io import write_json
    from flows.model_update import compare_runs

    counts = compare_runs(run_a, run_b)
    table = Table("level", "event", "clusters", "records", title=f"{run_a} -> {run_b}")
    for row in counts.iter_rows():
        table.add_row(*map(str, row))
    console.print(table)
    if json_path is not None:
        write_json(counts.to_dicts(), json_path)


@app.command("flip-benchmark")
def flip_benchmark_command(
    directory: Annotated[Path, typer.Argument(help="Pairs-layout benchmark folder (tableA/B, train/valid/test.csv).")],
    seeds: Annotated[int, typer.Option(help="Number of old/new model pairs to average over.", min=1)] = 10,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the report here as JSON.")] = None,
) -> None:
    """Negative flip rate of a retrained matcher on test.csv, plain vs positive-congruent, over seeds."""
    from features.io import write_json
    from flows.flip_benchmark import flip_benchmark

    report = flip_benchmark(directory, seeds=seeds)
    table = Table("training", "negative flip rate", "positive flip rate", "new match F1", "old match F1",
                  title=f"{report['dataset']}: {report['test_pairs']} test pairs, mean of {seeds} seeds")
    for kind, m in report["mean"].items():
        table.add_row(kind, f"{m['negative_flip_rate']:.2%}", f"{m['positive_flip_rate']:.2%}",
                      f"{m['new_match_f1']:.4f}", f"{m['old_match_f1']:.4f}")
    console.print(table)
    if json_path is not None:
        write_json(report, json_path)


@registry_app.command("path")
def version_path(
    version: Annotated[str, typer.Argument(help="'current', 'v0003' or '3'.")],
    registry: RegistryOpt,
) -> None:
    """Print a version's model folder, for `dedup --model`."""
    from matching.registry import Registry

    typer.echo(Registry(registry).model_dir(version))
