"""Incremental dedup runs: what changed since the previous run folder, and which of its work is reused.

A run folder keeps what the next run needs: `records.parquet` with a per-record `content_hash`,
`ann.parquet` (each record's nearest neighbours and the similarity at the edge of its search pool),
`index.faiss` (the IVF index, for large catalogs), `idf.json`, `colour_brands.json`, `attributes.parquet`,
the pair features (`features.parquet`, plus the earlier runs' files in `features-earlier/` whose rows
it carried over; see features/store.py), `bests.parquet` (each record's best scores, what gap features
are taken against) and `pairs.parquet`. The "full run" an incremental run must equal is the same command
with `incremental: false`: it reads the previous run only for stable ids and for the catalog-wide
vocabularies, the IDF and the colour brands (kept until `idf_refit_fraction` changed).

Given those vocabularies a record's attributes depend on nothing but its own columns, so unchanged
records keep the previous run's attributes.

Nearest-neighbour candidates despite top-k truncation: a record's neighbours are a function of its
search pool (the ``ann_pool`` most similar vectors, re-ranked to ``k``), so an unchanged record whose
pool cannot have changed keeps its previous neighbours. A vector inserted into or removed from the
index can enter or leave the pool of record ``u`` only if its similarity to ``u`` reaches ``u``'s pool
boundary (the lowest similarity in the pool, or ``min_similarity``); a range search around each
inserted or removed vector finds those records. With the exact (flat) index of catalogs up to
``exact_max_records`` they are searched again with the new and changed ones, which is exact given that
unchanged records keep their relative order in the catalog (ties are broken by row). Above that, the
previous IVF index is updated in place (its quantizer is not retrained, as a full run's is), so a full
run's candidates are not reproducible anyway; there (``neighbour_requery`` "touched") a record's list
takes in the inserted vectors that enter its pool instead of being searched again (see ``plan_neighbours``).

Pairs whose two records are unchanged and whose blockers and similarity are the same keep their
pair-by-pair features; they keep their scores too unless the best score of one of their records, what the
gap features (features.pairs.RANKED gaps) are relative to, moved. Clustering is redone
only in the components (over pairs that can join clusters) that a change can reach; see
``affected_records``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import polars as pl

from blocking.ann import Lists, RerankAttrs, best_k, build_index, neighbours, tune_search
from blocking.candidates import generate_candidates
from blocking.embed import embed_texts, load_embedder, record_texts
from blocking.settings import BlockingSettings
from features.attributes import ATTRIBUTE_COLUMNS, colour_brands, extract_attributes
from features.idf import TokenIdf
from features.io import atomic_path, write_table
from features.joins import PAIR_KEYS, join_pairs
from features.pairs import RANKED
from features.records import feature_columns
from features.store import scan_features
from flows.stage_cache import code_revision, content_key
from matching.cluster import cluster_records, components, lone_confidence, pair_weights
from matching.settings import ClusterSettings

HASH_COLUMN = "content_hash"
ANN_FILE = "ann.parquet"
INDEX_FILE = "index.faiss"
IDF_FILE = "idf.json"
BRANDS_FILE = "colour_brands.json"
ATTRIBUTES_FILE = "attributes.parquet"
BESTS_FILE = "bests.parquet"
ROW = "_row"  # a pair's row in the previous run's features file
ANN_SCHEMA = {"id": pl.String, "bound": pl.Float32, "hits": pl.List(pl.String), "sims": pl.List(pl.Float32)}
# Range search and query scoring can differ in the last float bits; a margin keeps the test conservative.
_SIM_EPS = 1e-4
_RANGE_CHUNK = 2_000


def content_hashes(records: pl.DataFrame) -> pl.DataFrame:
    """``id`` and a hash of each record's non-truth columns (the truth never changes a prediction)."""
    cols = [c for c in feature_columns(records) if c != "id"]
    return records.select("id", records.select(cols).hash_rows(seed=0).alias(HASH_COLUMN))


def reuse_fingerprint(*parts: Any) -> str:
    """What must not have changed for a run to reuse an earlier run's work: this code (its features and
    run folder layout with it) and ``parts`` (settings, model)."""
    return content_key("reuse", code_revision(), *parts)


