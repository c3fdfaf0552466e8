"""Incremental dedup runs equal full runs; deleted records retire their ids; chunking changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from prefect.testing.utilities import prefect_test_harness

from blocking.ann import build_index
from blocking.candidates import generate_candidates
from blocking.settings import BlockingSettings
from features.attributes import colour_brands, extract_attributes
from features.generate import generate_catalog
from features.io import write_table
from features.store import earlier_parts, scan_features
from flows import incremental
from blocking.embed import embed_records
from flows.scale import mutate_catalog
from flows.settings import DedupParams, PipelineSettings, RunnerSettings
from flows.training import train_from_files
from matching.settings import ClusterSettings, MatcherSettings

pytestmark = pytest.mark.slow
TABLES = ("records", "groups", "lineage", "pairs", "features", "attributes", "bests")


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("incremental")
    base = generate_catalog(700, seed=5)
    blocking = BlockingSettings(backend="static", cache_dir=root / "emb")
    model = root / "model"
    train_from_files(write_table(base, root / "train.csv"), model, MatcherSettings(num_boost_round=40, seed=0),
                     blocking)
    # The base catalog lacks a few listings the later one has, and the later one drops some others.
    later = mutate_catalog(base, 0.04, seed=9)
    groups = base.group_by("product_id").len().filter(pl.col("len") >= 2).sort("product_id")
    gone_product = groups["product_id"][0]
    later = later.filter((pl.col("product_id") != gone_product) & ~pl.col("id").is_in(["L0000040", "L0000041"]))
    return {"root": root, "model": model, "blocking": blocking, "base": write_table(base, root / "base.parquet"),
            "later": write_table(later, root / "later.parquet"), "gone_product": gone_product}


def run(ws: dict, catalog: Path, out: str, previous: Path | None = None, **settings) -> dict:
    from flows.dedup import run_dedup

    runner = RunnerSettings(pair_chunk_size=settings.pop("chunk", 500_000))
    p = DedupParams(catalog=catalog, out=ws["root"] / out, model=ws["model"], previous=previous,
                    settings=PipelineSettings(blocking=settings.pop("blocking", ws["blocking"]), runner=runner,
                                              stage_cache_dir=ws["root"] / f"stages-{out}", **settings))
    return run_dedup(p)


def table(folder: Path, name: str) -> pl.DataFrame:
    frame = scan_features(folder).collect() if name == "features" else pl.read_parquet(folder / f"{name}.parquet")
    keys = [c for c in ("left_id", "right_id", "id", "duplicate_group_id", "level", "event", "previous_id")
            if c in frame.columns]
    return frame.sort(keys, nulls_last=True)


def assert_same_run(a: Path, b: Path) -> None:
    for name in TABLES:
        # Neighbour similarities of re-searched records may differ in the last float bits.
        assert_frame_equal(table(a, name), table(b, name), check_exact=False, rel_tol=1e-5, abs_tol=1e-6)


def test_incremental_run_equals_full_run(harness, ws):
    run(ws, ws["base"], "base")
    inc = run(ws, ws["later"], "inc", previous=ws["root"] / "base")
    full = run(ws, ws["later"], "full", previous=ws["root"] / "base", incremental=False)
    assert_same_run(ws["root"] / "inc", ws["root"] / "full")
    # Files are written in a set row order, so two runs' files are the same, not just their rows.
    for name in ("records", "pairs", "bests"):
        assert pl.read_parquet(ws["root"] / "inc" / f"{name}.parquet").equals(
            pl.read_parquet(ws["root"] / "full" / f"{name}.parquet"))
    # The equality covers the second round too: two-hop pairs, some of them reused.
    pairs = table(ws["root"] / "inc", "pairs")
    assert pairs["blockers"].list.contains("two_hop").sum() > 0
    work = inc["incremental"]
    n = inc["counts"]["records"]
    assert work["reuse"] and not full["incremental"]["reuse"]
    assert work["records"]["new"] > 0 and work["records"]["changed"] > 0 and work["records"]["deleted"] > 0
    # The incremental run really did less: fewer searches, most pairs reused, few records reclustered.
    touched = work["records"]["new"] + work["records"]["changed"]
    assert touched <= work["blocking"]["ann_queries"] < n and full["incremental"]["blocking"]["ann_queries"] == n
    assert work["pairs_reused"] > work["pairs_scored"]
    assert work["records_reclustered"] < n
    assert not work["idf_refit"]
    # Reused features are read back in chunk-sized parts; several parts give the same run.
    chunked = run(ws, ws["later"], "inc-chunked", previous=ws["root"] / "base", chunk=work["pairs_reused"] // 3)
    assert chunked["incremental"]["pairs_reused"] == work["pairs_reused"]
    assert_same_run(ws["root"] / "inc-chunked", ws["root"] / "full")
    # The cheaper approximation searches no more than the exact rule, and still clusters every record.
    touched_only = run(ws, ws["later"], "touched", previous=ws["root"] / "base", neighbour_requery="touched")
    assert touched <= touched_only["incremental"]["blocking"]["ann_queries"] <= work["blocking"]["ann_queries"]
    assert table(ws["root"] / "touched", "records")["id"].equals(table(ws["root"] / "inc", "records")["id"])
    hashes = pl.read_parquet(ws["root"] / "inc" / "records.parquet")[incremental.HASH_COLUMN]
    assert hashes.null_count() == 0 and hashes.n_unique() > n * 0.9


def test_a_run_on_an_incremental_run_equals_a_full_run(harness, ws):
    """Feature rows carried over twice are read from the first run's file, linked into each later folder."""
    if not (ws["root"] / "inc").exists():
        run(ws, ws["base"], "base")
        run(ws, ws["later"], "inc", previous=ws["root"] / "base")
    latest = write_table(mutate_catalog(pl.read_parquet(ws["later"]), 0.04, seed=11), ws["root"] / "latest.parquet")
    again = run(ws, latest, "inc-again", previous=ws["root"] / "inc")
    run(ws, latest, "full-again", previous=ws["root"] / "inc", incremental=False)
    assert again["incremental"]["reuse"] and again["incremental"]["pairs_reused"] > again["incremental"]["pairs_scored"]
    parts = earlier_parts(ws["root"] / "inc-again")
    assert len(parts) == 2
    assert os.stat(parts[1]).st_ino == os.stat(ws["root"] / "base" / "features.parquet").st_ino
    assert_same_run(ws["root"] / "inc-again", ws["root"] / "full-again")


