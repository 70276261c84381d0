"""Ingestion against a real Chroma folder (fake embeddings for speed; the real ones in test_retrieval)."""

from pathlib import Path

import pytest

from knowledge.ingest import ingest
from knowledge.store import KnowledgeStore
from tests.pdfgen import make_pdf


def words(t: str) -> int:
    return len(t.split())


@pytest.fixture
def store(tmp_path):
    return KnowledgeStore.open_local(tmp_path / "chroma")


def _docs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.md").write_text("---\nstage: evaluation\ntopic: t\n---\n# Metrics\n## nDCG\nnDCG rewards relevant items near the top.\n")
    (folder / "b.txt").write_text("Feature stores keep online and offline features consistent.\n\nThey prevent training serving skew.")
    (folder / "c.pdf").write_bytes(make_pdf(["Canary releases route a small share of traffic to the new model.", "Shadow deployment doubles predictions."]))


def test_ingest_md_txt_pdf_with_metadata(tmp_path, store, fake_embedder):
    _docs(tmp_path / "notes")
    s = ingest([tmp_path / "notes"], store, fake_embedder, words, warn=lambda m: None)
    assert (s.files, s.skipped) == (3, [])
    chunks = store.all_chunks()
    by_source = {Path(c.meta["source"]).name: c for c in chunks}
    assert by_source["a.md"].meta["stage"] == "evaluation" and by_source["a.md"].meta["section"] == "Metrics > nDCG"
    assert any("Canary" in c.text for c in chunks) and any(c.meta["section"] == "Page 2" for c in chunks)
    assert all(c.meta["digest"] and c.meta["chunk_hash"] for c in chunks)


def test_ingest_is_idempotent_and_replaces_changed_files_whole(tmp_path, store, fake_embedder):
    notes = tmp_path / "notes"
    _docs(notes)
    ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    before = {c.id for c in store.all_chunks()}
    again = ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    assert (again.files, again.unchanged) == (0, 3)
    assert {c.id for c in store.all_chunks()} == before
    (notes / "a.md").write_text("---\nstage: evaluation\n---\n# Metrics\nMRR looks at the first relevant result only.\n")
    changed = ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    assert changed.files == 1
    a_chunks = [c for c in store.all_chunks() if c.meta["source"].endswith("a.md")]
    assert a_chunks and all("MRR" in c.text for c in a_chunks) and not any("nDCG" in c.text for c in a_chunks)
    # and nothing stale is left in the raw collection either
    raw = store.chunks.get(where={"source": a_chunks[0].meta["source"]})
    assert len(raw["ids"]) == len(a_chunks)


def test_removed_file_loses_its_chunks(tmp_path, store, fake_embedder):
    notes = tmp_path / "notes"
    _docs(notes)
    ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    (notes / "b.txt").unlink()
    s = ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    assert s.removed == 1
    assert not any(c.meta["source"].endswith("b.txt") for c in store.all_chunks())


def test_bad_inputs_warn_and_the_rest_is_ingested(tmp_path, store, fake_embedder):
    notes = tmp_path / "notes"
    _docs(notes)
    (notes / "empty.md").write_text("")
    (notes / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj garbage")
    (notes / "image.txt").write_bytes(bytes(range(256)) * 4)
    warnings = []
    s = ingest([notes, tmp_path / "missing.md"], store, fake_embedder, words, warn=warnings.append)
    assert s.files == 3 and s.ok
    text = "\n".join(warnings)
    for name in ("empty.md", "broken.pdf", "image.txt", "missing.md"):
        assert name in text


def test_nothing_ingestible_is_not_ok(tmp_path, store, fake_embedder):
    (tmp_path / "e.md").write_text(" ")
    s = ingest([tmp_path / "e.md"], store, fake_embedder, words, warn=lambda m: None)
    assert not s.ok


def test_interrupted_ingest_leaves_previous_index_usable(tmp_path, store, fake_embedder):
    notes = tmp_path / "notes"
    _docs(notes)
    ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    good = {c.id for c in store.all_chunks()}

    class Boom(Exception):
        pass

    real_replace = store.replace_source

    def crash_after_write(source, digest, chunks, embeddings):
        store.chunks.upsert(ids=[c.id for c in chunks], documents=[c.text for c in chunks], metadatas=[c.meta for c in chunks], embeddings=embeddings)
        raise Boom  # dies before the manifest switches

    (notes / "a.md").write_text("# New\nCompletely new text about bandits.\n")
    store.replace_source = crash_after_write
    with pytest.raises(Boom):
        ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    store.replace_source = real_replace
    assert {c.id for c in store.all_chunks()} == good  # readers still see the old, whole index
    s = ingest([notes], store, fake_embedder, words, warn=lambda m: None)
    assert s.files == 1 and any("bandits" in c.text for c in store.all_chunks())


def test_long_lived_retriever_sees_another_process_ingest(tmp_path, fake_embedder, monkeypatch):
    import knowledge.retrieval as retrieval

    path = tmp_path / "chroma"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\nInterleaving compares two rankers in one result list.\n")
    ingest([notes], KnowledgeStore.open_local(path), fake_embedder, words, warn=lambda m: None)
    r = retrieval.Retriever(KnowledgeStore.open_local(path), fake_embedder)
    assert "Interleaving" in r.search("interleaving rankers", k=1)[0].text
    (notes / "b.md").write_text("# B\nThompson sampling explores new items.\n")
    ingest([notes], KnowledgeStore.open_local(path), fake_embedder, words, warn=lambda m: None)  # "another process"
    monkeypatch.setattr(retrieval, "RECHECK_SECONDS", 0.0)
    assert "Thompson" in r.search("thompson sampling new items", k=1)[0].text
