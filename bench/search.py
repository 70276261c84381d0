"""Search: p50 / p95 latency of ``Retriever.search(query, k=5)`` at 1k and 10k chunks.

The stores are synthesised: the built-in corpus chunks (with the embeddings
ingest gave them) are repeated with small variations (a few words dropped, a
variant tag added; the vector nudged by Gaussian noise of 0.01 per dimension
and renormalised, cosine ~0.98 to its original) up to the size, then written
through ``KnowledgeStore.replace_source`` 40 chunks per source file, as
ingest writes them.  Queries are the retrieval suite's questions, every
timed one a different string (a few neutral prefixes), because the retriever
caches repeated queries; the note gives the cache-hit latency too, and
embed_query at torch's default thread count against one thread.

Reference, timed in alternation with the product on the same queries:
``embed_query`` + ``collection.query(n_results=5)`` straight on the Chroma
collection, so both include embedding the query.  Goal: <= 1.3x the
reference, and <= 30 ms p50 at 10k.
"""

from __future__ import annotations

import hashlib
import random
import time

import numpy as np

from bench.common import Ctx, Figure, Goal, percentile

NAME = "search"
TITLE = "Retriever.search(k=5) at 1k / 10k chunks vs embed_query + collection.query"
PER_SOURCE = 40
NOISE = 0.01


def size_label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def base_chunks(ctx: Ctx) -> tuple[list[str], list[dict], np.ndarray]:
    """(texts, metadatas, unit vectors) of real corpus chunks to vary."""
    if ctx.quick:
        chunks = ctx.corpus_chunks[:60]
        vecs = np.asarray(ctx.embedder.embed_documents([f"{c.meta['section']}\n{c.text}" for c in chunks]), dtype=np.float32)
        return [c.text for c in chunks], [dict(c.meta) for c in chunks], vecs
    from knowledge.store import KnowledgeStore

    store = KnowledgeStore.open_local(ctx.corpus_index())
    got = store.chunks.get(include=["documents", "metadatas", "embeddings"])
    return list(got["documents"]), [dict(m) for m in got["metadatas"]], np.asarray(got["embeddings"], dtype=np.float32)


def vary(text: str, rng: random.Random, variant: int) -> str:
    words = text.split()
    kept = [w for w in words if rng.random() > 0.05] or words
    return " ".join(kept) + f" (variant {variant})"


def build_store(ctx: Ctx, size: int, texts: list[str], metas: list[dict], vecs: np.ndarray):
    from knowledge.store import KnowledgeStore, StoredChunk

    rng = random.Random(size)
    nrng = np.random.default_rng(size)
    store = KnowledgeStore.open_local(ctx.tmpdir(f"search-{size_label(size)}"))
    t0 = time.perf_counter()
    for start in range(0, size, PER_SOURCE):
        j = start // PER_SOURCE
        source = f"bench:synthetic/doc-{j:04d}.md"
        digest = hashlib.sha256(source.encode()).hexdigest()[:24]
        chunks, vectors = [], []
        for i in range(start, min(start + PER_SOURCE, size)):
            b, variant = i % len(texts), i // len(texts)
            text = texts[b] if variant == 0 else vary(texts[b], rng, variant)
            vec = vecs[b] if variant == 0 else vecs[b] + nrng.normal(0.0, NOISE, vecs.shape[1]).astype(np.float32)
            vec = vec / np.linalg.norm(vec)
            meta = {
                "source": source,
                "section": metas[b].get("section", ""),
                "stage": metas[b].get("stage", "general"),
                "topic": metas[b].get("topic", ""),
                "digest": digest,
                "chunk_hash": hashlib.sha1(text.encode()).hexdigest()[:16],
                "word_pieces": int(metas[b].get("word_pieces", 0)),
            }
            chunks.append(StoredChunk(f"{hashlib.sha1(source.encode()).hexdigest()[:12]}-{digest[:8]}-{i - start}", text, meta))
            vectors.append(vec.tolist())
        store.replace_source(source, digest, chunks, vectors)
    build_s = time.perf_counter() - t0
    if store.chunks.count() != size:
        raise RuntimeError(f"the synthetic store holds {store.chunks.count()} chunks, expected {size}")
    return store, build_s


PREFIXES = ("", "In a system design interview: ", "Quick question, ", "For the design at hand, ", "Briefly: ")