@dataclass
class Previous:
    """The parts of a previous run folder an incremental run reads."""

    folder: Path
    records: pl.DataFrame  # records.parquet in the previous catalog's row order

    @property
    def fingerprint(self) -> str | None:
        """The reuse fingerprint the previous run recorded in run.json."""
        path = self.folder / "run.json"
        return json.loads(path.read_text()).get("reuse_fingerprint") if path.is_file() else None

    @functools.cached_property
    def features(self) -> pl.LazyFrame:
        """The previous run's feature rows (``features.store``), each with its number ``ROW`` (what carried-over
        pairs are addressed by); a lazy plan, built once (it reads the list of rows the run dropped)."""
        return scan_features(self.folder).with_row_index(ROW)

    @property
    def pairs(self) -> pl.LazyFrame:
        """The previous run's scored pairs (pairs.parquet)."""
        return pl.scan_parquet(self.folder / "pairs.parquet")

    @functools.cached_property
    def bests(self) -> pl.DataFrame:
        """Best ``RANKED`` scores per record over the previous run's first-round pairs (those no expansion
        round found): what all its gap features were taken against (bests.parquet, read once)."""
        return pl.read_parquet(self.folder / BESTS_FILE)

    @property
    def ann(self) -> pl.DataFrame | None:
        """Each previous record's neighbours and pool boundary, if that run kept them."""
        path = self.folder / ANN_FILE
        return pl.read_parquet(path) if path.is_file() else None


def load_previous(folder: Path | None) -> Previous | None:
    """Read a previous run folder; None when there is none."""
    if folder is None:
        return None
    return Previous(folder, pl.read_parquet(folder / "records.parquet"))


@dataclass
class Delta:
    """Record ids by what happened to them since the previous run."""

    new: pl.Series
    changed: pl.Series
    deleted: pl.Series
    n_current: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def touched(self) -> pl.Series:
        """Current ids whose content is not the previous run's (new or changed)."""
        return pl.concat([self.new, self.changed])

    @property
    def fraction(self) -> float:
        """Share of the catalog that is new, changed or deleted."""
        return (self.new.len() + self.changed.len() + self.deleted.len()) / max(self.n_current, 1)


def diff_records(hashes: pl.DataFrame, previous: Previous | None) -> Delta:
    """Compare current content hashes with the previous run's records."""
    if previous is None or HASH_COLUMN not in previous.records.columns:
        empty = pl.Series("id", [], dtype=pl.String)
        return Delta(hashes["id"], empty, empty, hashes.height, {"new": hashes.height, "changed": 0, "deleted": 0})
    prev = previous.records.select("id", pl.col(HASH_COLUMN).alias("_prev"))
    joined = hashes.join(prev, on="id", how="left")
    new = joined.filter(pl.col("_prev").is_null())["id"]
    changed = joined.filter(pl.col("_prev").is_not_null() & (pl.col("_prev") != pl.col(HASH_COLUMN)))["id"]
    deleted = prev.join(hashes, on="id", how="anti")["id"]
    counts = {"new": new.len(), "changed": changed.len(), "deleted": deleted.len(),
              "unchanged": hashes.height - new.len() - changed.len()}
    return Delta(new, changed, deleted, hashes.height, counts)


def _keeps_vocabulary(previous: Previous | None, name: str, delta: Delta, refit_fraction: float) -> bool:
    """Whether a catalog-wide vocabulary the previous run kept in file ``name`` is used again (little changed)."""
    return previous is not None and (previous.folder / name).is_file() and delta.fraction <= refit_fraction


def choose_idf(titles: pl.Series, previous: Previous | None, delta: Delta,
               refit_fraction: float) -> tuple[TokenIdf, bool]:
    """The previous run's IDF while little changed (so unchanged pairs keep their features), else a refit."""
    if _keeps_vocabulary(previous, IDF_FILE, delta, refit_fraction):
        return TokenIdf.load(previous.folder / IDF_FILE), False
    return TokenIdf.fit(titles), True


def choose_brands(records: pl.DataFrame, previous: Previous | None, delta: Delta,
                  refit_fraction: float) -> tuple[list[str], bool]:
    """The previous run's colour brands while little changed (so unchanged records keep their
    attributes), else those of this catalog."""
    if _keeps_vocabulary(previous, BRANDS_FILE, delta, refit_fraction):
        return json.loads((previous.folder / BRANDS_FILE).read_text()), False
    return colour_brands(records), True


