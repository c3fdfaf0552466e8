"""Model updates through the registry: positive-congruent training against the current model,
registering a trained model, comparing two versions on held-out labelled pairs, and reporting flips."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import Field

from blocking.settings import BlockingSettings
from features.io import frame_hash
from features.records import CatalogError, load_catalog
from features.settings import Settings
from flows.training import Weigh, pairs_training_data
from matching.flips import FlipReport, GateDecision, compare_models, congruent_inputs, export_flips, gate
from matching.labels import BINARY, MULTICLASS, read_labels
from matching.lineage import EVENTS, LEVELS, assign_stable_ids
from matching.model import Matcher, train_matcher
from matching.registry import Registry
from matching.settings import GateSettings, MatcherSettings


class CongruentSettings(Settings):
    """Positive-congruent training: how much the pairs the old model gets right count."""

    # Weight of a training pair the old model classifies correctly (others weigh 1).
    correct_weight: float = Field(5.0, ge=1)
    # Share of those pairs' target taken from the old model's probabilities (MatcherSettings.teacher_weight).
    # Chosen with `catalog-match flip-benchmark` on abt-buy and amazon-google: up-weighting lowered
    # negative flips on both, distilling without it (correct_weight 1) raised them.
    teacher_weight: float = Field(0.5, ge=0, le=1)


@dataclass
class LabelledPairs:
    """Pair features of a labelled pairs file, row-aligned with its labels."""

    source: Path  # the labels file
    features: pl.DataFrame
    labels: np.ndarray
    left: pl.DataFrame  # attribute frames, shown side by side in the review export
    right: pl.DataFrame | None  # None for pairs within one catalog


def labelled_pairs(
    labels: str | os.PathLike, catalog: str | os.PathLike, right: str | os.PathLike | None = None,
    blocking: BlockingSettings | None = None,
) -> LabelledPairs:
    """Features of the pairs in a labels file over one catalog (or left x right sources)."""
    records = load_catalog(catalog)
    right_records = load_catalog(right) if right is not None else None
    try:
        prepared, y = pairs_training_data(read_labels(labels), records, blocking or BlockingSettings(), right_records)
    except CatalogError as exc:
        raise CatalogError(labels, exc.message, row=exc.row, column=exc.column) from None
    return LabelledPairs(source=Path(labels), features=prepared.features, labels=np.asarray(y), left=prepared.left,
                         right=None if right is None else prepared.right)


def load_version(registry: Registry, ref: str) -> Matcher:
    """The matcher of a registry version ('current', 'v0003' or '3')."""
    return Matcher.load(registry.model_dir(ref))


@dataclass
class UpdatePlan:
    """The registry options of a training run, checked before any training."""

    registry: Registry
    compare_to: str | None  # a resolved version
    old: Matcher | None  # the model to compare with (and train congruently toward)
    holdout: Path | None
    congruent: CongruentSettings | None
    export: Path | None


def _shared_pairs(labels: str | os.PathLike, holdout: str | os.PathLike, one_catalog: bool) -> int:
    """How many pairs of the held-out file are also training pairs (in either order within one catalog)."""
    def keys(path: str | os.PathLike) -> pl.DataFrame:
        ids = read_labels(path).select(a="left_id", b="right_id")
        if one_catalog:
            ids = ids.select(a=pl.min_horizontal("a", "b"), b=pl.max_horizontal("a", "b"))
        return ids.unique()
    return keys(holdout).join(keys(labels), on=["a", "b"], how="semi").height


def plan_update(
    registry: str | os.PathLike | None, mode: str, compare_to: str | None = None,
    holdout: str | os.PathLike | None = None, congruent: bool = False, export: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None, right: str | os.PathLike | None = None,
) -> UpdatePlan | None:
    """Validate `train`'s registry options before any training; None when no registry is used."""
    if registry is None:
        if compare_to or congruent or holdout or export:
            raise CatalogError("--registry", "--compare-to, --holdout, --congruent and --export need --registry")
        return None
    if compare_to is None and (congruent or holdout or export):
        raise CatalogError("--compare-to", "--holdout, --congruent and --export need a model to compare with")
    if compare_to is not None and holdout is None:
        raise CatalogError("--holdout", "comparing with another model needs held-out labelled pairs")
    if holdout is not None and not Path(holdout).is_file():
        raise CatalogError(holdout, "file not found")
    if holdout is not None and labels is not None and (shared := _shared_pairs(labels, holdout, right is None)):
        # The new model has seen these labels, so comparing on them would flatter it.
        raise CatalogError(holdout, f"{shared} held-out pairs are also training pairs in {labels}")
    reg = Registry(registry, create=True)
    version = reg.resolve(compare_to) if compare_to is not None else None
    old = load_version(reg, version) if version else None
    classes = MULTICLASS if mode == "multiclass" else BINARY
    if old is not None and tuple(old.classes) != classes:
        raise CatalogError("--compare-to", f"{version} predicts {list(old.classes)}, the new model would predict "
                                           f"{list(classes)}: train with the same --mode")
    return UpdatePlan(
        registry=reg, compare_to=version, old=old,
        holdout=Path(holdout) if holdout is not None else None,
        congruent=CongruentSettings() if congruent else None, export=Path(export) if export is not None else None,
    )


