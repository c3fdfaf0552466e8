"""On-disk embedding cache: float16 vector shards (.npy) with a Parquet key index per shard.

Layout: ``<root>/<model slug>/<shard>.npy`` plus ``<shard>.keys.parquet`` (columns ``key``, ``row``).
The keys file is written last, so a shard is visible only once its vectors are complete; shard names
are a hash of their keys, so concurrent writers of the same texts write the same file.
Lookups scan only the key index and memory-map the shards, so a million-text cache is cheap to query.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import polars as pl

from features.io import atomic_path, write_table

STORE_DTYPE = np.float16
SHARD_ROWS = 100_000


def text_keys(model_id: str, texts: list[str]) -> list[str]:
    """Return the cache key (hex digest of model id and text) of each text."""
    prefix = model_id.encode() + b"\x00"
    return [hashlib.blake2b(prefix + t.encode(), digest_size=16).hexdigest() for t in texts]


def from_stored(stored: np.ndarray) -> np.ndarray:
    """Return stored (float16) vectors as L2-normalised float32; fresh and cached vectors both pass here."""
    out = np.asarray(stored, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


class EmbeddingCache:
    """Vectors of one embedding model, keyed by ``text_keys``."""

    def __init__(self, root: Path, model_id: str, dim: int):
        self.dir = Path(root) / re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)
        self.dim = dim

    def lookup(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return (found mask, float32 vectors of the found keys in the order of ``keys``)."""
        found = np.zeros(len(keys), dtype=bool)
        index_files = sorted(self.dir.glob("*.keys.parquet")) if self.dir.is_dir() else []
        if not index_files or not keys:
            return found, np.zeros((0, self.dim), dtype=np.float32)
        wanted = pl.DataFrame({"key": keys}).with_row_index("pos")
        hits = (
            pl.scan_parquet(index_files, include_file_paths="file")
            .join(wanted.lazy(), on="key", how="inner")
            .unique("pos", keep="first")
            .collect()
        )
        vectors = np.zeros((len(keys), self.dim), dtype=np.float32)
        for (file,), group in hits.group_by("file"):
            shard = np.load(str(file).removesuffix(".keys.parquet") + ".npy", mmap_mode="r")
            pos = group["pos"].to_numpy()
            vectors[pos] = from_stored(shard[group["row"].to_numpy()])
            found[pos] = True
        return found, vectors[found]

    def store(self, keys: list[str], vectors: np.ndarray) -> None:
        """Add float16 vectors for ``keys`` in shards of at most SHARD_ROWS."""
        for start in range(0, len(keys), SHARD_ROWS):
            chunk = keys[start:start + SHARD_ROWS]
            name = hashlib.blake2b("".join(chunk).encode(), digest_size=12).hexdigest()
            base = self.dir / name
            with atomic_path(base.with_suffix(".npy")) as tmp, open(tmp, "wb") as fh:
                np.save(fh, vectors[start:start + len(chunk)])
            frame = pl.DataFrame({"key": chunk, "row": np.arange(len(chunk), dtype=np.uint32)})
            write_table(frame, base.with_name(name + ".keys.parquet"))