def distinct_queries(queries: list[str], n: int) -> list[str]:
    """``n`` different query strings (the retriever caches repeated queries, which is not what is measured)."""
    out = [p + q for p in PREFIXES for q in queries]
    if len(out) < n:
        out += [f"{q} (case {i})" for i, q in enumerate(out[: n - len(out)] * (n // len(out) + 1))]
    return out[:n]


def measure(ctx: Ctx, store, queries: list[str], n: int) -> dict:
    from knowledge.retrieval import Retriever

    embedder = ctx.embedder
    retriever = Retriever(store, embedder)
    t0 = time.perf_counter()
    retriever.refresh()  # the first search would do this: BM25 over all chunks
    refresh_s = time.perf_counter() - t0
    coll = store.chunks

    def product(q: str) -> float:
        t0 = time.perf_counter()
        got = retriever.search(q, k=5)
        dt = time.perf_counter() - t0
        assert len(got) == 5
        return dt

    raw_split: list[tuple[float, float]] = []

    def raw(q: str) -> float:
        t0 = time.perf_counter()
        vec = embedder.embed_query(q)
        t1 = time.perf_counter()
        got = coll.query(query_embeddings=[vec], n_results=5, include=["documents", "metadatas", "distances"])
        t2 = time.perf_counter()
        assert len(got["ids"][0]) == 5
        raw_split.append((t1 - t0, t2 - t1))
        return t2 - t0

    warm, measured = queries[:5], queries[5 : 5 + n]
    for q in warm:  # warm-up
        product(q)
        raw(q)
    raw_split.clear()
    prod_t, raw_t = [], []
    for i, q in enumerate(measured):
        if i % 2:
            prod_t.append(product(q))
            raw_t.append(raw(q))
        else:
            raw_t.append(raw(q))
            prod_t.append(product(q))
    repeat_t = [product(q) for q in measured[:30]]  # the same queries again: the retriever's result cache
    embed_p50 = percentile([a for a, _ in raw_split], 50)
    query_p50 = percentile([b for _, b in raw_split], 50)
    return {
        "prod": prod_t,
        "raw": raw_t,
        "refresh_s": refresh_s,
        "embed_p50_ms": embed_p50 * 1000,
        "chroma_p50_ms": query_p50 * 1000,
        "repeat_p50_ms": percentile(repeat_t, 50) * 1000,
    }


def embed_threads_probe(ctx: Ctx, queries: list[str], n: int) -> tuple[int, float, float]:
    """embed_query p50 (ms) at torch's default intra-op threads and at 1 thread, alternating (diagnostic only)."""
    import torch

    default = torch.get_num_threads()
    times: dict[int, list[float]] = {default: [], 1: []}
    try:
        for i in range(n):
            for threads in ((default, 1) if i % 2 else (1, default)):
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                ctx.embedder.embed_query(queries[i % len(queries)])
                times[threads].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(default)
    return default, percentile(times[default], 50) * 1000, percentile(times[1], 50) * 1000


def run(ctx: Ctx) -> list[Figure]:
    sizes = (200, 1000) if ctx.quick else (1000, 10000)
    n = 30 if ctx.quick else 200
    queries = distinct_queries(ctx.retrieval_queries, n + 5 + 60)
    texts, metas, vecs = base_chunks(ctx)
    figures = []
    for size in sizes:
        store, build_s = build_store(ctx, size, texts, metas, vecs)
        m = measure(ctx, store, queries, n)
        label = size_label(size)
        ctx.log(f"{label}: built in {build_s:.1f} s, BM25 refresh {m['refresh_s'] * 1000:.0f} ms")
        p50, p95 = percentile(m["prod"], 50) * 1000, percentile(m["prod"], 95) * 1000
        r50, r95 = percentile(m["raw"], 50) * 1000, percentile(m["raw"], 95) * 1000
        large = size == sizes[-1]
        goal50 = Goal("<= 1.3x ref, <= 30 ms", (("ratio", "<=", 1.3), ("value", "<=", 30.0))) if large else Goal("<= 1.3x ref", (("ratio", "<=", 1.3),))
        note = (
            f"{size:,} chunks from {len(texts)} distinct ({size // PER_SOURCE + (size % PER_SOURCE > 0)} sources), {n} queries; "
            f"reference split p50: embed_query {m['embed_p50_ms']:.1f} ms + collection.query {m['chroma_p50_ms']:.1f} ms; "
            f"store built in {build_s:.1f} s; first search pays a BM25 build of {m['refresh_s'] * 1000:.0f} ms; "
            f"a repeated query (result cache) p50 {m['repeat_p50_ms'] * 1000:.0f} µs"
        )
        if large:
            threads, at_default, at_one = embed_threads_probe(ctx, queries[-60:], 20 if ctx.quick else 60)
            note += f"; embed_query p50 with torch at {threads} threads (the default) {at_default:.1f} ms vs 1 thread {at_one:.1f} ms"
        figures.append(Figure(NAME, f"p50 @{label}", p50, "ms", r50, "embed_query + collection.query", goal=goal50, note=note, samples=n))
        figures.append(Figure(NAME, f"p95 @{label}", p95, "ms", r95, "embed_query + collection.query", goal=Goal("<= 1.3x ref", (("ratio", "<=", 1.3),)), samples=n))
    return figures