def test_deleted_records_retire_their_ids(harness, ws):
    if not (ws["root"] / "inc").exists():
        run(ws, ws["base"], "base")
        run(ws, ws["later"], "inc", previous=ws["root"] / "base")
    base = pl.read_parquet(ws["root"] / "base" / "records.parquet")
    truth = pl.read_parquet(ws["base"]).select("id", "product_id")
    gone = base.join(truth, on="id").filter(pl.col("product_id") == ws["gone_product"])
    # Only meaningful when the model had put the deleted product's listings in a group of their own.
    group_ids = base.filter(pl.col("duplicate_group_id").is_in(gone["duplicate_group_id"].implode()))
    lineage = pl.read_parquet(ws["root"] / "inc" / "lineage.parquet")
    retired = set(lineage.filter(pl.col("event") == "retired")["previous_id"].to_list())
    whole = group_ids.group_by("duplicate_group_id").agg(pl.col("id")).filter(
        pl.col("id").list.eval(pl.element().is_in(gone["id"].implode())).list.all())
    assert whole.height > 0
    assert set(whole["duplicate_group_id"].to_list()) <= retired
    now = pl.read_parquet(ws["root"] / "inc" / "records.parquet")
    assert not set(now["duplicate_group_id"].to_list()) & retired
    deleted = {*gone["id"].to_list(), "L0000040", "L0000041"}
    assert not deleted & set(now["id"].to_list())


