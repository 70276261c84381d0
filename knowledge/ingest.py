"""Ingestion: files in, chunks with embeddings and metadata into the store.

Idempotent: a file whose bytes (and the chunker version) are unchanged writes
nothing; a changed file's chunks are replaced as a whole; a file that is gone
from an ingested folder loses its chunks.  Bad files are skipped with a
warning naming them; the caller decides the exit code from the summary.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.embeddings import Embeddings

from knowledge.chunking import chunk_text, infer_stage
from knowledge.documents import SUPPORTED, Document, SkipFile, read_document
from knowledge.scenarios import STAGES, grounding_queries, load_scenarios
from knowledge.store import KnowledgeStore, StoredChunk

CORPUS_DIR = Path(__file__).parent / "corpus"
CHUNKER_VERSION = "3"  # bump when reading or chunking changes, so unchanged files re-chunk
BUILTIN_PREFIX = "builtin:"
EMBED_SLICE = 512  # chunks per embedding call: big enough to batch well, small enough to show progress


@dataclass
class IngestSummary:
    files: int = 0
    chunks: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Non-zero exit only when nothing at all could be ingested."""
        return self.files + self.unchanged > 0 or not self.skipped

    def line(self) -> str:
        return (
            f"ingested {self.files} files ({self.chunks} chunks) in {self.seconds:.1f} s; "
            f"{self.unchanged} unchanged, {self.removed} removed, {len(self.skipped)} skipped"
        )


def discover(paths: Iterable[Path]) -> tuple[list[tuple[Path, str]], list[str], list[Path]]:
    """(file, source name) pairs to ingest, warnings for bad paths, folders scanned."""
    files, warnings, folders = [], [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            folders.append(path)
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in SUPPORTED and not any(p.startswith(".") for p in f.parts):
                    files.append((f, source_name(f)))
        elif path.exists():
            files.append((path, source_name(path)))
        else:
            warnings.append(f"{path}: no such file or folder")
    return files, warnings, folders


def source_name(path: Path) -> str:
    """Stable citation name: built-in files by their corpus path, others by absolute path."""
    resolved = path.resolve()
    try:
        return BUILTIN_PREFIX + str(resolved.relative_to(CORPUS_DIR.resolve()))
    except ValueError:
        return str(resolved)


def folder_prefix(folder: Path) -> str:
    """The prefix every source under ``folder`` starts with."""
    name = source_name(folder)
    return BUILTIN_PREFIX if name == BUILTIN_PREFIX + "." else name.rstrip("/") + "/"


def file_digest(doc: Document) -> str:
    return hashlib.sha256(f"{CHUNKER_VERSION}:{doc.digest}".encode()).hexdigest()[:24]


def to_stored(doc: Document, count: Callable[[str], int], digest: str) -> list[StoredChunk]:
    stage = str(doc.meta.get("stage", "")).strip().lower()
    if stage not in STAGES:
        stage = infer_stage(doc.text)
    topic = str(doc.meta.get("topic", ""))[:200]
    out = []
    for chunk in chunk_text(doc.text, count):
        out.append(
            StoredChunk(
                id=f"{hashlib.sha1(doc.source.encode()).hexdigest()[:12]}-{digest[:8]}-{chunk.index}",
                text=chunk.text,
                meta={
                    "source": doc.source,
                    "section": chunk.section,
                    "stage": stage,
                    "topic": topic,
                    "digest": digest,
                    "chunk_hash": chunk.digest,
                    "word_pieces": chunk.word_pieces,
                },
            )
        )
    return out


def ingest(
    paths: list[Path] | None,
    store: KnowledgeStore,
    embedder: Embeddings,
    count: Callable[[str], int],
    warn: Callable[[str], None] = print,
    progress: bool = False,
) -> IngestSummary:
    """Ingest ``paths`` (default: the built-in corpus) into ``store``."""
    started = time.perf_counter()
    summary = IngestSummary()
    files, warnings, folders = discover(paths or [CORPUS_DIR])
    for w in warnings:
        warn(f"warning: {w}")
        summary.skipped.append(w)
    current = store.current()
    seen: set[str] = set()
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="ingest", unit="file")
    pending: list[tuple[str, str, list[StoredChunk]]] = []
    for path, source in iterator:
        seen.add(source)
        try:
            doc = read_document(path, source)
        except SkipFile as exc:
            warn(f"warning: skipped {exc}")
            summary.skipped.append(str(exc))
            continue
        digest = file_digest(doc)
        if current.get(source, {}).get("digest") == digest:
            summary.unchanged += 1
            continue
        chunks = to_stored(doc, count, digest)
        if not chunks:
            warn(f"warning: skipped {path}: no text to index")
            summary.skipped.append(f"{path}: no text")
            continue
        pending.append((source, digest, chunks))
    # One embedding call for every changed file: full batches keep the embedder
    # busy (one call per file measured 0.88x of the raw embedder's throughput).
    texts = [f"{c.meta['section']}\n{c.text}" for _, _, chunks in pending for c in chunks]
    slices = range(0, len(texts), EMBED_SLICE)
    if progress and len(slices) > 1:
        from tqdm import tqdm

        slices = tqdm(slices, desc="embed", unit="batch")
    vectors = [v for i in slices for v in embedder.embed_documents(texts[i : i + EMBED_SLICE])]
    start = 0
    for source, digest, chunks in pending:
        store.replace_source(source, digest, chunks, vectors[start : start + len(chunks)])
        start += len(chunks)
        summary.files += 1
        summary.chunks += len(chunks)
    # Files gone from a folder we scanned lose their chunks.
    roots = [folder_prefix(f) for f in folders]
    for source in current:
        if source not in seen and any(source.startswith(r) for r in roots):
            store.remove_source(source)
            summary.removed += 1
    store.sweep_orphans()
    summary.seconds = time.perf_counter() - started
    return summary


def prepare_queries(store: KnowledgeStore, embedder: Embeddings, queries: list[str]) -> int:
    """Embed, in one batch, the queries not yet stored; retrievers then skip the embedder for them.

    The interviewer grounds every probe with a query taken from the scenario
    cards, the same few hundred texts in every interview: embedding them once
    when the index is built takes each off the turn's critical path.
    """
    known = store.query_vectors()
    missing = [q for q in dict.fromkeys(q.strip() for q in queries) if q and q not in known]
    if missing:
        store.put_query_vectors(missing, embedder.embed_documents(missing))
    return len(missing)


def prepare_card_queries(store: KnowledgeStore, embedder: Embeddings) -> int:
    """:func:`prepare_queries` for the scenario cards' grounding queries (part of building the built-in index)."""
    return prepare_queries(store, embedder, grounding_queries(load_scenarios()))
