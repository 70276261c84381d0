"""The eval runner builds its heavy resources once per run, whatever order the suites come in."""

import pytest
import yaml

from evals.runner import run_suites
from knowledge.retrieval import Passage
from mlsd.settings import load_settings
from tests.conftest import HashEmbeddings


class CountingEmbeddings(HashEmbeddings):
    """Stands in for MiniLM, recording which instances embed anything (each real one loads the weights on first use)."""

    used: set[int] = set()

    def embed_documents(self, texts):
        CountingEmbeddings.used.add(id(self))
        return super().embed_documents(texts)

    def embed_query(self, text):
        CountingEmbeddings.used.add(id(self))
        return super().embed_query(text)


class IndexRetriever:
    """Stands in for the retriever over the built-in index."""

    made = 0

    def __init__(self):
        IndexRetriever.made += 1
        self.embedder = CountingEmbeddings()

    def search(self, query, k=5, stage=None, source=None, mode="hybrid"):
        return [Passage(text=f"About {stage}: {query}", source="builtin:x.md", section="notes", stage=stage or "general", score=0.5)]


@pytest.fixture
def counted(monkeypatch):
    from mlsd import runtime

    CountingEmbeddings.used = set()
    IndexRetriever.made = 0
    monkeypatch.setattr(runtime, "embedder", CountingEmbeddings)
    monkeypatch.setattr(runtime, "retriever", lambda settings, *a, **kw: IndexRetriever())


def write_suites(tmp_path):
    corpus = tmp_path / "guide.md"
    corpus.write_text("# Calibration\n\nA reliability plot shows whether predicted probabilities match observed rates.\n")
    suites = {
        "interview": {"kind": "interview", "name": "one-interview", "cases": [
            {"id": "done", "scenario": "news-feed", "script": ["I'd rank posts by predicted engagement.", "I'm done", "I'm done"],
             "expect": [{"type": "finishes_with_feedback"}]},
        ]},
        "builtin": {"kind": "retrieval", "name": "builtin", "cases": [{"id": "r1", "query": "what is a feature store", "relevant": "feature store"}]},
        "corpus": {"kind": "retrieval", "name": "own-doc", "corpus": str(corpus), "cases": [
            {"id": "c1", "query": "does the model's probability match reality", "relevant": "reliability plot"},
        ]},
    }
    paths = {}
    for name, suite in suites.items():
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(suite))
    return paths


@pytest.mark.parametrize("order", [("interview", "builtin", "corpus"), ("corpus", "builtin", "interview")])
def test_one_retriever_and_one_embedder_per_run(tmp_path, counted, order):
    paths = write_suites(tmp_path)
    results = run_suites([paths[n] for n in order], settings=load_settings(llm="none"))
    assert set(results["suites"]) == {"one-interview", "builtin", "own-doc"}
    assert results["suites"]["one-interview"]["metrics"]["pass_rate"] == 1.0
    assert IndexRetriever.made == 1
    assert len(CountingEmbeddings.used) == 1


def test_a_given_retriever_is_used_and_its_embedder_shared(tmp_path, counted):
    paths = write_suites(tmp_path)
    given = IndexRetriever()
    run_suites([paths["corpus"], paths["interview"], paths["builtin"]], settings=load_settings(llm="none"), retriever=given)
    assert IndexRetriever.made == 1
    assert CountingEmbeddings.used == {id(given.embedder)}
