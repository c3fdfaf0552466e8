"""Stage cache: which results it holds, that a torn file counts as missing, and the code revision in its keys."""

from __future__ import annotations

import os
import shutil
import time

import polars as pl

from flows.stage_cache import PACKAGES, SOURCE_ROOT, StageCache, code_revision


def test_has_only_readable_results(tmp_path):
    cache = StageCache(tmp_path)
    frame = pl.DataFrame({"a": [1, 2, 3]})
    assert not cache.has("features", "k1")
    assert cache.frame("features", "k1", lambda: frame).equals(frame)
    assert cache.has("features", "k1")
    torn = cache.path("features", "k2")
    torn.write_bytes(cache.path("features", "k1").read_bytes()[:20])
    assert not cache.has("features", "k2")
    # The torn result is computed again and replaced.
    assert cache.frame("features", "k2", lambda: frame).equals(frame)
    assert cache.has("features", "k2")


def test_file_computes_a_result_once_and_gives_where_it_is_kept(tmp_path):
    cache = StageCache(tmp_path)
    calls = []

    def compute() -> pl.DataFrame:
        calls.append(1)
        return pl.DataFrame({"a": [1, 2]})

    path = cache.file("features", "k", compute)
    assert path == cache.path("features", "k") and pl.read_parquet(path)["a"].to_list() == [1, 2]
    assert cache.file("features", "k", compute) == path
    assert len(calls) == 1 and cache.hits == {"features": 1}
    path.write_bytes(path.read_bytes()[:20])  # torn: computed again
    assert pl.read_parquet(cache.file("features", "k", compute))["a"].to_list() == [1, 2]
    assert len(calls) == 2


def test_code_revision_follows_the_source(tmp_path):
    for package in PACKAGES:
        shutil.copytree(SOURCE_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_revision(tmp_path) == code_revision()
    clustering = tmp_path / "matching" / "cluster.py"
    clustering.write_text(clustering.read_text() + "\n# a changed line\n")
    assert code_revision.__wrapped__(tmp_path) != code_revision()  # __wrapped__: not the value cached above


def test_prune_deletes_results_no_run_has_used_lately(tmp_path):
    cache = StageCache(tmp_path)
    frame = pl.DataFrame({"a": [1]})
    for key in ("used", "idle", "read-again", "found-again"):
        cache.frame("features", key, lambda: frame)
    other_code = tmp_path / "other-revision" / "candidates" / "k.parquet"
    other_code.parent.mkdir(parents=True)
    frame.write_parquet(other_code)
    ten_days_ago = time.time() - 10 * 86_400
    for key in ("idle", "read-again", "found-again"):
        os.utime(cache.path("features", key), (ten_days_ago, ten_days_ago))
    os.utime(other_code, (ten_days_ago, ten_days_ago))
    cache.frame("features", "read-again", lambda: pl.DataFrame({"a": [2]}))  # a hit keeps it
    assert cache.has("features", "found-again")  # so does finding it, which a read follows
    assert cache.prune(max_age_days=7) == 2
    assert cache.has("features", "used") and cache.has("features", "read-again")
    assert cache.has("features", "found-again")
    assert not cache.has("features", "idle")
    assert not (tmp_path / "other-revision").exists()  # folders left empty go too
    assert cache.prune(max_age_days=7) == 0
