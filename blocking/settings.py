"""Typed settings of candidate generation: embedder, cache, FAISS neighbours and fuzzy keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from features.io import cache_root
from features.pairs import BLOCKERS
from features.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
EMBEDDERS_DIR = REPO_ROOT / "data" / "embedders"
DEFAULT_STATIC_MODEL = "minilm-static"

# The blockers are features of each pair (``blocker_<name>``), so their list lives with the features.
KEY_BLOCKERS = tuple(name for name in BLOCKERS if name != "ann")


def default_cache_dir() -> Path:
    """Return $CATALOG_MATCH_CACHE/embeddings, or ~/.cache/catalog-match/embeddings."""
    return cache_root() / "embeddings"


class BlockingSettings(Settings):
    """How records are embedded and which candidate pairs each blocker proposes."""

    # Embedding. `torch` (the packaged MiniLM) is the default because it meets the recall target
    # (pair completeness >= 0.99 at <= 10 candidates per record on the benchmarks); `static` (a model2vec
    # model distilled from it) is ~80x faster and is what makes million-record catalogs feasible, at
    # ~1.5-3 points lower pair completeness.
    backend: Literal["static", "torch"] = "torch"
    static_model: str = Field(DEFAULT_STATIC_MODEL, description="folder name under data/embedders, or a path")
    batch_size: int = Field(256, ge=1)
    cache: bool = True
    cache_dir: Path | None = Field(None, description="None: $CATALOG_MATCH_CACHE/embeddings or ~/.cache/catalog-match/embeddings")

    # FAISS nearest neighbours.
    ann: bool = True
    k: int = Field(12, ge=1, description="neighbours kept per record (per record of each source when linking)")
    # 40 found the same pairs as 120 on abt-buy-dedup and amazon-google-full (torch), more on 100,000
    # generated listings (static: 0.775 vs 0.765), and halves the re-ranking.
    ann_pool: int = Field(40, ge=1, description="nearest neighbours fetched per record before re-ranking to k")
    lexical_weight: float = Field(0.5, ge=0, description="weight of title token-set similarity in the re-ranking")
    variant_penalty: float = Field(0.3, ge=0, description="re-ranking penalty per conflicting colour or size")
    min_similarity: float = Field(0.3, ge=-1, le=1)
    exact_max_records: int = Field(50_000, ge=1, description="indexed side up to this size uses exact search")
    ivf_nprobe: int | None = Field(
        None, ge=1, description="IVF lists probed per query; None = 24 at 100,000 listings, doubled per 10x listings"
    )
    threads: int = Field(0, ge=0, description="FAISS threads; 0 = all cores")

    # Fuzzy keys; each is an independent blocker.
    blockers: list[Literal[KEY_BLOCKERS]] = Field(default_factory=lambda: list(KEY_BLOCKERS))
    max_block_size: int = Field(50, ge=2, description="a key shared by more records is capped (no pairs)")
    min_model_length: int = Field(4, ge=1)
    brand_title_tokens: int = Field(2, ge=1)
    brand_words_min_shared: int = Field(2, ge=1, description="brand + word-pair keys two listings must share")
    sorted_window: int = Field(4, ge=1)
    sorted_min_score: float = Field(85.0, ge=0, le=100)

    def resolved_cache_dir(self) -> Path:
        """Return the embedding cache folder this run uses."""
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()

    def static_model_path(self) -> Path:
        """Return the folder of the static embedding model."""
        # A bare name is a packaged model; anything with a separator is a path.
        path = Path(self.static_model)
        return path if len(path.parts) > 1 or path.is_absolute() else EMBEDDERS_DIR / path
