"""Training data for the matcher, from a catalog's truth columns or a labelled pairs file, and training."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from blocking.settings import BlockingSettings
from features.io import file_hash
from features.records import CatalogError, load_catalog
from flows.prepare import Prepared, prepare_catalog, prepare_link, round_features
from matching.labels import read_labels, truth_labels
from matching.model import Matcher, score_pairs, train_matcher
from matching.settings import ExpandSettings, MatcherSettings


def catalog_training_data(records: pl.DataFrame, settings: BlockingSettings,
                          matcher: MatcherSettings | None = None,
                          expand: ExpandSettings | None = None) -> tuple[Prepared, np.ndarray]:
    """Blocking candidates of a catalog with truth columns, labelled from product_id/family_id; with
    ``expand`` enabled, also the two-hop pairs a run would score next (see ``two_hop_training_pairs``)."""
    if "product_id" not in records.columns:
        raise CatalogError("<catalog>", "training needs truth columns or a labelled pairs file", column="product_id")
    prepared = prepare_catalog(records, settings)
    labels = truth_labels(prepared.features, prepared.left, prepared.right).to_numpy()
    if not np.any(labels != "distinct"):
        raise CatalogError("<catalog>", "blocking found no true pair to learn from (check product_id/family_id)")
    if expand is not None and expand.enabled:
        extra = two_hop_training_pairs(prepared, labels, matcher or MatcherSettings(), expand)
        prepared = replace(prepared, features=pl.concat([prepared.features, extra], how="vertical_relaxed"))
        labels = np.concatenate([labels, truth_labels(extra, prepared.left, prepared.right).to_numpy()])
    return prepared, labels


def two_hop_training_pairs(prepared: Prepared, labels: np.ndarray, settings: MatcherSettings,
                           expand: ExpandSettings) -> pl.DataFrame:
    """Features of the two-hop pairs of a catalog, with the links hopped over scored out of fold.

    A model trained on the candidates of half the truth groups scores the other half's candidates, so the
    links carry the errors a new catalog's would; in-sample scores would hop only over true links.
    """
    groups = pair_groups(prepared)
    names, group_of_pair = np.unique(groups.astype(str), return_inverse=True)
    fold = (np.random.default_rng(settings.seed).permutation(len(names)) % 2)[group_of_pair]
    scored = []
    for held_out in (0, 1):
        train, test = fold != held_out, fold == held_out
        if len(np.unique(labels[train])) < 2 or not test.any():
            continue
        matcher = train_matcher(prepared.features.filter(pl.Series(train)), labels[train], settings,
                                groups=groups[train])
        scored.append(score_pairs(matcher, prepared.features.filter(pl.Series(test))))
    if not scored:
        return prepared.features.clear()
    # Rescue pairs stay out: they and two-hop pairs look alike to the model (no blocker of their own), and
    # a model trained on both called 960,000 distinct two-hop pairs of a million-listing catalog variants.
    return round_features(prepared, pl.concat(scored).sort("left_id", "right_id"), expand, rescue=False)


def pair_groups(prepared: Prepared) -> np.ndarray:
    """Truth group (family_id, else product_id) of each pair's left record, to hold out whole groups."""
    left = prepared.left
    group = pl.coalesce("family_id", "product_id") if "family_id" in left.columns else pl.col("product_id")
    keyed = left.select(pl.col("id").alias("left_id"), group.cast(pl.String).alias("group"))
    return prepared.features.select("left_id").join(keyed, on="left_id", how="left", maintain_order="left")["group"].to_numpy()


def pairs_training_data(labelled: pl.DataFrame, left: pl.DataFrame, settings: BlockingSettings,
                        right: pl.DataFrame | None = None) -> tuple[Prepared, np.ndarray]:
    """Features of labelled pairs (ids of one catalog, or left x right ids with `right`)."""
    _check_ids(labelled, "left_id", left)
    _check_ids(labelled, "right_id", left if right is None else right)
    pairs = labelled.select("left_id", "right_id")
    prepared = (prepare_catalog(left, settings, pairs=pairs) if right is None
                else prepare_link(left, right, settings, pairs=pairs))
    return prepared, labelled["label"].to_numpy()


def _check_ids(labelled: pl.DataFrame, column: str, records: pl.DataFrame) -> None:
    unknown = labelled.with_row_index("_row").filter(~pl.col(column).is_in(records["id"].implode()))
    if unknown.height:
        first = unknown.row(0, named=True)
        raise CatalogError("<labels>", f"id {first[column]!r} is not in the records ({unknown.height} such rows)",
                           row=first["_row"] + 1, column=column)


@dataclass
class TrainingData:
    """Pair features and labels to train on, with where they came from."""

    features: pl.DataFrame
    labels: np.ndarray
    groups: np.ndarray | None  # truth group per pair, so validation holds out whole groups
    embedding_model: str
    inputs: dict[str, str]  # file name -> sha256


# (features, labels) -> (sample_weight, teacher_proba); positive-congruent training plugs in here.
Weigh = Callable[[pl.DataFrame, np.ndarray], tuple[np.ndarray | None, np.ndarray | None]]


def load_training_data(catalog: str | os.PathLike, blocking: BlockingSettings,
                       labels: str | os.PathLike | None = None, right: str | os.PathLike | None = None,
                       matcher: MatcherSettings | None = None,
                       expand: ExpandSettings | None = None) -> TrainingData:
    """Features and labels from a catalog's truth columns (with two-hop pairs when ``expand`` is
    enabled), or from a labelled pairs file."""
    records = load_catalog(catalog)
    right_records = load_catalog(right) if right is not None else None
    if labels is None and right_records is not None:
        raise CatalogError(right, "two sources need a labelled pairs file (--labels)")
    try:
        if labels is None:
            prepared, y = catalog_training_data(records, blocking, matcher, expand)
        else:
            prepared, y = pairs_training_data(read_labels(labels), records, blocking, right_records)
    except CatalogError as exc:  # name the file the truth came from
        raise CatalogError(catalog if labels is None else labels, exc.message, row=exc.row,
                           column=exc.column) from None
    groups = pair_groups(prepared) if labels is None else None
    inputs = {Path(p).name: file_hash(p) for p in (catalog, right, labels) if p is not None}
    return TrainingData(prepared.features, np.asarray(y), groups, prepared.embedding_model, inputs)


def fit(data: TrainingData, matcher_settings: MatcherSettings, blocking: BlockingSettings,
        weigh: Weigh | None = None) -> Matcher:
    """Train a matcher on ``data`` and record its provenance in the metadata."""
    weight, teacher = weigh(data.features, data.labels) if weigh is not None else (None, None)
    matcher = train_matcher(data.features, data.labels, matcher_settings, sample_weight=weight,
                            teacher_proba=teacher, groups=data.groups)
    matcher.meta.update({
        "embedding_model": data.embedding_model,
        "blocking_settings": blocking.model_dump(mode="json"),
        "training_inputs": data.inputs,
        "feature_importance_gain": dict(list(matcher.importances().items())[:15]),
    })
    return matcher


def train_from_files(catalog: str | os.PathLike, out: str | os.PathLike, matcher_settings: MatcherSettings,
                     blocking_settings: BlockingSettings, labels: str | os.PathLike | None = None,
                     right: str | os.PathLike | None = None, expand: ExpandSettings | None = None) -> Matcher:
    """Train a matcher from a catalog (truth columns) or a labelled pairs file, and save it to `out`."""
    data = load_training_data(catalog, blocking_settings, labels, right, matcher_settings, expand or ExpandSettings())
    matcher = fit(data, matcher_settings, blocking_settings)
    matcher.save(out)
    return matcher
