"""FAISS nearest-neighbour candidates: exact inner product for small catalogs, IVF for large ones,
re-ranked with title similarity and colour/size agreement."""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import faiss
import numpy as np
import polars as pl
from faiss.contrib.clustering import two_level_clustering
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist
from rich.progress import Progress

from blocking.settings import BlockingSettings

QUERY_CHUNK = 20_000
# k-means needs a few dozen points per list; more only slows training.
TRAIN_POINTS_PER_LIST = 40
# Lists of ~80 vectors under an HNSW quantizer: finding the nearest lists costs ~log(lists), so the
# scan per query stays short as the catalog grows (a flat quantizer with 4 x sqrt(n) lists scans
# ~sqrt(n) vectors per query). On 1,000,000 generated listings, at the same neighbour recall (0.94),
# all neighbours took 152 s instead of 182 s (re-ranking included) for a 4 s slower build.
LIST_SIZE = 80
HNSW_LINKS = 32
# Lists probed at 1,250 lists (100,000 listings); recall at a fixed nprobe falls as lists get more
# numerous, and doubling nprobe per 10x lists kept it (100k: 0.975 at 24; 1M: 0.940 at 48).
BASE_NPROBE, BASE_LISTS = 24, 1_250


Lists = tuple[np.ndarray, np.ndarray]  # per vector: IVF lists to probe, nearest first, and their similarities


class BuiltIndex(NamedTuple):
    """An index over a set of vectors, a short description, and each indexed vector's IVF lists to probe
    (``coarse_lists``; None for an exact index), for searching the index with its own vectors."""

    index: faiss.Index
    kind: str
    lists: Lists | None