def test_unchanged_records_keep_the_previous_attributes(harness, ws, tmp_path):
    """Attributes are read back for unchanged records and extracted for new and changed ones."""
    if not (ws["root"] / "base").exists():
        run(ws, ws["base"], "base")
    later = pl.read_parquet(ws["later"])
    previous = incremental.load_previous(ws["root"] / "base")
    delta = incremental.diff_records(incremental.content_hashes(later), previous)
    brands, refit = incremental.choose_brands(later, previous, delta, refit_fraction=0.1)
    assert not refit and brands == colour_brands(pl.read_parquet(ws["base"]))
    assert_frame_equal(incremental.record_attributes(later, brands, previous, delta), extract_attributes(later, brands))
    # A mark left in the previous run's attributes shows which records were read back, not extracted.
    unchanged, changed = later["id"][0], delta.changed[0]
    assert unchanged not in delta.touched
    folder = tmp_path / "previous"
    folder.mkdir()
    kept = pl.read_parquet(ws["root"] / "base" / incremental.ATTRIBUTES_FILE).with_columns(
        attr_title=pl.lit("marked"))
    write_table(kept, folder / incremental.ATTRIBUTES_FILE)
    got = incremental.record_attributes(later, brands, incremental.Previous(folder, previous.records), delta)
    titles = dict(zip(got["id"], got["attr_title"]))
    assert titles[unchanged] == "marked" and titles[changed] != "marked"
    assert got["id"].equals(later["id"])


def test_colour_brands_are_refitted_when_much_changed(harness, ws):
    if not (ws["root"] / "base").exists():
        run(ws, ws["base"], "base")
    previous = incremental.load_previous(ws["root"] / "base")
    later = pl.read_parquet(ws["later"]).with_columns(brand=pl.lit("Blue Mesa"))
    delta = incremental.diff_records(incremental.content_hashes(later), previous)
    brands, refit = incremental.choose_brands(later, previous, delta, refit_fraction=0.1)
    assert refit and brands == ["blue mesa"]


def test_patched_neighbour_lists_agree_with_a_fresh_search(harness, ws):
    """``touched``: unchanged records whose pool a new vector entered take it in without a search, and
    their lists come out as a search of the updated index would give them."""
    if not (ws["root"] / "base").exists():
        run(ws, ws["base"], "base")
    previous = incremental.load_previous(ws["root"] / "base")
    later = pl.read_parquet(ws["later"])
    delta = incremental.diff_records(incremental.content_hashes(later), previous)
    attrs = extract_attributes(later, colour_brands(pl.read_parquet(ws["base"])))
    emb = embed_records(attrs, ws["blocking"])
    index = build_index(emb, ws["blocking"]).index
    plan = incremental.plan_neighbours(index, attrs, emb, delta, previous.ann, emb[:0], ws["blocking"],
                                       previous.records.height, exact=False)
    assert plan.patched.height > 0 and len(plan.rows) < later.height
    rows = np.flatnonzero(attrs["id"].is_in(plan.patched["id"].implode()).to_numpy())
    fresh = incremental.query_neighbours(index, emb, attrs, rows, ws["blocking"], progress=False)
    both = plan.patched.join(fresh, on="id", suffix="_fresh")
    # New listings did enter unchanged records' lists.
    assert both["hits"].list.eval(pl.element().is_in(delta.new.implode())).list.any().sum() > 0
    same = both.select((pl.col("hits") == pl.col("hits_fresh")).mean()).item()
    overlap = both.select(pl.col("hits").list.set_intersection("hits_fresh").list.len().sum()
                          / pl.col("hits_fresh").list.len().sum()).item()
    print(f"patched {both.height}, identical lists {same:.3f}, neighbours in common {overlap:.3f}")
    assert same >= 0.9 and overlap >= 0.98


def test_chunked_scoring_equals_unchunked(harness, ws):
    run(ws, ws["base"], "chunked", chunk=1_000)
    run(ws, ws["base"], "whole", chunk=1_000_000)
    assert_same_run(ws["root"] / "chunked", ws["root"] / "whole")


def test_neighbour_candidates_match_blocking(ws):
    """The flow's own nearest-neighbour bookkeeping proposes exactly what blocking proposes."""
    attrs = extract_attributes(pl.read_parquet(ws["later"]).drop("product_id", "family_id"))
    emb = embed_records(attrs, ws["blocking"])
    expected, _ = generate_candidates(attrs, emb, ws["blocking"], progress=False)
    empty = incremental.diff_records(incremental.content_hashes(attrs), None)
    got = incremental.block_catalog(attrs, emb, ws["blocking"], None, empty, reuse=False, progress=False)
    assert_frame_equal(got.candidates, expected)


