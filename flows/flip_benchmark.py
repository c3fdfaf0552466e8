"""Negative flips of a retrained matcher on a pairs-layout benchmark, with and without
positive-congruent training, over several seeds (single runs are too noisy to compare)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import Progress

from blocking.settings import BlockingSettings
from features.records import CatalogError, load_catalog
from flows.benchmark import detect_layout
from flows.model_update import CongruentSettings, fit_congruent
from flows.training import pairs_training_data
from matching.flips import FlipReport, compare_models
from matching.labels import read_labels
from matching.model import train_matcher
from matching.settings import MatcherSettings

SPLITS = ("train", "valid", "test")


def _row(report: FlipReport) -> dict[str, float]:
    return {"negative_flip_rate": report.negative_flip_rate, "positive_flip_rate": report.positive_flip_rate,
            "new_match_f1": report.new_f1["match"], "old_match_f1": report.old_f1["match"]}


def flip_benchmark(
    directory: str | os.PathLike, seeds: int = 10, old_fraction: float = 0.5,
    congruent: CongruentSettings | None = None, matcher: MatcherSettings | None = None,
) -> dict:
    """Per seed s: old = seed s on a seeded `old_fraction` of train.csv; new = seed s + 1 on
    train.csv + valid.csv, plain and congruent; both compared with old on test.csv."""
    directory = Path(directory)
    if detect_layout(directory) != "pairs":
        raise CatalogError(directory, "the flip benchmark needs the pairs layout (train/valid/test.csv)")
    congruent = congruent or CongruentSettings()
    base = (matcher or MatcherSettings()).model_copy(update={"mode": "binary"})
    labelled = pl.concat([read_labels(directory / f"{s}.csv").with_columns(pl.lit(s).alias("split")) for s in SPLITS])
    prepared, y = pairs_training_data(labelled.select("left_id", "right_id", "label"),
                                      load_catalog(directory / "tableA.csv"), BlockingSettings(),
                                      load_catalog(directory / "tableB.csv"))
    if not prepared.features.select("left_id", "right_id").equals(labelled.select("left_id", "right_id")):
        raise RuntimeError("pair features are not row-aligned with the labelled pairs")
    features = prepared.features.with_columns(labelled["split"], pl.Series("label", y))
    test = features.filter(pl.col("split") == "test")
    new_rows = features.filter(pl.col("split") != "test")
    runs = []
    with Progress(transient=True) as progress:
        task = progress.add_task("seeds", total=seeds)
        for seed in range(seeds):
            old_rows = features.filter(pl.col("split") == "train").sample(fraction=old_fraction, seed=seed)
            old = train_matcher(old_rows, old_rows["label"], base.model_copy(update={"seed": seed}))
            new_settings = base.model_copy(update={"seed": seed + 1})
            plain = train_matcher(new_rows, new_rows["label"], new_settings)
            pct = fit_congruent(old, new_rows, new_rows["label"].to_numpy(), new_settings, congruent)
            runs.append({"seed": seed, "plain": _row(compare_models(old, plain, test, test["label"])[0]),
                         "congruent": _row(compare_models(old, pct, test, test["label"])[0])})
            progress.advance(task)
    mean = {kind: {k: float(np.mean([r[kind][k] for r in runs])) for k in runs[0][kind]}
            for kind in ("plain", "congruent")}
    return {"dataset": directory.name, "test_pairs": test.height, "seeds": seeds, "old_fraction": old_fraction,
            "congruent_settings": congruent.model_dump(), "mean": mean, "runs": runs}
