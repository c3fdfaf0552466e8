"""Two-level clustering of scored pairs: duplicate groups nested inside variant families.

Both levels run the same constrained average-linkage agglomeration. Two clusters merge only while
the mean probability over *all* their cross pairs stays at or above the level's threshold; a pair
blocking never proposed counts as a low ``unscored_weight`` (with a per-level share), so one strong
edge cannot chain two product lines together. Duplicate groups never join records whose values in
a conflict attribute (colour, size, capacity by default) are both known and disjoint, unless the
matcher itself vouched for that pair (``conflict_override``); neither level spans two known brands
unless the merge's linkage reaches ``cross_brand_threshold``. Families are built from whole
duplicate groups, so every group lies inside one family.

Most connected components are cliques of good edges whose merge order cannot matter; those are
resolved with numpy. Only the rest go through the heap-driven loop.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from rich.progress import Progress

from features.attributes import comparable_sizes
from features.records import CatalogError
from matching.settings import ClusterSettings

log = logging.getLogger(__name__)

SCORED_SOURCE = "<scored pairs>"
ATTRS_SOURCE = "<attribute frame>"
# Linkages are rounded before comparison so that float summation order cannot change a decision.
_DIGITS = 9

Profile = tuple[frozenset, ...]


@dataclass
class _NodePairs:
    """Aggregated evidence between nodes (records or duplicate groups), one row per unordered pair."""

    a: np.ndarray  # int64, a < b
    b: np.ndarray
    weight_sum: np.ndarray  # float64: sum of pair probabilities over scored record pairs
    count: np.ndarray  # int64: number of scored record pairs


def pair_weights(scored: pl.DataFrame) -> pl.DataFrame:
    """Return left_id, right_id, w_dup (duplicate evidence) and w_fam (same-family evidence) per scored pair."""
    for col in ("left_id", "right_id"):
        if col not in scored.columns:
            raise CatalogError(SCORED_SOURCE, "column is missing", column=col)
    if "p_duplicate" in scored.columns:
        dup = pl.col("p_duplicate")
        fam = (pl.col("p_duplicate") + pl.col("p_variant")).clip(0.0, 1.0) if "p_variant" in scored.columns else dup
    elif "p_match" in scored.columns:
        # Binary models cannot tell variants from duplicates, so families fall back to the same evidence.
        dup = fam = pl.col("p_match")
    else:
        raise CatalogError(SCORED_SOURCE, "needs p_duplicate (multiclass) or p_match (binary)", column="p_duplicate")
    return scored.select(
        "left_id", "right_id",
        dup.cast(pl.Float64).fill_null(0.0).alias("w_dup"),
        fam.cast(pl.Float64).fill_null(0.0).alias("w_fam"),
    )


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label each of ``n`` nodes with the smallest node index in its connected component."""
    parent = np.arange(n, dtype=np.int64)
    while True:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            return parent
        lo, hi = np.minimum(ra[differ], rb[differ]), np.maximum(ra[differ], rb[differ])
        # Hook roots onto smaller roots only, so no cycle can form; then jump pointers to the roots.
        np.minimum.at(parent, hi, lo)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


@dataclass(frozen=True)
class _Linkage:
    """Mean evidence between two clusters; each unproposed cross pair counts ``share`` of a pair of ``value``."""

    threshold: float
    value: float
    share: float

    def of(self, weight_sum: float | np.ndarray, count: float | np.ndarray, total: float | np.ndarray):
        """Linkage from the scored sum and count and the number of all cross pairs."""
        missing = (total - count) * self.share
        return (weight_sum + missing * self.value) / (count + missing)

    def vector(self, pairs: _NodePairs, sizes: np.ndarray) -> np.ndarray:
        """Linkage of every node pair."""
        total = sizes[pairs.a].astype(np.float64) * sizes[pairs.b]
        return np.round(self.of(pairs.weight_sum, pairs.count, total), _DIGITS)


def _conflicts(x: frozenset, y: frozenset) -> bool:
    """True when some known value set of one side is disjoint from one of the other side."""
    return any(p.isdisjoint(q) for p in x for q in y)


