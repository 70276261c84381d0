"""Score fusion in the retriever, checked against a brute-force computation over every chunk.

A real Chroma folder with bag-of-words embeddings (tests/conftest.py), so the
expected ranking can be recomputed here with plain numpy: z-score each side
over the chunks the filter allows, mix with DENSE_WEIGHT, sort.
"""

import numpy as np
import pytest

from knowledge import retrieval
from knowledge.ingest import ingest
from knowledge.retrieval import Retriever
from knowledge.store import KnowledgeStore

TOPICS = {
    "evaluation": ["ndcg rewards relevant items near the top", "calibration compares predicted and observed click rates", "auc ranks positives above negatives", "recall at k counts relevant items retrieved"],
    "data": ["negative sampling picks unclicked items as negatives", "position bias inflates clicks on top slots", "labels arrive late for conversions", "feature stores keep online and offline features consistent"],
    "deployment": ["canary releases route a small share of traffic", "shadow deployment doubles predictions without serving them", "latency budget splits across retrieval and ranking", "ann indexes trade recall for speed"],
}
QUERIES = ["ranking metric for relevant items at the top", "clicks depend on slot position", "route traffic to a new model safely", "predicted click rates versus observed", "speed of nearest neighbour index"]


@pytest.fixture
def fused(tmp_path, fake_embedder):
    folder = tmp_path / "notes"
    folder.mkdir()
    for stage, lines in TOPICS.items():
        body = "\n\n".join(f"## Point {i}\n{line}." for i, line in enumerate(lines))
        (folder / f"{stage}.md").write_text(f"---\nstage: {stage}\n---\n# {stage}\n{body}\n")
    store = KnowledgeStore.open_local(tmp_path / "chroma")
    ingest([folder], store, fake_embedder, lambda t: len(t.split()), warn=lambda m: None)
    return Retriever(store, fake_embedder), fake_embedder


def brute_force(r: Retriever, embedder, query: str, stage: str | None) -> list[str]:
    r.refresh()
    ix = r._index
    keep = [i for i, c in enumerate(ix.chunks) if not stage or c.meta["stage"] == stage]
    vectors = np.array([embedder.embed_query(f"{ix.chunks[i].meta['section']}\n{ix.chunks[i].text}") for i in keep])
    cos = vectors @ np.array(embedder.embed_query(query))
    lex = r._bm25_scores(ix, query, np.ones(len(ix.chunks), dtype=bool))[keep]

    def z(x):
        return (x - x.mean()) / x.std() if x.std() > 0 else np.zeros_like(x)

    fused = retrieval.DENSE_WEIGHT * z(cos) + (1 - retrieval.DENSE_WEIGHT) * z(lex)
    return [ix.chunks[keep[j]].id for j in np.argsort(-fused, kind="stable")]


@pytest.mark.parametrize("stage", [None, "data"])
def test_hybrid_matches_brute_force_fusion_over_every_chunk(fused, stage):
    r, embedder = fused
    for q in QUERIES:
        got = [p.id for p in r.search(q, k=3, stage=stage)]
        want = brute_force(r, embedder, q, stage)
        assert got == want[:3], q


def test_scores_are_the_fused_z_and_the_exact_cosine(fused):
    r, embedder = fused
    got = r.search(QUERIES[0], k=12)
    assert [p.score for p in got] == sorted((p.score for p in got), reverse=True)
    q = np.array(embedder.embed_query(QUERIES[0]))
    for p in got:  # similarity is the real cosine whichever side found the chunk
        v = np.array(embedder.embed_query(f"{p.section}\n{p.text}"))
        assert p.similarity == pytest.approx(float(v @ q), abs=1e-3)


def test_dense_and_bm25_modes_rank_by_their_own_score(fused):
    r, _ = fused
    dense = r.search(QUERIES[1], k=5, mode="dense")
    assert [round(p.score, 4) for p in dense] == [p.similarity for p in dense]
    bm25 = r.search("traffic", k=5, mode="bm25")
    assert bm25 and all("traffic" in p.text for p in bm25)  # only chunks sharing a word


def test_a_filter_with_no_chunks_returns_nothing(fused):
    r, _ = fused
    assert r.search(QUERIES[0], stage="monitoring") == []


class Counting:
    def __init__(self, inner):
        self.inner, self.queries, self.documents = inner, 0, 0

    def embed_query(self, text):
        self.queries += 1
        return self.inner.embed_query(text)

    def embed_documents(self, texts):
        self.documents += len(texts)
        return self.inner.embed_documents(texts)


def test_prepared_queries_skip_the_embedder_and_rank_alike(fused, tmp_path):
    from knowledge.ingest import prepare_queries

    r, embedder = fused
    store = r.store
    assert prepare_queries(store, embedder, QUERIES + ["  " + QUERIES[0] + " "]) == len(QUERIES)
    assert prepare_queries(store, embedder, QUERIES) == 0  # already there
    counting = Counting(embedder)
    fresh = Retriever(store, counting)
    got = [[p.id for p in fresh.search(q, k=3)] for q in QUERIES]
    assert counting.queries == 0
    assert got == [[p.id for p in r.search(q, k=3)] for q in QUERIES]
    fresh.search("a query nobody prepared")
    assert counting.queries == 1


def test_prime_embeds_a_batch_once(fused):
    r, embedder = fused
    counting = Counting(embedder)
    fresh = Retriever(r.store, counting)
    fresh.prime(QUERIES + QUERIES)
    assert counting.documents == len(QUERIES)
    for q in QUERIES:
        for mode in ("hybrid", "dense"):
            fresh.search(q, mode=mode)
    assert counting.queries == 0
