"""Commands `train`, `score` and `benchmark`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from blocking.settings import BlockingSettings
from matching.settings import MatcherSettings
from flows.cli.app import app
from flows.settings import DEFAULT_MODEL

BlockingOption = Annotated[Path | None, typer.Option("--blocking", help="BlockingSettings JSON file; default: the defaults.")]


def _blocking(path: Path | None) -> BlockingSettings:
    """Blocking settings from a JSON file, or the defaults."""
    return BlockingSettings() if path is None else BlockingSettings.load(path)


class Mode(str, Enum):
    """Matcher modes."""

    multiclass = "multiclass"
    binary = "binary"


@app.command()
def train(
    catalog: Annotated[Path, typer.Argument(help="Catalog with truth columns (product_id, family_id), or the left source of --labels.")],
    out: Annotated[Path, typer.Option(help="Model folder to write (model.txt + metadata.json).")],
    labels: Annotated[Path | None, typer.Option(help="Labelled pairs file: left_id,right_id,label (class name or 1/0).")] = None,
    right: Annotated[Path | None, typer.Option(help="Right source when --labels pairs span two sources.")] = None,
    mode: Annotated[Mode, typer.Option(help="multiclass (duplicate/variant/distinct) or binary (match/distinct).")] = Mode.multiclass,
    seed: Annotated[int, typer.Option(help="Seed of the validation split and LightGBM.")] = 0,
    registry: Annotated[Path | None, typer.Option(help="Model registry folder: add the model as its next version.")] = None,
    compare_to: Annotated[str | None, typer.Option(help="Registry version to compare with on --holdout, e.g. current.")] = None,
    holdout: Annotated[Path | None, typer.Option(help="Held-out labelled pairs (same ids as the training data).")] = None,
    congruent: Annotated[bool, typer.Option(help="Positive-congruent training: keep what --compare-to gets right.")] = False,
    export: Annotated[Path | None, typer.Option(help="Review package folder for the held-out pairs that flip.")] = None,
    blocking: BlockingOption = None,
    matcher: Annotated[Path | None, typer.Option(help="MatcherSettings JSON (learning rate, rounds, leaves...); --mode and --seed win.")] = None,
) -> None:
    """Train the pair matcher and save it as a model folder (a Prefect `train` flow run)."""
    from pydantic import ValidationError

    from features.records import CatalogError
    from flows.cli.run import validation_message
    from flows.train_flow import TrainParams, run_train

    try:
        params = TrainParams(catalog=catalog, out=out, labels=labels, right=right, mode=mode.value, seed=seed,
                             blocking=_blocking(blocking), registry=registry, compare_to=compare_to,
                             holdout=holdout, congruent=congruent, export=export,
                             **({"matcher": MatcherSettings.load(matcher)} if matcher is not None else {}))
    except ValidationError as exc:
        raise CatalogError("parameters", validation_message(exc)) from None
    summary = run_train(params)
    typer.echo(f"model written to {out}; thresholds {summary['thresholds']}; "
               f"validation {json.dumps(summary['validation'])}")
    if "registry" in summary:
        typer.echo(summary["registry"])


@app.command()
def score(
    catalog: Annotated[Path, typer.Argument(help="Catalog to score (the left source with --right).")],
    out: Annotated[Path, typer.Option(help="Scored pairs file (.parquet, .csv or .jsonl).")],
    right: Annotated[Path | None, typer.Option(help="Right source: score left x right pairs.")] = None,
    pairs: Annotated[Path | None, typer.Option(help="Pairs to score (left_id,right_id); default: blocking candidates.")] = None,
    model: Annotated[Path, typer.Option(help="Model folder.")] = DEFAULT_MODEL,
    blocking: BlockingOption = None,
) -> None:
    """Score candidate pairs: class probabilities, decision and uncertainty per pair."""
    from features.io import write_table
    from features.records import load_catalog
    from flows.prepare import prepare_catalog, prepare_link
    from matching.labels import read_pairs
    from matching.model import Matcher, score_pairs

    matcher = Matcher.load(model)
    given = read_pairs(pairs) if pairs is not None else None
    left = load_catalog(catalog)
    settings = _blocking(blocking)
    prepared = (prepare_catalog(left, settings, pairs=given) if right is None
                else prepare_link(left, load_catalog(right), settings, pairs=given))
    scored = score_pairs(matcher, prepared.features)
    write_table(scored, out)
    counts = scored["decision"].value_counts().sort("decision").rows()
    typer.echo(f"{scored.height} pairs scored to {out}: " + ", ".join(f"{d} {n}" for d, n in counts))


@app.command()
def benchmark(
    directory: Annotated[Path, typer.Argument(help="Benchmark dataset folder (pairs, full or catalog layout), or a catalog file with truth columns.")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here as JSON.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split (catalog layout) and the model.")] = 0,
    blocking: BlockingOption = None,
) -> None:
    """Train and evaluate on a benchmark dataset; print (and optionally save) the report."""
    from features.io import write_json
    from flows.benchmark import run_benchmark

    report = run_benchmark(directory, seed=seed, blocking=_blocking(blocking))
    if json_path is not None:
        write_json(report, json_path)
    typer.echo(json.dumps(report, indent=2))
