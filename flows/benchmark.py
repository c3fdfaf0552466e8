"""The benchmark: detect a dataset's layout, train and evaluate on its fixed or seeded split, report JSON.

Layouts (see the data README): `pairs` trains on train.csv, chooses thresholds on valid.csv and
reports the match class on test.csv, plus blocking's share of labelled positives over the full
tables; `catalog` splits truth groups (family_id, else product_id) into train/test halves by seed,
learns from blocking candidates among training records and evaluates every pair among test records
(true pairs blocking missed are false negatives); `full` reports blocking metrics only.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

from blocking.metrics import BlockingMetrics, blocking_metrics, truth_from_column, truth_from_file
from blocking.settings import BlockingSettings
from features.joins import join_pairs
from features.records import FORMATS, CatalogError, load_catalog
from flows.prepare import prepare_catalog, prepare_link, round_features
from flows.training import catalog_training_data, pair_groups
from matching.bcubed import bcubed
from matching.cluster import cluster_records
from matching.labels import BINARY, MULTICLASS, read_labels, to_binary, truth_labels
from matching.metrics import class_report
from matching.model import Matcher, score_pairs, train_matcher
from matching.settings import ClusterSettings, ExpandSettings, MatcherSettings

LAYOUT_FILES = {
    "pairs": ("tableA.csv", "tableB.csv", "train.csv", "valid.csv", "test.csv"),
    "full": ("tableA.csv", "tableB.csv", "matches.csv"),
    "catalog": ("catalog.csv",),
}
TOP_FEATURES = 10


def detect_layout(directory: str | Path) -> str:
    """Name the layout whose files are all in `directory`; a catalog file by itself is the catalog layout."""
    directory = Path(directory)
    if directory.is_file() and directory.suffix.lower() in FORMATS:
        return "catalog"
    for layout, files in LAYOUT_FILES.items():
        if all((directory / f).is_file() for f in files):
            return layout
    expected = "; ".join(", ".join(f) for f in LAYOUT_FILES.values())
    raise CatalogError(directory, f"no benchmark layout found (expected one of: {expected})")


class _Clock:
    """Accumulates seconds per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def add(self, stages: dict[str, float]) -> None:
        for name, s in stages.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + s

    def time(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.add({name: time.perf_counter() - start})
        return result

    def report(self) -> dict[str, float]:
        return {"total": round(time.perf_counter() - self._start, 2), **{k: round(v, 2) for k, v in self.seconds.items()}}


def _blocking(metrics: BlockingMetrics) -> dict:
    keys = ("pair_completeness", "candidates", "candidates_per_record", "reduction_ratio",
            "true_pairs", "found", "completeness_per_blocker")
    return {k: getattr(metrics, k) for k in keys}


def _model_summary(matcher: Matcher) -> dict:
    return {"thresholds": matcher.thresholds, "best_iteration": matcher.meta["best_iteration"],
            "top_features": dict(list(matcher.importances().items())[:TOP_FEATURES])}


def _pair_keys(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col("left_id").cast(pl.String), pl.col("right_id").cast(pl.String))


def _run_pairs(directory: Path, settings: MatcherSettings, blocking: BlockingSettings, clock: _Clock) -> dict:
    left = clock.time("load", load_catalog, directory / "tableA.csv")
    right = clock.time("load", load_catalog, directory / "tableB.csv")
    splits = {name: clock.time("load", read_labels, directory / f"{name}.csv") for name in ("train", "valid", "test")}
    labelled = pl.concat([s.with_columns(pl.lit(name).alias("split")) for name, s in splits.items()])
    prepared = prepare_link(left, right, blocking, pairs=_pair_keys(labelled))
    clock.add(prepared.seconds)
    if not prepared.features.select("left_id", "right_id").equals(_pair_keys(labelled)):
        raise RuntimeError("pair features are not row-aligned with the labelled pairs")
    features = prepared.features.with_columns(labelled["split"], labelled["label"])
    part = {name: features.filter(pl.col("split") == name) for name in splits}
    matcher = clock.time(
        "train", train_matcher, part["train"], part["train"]["label"].to_numpy(),
        settings,
        valid_features=part["valid"], valid_labels=part["valid"]["label"].to_numpy(),
    )
    decision = clock.time("score", lambda: matcher.decide(matcher.predict_proba(part["test"])))
    report = class_report(to_binary(part["test"]["label"].to_numpy()), decision, BINARY, positive=("match",))
    positives = features.filter(pl.col("label") != "distinct")
    return {
        "blocking": _blocking(blocking_metrics(prepared.candidates, positives, left.height, right.height)),
        "matching": {**{k: report["match"][k] for k in ("precision", "recall", "f1")},
                     "support": report["match"]["support"], "confusion": report["confusion"]},
        "model": _model_summary(matcher),
    }


def _run_full(directory: Path, blocking: BlockingSettings, clock: _Clock) -> dict:
    left = clock.time("load", load_catalog, directory / "tableA.csv")
    right = clock.time("load", load_catalog, directory / "tableB.csv")
    matches = clock.time("load", truth_from_file, directory / "matches.csv", two_sources=True)
    prepared = prepare_link(left, right, blocking, with_features=False)
    clock.add(prepared.seconds)
    return {"blocking": _blocking(blocking_metrics(prepared.candidates, matches, left.height, right.height))}


def true_pairs(records: pl.DataFrame) -> pl.DataFrame:
    """Every duplicate and variant pair among `records` (left_id < right_id, label), from truth columns."""
    duplicate = truth_from_column(records, "product_id").with_columns(pl.lit("duplicate").alias("label"))
    if "family_id" not in records.columns:
        return duplicate
    variant = join_pairs(truth_from_column(records, "family_id"), duplicate, "anti").with_columns(
        pl.lit("variant").alias("label"))
    return pl.concat([duplicate, variant])


def split_groups(records: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split records into train/test halves by truth group (family_id, else product_id), seeded."""
    group = pl.coalesce(pl.col("family_id"), pl.col("product_id")) if "family_id" in records.columns else pl.col("product_id")
    keyed = records.with_columns(group.cast(pl.String).alias("_group"))
    groups = keyed["_group"].unique().sort().to_numpy()
    train_groups = np.random.default_rng(seed).permutation(groups)[: len(groups) // 2]
    in_train = pl.col("_group").is_in(pl.Series(train_groups).implode())
    return keyed.filter(in_train).drop("_group"), keyed.filter(~in_train).drop("_group")


def _run_catalog(directory: Path, settings: MatcherSettings, blocking: BlockingSettings, expand: ExpandSettings,
                 clock: _Clock) -> dict:
    path = directory if directory.is_file() else directory / "catalog.csv"
    records = clock.time("load", load_catalog, path)
    if "product_id" not in records.columns:
        raise CatalogError(path, "catalog layout needs a truth column", column="product_id")
    train_records, test_records = split_groups(records, settings.seed)
    train_prep, train_y = catalog_training_data(train_records, blocking, settings, expand)
    clock.add(train_prep.seconds)
    matcher = clock.time("train", train_matcher, train_prep.features, train_y, settings, groups=pair_groups(train_prep))
    test_prep = prepare_catalog(test_records, blocking)
    clock.add(test_prep.seconds)
    features = test_prep.features
    scored = clock.time("score", score_pairs, matcher, features)
    for hop in range(expand.rounds if expand.enabled else 0):
        extra = clock.time("features", round_features, test_prep, scored, expand, hop == 0)
        if extra.is_empty():
            break
        features = pl.concat([features, extra], how="vertical_relaxed")
        scored = pl.concat([scored, clock.time("score", score_pairs, matcher, extra)], how="vertical_relaxed")
    truth = truth_labels(features, test_prep.left, test_prep.right).to_numpy()
    expected = true_pairs(test_records)
    unscored = join_pairs(expected, _pair_keys(features), "anti")
    missed = dict(unscored.group_by("label").len().rows())
    report = class_report(truth, scored["decision"].to_numpy(), MULTICLASS, positive=("duplicate", "variant"), missed=missed)
    n = test_records.height
    result = {
        "blocking": _blocking(blocking_metrics(test_prep.candidates, expected, n)),
        "scored_pair_completeness": round(1.0 - unscored.height / max(expected.height, 1), 4),
        "matching": {
            **{c: {k: report[c][k] for k in ("precision", "recall", "f1", "support")} for c in ("duplicate", "variant")},
            "macro_f1": report["macro_f1"],
            "confusion": report["confusion"],
            "duplicate_variant_confusions": {
                "duplicate_as_variant": report["confusion"]["duplicate"]["variant"],
                "variant_as_duplicate": report["confusion"]["variant"]["duplicate"],
            },
        },
        "model": _model_summary(matcher),
        "split": {"train_records": train_records.height, "test_records": n, "seed": settings.seed},
    }
    clusters = clock.time("cluster", cluster_records, test_prep.left, scored, ClusterSettings())
    result["clusters"] = bcubed_report(clusters, test_records)
    result["matching_from_clusters"] = _cluster_pairs_report(clusters, expected)
    return result


def bcubed_report(clusters: pl.DataFrame, records: pl.DataFrame) -> dict:
    """B-cubed scores of duplicate groups and variant families on the test half."""
    family = pl.coalesce("family_id", "product_id") if "family_id" in records.columns else pl.col("product_id")
    truth = records.select("id", pl.col("product_id").alias("t_group"), family.alias("t_family"))
    joined = clusters.join(truth, on="id", how="left")
    return {
        "duplicate_groups": bcubed(joined["group_key"], joined["t_group"]),
        "variant_families": bcubed(joined["family_key"], joined["t_family"]),
    }


def _cluster_pairs_report(clusters: pl.DataFrame, expected: pl.DataFrame) -> dict:
    """P/R/F1 of the pair decisions the clusters imply: same group = duplicate, same family = variant.

    These are what a catalog team acts on; unlike the pairwise scores they credit pairs that blocking
    never proposed but clustering joined through other members.
    """
    def members(key: str) -> pl.DataFrame:
        ids = clusters.select("id", key)
        return ids.join(ids, on=key, suffix="_r").filter(pl.col("id") < pl.col("id_r")).select(
            pl.col("id").alias("left_id"), pl.col("id_r").alias("right_id"))

    same_group = members("group_key").with_columns(pl.lit("duplicate").alias("pred"))
    same_family = join_pairs(members("family_key"), same_group, "anti").with_columns(pl.lit("variant").alias("pred"))
    both = join_pairs(pl.concat([same_group, same_family]), expected, "full", coalesce=True)
    both = both.with_columns(pl.col("pred").fill_null("distinct"), pl.col("label").fill_null("distinct"))
    report = class_report(both["label"].to_numpy(), both["pred"].to_numpy(), MULTICLASS,
                          positive=("duplicate", "variant"))
    return {**{c: {k: report[c][k] for k in ("precision", "recall", "f1")} for c in ("duplicate", "variant")},
            "macro_f1": report["macro_f1"]}


def run_benchmark(directory: str | Path, seed: int = 0, blocking: BlockingSettings | None = None,
                  matcher: MatcherSettings | None = None, expand: ExpandSettings | None = None) -> dict:
    """Run the benchmark of one dataset folder and return the report (keys fixed by the issue).

    `seed` drives the split and the model; the matcher's mode follows the layout.
    """
    directory = Path(directory)
    layout = detect_layout(directory)
    blocking = blocking or BlockingSettings()
    matcher = (matcher or MatcherSettings()).model_copy(update={"seed": seed})
    clock = _Clock()
    if layout == "pairs":
        body = _run_pairs(directory, matcher.model_copy(update={"mode": "binary"}), blocking, clock)
    elif layout == "catalog":
        body = _run_catalog(directory, matcher.model_copy(update={"mode": "multiclass"}), blocking,
                            expand or ExpandSettings(), clock)
    else:
        body = _run_full(directory, blocking, clock)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"dataset": directory.stem if directory.is_file() else directory.name, "layout": layout, **body, "seconds": clock.report(), "peak_rss_mb": round(peak_kb / 1024, 1)}