def _merge_hard(
    sizes: np.ndarray, pairs: _NodePairs, profiles: list[Profile], n_hard: int, exempt: set[tuple[int, int]],
    rule: _Linkage, cross_brand: float,
) -> np.ndarray:
    """Greedy average-linkage agglomeration with constraints; return each node's smallest member index.

    A first pass never crosses brands, so a product line settles before a second pass may join
    clusters of different brands on overwhelming linkage; otherwise one mislabelled record could
    pull a cluster into a brand mix that then refuses its own product line.
    """
    m = len(sizes)
    size = sizes.tolist()
    parent = list(range(m))
    neighbours: list[dict[int, tuple[float, int]]] = [{} for _ in range(m)]
    for x, y, s, c in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.weight_sum.tolist(), pairs.count.tolist()):
        neighbours[x][y] = neighbours[y][x] = (s, c)

    own = list(profiles)
    members = [[i] for i in range(m)]

    def conflicting(x: int, y: int) -> bool:
        px, py = profiles[x], profiles[y]
        if not any(_conflicts(px[i], py[i]) for i in range(n_hard)):
            return False
        # Only pairs the matcher vouched for despite their attributes may sit in one group.
        return not exempt or any(
            (min(u, v), max(u, v)) not in exempt and any(_conflicts(own[u][i], own[v][i]) for i in range(n_hard))
            for u in members[x] for v in members[y]
        )

    def linkage(x: int, z: int) -> float:
        s, c = neighbours[x][z]
        return round(rule.of(s, c, size[x] * size[z]), _DIGITS)

    for brand_floor in (math.inf, cross_brand):
        # Only a brand-crossing merge can start the second pass, and it needs the brand floor.
        seed = rule.threshold if brand_floor == math.inf else max(rule.threshold, cross_brand)
        heap = [(-w, x, z, size[x], size[z]) for x in range(m) if parent[x] == x
                for z in neighbours[x] if x < z and (w := linkage(x, z)) >= seed]
        heapq.heapify(heap)
        while heap:
            neg, x, y, sx, sy = heapq.heappop(heap)
            # An entry is stale once either side has merged (sizes only grow) or been absorbed.
            if parent[x] != x or parent[y] != y or size[x] != sx or size[y] != sy:
                continue
            if conflicting(x, y):
                continue
            px, py = profiles[x], profiles[y]
            if -neg < brand_floor and _conflicts(px[n_hard], py[n_hard]):
                continue
            parent[y] = x
            size[x] += size[y]
            if len(members[x]) < len(members[y]):
                members[x], members[y] = members[y], members[x]
            members[x].extend(members[y])
            profiles[x] = tuple(p | q for p, q in zip(px, py))
            nx, ny = neighbours[x], neighbours[y]
            nx.pop(y, None)
            ny.pop(x, None)
            for z, (s, c) in ny.items():
                nz = neighbours[z]
                del nz[y]
                old = nx.get(z)
                nx[z] = nz[x] = (s + old[0], c + old[1]) if old else (s, c)
            neighbours[y] = {}
            for z in nx:
                if (w := linkage(x, z)) >= rule.threshold:
                    lo, hi = (x, z) if x < z else (z, x)
                    heapq.heappush(heap, (-w, lo, hi, size[lo], size[hi]))
    root = np.empty(m, dtype=np.int64)
    for i in range(m):
        root[i] = i if parent[i] == i else root[parent[i]]
    return root