def record_attributes(records: pl.DataFrame, brands: list[str], previous: Previous | None,
                      delta: Delta) -> pl.DataFrame:
    """``extract_attributes(records, brands)``, reading those of unchanged records from ``previous``
    (None: reuse nothing). Only valid when ``brands`` are the previous run's."""
    path = None if previous is None else previous.folder / ATTRIBUTES_FILE
    if path is None or not path.is_file():
        return extract_attributes(records, brands)
    base = records.drop(ATTRIBUTE_COLUMNS, strict=False)
    kept = base.join(delta.touched.to_frame("id"), on="id", how="anti").join(pl.read_parquet(path), on="id")
    fresh = extract_attributes(base.join(kept.select("id"), on="id", how="anti"), brands)
    both = pl.concat([kept.select(fresh.columns), fresh], how="vertical_relaxed")
    return base.select("id").join(both, on="id", how="left", maintain_order="left")


def query_neighbours(index: faiss.Index, emb: np.ndarray, attrs: pl.DataFrame, rows: np.ndarray,
                     settings: BlockingSettings, progress: bool = True, lists: Lists | None = None) -> pl.DataFrame:
    """Neighbours of the records at ``rows`` (the record itself left out) with their pool boundary
    (``lists``: the IVF lists of all records, when the index was built from ``emb``)."""
    if not len(rows):
        return pl.DataFrame(schema=ANN_SCHEMA)
    # The record finds itself; asking for one more in pool and result keeps blocking's pool size.
    wider = settings.model_copy(update={"k": settings.k + 1, "ann_pool": max(settings.ann_pool, settings.k) + 1})
    found, bounds = neighbours(index, emb[rows], RerankAttrs(attrs[rows]), RerankAttrs(attrs), wider, False, progress,
                               None if lists is None else (lists[0][rows], lists[1][rows]))
    ids = attrs["id"]
    found = (
        found.with_columns(pl.Series("row", rows[found["query"].to_numpy()]))
        .filter(pl.col("row") != pl.col("hit"))
        .group_by("query", maintain_order=True).head(settings.k)
    )
    found = (
        found.with_columns(ids.gather(found["hit"].cast(pl.UInt32)).alias("hit_id"))
        .group_by("query", maintain_order=True)
        .agg(pl.col("hit_id").alias("hits"), pl.col("sim").cast(pl.Float32).alias("sims"))
    )
    base = pl.DataFrame({"query": np.arange(len(rows), dtype=np.int64), "id": ids.gather(rows),
                         "bound": bounds})
    return base.join(found.with_columns(pl.col("query").cast(pl.Int64)), on="query", how="left",
                     maintain_order="left").select(
        "id", "bound", pl.col("hits").fill_null([]), pl.col("sims").fill_null([]),
    ).cast(ANN_SCHEMA)