def test_refitted_vocabularies_stop_feature_reuse(harness, ws):
    """A refitted IDF changes every pair's features: an incremental run then scores all pairs again
    (it reused the previous run's rows before) and equals the full run."""
    if not (ws["root"] / "base").exists():
        run(ws, ws["base"], "base")
    inc = run(ws, ws["later"], "refit-inc", previous=ws["root"] / "base", idf_refit_fraction=0.0)
    run(ws, ws["later"], "refit-full", previous=ws["root"] / "base", idf_refit_fraction=0.0, incremental=False)
    work = inc["incremental"]
    assert work["reuse"] and work["idf_refit"] and work["colour_brands_refit"]
    assert work["pairs_reused"] == 0 and work["blocking"]["ann_queries"] == inc["counts"]["records"]
    assert_same_run(ws["root"] / "refit-inc", ws["root"] / "refit-full")


def test_changed_settings_stop_reuse(harness, ws):
    if not (ws["root"] / "base").exists():
        run(ws, ws["base"], "base")
    other = ClusterSettings(duplicate_threshold=0.6)
    info = run(ws, ws["later"], "other-settings", previous=ws["root"] / "base", cluster=other)
    assert not info["incremental"]["reuse"] and info["incremental"]["pairs_reused"] == 0


def test_incremental_run_updates_the_previous_ivf_index(harness, ws):
    """Above ``exact_max_records`` the previous run's IVF index is updated in place, searched again and
    proposes the full run's pairs up to IVF's approximation."""
    ivf = ws["blocking"].model_copy(update={"exact_max_records": 100})
    run(ws, ws["base"], "ivf-base", blocking=ivf)
    info = run(ws, ws["later"], "ivf-later", previous=ws["root"] / "ivf-base", blocking=ivf)
    run(ws, ws["later"], "ivf-full", previous=ws["root"] / "ivf-base", blocking=ivf, incremental=False)
    assert info["incremental"]["blocking"]["index"].endswith("(updated)")
    assert info["incremental"]["blocking"]["ann_queries"] > 0
    keys = ["left_id", "right_id"]
    updated, full = (table(ws["root"] / name, "pairs").select(keys) for name in ("ivf-later", "ivf-full"))
    assert updated.join(full, on=keys).height >= 0.95 * full.height


def test_only_pairs_whose_features_still_hold_are_carried_over(harness, ws):
    """A previous feature row is carried over only when both records are unchanged and the pair comes
    with the same blockers and neighbour similarity; it is found by its row in the previous file."""
    if not (ws["root"] / "base").exists():
        run(ws, ws["base"], "base")
    previous = incremental.load_previous(ws["root"] / "base")
    feats = pl.read_parquet(ws["root"] / "base" / "features.parquet")
    candidates = feats.select("left_id", "right_id", "blockers", pl.col("ann_cosine").alias("ann_sim"))
    touched_id = candidates["left_id"][0]
    others = ~pl.col("left_id").eq(touched_id) & ~pl.col("right_id").eq(touched_id)
    rows = candidates.with_row_index("row").filter(others)["row"].to_list()
    reblocked, moved_ann = rows[0], rows[1]
    at = pl.int_range(pl.len())
    candidates = candidates.with_columns(
        pl.when(at == reblocked).then(pl.lit(["two_hop"])).otherwise("blockers").alias("blockers"),
        pl.when(at == moved_ann).then(pl.lit(0.123, pl.Float32)).otherwise("ann_sim").alias("ann_sim"),
    )
    new_pair = pl.DataFrame({"left_id": ["N1"], "right_id": ["N2"], "blockers": [["model"]], "ann_sim": [None]},
                            schema=candidates.schema)
    candidates = pl.concat([new_pair, candidates])
    delta = incremental.Delta(pl.Series("id", [touched_id]), pl.Series("id", [], pl.String),
                              pl.Series("id", [], pl.String), previous.records.height)
    mask, carried = incremental.reusable_rows(candidates, previous, delta)
    expected = set(rows) - {reblocked, moved_ann}
    assert set(carried[incremental.ROW].to_list()) == expected
    # The mask is over the candidates as given (the new pair first), the rows are the previous file's.
    assert mask.tolist() == [False] + [i in expected for i in range(feats.height)]
    assert_frame_equal(carried.sort(incremental.ROW).select("left_id", "right_id"),
                       feats.select("left_id", "right_id")[sorted(expected)])