def _agglomerate(
    sizes: np.ndarray, pairs: _NodePairs, hard_conflict: np.ndarray, exempt: np.ndarray, brand_conflict: np.ndarray,
    profiles_of: Callable[[np.ndarray], list[Profile]], n_hard: int, rule: _Linkage, cross_brand: float,
) -> np.ndarray:
    """Cluster nodes; return for each node the smallest node index of its cluster.

    ``hard_conflict`` marks pairs that may never share a cluster; ``exempt`` marks pairs whose
    attributes disagree but whose own probability overrides that.
    """
    n = len(sizes)
    candidate = (rule.vector(pairs, sizes) >= rule.threshold) & ~hard_conflict
    good = candidate & ~brand_conflict
    comp = components(n, pairs.a[candidate], pairs.b[candidate])
    members = np.bincount(comp, minlength=n)
    good_edges = np.bincount(comp[pairs.a[good]], minlength=n)
    # A component whose every internal pair is a good edge merges whole whatever the order.
    easy = good_edges == members * (members - 1) // 2
    hard_nodes = np.flatnonzero(~easy[comp])
    labels = comp.copy()
    if hard_nodes.size:
        local = np.full(n, -1, dtype=np.int64)
        local[hard_nodes] = np.arange(hard_nodes.size)
        inside = (local[pairs.a] >= 0) & (comp[pairs.a] == comp[pairs.b])
        sub = _NodePairs(local[pairs.a[inside]], local[pairs.b[inside]], pairs.weight_sum[inside], pairs.count[inside])
        waived = inside & exempt
        started = time.perf_counter()
        roots = _merge_hard(sizes[hard_nodes], sub, profiles_of(hard_nodes), n_hard,
                            set(zip(local[pairs.a[waived]].tolist(), local[pairs.b[waived]].tolist())),
                            rule, cross_brand)
        labels[hard_nodes] = hard_nodes[roots]
        log.info("clustered %d nodes in contested components over %d pairs in %.1f s",
                 hard_nodes.size, int(inside.sum()), time.perf_counter() - started)
    return labels


