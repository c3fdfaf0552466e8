"""The `train` Prefect flow: labels -> features -> fit -> evaluate -> save (and compare with the registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field, field_validator

from blocking.settings import BlockingSettings
from features.settings import Settings
from flows.model_update import UpdatePlan, congruent_settings, congruent_weigh, finish_update, plan_update
from flows.training import TrainingData, fit, load_training_data
from matching.model import Matcher
from matching.settings import ExpandSettings, MatcherSettings

heavy = dict(cache_policy=NO_CACHE, persist_result=False)


class TrainParams(Settings):
    """Parameters of one training run, checked before any work."""

    catalog: Path
    out: Path
    labels: Path | None = None
    right: Path | None = None
    mode: Literal["multiclass", "binary"] = "multiclass"
    seed: int = 0
    # Mode and seed above override the matcher's own.
    matcher: MatcherSettings = Field(default_factory=MatcherSettings)
    blocking: BlockingSettings = Field(default_factory=BlockingSettings)
    # The two-hop round the dedup runs will score; its pairs are trained on too.
    expand: ExpandSettings = Field(default_factory=ExpandSettings)
    registry: Path | None = None
    compare_to: str | None = None
    holdout: Path | None = None
    congruent: bool = False
    export: Path | None = None

    @field_validator("catalog", "labels", "right", "holdout")
    @classmethod
    def _exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"{v}: file not found")
        return v

    def matcher_settings(self) -> MatcherSettings:
        """Matcher settings for this run's mode and seed."""
        return self.matcher.model_copy(update={"mode": self.mode, "seed": self.seed})

    def plan(self) -> UpdatePlan | None:
        """The registry part of the run, validated (None without --registry)."""
        return plan_update(self.registry, self.mode, self.compare_to, self.holdout, self.congruent, self.export,
                           labels=self.labels, right=self.right)


@task(name="training-features", retries=2, retry_delay_seconds=[1, 4], **heavy)
def features_task(params: TrainParams) -> TrainingData:
    """Load the labels (or truth columns) and compute the pair features."""
    return load_training_data(params.catalog, params.blocking, params.labels, params.right,
                              params.matcher_settings(), params.expand)


@task(name="fit", **heavy)
def fit_task(data: TrainingData, params: TrainParams, plan: UpdatePlan | None) -> Matcher:
    """Fit LightGBM (congruently toward the registry's model when asked)."""
    settings = params.matcher_settings()
    if plan is not None and plan.congruent is not None:
        matcher = fit(data, congruent_settings(settings, plan.congruent), params.blocking,
                      weigh=congruent_weigh(plan.old, plan.congruent))
        matcher.meta["congruent"] = {**plan.congruent.model_dump(), "old_model": plan.compare_to}
        return matcher
    return fit(data, settings, params.blocking)


@task(name="evaluate", **heavy)
def evaluate_task(matcher: Matcher) -> dict[str, Any]:
    """Validation metrics of the fitted model, left as a markdown artifact."""
    metrics = matcher.meta["validation_metrics"]
    lines = ["# Matcher validation", "", "| class | precision | recall | F1 |", "| --- | --- | --- | --- |"]
    for cls, m in metrics.items():
        if isinstance(m, dict) and "f1" in m:
            lines.append(f"| {cls} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} |")
    if "macro_f1" in metrics:
        lines.append(f"\nmacro F1: {metrics['macro_f1']:.4f}; thresholds: {matcher.thresholds}")
    create_markdown_artifact("\n".join(lines), key="train-validation", description="Validation metrics")
    return metrics


@task(name="save", retries=2, retry_delay_seconds=[1, 4], **heavy)
def save_task(matcher: Matcher, out: Path) -> Path:
    """Write the model folder (LightGBM text + JSON metadata)."""
    return matcher.save(out)


@flow(name="train", log_prints=True, validate_parameters=True)
def train_flow(params: TrainParams) -> dict[str, Any]:
    """Train a matcher; with a registry, register it and compare it with an earlier version."""
    plan = params.plan()
    data = features_task(params)
    matcher = fit_task(data, params, plan)
    metrics = evaluate_task(matcher)
    save_task(matcher, params.out)
    summary = {"out": str(params.out), "thresholds": matcher.thresholds,
               "validation": {k: v for k, v in metrics.items() if k != "confusion"}}
    if plan is not None:
        summary["registry"] = finish_update(plan, matcher, params.catalog, params.right)
    return summary


def run_train(params: TrainParams) -> dict[str, Any]:
    """Check the registry options, then run the train flow."""
    params.plan()  # fails on bad registry options before a flow run starts
    return train_flow(params)
