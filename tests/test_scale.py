"""The scale benchmark: later catalog versions for incremental runs, and the fixed JSON report shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest

from features.generate import generate_catalog
from features.records import CatalogError
from flows.cli.scale import parse_sizes
from flows.incremental import content_hashes
from blocking.settings import BlockingSettings
from flows.scale import STAGES, bench_model_dir, mutate_catalog


def test_mutated_catalog_changes_the_asked_fraction_and_keeps_truth():
    base = generate_catalog(400, seed=2)
    later = mutate_catalog(base, 0.1, seed=4)
    assert later["id"].is_unique().all() and set(base["id"]) <= set(later["id"])
    hashes = content_hashes(later).join(content_hashes(base), on="id", how="left", suffix="_base")
    changed = hashes.filter(pl.col("content_hash_base").is_not_null()
                            & (pl.col("content_hash") != pl.col("content_hash_base")))
    new = hashes.filter(pl.col("content_hash_base").is_null())
    assert changed.height == 20 and new.height == 20
    # A new listing re-lists an existing product: same truth as the listing it copies.
    source = new.select(pl.col("id").str.strip_prefix("N").alias("id")).join(base, on="id")
    relisted = later.join(new.select("id"), on="id").sort("id")
    assert relisted["product_id"].to_list() == source.sort("id")["product_id"].to_list()
    assert mutate_catalog(base, 0.1, seed=4).equals(later)


def test_mutating_a_mutated_catalog_keeps_ids_unique():
    # A second round re-lists listings of the first and copies of them (L1 and NL1 both copied).
    catalog = generate_catalog(400, seed=2)
    for seed in (4, 5, 6):
        grown = mutate_catalog(catalog, 0.5, seed=seed)
        assert grown["id"].is_unique().all()
        touched = round(0.5 * catalog.height)
        assert grown.height == catalog.height + touched - touched // 2
        assert set(catalog["id"]) <= set(grown["id"])
        catalog = grown


def test_sizes_are_checked():
    assert parse_sizes("300,1_000") == [300, 1000]
    for bad in ("", "ten", "5"):
        with pytest.raises(CatalogError):
            parse_sizes(bad)


def test_bench_model_folder_changes_with_what_the_model_is_trained_from(tmp_path):
    static = BlockingSettings(backend="static")
    folder = bench_model_dir(tmp_path, static, 1500, 1003)
    assert folder.parent == tmp_path and folder.name.startswith("model-1500-")
    # Where the embedding cache lives or how many threads search does not change the model.
    elsewhere = static.model_copy(update={"cache_dir": tmp_path, "threads": 1})
    assert bench_model_dir(tmp_path, elsewhere, 1500, 1003) == folder
    others = {bench_model_dir(tmp_path, static, 3000, 1003), bench_model_dir(tmp_path, static, 1500, 1004),
              bench_model_dir(tmp_path, BlockingSettings(backend="torch"), 1500, 1003),
              bench_model_dir(tmp_path, static.model_copy(update={"k": 20}), 1500, 1003)}
    assert folder not in others and len(others) == 4


@pytest.mark.slow
def test_bench_scale_writes_the_fixed_json_shape(tmp_path):
    report_path = tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "flows", "bench-scale", "--records", "300", "--incremental-fraction", "0.1",
         "--json", str(report_path), "--work", str(tmp_path / "work"), "--seed", "3",
         "--train-records", "1500"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert {"runs", "incremental", "model"} <= set(report)
    assert "1500 generated listings (seed 1003)" in report["model"]
    model = bench_model_dir(tmp_path / "work", BlockingSettings(backend="static"), 1500, 1003)
    assert (model / "model.txt").is_file() and str(model) in report["model"]
    (run,) = report["runs"]
    assert {"records", "seconds", "peak_rss_mb", "pair_completeness", "duplicate_f1", "variant_f1"} <= set(run)
    assert run["records"] == 300 and run["peak_rss_mb"] > 0
    assert set(run["seconds"]) == {"total", *STAGES}
    assert run["seconds"]["total"] >= max(v for k, v in run["seconds"].items() if k != "total")
    assert 0 < run["pair_completeness"] <= 1 and 0 <= run["duplicate_f1"] <= 1 and 0 <= run["variant_f1"] <= 1
    inc = report["incremental"]
    assert {"records", "changed_fraction", "seconds", "full_seconds"} <= set(inc)
    assert inc["records"] == 315 and 0.05 <= inc["changed_fraction"] <= 0.15
    assert inc["full_seconds"] == run["seconds"]["total"]