def finish_update(
    plan: UpdatePlan, matcher: Matcher, catalog: str | os.PathLike, right: str | os.PathLike | None = None,
    gate_settings: GateSettings | None = None,
) -> str:
    """Add the trained model to the registry, compare it with the old one and export the flips.

    Returns the text to show: the new version and, with a comparison, the markdown report (also
    left as a Prefect artifact when running inside a flow).
    """
    notes = {"congruent": plan.congruent.model_dump()} if plan.congruent else {}
    entry = plan.registry.add(matcher, parent=plan.compare_to or plan.registry.current(), notes=notes)
    lines = [f"registered as {entry.version} in {plan.registry.root} (parent {entry.parent or 'none'})"]
    if plan.compare_to is None:
        return "\n".join(lines)
    holdout = labelled_pairs(plan.holdout, catalog, right)
    report, flips = compare_versions(plan.registry, plan.compare_to, entry.version, holdout)
    lines.append(publish_comparison(report, gate_settings or GateSettings()))
    if plan.export is not None:
        paths = export_flips(flips, plan.export, matcher, holdout.features, holdout.left, holdout.right,
                             heading=f"Pairs {plan.compare_to} -> {entry.version} would flip")
        lines.append(f"{flips.height} flipped pairs written for review to {paths['html']} and {paths['csv']}")
    lines.append(f"promote with: catalog-match promote {entry.version} --registry {plan.registry.root}")
    return "\n".join(lines)


def congruent_settings(matcher_settings: MatcherSettings, congruent: CongruentSettings) -> MatcherSettings:
    """Matcher settings with the congruent teacher share."""
    return matcher_settings.model_copy(update={"teacher_weight": congruent.teacher_weight})


def congruent_weigh(old: Matcher, congruent: CongruentSettings) -> Weigh:
    """Sample weights and teacher probabilities toward `old` on the pairs it classifies correctly."""
    return lambda features, labels: congruent_inputs(old, features, labels, congruent.correct_weight)


def fit_congruent(
    old: Matcher, features: pl.DataFrame, labels: np.ndarray, matcher_settings: MatcherSettings,
    congruent: CongruentSettings,
) -> Matcher:
    """Train a matcher weighted and distilled toward `old` on the pairs `old` classifies correctly."""
    weight, teacher = congruent_weigh(old, congruent)(features, labels)
    return train_matcher(features, labels, congruent_settings(matcher_settings, congruent),
                         sample_weight=weight, teacher_proba=teacher)


