"""Shared preparation of one catalog or two sources: attributes -> embed -> block -> pair features."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from rich.console import Console

from blocking.candidates import BlockingReport, generate_candidates
from blocking.embed import embed_records, load_embedder
from blocking.settings import BlockingSettings
from features.attributes import extract_attributes
from features.idf import TokenIdf
from features.joins import PAIR_KEYS, join_pairs
from features.pairs import pair_features, record_bests
from matching.expand import round_pairs
from matching.settings import ExpandSettings

_console = Console(stderr=True)


@dataclass
class Prepared:
    """Attribute frames, embeddings, blocking candidates and the pair features of one preparation."""

    left: pl.DataFrame
    right: pl.DataFrame  # the same frame as `left` for one catalog
    left_emb: np.ndarray
    right_emb: np.ndarray
    idf: TokenIdf
    candidates: pl.DataFrame
    report: BlockingReport
    features: pl.DataFrame | None  # None when features were not asked for
    embedding_model: str
    seconds: dict[str, float] = field(default_factory=dict)


class _Stages:
    """Times named stages and logs one line per finished stage (the stages draw their own progress bars)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        _console.log(f"{name}: {self.seconds[name]:.1f}s")
        return result


def annotate_pairs(pairs: pl.DataFrame, candidates: pl.DataFrame, one_catalog: bool) -> pl.DataFrame:
    """Give given pairs the `blockers` and `ann_sim` blocking gave them (none when it missed them)."""
    ids = pairs.select(pl.col("left_id").cast(pl.String), pl.col("right_id").cast(pl.String))
    if one_catalog:
        # Candidates of one catalog are stored with left_id < right_id.
        ids = ids.select(pl.min_horizontal("left_id", "right_id").alias("left_id"),
                         pl.max_horizontal("left_id", "right_id").alias("right_id"))
    found = candidates.select(*PAIR_KEYS, "blockers", "ann_sim")
    return join_pairs(ids, found, "left").with_columns(
        pl.col("blockers").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )


def _prepare(left: pl.DataFrame, right: pl.DataFrame | None, settings: BlockingSettings,
             pairs: pl.DataFrame | None, with_features: bool) -> Prepared:
    stages = _Stages()
    left_attrs = stages.run("attributes", extract_attributes, left)
    right_attrs = left_attrs if right is None else stages.run("attributes", extract_attributes, right)
    left_emb = stages.run("embed", embed_records, left_attrs, settings)
    right_emb = left_emb if right is None else stages.run("embed", embed_records, right_attrs, settings)
    titles = left_attrs["attr_title"] if right is None else pl.concat([left_attrs["attr_title"], right_attrs["attr_title"]])
    idf = TokenIdf.fit(titles.to_list())
    candidates, report = stages.run(
        "block", generate_candidates, left_attrs, left_emb, settings,
        None if right is None else right_attrs, None if right is None else right_emb,
    )
    features = None
    if with_features:
        todo = candidates if pairs is None else annotate_pairs(pairs, candidates, one_catalog=right is None)
        features = stages.run("features", pair_features, todo, left_attrs, right_attrs, left_emb, right_emb, idf)
    return Prepared(left=left_attrs, right=right_attrs, left_emb=left_emb, right_emb=right_emb, idf=idf,
                    candidates=candidates, report=report, features=features,
                    embedding_model=load_embedder(settings).model_id, seconds=stages.seconds)


def prepare_catalog(records: pl.DataFrame, settings: BlockingSettings, pairs: pl.DataFrame | None = None,
                    with_features: bool = True) -> Prepared:
    """Prepare one catalog; features are for the blocking candidates, or for `pairs` when given."""
    return _prepare(records, None, settings, pairs, with_features)


def prepare_link(left: pl.DataFrame, right: pl.DataFrame, settings: BlockingSettings,
                 pairs: pl.DataFrame | None = None, with_features: bool = True) -> Prepared:
    """Prepare two sources (left x right); features as in prepare_catalog."""
    return _prepare(left, right, settings, pairs, with_features)


def round_features(prepared: Prepared, scored: pl.DataFrame, expand: ExpandSettings, rescue: bool) -> pl.DataFrame:
    """Features of an expansion round's pairs (``matching.expand.round_pairs``) of a prepared catalog's scored
    candidates, with gaps taken against the candidates' per-record bests (as the dedup flow's rounds do)."""
    extra = round_pairs(scored, prepared.left, expand, rescue)
    return pair_features(extra, prepared.left, prepared.left, prepared.left_emb, prepared.left_emb, prepared.idf,
                         bests=record_bests(prepared.features, one_catalog=True))
