"""Embedding: record texts, the on-disk cache (a second run embeds nothing), both backends."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from blocking.cache import EmbeddingCache, text_keys
from blocking.embed import embed_texts, load_embedder, normalise_texts, record_texts
from blocking.settings import BlockingSettings

TEXTS = ["Acme Cordless Drill 18V", "acme  cordless drill 18v", "Garden hose, green 20 m", "Steel kettle 1.7 L"]


def static_settings(tmp_path, **kw) -> BlockingSettings:
    return BlockingSettings(backend="static", cache_dir=tmp_path / "cache", **kw)


def test_static_embeddings_are_normalised_and_similar_texts_are_close(tmp_path):
    emb = embed_texts(TEXTS, static_settings(tmp_path), progress=False)
    assert emb.dtype == np.float32 and emb.shape == (4, load_embedder(static_settings(tmp_path)).dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Texts equal after normalisation (case, spaces) share one embedding.
    assert np.array_equal(emb[0], emb[1])
    assert emb[0] @ emb[2] < 0.9


def test_second_run_embeds_nothing_and_returns_the_same_vectors(tmp_path):
    settings = static_settings(tmp_path)
    embedder = load_embedder(settings)
    before = embedder.encoded
    first = embed_texts(TEXTS, settings, progress=False)
    assert embedder.encoded - before == 3  # four texts, three distinct after normalisation
    second = embed_texts(list(reversed(TEXTS)), settings, progress=False)
    assert embedder.encoded - before == 3
    assert np.array_equal(second, first[::-1])
    # Only the new text is encoded when the input grows.
    embed_texts(TEXTS + ["Ceramic teapot"], settings, progress=False)
    assert embedder.encoded - before == 4
    # Without the cache every run encodes, and gives the same vectors as the cached path.
    uncached = embed_texts(TEXTS, static_settings(tmp_path, cache=False), progress=False)
    assert embedder.encoded - before == 7
    assert np.array_equal(uncached, first)


def test_cache_lookup_reads_only_requested_keys_across_shards(tmp_path):
    cache = EmbeddingCache(tmp_path, "test/model/4d", 4)
    keys_a, keys_b = text_keys("m", ["a", "b"]), text_keys("m", ["c"])
    cache.store(keys_a, np.eye(4, dtype=np.float16)[:2])
    cache.store(keys_b, np.eye(4, dtype=np.float16)[2:3])
    found, vectors = cache.lookup([keys_b[0], "missing", keys_a[1]])
    assert found.tolist() == [True, False, True]
    assert np.array_equal(vectors, np.eye(4, dtype=np.float32)[[2, 1]])
    # The key depends on the model as well as the text.
    assert text_keys("m", ["a"]) != text_keys("other", ["a"])


def test_record_texts_put_the_brand_first_unless_the_title_has_it():
    records = pl.DataFrame({"title": ["Drill 18V", "Acme drill", "Hose"], "brand": ["Acme", "ACME", None]})
    assert record_texts(records) == ["Acme Drill 18V", "Acme drill", "Hose"]


def test_normalise_texts():
    assert normalise_texts(["  Ａcme\tDRILL  ", None]).to_list() == ["acme drill", ""]


def test_missing_static_model_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="blocking.distill"):
        load_embedder(BlockingSettings(backend="static", static_model=str(tmp_path / "none")))


@pytest.mark.slow
def test_torch_backend_embeds_with_the_packaged_model(tmp_path):
    settings = BlockingSettings(backend="torch", cache_dir=tmp_path / "cache")
    emb = embed_texts(TEXTS, settings, progress=False)
    assert emb.shape == (4, 384)
    assert load_embedder(settings).model_id.startswith("torch/")
    assert emb[0] @ emb[1] == pytest.approx(1.0, abs=1e-5)
    assert emb[0] @ emb[3] < 0.8
