"""Hybrid retrieval: dense (MiniLM in Chroma) plus BM25, fused by reciprocal rank fusion.

Returns typed :class:`Passage` records with their citation fields.  The BM25
index is built in memory from the store's current chunks and rebuilt only
when the store's manifest changes.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass
from typing import Literal

from langchain_core.embeddings import Embeddings

from knowledge.store import KnowledgeStore, StoredChunk

RECHECK_SECONDS = 30.0  # how stale a long-lived retriever may be after someone else ingests
CACHE_SIZE = 512  # interview probes repeat their queries; a hit skips the embedder
RRF_K = 10  # measured on the retrieval suite: 10 beat 30 and 60 on hit@5 and MRR
Mode = Literal["hybrid", "dense", "bm25"]
_TOKEN = re.compile(r"[a-z0-9]+(?:[.+#][a-z0-9]+)*")


@dataclass(frozen=True)
class Passage:
    text: str
    source: str
    section: str
    stage: str
    score: float
    similarity: float = 0.0  # cosine of the dense match (0 when only BM25 found it)
    id: str = ""

    def citation(self) -> str:
        where = self.section or "(top)"
        return f"{self.source} — {where}"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in ("text", "source", "section", "stage", "score")}


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class Retriever:
    def __init__(self, store: KnowledgeStore, embedder: Embeddings) -> None:
        self.store = store
        self.embedder = embedder
        self._lock = threading.Lock()
        self._version: str | None = None
        self._checked_at = 0.0
        self._chunks: list[StoredChunk] = []
        self._digests: dict[str, str] = {}
        self._bm25 = None
        self._cache: dict[tuple, tuple[Passage, ...]] = {}
        self._vectors: dict[str, list[float]] = {}
        self._stem = _stemmer()

    # --- BM25 ------------------------------------------------------------------------
    def _tokens(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=False, show_progress=False)

    def refresh(self, force: bool = False) -> None:
        """Rebuild the in-memory BM25 index if the store changed."""
        import bm25s

        with self._lock:
            self._checked_at = time.monotonic()
            version = self.store.version()
            if not force and version == self._version:
                return
            self._chunks = self.store.all_chunks()
            self._digests = self.store.current_digests()
            self._bm25 = None
            if self._chunks:
                texts = [f"{c.meta.get('section', '')}\n{c.text}" for c in self._chunks]
                index = bm25s.BM25()
                index.index(self._tokens(texts), show_progress=False)
                self._bm25 = index
            self._version = version

    def _bm25_ranked(self, query: str, n: int, allowed) -> list[tuple[StoredChunk, float]]:
        if self._bm25 is None:
            return []
        tokens = self._tokens([query])
        if not tokens or not tokens[0]:
            return []
        n = min(len(self._chunks), max(n * 4, 50))
        docs, scores = self._bm25.retrieve(tokens, k=n, show_progress=False, n_threads=1)
        out = []
        for idx, score in zip(docs[0], scores[0]):
            chunk = self._chunks[int(idx)]
            if score > 0 and allowed(chunk.meta):
                out.append((chunk, float(score)))
        return out

    def _embed(self, query: str) -> list[float]:
        vector = self._vectors.get(query)
        if vector is None:
            vector = self.embedder.embed_query(query)
            if len(self._vectors) >= CACHE_SIZE:
                self._vectors.pop(next(iter(self._vectors)))
            self._vectors[query] = vector
        return vector

    # --- search ----------------------------------------------------------------------
    def search(self, query: str, k: int = 5, stage: str | None = None, source: str | None = None, mode: Mode = "hybrid") -> list[Passage]:
        """The best ``k`` passages; repeated queries on an unchanged index come from a small cache."""
        query = (query or "").strip()
        if not query:
            return []
        if self._version is None or time.monotonic() - self._checked_at > RECHECK_SECONDS:
            self.refresh()  # picks up an ingest made by another process (the CLI beside the app)
        key = (query, k, stage, source, mode, self._version)
        cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        found = self._search(query, k, stage, source, mode)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = tuple(found)
        return found

    def _search(self, query: str, k: int, stage: str | None, source: str | None, mode: Mode) -> list[Passage]:
        where_parts = [{"stage": stage}] if stage else []
        where_parts += [{"source": source}] if source else []
        where = where_parts[0] if len(where_parts) == 1 else ({"$and": where_parts} if where_parts else None)

        def allowed(meta: dict) -> bool:
            return (not stage or meta.get("stage") == stage) and (not source or meta.get("source") == source)

        pool = max(k * 4, 20)
        dense: list[tuple[StoredChunk, float]] = []
        if mode in ("hybrid", "dense"):
            dense = self.store.query(self._embed(query), pool, where, self._digests)
        lexical = self._bm25_ranked(query, pool, allowed) if mode in ("hybrid", "bm25") else []
        fused: dict[str, float] = {}
        by_id: dict[str, StoredChunk] = {}
        sims: dict[str, float] = {}
        for ranking in (dense, lexical):
            for rank, (chunk, _) in enumerate(ranking):
                fused[chunk.id] = fused.get(chunk.id, 0.0) + 1.0 / (RRF_K + rank + 1)
                by_id[chunk.id] = chunk
        for chunk, sim in dense:
            sims[chunk.id] = sim
        best = sorted(fused, key=lambda i: -fused[i])[:k]
        return [
            Passage(
                text=by_id[i].text,
                source=by_id[i].meta.get("source", "?"),
                section=by_id[i].meta.get("section", ""),
                stage=by_id[i].meta.get("stage", "general"),
                score=round(fused[i], 5),
                similarity=round(sims.get(i, 0.0), 4),
                id=i,
            )
            for i in best
        ]