def _range_hits(index: faiss.Index, probes: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each indexed row within ``radius`` (inner product) of a probe vector: the probe, the row and
    their similarity."""
    found = [(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))]
    for start in range(0, len(probes), _RANGE_CHUNK):
        chunk = np.ascontiguousarray(probes[start:start + _RANGE_CHUNK])
        lims, sims, rows = index.range_search(chunk, radius)
        found.append((np.repeat(np.arange(start, start + len(chunk)), np.diff(lims).astype(np.int64)), rows, sims))
    return tuple(np.concatenate(parts) for parts in zip(*found))


@dataclass
class NeighbourPlan:
    """The rows an incremental run searches again, and the patched neighbours of others (``ANN_SCHEMA``)."""

    rows: np.ndarray
    patched: pl.DataFrame


def plan_neighbours(index: faiss.Index, attrs: pl.DataFrame, emb: np.ndarray, delta: Delta,
                    previous_ann: pl.DataFrame, removed: np.ndarray, settings: BlockingSettings, n_previous: int,
                    exact: bool) -> NeighbourPlan:
    """Which records' neighbours are searched again, and the new lists of those patched instead.

    Always searched: new and changed records, and unchanged ones the previous run did not search. A
    vector inserted (new or changed record) or ``removed`` (the previous vectors of changed and deleted
    records; only the exact rule uses them) can enter or leave the pool of an unchanged record only if
    its similarity reaches the record's pool boundary; a range search around it finds those records.
    ``exact`` searches them all again, which makes the candidates those of a full run. Otherwise a
    record's list takes in the inserted vectors that enter its pool, re-ranked with its kept neighbours
    (``best_k``), and only a record that lost a neighbour for good (deleted, or changed and no longer in
    its pool) is searched: a pool member beyond the ``k`` kept may then be missed.
    """
    ids = attrs["id"]
    empty = pl.DataFrame(schema=ANN_SCHEMA)
    if min(n_previous, len(ids)) < max(settings.ann_pool, settings.k) + 1:  # the pool size changes with the catalog
        return NeighbourPlan(np.arange(len(ids)), empty)
    rows = pl.DataFrame({"id": ids}).with_row_index("row")
    touched = delta.touched.to_frame("id")
    gone = pl.concat([delta.changed, delta.deleted]).implode()
    inserted = rows.join(touched, on="id", how="semi")["row"].to_numpy().astype(np.int64)
    unchanged = rows.join(touched, on="id", how="anti").join(previous_ann, on="id", how="left")
    known = unchanged.filter(pl.col("bound").is_not_null())
    searched = [inserted, unchanged.filter(pl.col("bound").is_null())["row"].to_numpy()]
    bound = np.full(len(ids), np.inf, dtype=np.float32)
    bound[known["row"].to_numpy()] = np.maximum(known["bound"].to_numpy(), settings.min_similarity)
    radius = float(bound.min()) - _SIM_EPS if known.height else np.inf
    probes = emb[inserted] if not exact else np.vstack([emb[inserted], removed])
    probe, near, sims = _range_hits(index, probes if known.height else probes[:0], radius)
    enter = sims >= bound[near] - _SIM_EPS
    lost = pl.col("hits").list.eval(pl.element().is_in(gone)).list.any()
    if exact:
        searched += [known.filter(lost)["row"].to_numpy(), near[enter]]
        return NeighbourPlan(np.unique(np.concatenate(searched).astype(np.int64)), empty)
    entrants = pl.DataFrame({"query": near[enter], "hit": inserted[probe[enter]], "sim": sims[enter]})
    entrants = entrants.with_columns(ids.gather(entrants["hit"]).alias("hit_id"))
    held = (
        known.filter(pl.col("row").is_in(entrants["query"].implode()) | lost)
        .select(pl.col("row").cast(pl.Int64).alias("query"), pl.col("hits").alias("hit_id"), pl.col("sims").alias("sim"))
        .explode("hit_id", "sim").drop_nulls("hit_id")
    )
    # A changed neighbour whose new vector re-entered the pool came back through the range search.
    left = held.filter(pl.col("hit_id").is_in(gone)).join(entrants, on=["query", "hit_id"], how="anti")
    stale = left["query"].unique().to_numpy()
    held = held.filter(~pl.col("hit_id").is_in(gone) & ~pl.col("query").is_in(left["query"].implode()))
    held = held.join(rows.select(pl.col("id").alias("hit_id"), pl.col("row").cast(pl.Int64).alias("hit")), on="hit_id")
    both = pl.concat([held.select("query", "hit", "sim"),
                      entrants.filter(~pl.col("query").is_in(stale)).select("query", "hit", "sim")],
                     how="vertical_relaxed")
    reranked = RerankAttrs(attrs)
    best = best_k(both["query"].to_numpy(), both["hit"].to_numpy(), both["sim"].to_numpy().astype(np.float32),
                  reranked, reranked, settings)
    patched = (
        best.with_columns(ids.gather(best["hit"]).alias("hit_id"))
        .group_by("query", maintain_order=True).agg(pl.col("hit_id").alias("hits"), pl.col("sim").alias("sims"))
        .join(known.select(pl.col("row").cast(pl.Int64).alias("query"), "id", "bound"), on="query")
        .select("id", "bound", "hits", "sims").cast(ANN_SCHEMA)
    )
    return NeighbourPlan(np.unique(np.concatenate([*searched, stale]).astype(np.int64)), patched)


def updated_index(previous: Previous, ids: pl.Series, emb: np.ndarray, delta: Delta,
                  settings: BlockingSettings) -> tuple[faiss.Index, str]:
    """The previous IVF index with removed vectors dropped, rows renumbered and new vectors added;
    a fresh index when the catalog is small enough for exact search or none was kept."""
    path = previous.folder / INDEX_FILE
    if len(ids) <= settings.exact_max_records or not path.is_file():
        return build_index(emb, settings)[:2]
    faiss.omp_set_num_threads(settings.threads or os.cpu_count() or 1)
    index = faiss.read_index(str(path))
    ivf = faiss.extract_index_ivf(index)
    prev_rows = previous.records.select("id").with_row_index("old")
    cur_rows = pl.DataFrame({"id": ids}).with_row_index("new")
    gone = prev_rows.join(cur_rows.join(delta.touched.to_frame("id"), on="id", how="anti"), on="id", how="anti")
    ivf.remove_ids(faiss.IDSelectorBatch(gone["old"].cast(pl.Int64).to_numpy()))
    remap = np.full(prev_rows.height, -1, dtype=np.int64)
    kept = prev_rows.join(cur_rows, on="id")
    remap[kept["old"].to_numpy()] = kept["new"].to_numpy()
    invlists = ivf.invlists
    for lst in range(ivf.nlist):
        size = invlists.list_size(lst)
        if size:
            old = faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy()
            codes = faiss.rev_swig_ptr(invlists.get_codes(lst), size * invlists.code_size).copy()
            new = np.ascontiguousarray(remap[old])
            invlists.update_entries(lst, 0, size, faiss.swig_ptr(new), faiss.swig_ptr(codes))
    added = cur_rows.join(delta.touched.to_frame("id"), on="id", how="semi")["new"].cast(pl.Int64).to_numpy()
    if len(added):
        ivf.add_with_ids(np.ascontiguousarray(emb[added]), added)
    nprobe = tune_search(index, settings)
    # Return the owning object: the extracted view dies with it.
    return index, f"ivf{ivf.nlist},nprobe{nprobe} (updated)"


def save_index(index: faiss.Index, path: Path) -> Path | None:
    """Keep an IVF index for the next run (an exact index is cheaper to rebuild than to store)."""
    if faiss.try_extract_index_ivf(index) is None:
        return None
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    return path


@dataclass
class Blocked:
    """Candidate pairs of one catalog with the nearest-neighbour state the next run reuses."""

    candidates: pl.DataFrame
    ann: pl.DataFrame
    index: Any  # faiss.Index or None
    report: dict[str, Any]


def ann_row_pairs(ann: pl.DataFrame) -> pl.DataFrame:
    """Row pairs (``left``, ``right``, ``sim``) of per-record neighbours, ``ann`` being in catalog order."""
    rows = ann.select(pl.col("id").alias("hits")).with_row_index("right")
    return (
        ann.with_row_index("left").select("left", "hits", pl.col("sims").alias("sim"))
        .explode("hits", "sim").drop_nulls("hits")
        .join(rows, on="hits").select(pl.col("left", "right").cast(pl.Int64), "sim")
    )


def block_catalog(attrs: pl.DataFrame, emb: np.ndarray, settings: BlockingSettings, previous: Previous | None,
                  delta: Delta, reuse: bool, exact: bool = True, progress: bool = True) -> Blocked:
    """Candidate pairs of one catalog: fuzzy keys over the whole catalog, nearest neighbours searched
    again only where they can have changed (see ``plan_neighbours``) when ``reuse`` and a previous run allow it."""
    if not settings.ann:
        started = time.perf_counter()
        pairs, report = generate_candidates(attrs, emb, settings, progress=progress)
        return Blocked(pairs, pl.DataFrame(schema=ANN_SCHEMA), None,
                       {"keys": report.model_dump(mode="json"), "seconds": {"keys": time.perf_counter() - started}})
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    ids = attrs["id"]
    prev_ann = previous.ann if (reuse and previous is not None) else None
    started = time.perf_counter()
    patched = pl.DataFrame(schema=ANN_SCHEMA)
    lists = None
    if prev_ann is None:
        index, kind, lists = build_index(emb, settings)
        rows = np.arange(len(ids))
    else:
        index, kind = updated_index(previous, ids, emb, delta, settings)
        # Only the exact rule looks for the pools that removed vectors leave (embedding them costs).
        removed = _removed_vectors(previous, delta, settings) if exact else emb[:0]
        plan = plan_neighbours(index, attrs, emb, delta, prev_ann, removed, settings, previous.records.height, exact)
        rows, patched = plan.rows, plan.patched
    seconds = {"index": time.perf_counter() - started}
    started = time.perf_counter()
    ann = pl.concat([query_neighbours(index, emb, attrs, rows, settings, progress, lists), patched])
    if prev_ann is not None:
        kept = prev_ann.join(ann.select("id"), on="id", how="anti").join(ids.to_frame("id"), on="id", how="semi")
        ann = ids.to_frame("id").join(pl.concat([kept, ann]), on="id", how="left", maintain_order="left")
    seconds["ann"] = time.perf_counter() - started
    started = time.perf_counter()
    candidates, report = generate_candidates(attrs, emb, settings, progress=progress, ann_found=ann_row_pairs(ann))
    seconds["keys"] = time.perf_counter() - started
    info = {"keys": report.model_dump(mode="json"), "seconds": seconds, "index": kind, "ann_queries": int(len(rows)),
            "ann_patched": patched.height}
    return Blocked(candidates, ann, index, info)


def _removed_vectors(previous: Previous, delta: Delta, settings: BlockingSettings) -> np.ndarray:
    """Previous embeddings of changed and deleted records (from the embedding cache: same texts, same vectors)."""
    gone = previous.records.join(pl.concat([delta.changed, delta.deleted]).to_frame("id"), on="id", how="semi")
    if not gone.height:
        return np.zeros((0, load_embedder(settings).dim), np.float32)
    return embed_texts(record_texts(gone), settings, progress=False)


@dataclass
class Carried:
    """What an incremental run took over from the previous run: rows of its features file, whose pairs
    keep their features and scores, and the keys of the pairs the run scored itself."""

    rows: list[pl.Series] = field(default_factory=list)
    fresh: list[pl.DataFrame] = field(default_factory=list)


def changed_pairs(previous: Previous, scored: pl.DataFrame,
                  carried: Carried | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pairs whose scores can differ between two runs: those of ``scored`` this run scored, and the
    previous run's scored pairs it did not carry over (scored again or gone). ``carried`` None: nothing
    was carried over, so all of both."""
    p_columns = [c for c in scored.columns if c.startswith("p_")]
    before = previous.pairs.select(*PAIR_KEYS, *p_columns)
    if carried is None:
        return scored, before.collect()
    kept = pl.concat(carried.rows) if carried.rows else pl.Series(ROW, [], dtype=pl.UInt32)
    redone = previous.features.filter(~pl.col(ROW).is_in(kept.implode())).select(PAIR_KEYS)
    fresh = pl.concat(carried.fresh) if carried.fresh else scored.select(PAIR_KEYS).clear()
    return join_pairs(scored, fresh, "semi"), join_pairs(before, redone, "semi")


def reusable_rows(candidates: pl.DataFrame, previous: Previous, delta: Delta) -> tuple[np.ndarray, pl.DataFrame]:
    """Which ``candidates`` the previous run already has pair-by-pair features for (both records
    unchanged, the same blockers and neighbour similarity): a mask over ``candidates`` and those pairs'
    keys with their ``ROW`` in the previous features file. Only narrow columns are read."""
    touched = delta.touched.implode()
    prev = (
        previous.features
        .select(ROW, *PAIR_KEYS, pl.col("blockers").alias("_blockers"), pl.col("ann_cosine").alias("_ann"))
        .filter(~pl.col("left_id").is_in(touched) & ~pl.col("right_id").is_in(touched))
    )
    same = (pl.col("blockers") == pl.col("_blockers")) & pl.col("ann_sim").fill_nan(None).eq_missing(
        pl.col("_ann").fill_nan(None))
    found = (
        candidates.lazy().select(*PAIR_KEYS, "blockers", "ann_sim").with_row_index("_candidate")
        .join(prev, on=PAIR_KEYS).filter(same).select("_candidate", ROW, *PAIR_KEYS)
        .collect(engine="streaming")
    )
    mask = np.zeros(candidates.height, dtype=bool)
    mask[found["_candidate"].to_numpy()] = True
    return mask, found.drop("_candidate")


def previous_features(previous: Previous, rows: pl.Series) -> pl.LazyFrame:
    """The previous run's feature rows at ``rows`` with their ``ROW``, lazily, read where they are used."""
    return previous.features.filter(pl.col(ROW).is_in(rows.implode()))


def carried_columns(previous: Previous, rows: pl.Series) -> pl.DataFrame:
    """``ROW``, keys and ``RANKED`` scores of the previous run's feature rows at ``rows``: what the
    per-record bests and the moved pairs need, read in one pass."""
    return previous_features(previous, rows).select(ROW, *PAIR_KEYS, *RANKED).collect(
        engine="streaming")


def moved_rows(columns: pl.DataFrame, bests: dict[str, pl.DataFrame], previous: Previous) -> pl.Series:
    """``ROW`` of the pairs in ``columns`` (``carried_columns``) whose features relative to their records'
    other pairs (``GAP_FEATURES``) can differ from the previous run's: those with a record whose best
    ``RANKED`` scores (``bests``, one catalog) are not the previous run's. They are scored again, the
    others keep their scores."""
    now, before = bests["left"], previous.bests
    same = pl.all_horizontal(pl.col(n).eq_missing(pl.col(f"{n}_before")) for n in RANKED)
    moved = now.join(before, on="id", how="full", coalesce=True, suffix="_before").filter(~same)["id"].implode()
    return columns.filter(pl.col("left_id").is_in(moved) | pl.col("right_id").is_in(moved))[ROW]


def rescore_parts(previous: Previous, moved: pl.Series, stem: Path, part_rows: int) -> list[Path]:
    """The previous run's feature rows at ``moved``, to be scored with their gaps taken again, as parts
    of at most ``part_rows`` rows (``<stem>-00000.parquet``...)."""
    rows = previous_features(previous, moved).drop(ROW).collect(engine="streaming")
    return [write_table(rows.slice(start, part_rows), stem.with_name(f"{stem.name}-{i:05d}.parquet"))
            for i, start in enumerate(range(0, rows.height, part_rows))]


def reused_scores(previous: Previous, kept: pl.DataFrame) -> pl.DataFrame:
    """The previous run's scored rows of the ``kept`` pairs."""
    return join_pairs(previous.pairs, kept, "semi")


def _strong(settings: ClusterSettings) -> pl.Expr:
    """Pairs that can put two records in one group or family (unscored_weight is below both thresholds)."""
    return (pl.col("w_dup") >= settings.duplicate_threshold) | (pl.col("w_fam") >= settings.family_threshold)


def affected_records(attrs: pl.DataFrame, scored: pl.DataFrame, previous: Previous, delta: Delta,
                     settings: ClusterSettings, carried: Carried | None) -> tuple[pl.Series, pl.Series]:
    """Ids to cluster again, and ids of records alone in their group whose confidence alone can move.

    Components are taken over pairs that can join clusters. A component is clustered again when it holds
    a new or changed record, or an end of a pair that is new, gone or scored differently and that can
    join clusters (now or before) or lies inside the component (it weighs in average linkage). A pair
    between components that joins nothing only moves the confidence of a record alone in its group.
    """
    index = attrs.select("id").with_row_index("row")
    now = pair_weights(scored).with_columns(_strong(settings).alias("strong"))
    # Carried pairs have the same weights in both runs: only the others are compared.
    scored_now, scored_before = changed_pairs(previous, scored, carried)
    now_changed, before = (pair_weights(frame).with_columns(_strong(settings).alias("strong"))
                           for frame in (scored_now, scored_before))
    edges = now.filter("strong").join(index.rename({"id": "left_id", "row": "a"}), on="left_id").join(
        index.rename({"id": "right_id", "row": "b"}), on="right_id")
    comp = components(attrs.height, edges["a"].cast(pl.Int64).to_numpy(), edges["b"].cast(pl.Int64).to_numpy())
    index = index.with_columns(pl.Series("comp", comp))
    diff = join_pairs(now_changed, before, "full", coalesce=True, suffix="_prev")
    moved = diff.filter(pl.col("w_dup").ne_missing(pl.col("w_dup_prev"))
                        | pl.col("w_fam").ne_missing(pl.col("w_fam_prev")))
    moved = (
        moved.join(index.select(pl.col("id").alias("left_id"), pl.col("comp").alias("ca")), on="left_id", how="left")
        .join(index.select(pl.col("id").alias("right_id"), pl.col("comp").alias("cb")), on="right_id", how="left")
        .with_columns((pl.col("strong").fill_null(False) | pl.col("strong_prev").fill_null(False)
                       | pl.col("ca").eq(pl.col("cb")).fill_null(False)
                       # a deleted record may have weighed in its group's linkage through a weak pair
                       | pl.col("left_id").is_in(delta.deleted.implode())
                       | pl.col("right_id").is_in(delta.deleted.implode())
                       ).alias("joins"))
    )
    ends = moved.select(pl.concat_list("left_id", "right_id").alias("id"), "joins").explode("id")
    alone = previous.records.filter(pl.len().over("duplicate_group_id") == 1).select("id")
    seeds = pl.concat([delta.touched, ends.filter("joins")["id"]]).unique()
    seed_comps = index.join(seeds.to_frame("id"), on="id", how="semi")["comp"].to_numpy()
    affected = attrs["id"].filter(pl.Series(np.isin(comp, seed_comps)))
    lonely = ends.join(alone, on="id", how="semi").join(affected.to_frame("id"), on="id", how="anti")["id"].unique()
    return affected, lonely


def recluster(attrs: pl.DataFrame, scored: pl.DataFrame, previous: Previous, delta: Delta,
              settings: ClusterSettings, carried: Carried | None) -> tuple[pl.DataFrame, int]:
    """``cluster_records`` output for the whole catalog, clustering only the affected components again;
    the others keep the previous run's clusters (same members, same pairs, so the same result)."""
    affected, lonely = affected_records(attrs, scored, previous, delta, settings, carried)
    affected = affected.to_frame("id")
    ids = affected["id"].implode()
    # Affected components are whole, so a pair with one end outside is weak: it joins nothing (average
    # linkage of weights below the thresholds stays below them) and weighs only in the confidence of a
    # record alone in its group, which is taken over all of the record's pairs below.
    local = cluster_records(attrs.join(affected, on="id", how="semi"),
                            scored.filter(pl.col("left_id").is_in(ids) & pl.col("right_id").is_in(ids)),
                            settings, progress=False)
    alone = local.filter(pl.len().over("group_key") == 1)["id"]
    kept = _previous_clusters(previous, attrs.join(affected, on="id", how="anti").select("id"), attrs.height)
    confidence = _lonely_confidence(scored, pl.concat([alone, lonely]))
    local, kept = local.update(confidence, on="id"), kept.update(confidence, on="id")
    clusters = attrs.select("id").join(pl.concat([local, kept], how="vertical_relaxed"), on="id", how="left",
                                       maintain_order="left")
    return clusters.select(local.columns), affected.height


def _lonely_confidence(scored: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    """Confidence of records alone in their group (``lone_confidence`` of their best duplicate probability)."""
    near = pl.col("left_id").is_in(ids.implode()) | pl.col("right_id").is_in(ids.implode())
    weights = pair_weights(scored.filter(near))
    ends = pl.concat([weights.select(pl.col("left_id").alias("id"), "w_dup"),
                      weights.select(pl.col("right_id").alias("id"), "w_dup")])
    best = ids.to_frame("id").join(ends, on="id", how="left").group_by("id").agg(pl.col("w_dup").max().fill_null(0.0))
    return best.select("id", pl.Series("confidence", np.round(lone_confidence(best["w_dup"].to_numpy()), 6)))


def _previous_clusters(previous: Previous, ids: pl.DataFrame, offset: int) -> pl.DataFrame:
    """The previous clusters of ``ids`` as run-local keys (above any fresh key) with their confidences."""
    groups = pl.read_parquet(previous.folder / "groups.parquet").select(
        "duplicate_group_id", pl.col("weakest_link").alias("group_weakest_link"), "family_weakest_link")
    prev = ids.join(previous.records.select("id", "duplicate_group_id", "variant_family_id", "confidence"), on="id")
    return prev.join(groups, on="duplicate_group_id", how="left").select(
        "id",
        (pl.col("duplicate_group_id").rank("dense").cast(pl.Int64) + offset).alias("group_key"),
        (pl.col("variant_family_id").rank("dense").cast(pl.Int64) + offset).alias("family_key"),
        "confidence", "group_weakest_link", "family_weakest_link",
    )
