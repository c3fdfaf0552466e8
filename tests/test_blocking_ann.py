"""FAISS neighbours: exact and IVF indexes, self-join and two-source search, re-ranking."""

from __future__ import annotations

import faiss
import numpy as np
import polars as pl

from blocking.ann import RerankAttrs, ann_pairs, build_index, coarse_lists, neighbours, search_order
from blocking.settings import BlockingSettings


def frame(titles: list[str], colors: list[list[str]] | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {"attr_title": titles, "attr_colors": colors or [[] for _ in titles], "attr_sizes": [[] for _ in titles]},
        schema={"attr_title": pl.String, "attr_colors": pl.List(pl.String), "attr_sizes": pl.List(pl.String)},
    )


def clustered(n_clusters: int, per: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Tight clusters of unit vectors: rows i*per..(i+1)*per-1 belong together."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    v = np.repeat(centres, per, axis=0) + 0.05 * rng.normal(size=(n_clusters * per, dim))
    v = v.astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_ivf_index_above_the_threshold_keeps_recall():
    emb = clustered(200, 3)
    titles = frame([""] * len(emb))
    settings = BlockingSettings(k=2, exact_max_records=100, min_similarity=0.5)
    assert build_index(emb, settings)[1].startswith("ivf")
    pairs, kind = ann_pairs(emb, titles, settings)
    assert kind.startswith("ivf")
    assert (pairs["left"] != pairs["right"]).all()
    same_cluster = (pairs["left"] // 3 == pairs["right"] // 3).mean()
    assert same_cluster > 0.95
    exact, kind = ann_pairs(emb, titles, settings.model_copy(update={"exact_max_records": 10_000}))
    assert kind == "flat"
    assert (exact["left"] // 3 == exact["right"] // 3).all()


def test_two_sources_search_both_ways():
    left = clustered(5, 1, seed=1)
    right = np.vstack([left[:3], clustered(4, 1, seed=2)])  # right rows 0-2 copy left rows 0-2
    pairs, _ = ann_pairs(left, frame([""] * 5), BlockingSettings(k=1, min_similarity=0.9), right, frame([""] * 7))
    assert set(pairs.select("left", "right").rows()) == {(0, 0), (1, 1), (2, 2)}


def test_reranking_prefers_the_same_colour_and_title():
    # Row 0 has two equally near neighbours; the re-ranking keeps the one whose title and colour agree.
    emb = np.array([[1, 0, 0], [0.9, 0.436, 0], [0.9, 0, 0.436]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    attrs = frame(["zeta runner red", "zeta runner red", "zeta runner blue"], [["red"], ["red"], ["blue"]])
    pairs, _ = ann_pairs(emb, attrs, BlockingSettings(k=1))
    assert pairs.filter(pl.col("left") == 0)["right"].to_list() == [1]
    flipped = frame(["zeta runner red", "zeta runner blue", "zeta runner red"], [["red"], ["blue"], ["red"]])
    pairs, _ = ann_pairs(emb, flipped, BlockingSettings(k=1))
    assert pairs.filter(pl.col("left") == 0)["right"].to_list() == [2]


def test_ivf_search_order_groups_queries_and_keeps_each_querys_result():
    emb = clustered(200, 3)
    settings = BlockingSettings(k=2, ann_pool=4, exact_max_records=100, min_similarity=-1.0)
    index = build_index(emb, settings).index
    order = search_order(coarse_lists(faiss.extract_index_ivf(index), emb), len(emb))
    _, nearest = faiss.extract_index_ivf(index).quantizer.search(emb, 1)
    assert sorted(order) == list(range(len(emb))) and (np.diff(nearest[order, 0]) >= 0).all()
    assert not np.array_equal(order, np.arange(len(emb)))
    attrs = RerankAttrs(frame([""] * len(emb)))
    found, bounds = neighbours(index, emb, attrs, attrs, settings, False, progress=False)
    sims, rows = index.search(emb, 4)  # each query alone, in catalog order
    assert np.allclose(bounds, sims[:, -1])
    assert found["query"].is_sorted()
    best = found.group_by("query", maintain_order=True).agg(pl.col("hit"))["hit"].to_list()
    assert [set(b) for b in best] == [set(r[:2]) for r in rows]


def test_ivf_index_files_each_vector_under_the_first_list_its_own_search_probes():
    emb = clustered(200, 3)
    settings = BlockingSettings(k=2, ann_pool=4, exact_max_records=100, min_similarity=-1.0)
    built = build_index(emb, settings)
    ivf = faiss.extract_index_ivf(built.index)
    filed = np.full(len(emb), -1)
    for lst in range(ivf.nlist):
        if size := ivf.invlists.list_size(lst):
            filed[faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), size)] = lst
    assert ivf.ntotal == len(emb) and (filed == built.lists[1][:, 0]).all()
    _, nearest = ivf.quantizer.search(emb, 1)
    assert (filed == nearest[:, 0]).all()
    attrs = RerankAttrs(frame([""] * len(emb)))
    given = neighbours(built.index, emb, attrs, attrs, settings, False, False, built.lists)
    found = neighbours(built.index, emb, attrs, attrs, settings, False, False)
    assert given.pairs.equals(found.pairs) and np.array_equal(given.bounds, found.bounds)
