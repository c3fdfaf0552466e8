"""Stable cluster ids across runs and the lineage events that record merges, splits and retirements."""

from __future__ import annotations

import polars as pl
import pytest

from features.records import CatalogError
from matching.cluster import cluster_records
from matching.lineage import assign_stable_ids
from matching.settings import ClusterSettings

LIST = pl.List(pl.String)


def clusters(groups: list[str], families: list[str] | None = None) -> pl.DataFrame:
    """Clusters frame from space-separated member lists, e.g. ["a b", "c"]; families default to groups."""
    rows = []
    for key, members in enumerate(groups):
        for m in members.split():
            rows.append({"id": m, "group_key": key})
    frame = pl.DataFrame(rows, schema={"id": pl.String, "group_key": pl.Int64})
    family_of = {m: key for key, members in enumerate(families or groups) for m in members.split()}
    return frame.with_columns(
        pl.col("id").replace_strict(family_of, return_dtype=pl.Int64).alias("family_key"),
        pl.lit(0.9).alias("confidence"), pl.lit(0.8).alias("group_weakest_link"),
        pl.lit(0.7).alias("family_weakest_link"),
    )


def ids_of(records: pl.DataFrame, column: str = "duplicate_group_id") -> dict[str, str]:
    return dict(zip(records["id"].to_list(), records[column].to_list()))


def events(lineage: pl.DataFrame, level: str = "group") -> list[tuple[str, str | None, str | None]]:
    rows = lineage.filter(pl.col("level") == level)
    return sorted(zip(rows["event"], rows["id"], rows["previous_id"]), key=str)


def test_ids_are_opaque_deterministic_and_nested():
    records, groups, lineage = assign_stable_ids(clusters(["a b", "c", "d"], ["a b c", "d"]))
    again, _, _ = assign_stable_ids(clusters(["a b", "c", "d"], ["a b c", "d"]))
    assert records.equals(again)
    gid, fid = ids_of(records), ids_of(records, "variant_family_id")
    assert all(v.startswith("G-") and len(v) > 10 for v in gid.values())
    assert all(v.startswith("F-") for v in fid.values())
    assert gid["a"] == gid["b"] != gid["c"] and fid["a"] == fid["c"] != fid["d"]
    assert groups.sort("size")["size"].to_list() == [1, 1, 2]
    assert groups.filter(pl.col("duplicate_group_id") == gid["c"])["family_size"].item() == 3
    assert set(lineage["event"]) == {"new"} and lineage.height == 5


def test_same_clusters_with_previous_change_no_id():
    first, _, _ = assign_stable_ids(clusters(["a b", "c", "d e f"], ["a b c", "d e f"]))
    second, _, lineage = assign_stable_ids(clusters(["a b", "c", "d e f"], ["a b c", "d e f"]), first)
    assert second.equals(first)
    assert set(lineage["event"]) == {"kept"}
    assert (lineage["id"] == lineage["previous_id"]).all()


def test_merge_keeps_the_largest_previous_id():
    first, _, _ = assign_stable_ids(clusters(["a b", "c", "d"]))
    old = ids_of(first)
    second, _, lineage = assign_stable_ids(clusters(["a b c", "d"]), first)
    new = ids_of(second)
    assert new["a"] == new["b"] == new["c"] == old["a"]
    assert new["d"] == old["d"]
    assert events(lineage) == sorted([("kept", old["a"], old["a"]), ("merged", old["a"], old["c"]),
                                      ("kept", old["d"], old["d"])], key=str)


def test_split_keeps_id_on_largest_part_and_mints_for_the_rest():
    first, _, _ = assign_stable_ids(clusters(["a b c d", "e"]))
    old = ids_of(first)
    second, _, lineage = assign_stable_ids(clusters(["a b c", "d", "e"]), first)
    new = ids_of(second)
    assert new["a"] == new["b"] == new["c"] == old["a"]
    assert new["d"] not in set(old.values())
    assert events(lineage) == sorted([("kept", old["a"], old["a"]), ("split", new["d"], old["a"]),
                                      ("kept", old["e"], old["e"])], key=str)
    # An even split is broken by the smallest member id, the same way every time.
    halves, _, _ = assign_stable_ids(clusters(["c d", "a b", "e"]), first)
    assert ids_of(halves)["a"] == old["a"] != ids_of(halves)["c"]