def build_index(vectors: np.ndarray, settings: BlockingSettings, seed: int = 0) -> BuiltIndex:
    """Index L2-normalised vectors for inner-product search."""
    faiss.omp_set_num_threads(settings.threads or os.cpu_count() or 1)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if n <= settings.exact_max_records:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return BuiltIndex(index, "flat", None)
    nlist = max(1, n // LIST_SIZE)
    sample = np.random.default_rng(seed).choice(n, size=min(n, nlist * TRAIN_POINTS_PER_LIST), replace=False)
    train = vectors[np.sort(sample)]
    # Two-level k-means: sqrt(nlist) coarse clusters, each split further; a single k-means over
    # 12,500 lists would take minutes.
    centroids, _ = two_level_clustering(
        train, max(1, int(math.sqrt(nlist))), nlist, spherical=True, seed=seed, clustering_niter=10,
        min_points_per_centroid=1,
    )
    quantizer = faiss.IndexHNSWFlat(dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    quantizer.add(centroids)
    # 8-bit scalar quantisation: a quarter of the memory and ~2.5x faster scans than IVFFlat, for
    # ~1 point of neighbour recall (measured on 100,000 generated listings).
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.train(train)  # the quantizer holds its lists already: this trains the 8-bit codes only
    nprobe = tune_search(index, settings)
    lists = coarse_lists(index, vectors)
    # A vector's own list is the nearest its search probes: one quantizer search serves both, where
    # adding would search again (building and searching a million listings: 194.3 s before, 190.8 s).
    nearest = np.ascontiguousarray(lists[1][:, 0], dtype=np.int64)  # named: FAISS reads it through a raw pointer
    index.add_core(n, faiss.swig_ptr(vectors), None, faiss.swig_ptr(nearest))
    return BuiltIndex(index, f"ivf{nlist},hnsw,sq8,nprobe{nprobe}", lists)


def tune_search(index: faiss.Index, settings: BlockingSettings) -> int:
    """Set how many lists an IVF index probes (``ivf_nprobe``, or scaled with its lists); return it."""
    ivf = faiss.extract_index_ivf(index)
    nprobe = settings.ivf_nprobe or round(BASE_NPROBE * (ivf.nlist / BASE_LISTS) ** math.log10(2))
    ivf.nprobe = min(max(1, nprobe), ivf.nlist)
    quantizer = faiss.downcast_index(ivf.quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        # Assigning a vector to its list searches for one centroid; HNSW's default beam of 16 misses
        # the nearest too often.
        quantizer.hnsw.efSearch = 32
    return ivf.nprobe


class RerankAttrs:
    """Per-record values the re-ranking compares: normalised titles and colour/size bit sets."""

    def __init__(self, frame: pl.DataFrame):
        self.titles = frame["attr_title"].fill_null("").to_numpy().astype(object)
        self.colors = bitmask(frame["attr_colors"])
        self.sizes = bitmask(frame["attr_sizes"])


def bitmask(values: pl.Series) -> np.ndarray:
    """One 64-bit set per row (each value sets bit hash % 64), so list overlap is one AND per pair."""
    lengths = values.list.len().fill_null(0).to_numpy()
    rows = np.repeat(np.arange(len(values)), lengths)
    flat = values.explode(keep_nulls=False, empty_as_null=False)
    bits = np.left_shift(np.uint64(1), (flat.hash(seed=0).to_numpy() % 64).astype(np.uint64))
    mask = np.zeros(len(values), dtype=np.uint64)
    np.bitwise_or.at(mask, rows, bits)
    return mask


def conflicts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 where both sets are non-empty and disjoint (a colour or size that differs), else 0."""
    return ((a != 0) & (b != 0) & ((a & b) == 0)).astype(np.float32)


def best_k(query: np.ndarray, hit: np.ndarray, sim: np.ndarray, query_attrs: RerankAttrs,
           indexed_attrs: RerankAttrs, settings: BlockingSettings) -> pl.DataFrame:
    """Each query's ``k`` best hits (``query``, ``hit``, ``sim``; best first) by embedding similarity, plus
    ``lexical_weight`` x title token-set similarity, minus ``variant_penalty`` per conflicting colour or size set."""
    lexical = cpdist(
        query_attrs.titles[query], indexed_attrs.titles[hit], scorer=fuzz.token_set_ratio, workers=-1, dtype=np.float32
    )
    penalty = conflicts(query_attrs.colors[query], indexed_attrs.colors[hit]) + conflicts(
        query_attrs.sizes[query], indexed_attrs.sizes[hit]
    )
    score = sim + settings.lexical_weight * lexical / 100 - settings.variant_penalty * penalty
    # Ties broken by row so the result does not depend on FAISS's order.
    return (
        pl.DataFrame({"query": query, "hit": hit, "sim": sim, "score": score})
        .sort(["query", "score", "hit"], descending=[False, True, False])
        .group_by("query", maintain_order=True)
        .head(settings.k)
        .select("query", "hit", "sim")
    )


class Neighbours(NamedTuple):
    """Each query's best indexed rows, and the similarity at the edge of each query's search pool."""

    pairs: pl.DataFrame  # query, hit, sim; by query, best first
    bounds: np.ndarray  # float32 per query; -inf where the pool was not full


def coarse_lists(ivf: faiss.IndexIVF, queries: np.ndarray) -> Lists:
    """Each query's IVF lists to probe, nearest first (int32), with their similarities."""
    sims = np.empty((len(queries), ivf.nprobe), dtype=np.float32)
    lists = np.empty((len(queries), ivf.nprobe), dtype=np.int32)
    for start in range(0, len(queries), QUERY_CHUNK):
        chunk = np.ascontiguousarray(queries[start:start + QUERY_CHUNK])
        sims[start:start + len(chunk)], lists[start:start + len(chunk)] = ivf.quantizer.search(chunk, ivf.nprobe)
    return sims, lists


def search_order(coarse: Lists | None, n: int) -> np.ndarray:
    """Query rows grouped by their nearest IVF list (catalog order for an exact index).

    Consecutive queries then probe mostly the same lists, which stay in the CPU cache: on a million
    listings a third less search time, for the same results.
    """
    if coarse is None:
        return np.arange(n)
    return np.argsort(coarse[1][:, 0], kind="stable")


def preassigned_search(ivf: faiss.IndexIVF, queries: np.ndarray, k: int, lists: np.ndarray,
                       list_sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``k`` best of each query's given lists, on all FAISS threads."""
    # Mode 0 threads only inside search(); mode 3 spreads search_preassigned too, but range_search
    # refuses it, so it is set for this call alone.
    mode, ivf.parallel_mode = ivf.parallel_mode, 3
    try:
        return ivf.search_preassigned(queries, k, lists.astype(np.int64), list_sims)
    finally:
        ivf.parallel_mode = mode


def neighbours(
    index: faiss.Index,
    queries: np.ndarray,
    query_attrs: RerankAttrs,
    indexed_attrs: RerankAttrs,
    settings: BlockingSettings,
    skip_self: bool,
    progress: bool = True,
    lists: Lists | None = None,
) -> Neighbours:
    """Each query's ``k`` best indexed rows (``query``, ``hit``, ``sim``) and its pool boundary
    (``lists``: the queries' IVF lists to probe, if already found).

    A pool of ``ann_pool`` nearest by embedding is re-ranked by ``best_k``, so that a listing's
    duplicates come before its many same-family variants.
    """
    pool = min(max(settings.ann_pool, settings.k) + skip_self, index.ntotal)
    ivf = faiss.try_extract_index_ivf(index)
    coarse = None if ivf is None else lists if lists is not None else coarse_lists(ivf, queries)
    order = search_order(coarse, len(queries))
    bounds = np.full(len(queries), -np.inf, dtype=np.float32)
    chunks = []
    with Progress(disable=not progress or len(queries) <= QUERY_CHUNK) as bar:
        task = bar.add_task("nearest neighbours", total=len(queries))
        for start in range(0, len(queries), QUERY_CHUNK):
            rows_q = order[start:start + QUERY_CHUNK]
            batch = np.ascontiguousarray(queries[rows_q])
            if coarse is None:
                sims, rows = index.search(batch, pool)
            else:
                # The lists were found once for the ordering; searching them again would double the
                # quantizer's cost.
                sims, rows = preassigned_search(ivf, batch, pool, coarse[1][rows_q], coarse[0][rows_q])
            bounds[rows_q] = np.where(rows[:, -1] < 0, -np.inf, sims[:, -1])
            query = np.repeat(rows_q.astype(np.int64), pool)
            hit, sim = rows.ravel(), sims.ravel()
            keep = (hit >= 0) & (sim >= settings.min_similarity)
            if skip_self:
                keep &= query != hit
            query, hit, sim = query[keep], hit[keep], sim[keep]
            chunks.append(best_k(query, hit, sim, query_attrs, indexed_attrs, settings))
            bar.advance(task, len(sims))
    # Chunks follow the search order; a stable sort puts queries back in catalog order, each best first.
    return Neighbours(pl.concat(chunks).sort("query", maintain_order=True), bounds)


def ann_pairs(
    left_emb: np.ndarray,
    left: pl.DataFrame,
    settings: BlockingSettings,
    right_emb: np.ndarray | None = None,
    right: pl.DataFrame | None = None,
    progress: bool = True,
) -> tuple[pl.DataFrame, str]:
    """Return candidate row pairs (``left``, ``right``, ``sim``) and a description of the index.

    ``left``/``right`` are the attribute frames (for re-ranking). One catalog (``right_emb`` None): each
    record's ``k`` best other records. Two sources: each left record's ``k`` best right records, and each
    right record's ``k`` best left records.
    """
    left_emb = np.ascontiguousarray(left_emb, dtype=np.float32)
    left_index, kind, left_lists = build_index(left_emb, settings)
    left_attrs = RerankAttrs(left)
    if right_emb is None:
        found = neighbours(left_index, left_emb, left_attrs, left_attrs, settings, True, progress, left_lists).pairs
        return found.rename({"query": "left", "hit": "right"}), kind
    right_emb = np.ascontiguousarray(right_emb, dtype=np.float32)
    right_index, right_kind, _ = build_index(right_emb, settings)
    right_attrs = RerankAttrs(right)
    forward = neighbours(right_index, left_emb, left_attrs, right_attrs, settings, False, progress).pairs
    backward = neighbours(left_index, right_emb, right_attrs, left_attrs, settings, False, progress).pairs
    pairs = pl.concat([
        forward.rename({"query": "left", "hit": "right"}),
        backward.select(pl.col("hit").alias("left"), pl.col("query").alias("right"), "sim"),
    ])
    return pairs.unique(["left", "right"], keep="first"), f"{right_kind} / {kind}"
