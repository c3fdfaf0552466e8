"""Content-addressed cache of expensive stage results (candidate pairs, features) as Parquet."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from features.io import cache_root, write_table

log = logging.getLogger(__name__)
PACKAGES = ("blocking", "features", "matching", "flows")
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def default_cache_root() -> Path:
    """Where stage results are kept unless a setting says otherwise."""
    return cache_root() / "stages"


@functools.cache
def code_revision(root: Path = SOURCE_ROOT) -> str:
    """Hash of the pipeline's own source code (its four packages under ``root``): what the stage cache and
    a run's reuse fingerprint hold so that results of other code, cached or in a previous run folder, are
    not reused."""
    # A version number is not raised for every change to blocking, attributes or clustering; the source is.
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def content_key(*parts: Any) -> str:
    """Hash JSON-able parts (content hashes, settings) into a cache key."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class StageCache:
    """Keeps one Parquet file per (stage, key); keys are content hashes of the stage's inputs. Each code
    revision keeps its results in a folder of its own, so no other code's results are read."""

    def __init__(self, root: Path | None):
        self.root = Path(root) if root is not None else default_cache_root()
        self.hits: dict[str, int] = {}

    def path(self, stage: str, key: str) -> Path:
        """File that holds the stage result for ``key``."""
        return self.root / code_revision() / stage / f"{key}.parquet"

    def has(self, stage: str, key: str) -> bool:
        """Whether a readable result for ``key`` is kept (its Parquet footer reads)."""
        path = self.path(stage, key)
        try:
            pl.read_parquet_schema(path)
            # The caller counts on reading it next: a run starting meanwhile must not prune it.
            os.utime(path)
            return True
        except Exception:  # missing, torn or foreign: computed again
            return False

    def frame(self, stage: str, key: str, compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """Return the cached frame for ``key`` or compute, store and return it."""
        path = self.path(stage, key)
        if path.is_file():
            try:
                df = pl.read_parquet(path)
                self.hits[stage] = self.hits.get(stage, 0) + 1
                os.utime(path)  # a result in use is not pruned
                return df
            except Exception:  # a torn or foreign file is recomputed, not trusted
                log.warning("stage cache %s unreadable, recomputing", path)
        df = compute()
        write_table(df, path)
        return df

    def file(self, stage: str, key: str, compute: Callable[[], pl.DataFrame]) -> Path:
        """Return the file that holds the result for ``key``, computing and storing it first if none is kept."""
        path = self.path(stage, key)
        if self.has(stage, key):
            self.hits[stage] = self.hits.get(stage, 0) + 1
            return path
        return write_table(compute(), path)

    def prune(self, max_age_days: float) -> int:
        """Delete results neither read nor written in ``max_age_days`` (those of other code revisions and
        earlier catalogs) and the folders they leave empty; return how many results went."""
        cutoff = time.time() - max_age_days * 86_400
        removed = 0
        for path in self.root.glob("*/*/*.parquet"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # another run pruned it first
                continue
        for folder in [*self.root.glob("*/*/"), *self.root.glob("*/")]:
            try:
                folder.rmdir()
            except OSError:  # not empty, or gone already
                continue
        return removed
