"""Stage cache: which results it holds, that a torn file counts as missing, and the code revision in its keys."""

from __future__ import annotations

import shutil

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


def test_code_revision_follows_the_source(tmp_path):
    for package in PACKAGES:
        shutil.copytree(SOURCE_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_revision(tmp_path) == code_revision()
    clustering = tmp_path / "matching" / "cluster.py"
    clustering.write_text(clustering.read_text() + "\n# a changed line\n")
    assert code_revision.__wrapped__(tmp_path) != code_revision()  # __wrapped__: not the value cached above