def _record_edges(attrs: pl.DataFrame, scored: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Map scored pairs onto sorted record indices (a < b), keeping the strongest of repeated pairs."""
    index = attrs.select(pl.col("id"), pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"))
    weights = pair_weights(scored)
    mapped = (
        weights.join(index.rename({"id": "left_id", "_i": "_l"}), on="left_id", how="left")
        .join(index.rename({"id": "right_id", "_i": "_r"}), on="right_id", how="left")
    )
    missing = mapped.filter(pl.col("_l").is_null() | pl.col("_r").is_null())
    if missing.height:
        row = missing.row(0, named=True)
        side = "left_id" if row["_l"] is None else "right_id"
        raise CatalogError(SCORED_SOURCE, f"id {row[side]!r} is not in the records", column=side)
    pairs = mapped.filter(pl.col("_l") != pl.col("_r"))
    left, right = pairs["_l"].to_numpy(), pairs["_r"].to_numpy()
    a, b = np.minimum(left, right), np.maximum(left, right)
    order = np.argsort(a * len(attrs) + b, kind="stable")
    a, b = a[order], b[order]
    w_dup, w_fam = pairs["w_dup"].to_numpy()[order], pairs["w_fam"].to_numpy()[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    if not first.all():
        starts = np.flatnonzero(first)
        a, b = a[starts], b[starts]
        w_dup, w_fam = np.maximum.reduceat(w_dup, starts), np.maximum.reduceat(w_fam, starts)
    return a, b, w_dup, w_fam


def _list_conflicts(attrs: pl.DataFrame, columns: list[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each record pair, whether any listed attribute is known on both sides with no value in common."""
    out = np.zeros(len(a), dtype=bool)
    for col in columns:
        pair = pl.DataFrame({"l": attrs[col].gather(a), "r": attrs[col].gather(b)})
        hit = pair.select(
            (pl.col("l").list.len() > 0) & (pl.col("r").list.len() > 0)
            & (pl.col("l").list.set_intersection(pl.col("r")).list.len() == 0)
        ).to_series().fill_null(False)
        out |= hit.to_numpy()
    return out


def _brand_summary(codes: np.ndarray, node: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per node: how many distinct known brands its records carry, and the smallest brand code."""
    known = codes >= 0
    pairs = np.unique(np.stack([node[known], codes[known]]), axis=1)
    count = np.bincount(pairs[0], minlength=n_nodes)
    first = np.full(n_nodes, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, pairs[0], pairs[1])
    return count, first


def _brand_conflicts(count: np.ndarray, first: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = (count[a] > 0) & (count[b] > 0)
    return both & ((count[a] > 1) | (count[b] > 1) | (first[a] != first[b]))


def _record_profiles(recs: pl.DataFrame, columns: list[str], brands: np.ndarray, nodes: np.ndarray) -> list[Profile]:
    """Per record: for each conflict column and then the brand, the set of its known value sets."""
    def sets(values: list) -> list[frozenset]:
        return [frozenset((frozenset(v),)) if v else frozenset() for v in values]

    per_column = [sets(recs[c].gather(nodes).to_list()) for c in columns]
    per_column.append(sets([(c,) if c >= 0 else () for c in brands[nodes].tolist()]))
    return list(zip(*per_column))


def _group_profiles(node: np.ndarray, brands: np.ndarray, nodes: np.ndarray) -> list[Profile]:
    """Per duplicate group: the set of its members' known brands, each as a one-value set."""
    chosen = np.isin(node, nodes) & (brands >= 0)
    found: dict[int, set] = {k: set() for k in nodes.tolist()}
    for k, c in zip(node[chosen].tolist(), brands[chosen].tolist()):
        found[k].add(frozenset((c,)))
    return [(frozenset(found[k]),) for k in nodes.tolist()]


def _check_attrs(attrs: pl.DataFrame, settings: ClusterSettings) -> pl.DataFrame:
    for col in ("id", "attr_brand", *settings.conflict_attributes):
        if col not in attrs.columns:
            raise CatalogError(ATTRS_SOURCE, "column is missing", column=col)
    for col in settings.conflict_attributes:
        if not isinstance(attrs.schema[col], pl.List):
            raise CatalogError(ATTRS_SOURCE, f"must be a list column, not {attrs.schema[col]}", column=col)
    if attrs["id"].is_duplicated().any():
        raise CatalogError(ATTRS_SOURCE, "ids are not unique", column="id")
    if "attr_sizes" in settings.conflict_attributes:
        # Sizes in one system, so "US 12" and "EU 44" of one product are no conflict.
        attrs = attrs.with_columns(comparable_sizes(attrs).alias("attr_sizes"))
    return attrs.select("id", "attr_brand", *settings.conflict_attributes).sort("id")


def lone_confidence(best_duplicate: np.ndarray) -> np.ndarray:
    """Confidence of a record alone in its group: how sure the model is that none of its pairs is a duplicate."""
    return 1.0 - best_duplicate


def _summaries(
    frame: pl.DataFrame, a: np.ndarray, b: np.ndarray, w_dup: np.ndarray, w_fam: np.ndarray,
) -> pl.DataFrame:
    """Per record: membership confidence and the weakest internal pair of its group and family."""
    n = frame.height
    g, f = frame["group_key"].to_numpy(), frame["family_key"].to_numpy()
    same_group = g[a] == g[b]
    same_family = f[a] == f[b]
    ends = np.concatenate([a, b])
    dup2 = np.concatenate([w_dup, w_dup])
    inside2 = np.concatenate([same_group, same_group])
    inner_sum = np.bincount(ends[inside2], weights=dup2[inside2], minlength=n)
    inner_cnt = np.bincount(ends[inside2], minlength=n)
    best_out = np.zeros(n)
    np.maximum.at(best_out, ends, dup2)
    confidence = np.where(inner_cnt > 0, inner_sum / np.maximum(inner_cnt, 1), lone_confidence(best_out))
    group_min = np.full(n, np.inf)
    np.minimum.at(group_min, g[a[same_group]], w_dup[same_group])
    family_min = np.full(n, np.inf)
    np.minimum.at(family_min, f[a[same_family]], w_fam[same_family])
    gw, fw = group_min[g], family_min[f]
    return frame.with_columns(
        pl.Series("confidence", np.round(confidence, 6)),
        pl.Series("group_weakest_link", np.where(np.isinf(gw), np.nan, gw)).fill_nan(None),
        pl.Series("family_weakest_link", np.where(np.isinf(fw), np.nan, fw)).fill_nan(None),
    )


def _duplicate_groups(
    recs: pl.DataFrame, a: np.ndarray, b: np.ndarray, w_dup: np.ndarray, brands: np.ndarray, settings: ClusterSettings,
) -> np.ndarray:
    """Each record's duplicate group, as the group's smallest record index."""
    n = recs.height
    conflict = np.zeros(len(a), dtype=bool)
    near = w_dup >= settings.duplicate_threshold
    conflict[near] = _list_conflicts(recs, settings.conflict_attributes, a[near], b[near])
    exempt = conflict & (w_dup >= settings.conflict_override)
    brand_count, first_brand = _brand_summary(brands, np.arange(n), n)
    return _agglomerate(
        np.ones(n, dtype=np.int64), _NodePairs(a, b, w_dup, np.ones(len(a), dtype=np.int64)),
        conflict & ~exempt, exempt, _brand_conflicts(brand_count, first_brand, a, b),
        lambda nodes: _record_profiles(recs, settings.conflict_attributes, brands, nodes),
        len(settings.conflict_attributes),
        _Linkage(settings.duplicate_threshold, settings.unscored_weight, settings.duplicate_unscored_share),
        settings.cross_brand_threshold,
    )


def _families(
    group: np.ndarray, a: np.ndarray, b: np.ndarray, w_fam: np.ndarray, brands: np.ndarray, settings: ClusterSettings,
) -> np.ndarray:
    """Each record's variant family, built from whole duplicate groups, as the family's smallest record index."""
    keys, node = np.unique(group, return_inverse=True)
    g = len(keys)
    ga, gb = node[a], node[b]
    across = ga != gb
    lo, hi = np.minimum(ga[across], gb[across]), np.maximum(ga[across], gb[across])
    pair_key, inverse = np.unique(lo * g + hi, return_inverse=True)
    group_pairs = _NodePairs(
        pair_key // g, pair_key % g,
        np.bincount(inverse, weights=w_fam[across], minlength=len(pair_key)),
        np.bincount(inverse, minlength=len(pair_key)).astype(np.int64),
    )
    brand_count, first_brand = _brand_summary(brands, node, g)
    family_node = _agglomerate(
        np.bincount(node, minlength=g), group_pairs,
        np.zeros(len(pair_key), dtype=bool), np.zeros(len(pair_key), dtype=bool),
        _brand_conflicts(brand_count, first_brand, group_pairs.a, group_pairs.b),
        lambda nodes: _group_profiles(node, brands, nodes),
        0, _Linkage(settings.family_threshold, settings.unscored_weight, settings.family_unscored_share),
        settings.cross_brand_threshold,
    )
    return keys[family_node][node]


def cluster_records(
    attrs: pl.DataFrame, scored: pl.DataFrame, settings: ClusterSettings, progress: bool = True
) -> pl.DataFrame:
    """Assign every record a duplicate group and a variant family (keys local to this run).

    Returns id, group_key, family_key (Int64: the smallest sorted-id index of the cluster),
    confidence (membership confidence in [0, 1]), group_weakest_link and family_weakest_link
    (lowest pair probability inside the group / family, null for a lone record), in ``attrs`` order.
    """
    started = time.perf_counter()
    recs = _check_attrs(attrs, settings)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("clustering: pairs", total=4)
        a, b, w_dup, w_fam = _record_edges(recs, scored)
        brands = recs.select(pl.col("attr_brand").rank("dense").cast(pl.Int64).fill_null(-1)).to_series().to_numpy()
        bar.update(task, advance=1, description="clustering: duplicate groups")
        group = _duplicate_groups(recs, a, b, w_dup, brands, settings)
        bar.update(task, advance=1, description="clustering: variant families")
        family = _families(group, a, b, w_fam, brands, settings)
        bar.update(task, advance=1, description="clustering: confidence")
        frame = recs.select("id").with_columns(
            pl.Series("group_key", group, dtype=pl.Int64), pl.Series("family_key", family, dtype=pl.Int64),
        )
        frame = _summaries(frame, a, b, w_dup, w_fam)
        bar.advance(task)
    log.info("clustered %d records, %d pairs into %d groups and %d families in %.1f s", recs.height, len(a),
             len(np.unique(group)), len(np.unique(family)), time.perf_counter() - started)
    return attrs.select("id").join(frame, on="id", how="left", maintain_order="left")