def test_retired_and_new_clusters():
    first, _, _ = assign_stable_ids(clusters(["a b", "c"], ["a b c"]))
    old, old_family = ids_of(first), ids_of(first, "variant_family_id")
    second, _, lineage = assign_stable_ids(clusters(["a b", "x"], ["a b", "x"]), first)
    new = ids_of(second)
    assert new["a"] == old["a"]
    assert events(lineage) == sorted([("kept", old["a"], old["a"]), ("retired", None, old["c"]),
                                      ("new", new["x"], None)], key=str)
    assert ("kept", old_family["a"], old_family["a"]) in events(lineage, "family")
    retired = lineage.filter(pl.col("event") == "retired")
    assert retired["records"].to_list() == [1]


def test_minted_ids_never_reuse_an_id_in_the_previous_run():
    first, _, _ = assign_stable_ids(clusters(["a b", "c"]))
    # Feed back a previous run whose ids happen to equal what the new run would mint.
    fresh, _, _ = assign_stable_ids(clusters(["a", "b", "c"]))
    tricky = first.with_columns(
        pl.when(pl.col("id") == "c").then(pl.lit(ids_of(fresh)["b"])).otherwise(pl.col("duplicate_group_id"))
        .alias("duplicate_group_id")
    )
    second, _, _ = assign_stable_ids(clusters(["a", "b", "c"]), tricky)
    assert second["duplicate_group_id"].n_unique() == 3


def test_bad_previous_records_raise_catalog_error():
    with pytest.raises(CatalogError, match="variant_family_id"):
        assign_stable_ids(clusters(["a"]), pl.DataFrame({"id": ["a"], "duplicate_group_id": ["G-1"]}), "prev.parquet")
    dup = pl.DataFrame({"id": ["a", "a"], "duplicate_group_id": ["G-1", "G-2"], "variant_family_id": ["F", "F"]})
    with pytest.raises(CatalogError, match="row 2"):
        assign_stable_ids(clusters(["a"]), dup)


def catalog(n_products: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Products of two listings each, in families of three products; pairs within each family."""
    ids = [f"p{p:03d}-{k}" for p in range(n_products) for k in range(2)]
    attrs = pl.DataFrame(
        {"id": ids, "attr_brand": [f"b{i // 6}" for i in range(len(ids))]},
    ).with_columns(*(pl.lit([], dtype=LIST).alias(c) for c in ("attr_colors", "attr_sizes", "attr_capacity")))
    return attrs, family_pairs(ids)


def family_pairs(ids: list[str]) -> pl.DataFrame:
    rows = []
    for i, x in enumerate(ids):
        for y in ids[i + 1:]:
            same_product = x.split("-")[0] == y.split("-")[0]
            if int(x[1:4]) // 3 == int(y[1:4]) // 3:
                rows.append((x, y, 0.95 if same_product else 0.05, 0.03 if same_product else 0.9))
    return pl.DataFrame(rows, schema=["left_id", "right_id", "p_duplicate", "p_variant"], orient="row").with_columns(
        (1 - pl.col("p_duplicate") - pl.col("p_variant")).alias("p_distinct")
    )


def test_adding_one_percent_of_records_changes_only_the_clusters_it_touches():
    attrs, pairs = catalog(99)
    first, _, _ = assign_stable_ids(cluster_records(attrs, pairs, ClusterSettings()))
    assert first["duplicate_group_id"].n_unique() == 99 and first["variant_family_id"].n_unique() == 33
    # One more listing of product 5, one of product 7 with a wrong brand, one of a new product 99.
    added = ["p005-2", "p007-2", "p099-0"]
    grown_ids = attrs["id"].to_list() + added
    grown = pl.concat([attrs, attrs.head(3).with_columns(pl.Series("id", added),
                                                         pl.Series("attr_brand", ["b1", "b9", "b33"]))])
    second, _, lineage = assign_stable_ids(cluster_records(grown, family_pairs(grown_ids), ClusterSettings()), first)
    before = first.join(second, on="id", suffix="_now")
    assert before.height == first.height
    for col in ("duplicate_group_id", "variant_family_id"):
        assert (before[col] == before[f"{col}_now"]).all()
    now = ids_of(second)
    assert now["p005-2"] == now["p005-0"]
    assert now["p099-0"] not in set(first["duplicate_group_id"])
    assert now["p007-2"] not in set(first["duplicate_group_id"])
    assert set(lineage["event"]) == {"kept", "new"}
    # The mislabelled listing stays out of both its product's group and family: new ids at each level.
    fresh = lineage.filter(pl.col("event") == "new")
    assert sorted(fresh["level"].to_list()) == ["family", "family", "group", "group"]
