"""Stage cache: which results it holds, and that a torn file counts as missing."""

from __future__ import annotations

import polars as pl

from flows.stage_cache import StageCache


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