def compare_versions(
    registry: Registry, old_ref: str, new_ref: str, holdout: LabelledPairs
) -> tuple[FlipReport, pl.DataFrame]:
    """Compare two versions on held-out labelled pairs and keep the result with the new version."""
    old_version, new_version = registry.resolve(old_ref), registry.resolve(new_ref)
    try:
        report, flips = compare_models(load_version(registry, old_version), load_version(registry, new_version),
                                       holdout.features, holdout.labels)
    except ValueError as exc:  # labels the models cannot predict, or models of different modes
        raise CatalogError(holdout.source, f"cannot compare {old_version} with {new_version}: {exc}") from None
    evaluated = holdout.features.select("left_id", "right_id").with_columns(pl.Series("label", holdout.labels))
    report = report.model_copy(update={"old_model": old_version, "new_model": new_version,
                                       "holdout_sha256": frame_hash(evaluated)})
    registry.save_comparison(new_version, report, flips)
    return report, flips


def comparison_markdown(report: FlipReport, decision: GateDecision) -> str:
    """The comparison as a markdown table, for the terminal and the Prefect artifact."""
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"### {report.old_model or 'old'} -> {report.new_model or 'new'} on {report.pairs} held-out pairs",
        "",
        f"| metric | {report.old_model or 'old'} | {report.new_model or 'new'} |",
        "|---|---|---|",
        f"| accuracy | {fmt(report.old_accuracy)} | {fmt(report.new_accuracy)} |",
        *[f"| F1 {c} | {fmt(report.old_f1[c])} | {fmt(report.new_f1[c])} |" for c in report.classes],
        "",
        f"- negative flips (old right, new wrong): {report.negative_flips} ({report.negative_flip_rate:.2%})",
        f"- positive flips (old wrong, new right): {report.positive_flips} ({report.positive_flip_rate:.2%})",
        f"- promotion gate: {'passes' if decision.passed else 'refuses: ' + '; '.join(decision.reasons)}",
    ]
    return "\n".join(lines)


def publish_comparison(report: FlipReport, settings: GateSettings) -> str:
    """Gate the comparison, leave it as a markdown artifact when inside a Prefect run, return the text."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    text = comparison_markdown(report, gate(report, settings))
    if FlowRunContext.get() or TaskRunContext.get():
        create_markdown_artifact(text, key="model-comparison", description="Old vs new matcher: flips and gate")
    return text


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike) -> pl.DataFrame:
    """How run B's groups and families differ from run A's on the same catalog: one row per
    level and lineage event (kept, merged, split, new, retired) with cluster and record counts."""
    frames = []
    for run in (run_a, run_b):
        path = Path(run) / "records.parquet"
        if not path.is_file():
            raise CatalogError(run, "not a run folder: records.parquet is missing")
        frames.append(pl.read_parquet(path))
    before, after = frames
    # B's ids become run-local keys, so the lineage says how A's clusters map onto B's.
    clusters = after.select(
        pl.col("id").cast(pl.String),
        pl.col("duplicate_group_id").rank("dense").cast(pl.Int64).alias("group_key"),
        pl.col("variant_family_id").rank("dense").cast(pl.Int64).alias("family_key"),
        "confidence",
        pl.lit(None, dtype=pl.Float64).alias("group_weakest_link"),
        pl.lit(None, dtype=pl.Float64).alias("family_weakest_link"),
    )
    _, _, lineage = assign_stable_ids(clusters, before, source=str(Path(run_a) / "records.parquet"))
    # Merges, splits and retirements count A's clusters; kept and new count B's, each id once.
    counts = lineage.group_by("level", "event").agg(
        pl.when(pl.col("event").is_in(["merged", "split", "retired"])).then("previous_id").otherwise("id")
        .n_unique().alias("clusters"),
        pl.col("records").sum(),
    )
    grid = pl.DataFrame({"level": [lv for lv, *_ in LEVELS]}).join(pl.DataFrame({"event": list(EVENTS)}), how="cross")
    return grid.join(counts, on=["level", "event"], how="left", maintain_order="left").fill_null(0)
