"""The vector store seam: Chroma, embedded on disk or a server, the only module importing chromadb.

Chunks of one source file are replaced as a whole: new chunks are written
under the file's new hash, the manifest is switched to that hash, then the old
chunks are deleted.  Readers only trust chunks whose hash the manifest names,
so a reader (or an interrupted ingest) never sees a mix of old and new.
Embeddings are always passed in: Chroma's default embedding function would
try to download a model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlsd.errors import MLSDError

COLLECTION = "mlsd_knowledge"
MANIFEST = "mlsd_manifest"
QUERIES = "mlsd_query_vectors"  # embeddings of queries known in advance (the cards' grounding queries)


@dataclass(frozen=True)
class StoredChunk:
    id: str
    text: str
    meta: dict


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=True)


class KnowledgeStore:
    """Chunks plus a manifest of which file version is current."""

    def __init__(self, client, location: str) -> None:
        self.client = client
        self.location = location
        try:
            self.chunks = client.get_or_create_collection(COLLECTION, metadata={"hnsw:space": "cosine"})
            self.manifest = client.get_or_create_collection(MANIFEST)
            self.queries = client.get_or_create_collection(QUERIES)
        except Exception as exc:  # chromadb raises many unrelated types for a broken folder
            raise MLSDError(
                f"The knowledge store at {location} cannot be opened ({exc.__class__.__name__}: {exc}). "
                "Rebuild it with `mlsd ingest --reset`."
            ) from exc

    # --- opening -----------------------------------------------------------------
    @classmethod
    def open_local(cls, path: Path) -> "KnowledgeStore":
        import chromadb

        path = Path(path)
        if path.exists() and not path.is_dir():
            raise MLSDError(f"The knowledge store path {path} is a file, not a folder: remove it or set MLSD_HOME")
        try:
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        except Exception as exc:
            raise MLSDError(
                f"The knowledge store at {path} cannot be opened ({exc.__class__.__name__}: {exc}). "
                f"Remove the folder and rebuild it with `mlsd ingest --reset --store {path}`."
            ) from exc
        return cls(client, str(path))

    @classmethod
    def open_server(cls, host: str, port: int) -> "KnowledgeStore":
        import chromadb

        try:
            client = chromadb.HttpClient(host=host, port=port, settings=_chroma_settings())
            client.heartbeat()
        except Exception as exc:
            raise MLSDError(
                f"No Chroma server answers at {host}:{port} ({exc.__class__.__name__}). Start one with "
                f"`chroma run --path DIR --host {host} --port {port}`, or unset MLSD_CHROMA_HOST to use the embedded store."
            ) from exc
        return cls(client, f"http://{host}:{port}")

    @staticmethod
    def remove_local(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    # --- manifest ----------------------------------------------------------------
    def current(self) -> dict[str, dict]:
        """source -> {"digest", "chunks", "stage"} for every file whose chunks are current."""
        got = self.manifest.get(include=["metadatas"])
        return {i: dict(m or {}) for i, m in zip(got["ids"], got["metadatas"] or [])}

    def _set_manifest(self, source: str, meta: dict) -> None:
        self.manifest.upsert(ids=[source], embeddings=[[0.0]], metadatas=[meta])

    # --- writing -----------------------------------------------------------------
    def replace_source(self, source: str, digest: str, chunks: list[StoredChunk], embeddings: list[list[float]]) -> None:
        """Write a file's new chunks, switch the manifest to them, then drop the old ones."""
        batch = 1000
        for start in range(0, len(chunks), batch):
            part = chunks[start : start + batch]
            self.chunks.upsert(
                ids=[c.id for c in part],
                documents=[c.text for c in part],
                metadatas=[c.meta for c in part],
                embeddings=embeddings[start : start + batch],
            )
        stage = chunks[0].meta.get("stage", "general") if chunks else "general"
        self._set_manifest(source, {"digest": digest, "chunks": len(chunks), "stage": stage})
        self.chunks.delete(where={"$and": [{"source": source}, {"digest": {"$ne": digest}}]})

    def put_query_vectors(self, texts: list[str], vectors: list[list[float]]) -> None:
        for start in range(0, len(texts), 1000):
            part = texts[start : start + 1000]
            ids = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in part]
            self.queries.upsert(ids=ids, documents=part, embeddings=vectors[start : start + 1000])

    def query_vectors(self) -> dict[str, list[float]]:
        """Stored query text -> its embedding."""
        got = self.queries.get(include=["documents", "embeddings"])
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        return {d: list(e) for d, e in zip(got["documents"] or [], embeddings)}

    def remove_source(self, source: str) -> None:
        self.manifest.delete(ids=[source])
        self.chunks.delete(where={"source": source})

    def sweep_orphans(self) -> int:
        """Delete chunks no manifest entry points at (left by an interrupted ingest)."""
        current = self.current()
        got = self.chunks.get(include=["metadatas"])
        stale = [
            i
            for i, m in zip(got["ids"], got["metadatas"] or [])
            if current.get(m.get("source"), {}).get("digest") != m.get("digest")
        ]
        for start in range(0, len(stale), 1000):
            self.chunks.delete(ids=stale[start : start + 1000])
        return len(stale)

    # --- reading -----------------------------------------------------------------
    def all_chunks(self) -> list[StoredChunk]:
        return self.snapshot(vectors=False)[0]

    def snapshot(self, vectors: bool = True) -> tuple[list[StoredChunk], list, str]:
        """Every current chunk, when asked its embedding (same order), and the version they make up.

        The version comes from the same manifest read as the chunks, so a cache
        keyed on it (the retriever's BM25 index) never pairs one set of chunks
        with another's version while an ingest is landing.
        """
        current = self.current()
        got = self.chunks.get(include=["documents", "metadatas"] + (["embeddings"] if vectors else []))
        embeddings = got["embeddings"] if vectors else [None] * len(got["ids"])
        keep = [
            (StoredChunk(i, d, m), e)
            for i, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], embeddings)
            if current.get(m.get("source"), {}).get("digest") == m.get("digest")
        ]
        return [c for c, _ in keep], [e for _, e in keep], self._version(current)

    def nearest_ids(self, embedding: list[float], n: int, where: dict | None = None) -> list[str]:
        """Ids of the ``n`` nearest chunks, stale versions included (for callers that hold the current ones)."""
        if n <= 0:
            return []
        res = self.chunks.query(query_embeddings=[embedding], n_results=n, where=where or None, include=["distances"])
        return list(res["ids"][0])

    def version(self) -> str:
        """Changes whenever the current set of chunks changes (keys caches such as BM25)."""
        return self._version(self.current())

    @staticmethod
    def _version(current: dict[str, dict]) -> str:
        return json.dumps(sorted((s, m.get("digest")) for s, m in current.items()))

    def count(self) -> int:
        return sum(int(m.get("chunks", 0)) for m in self.current().values())
