"""A real Chroma server on loopback (the chromadb wheel ships it): ingest and search against it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge.ingest import ingest
from knowledge.retrieval import Retriever
from knowledge.store import KnowledgeStore
from mlsd.errors import MLSDError
from tests.fakes import free_port, wait_for_port


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen([chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for_port(port, 60):
        proc.kill()
        pytest.fail("chroma server did not start")
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def test_ingest_and_search_against_a_server(chroma_server, tmp_path, fake_embedder):
    store = KnowledgeStore.open_server("127.0.0.1", chroma_server)
    notes = tmp_path / "team-notes"
    notes.mkdir()
    (notes / "serving.md").write_text("---\nstage: deployment\n---\n# Serving\nShadow deployment runs the new model beside the old one without user impact.\n")
    (notes / "metrics.md").write_text("---\nstage: evaluation\n---\n# Metrics\nPR-AUC suits rare positive classes better than ROC-AUC.\n")
    summary = ingest([notes], store, fake_embedder, lambda t: len(t.split()), warn=lambda m: None)
    assert summary.files == 2
    # a second client (another teammate) sees the same index
    other = KnowledgeStore.open_server("127.0.0.1", chroma_server)
    got = Retriever(other, fake_embedder).search("shadow deployment beside the old model", k=1)
    assert got and "Shadow" in got[0].text and got[0].stage == "deployment"
    assert Retriever(other, fake_embedder).search("rare positive classes", k=1, stage="evaluation")[0].source.endswith("metrics.md")


def test_no_server_names_the_fix():
    with pytest.raises(MLSDError, match="chroma run"):
        KnowledgeStore.open_server("127.0.0.1", free_port())
