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


def test_scoring_beside_other_suites_runs_in_a_child_with_the_same_results(tmp_path, counted, monkeypatch):
    """Deterministic scoring suites go to a second process while this one runs the rest: the
    results are those of a run in one process, in the order asked for, every case ticked."""
    import multiprocessing

    import evals.runner as runner
    from evals.suites import SUITES_DIR

    paths = write_suites(tmp_path)
    order = [SUITES_DIR / "gold-test.yaml", paths["builtin"], paths["interview"]]
    ticks: list[int] = []

    class Bar:
        def __init__(self, total, **_):
            self.total = total

        def update(self, n=1):
            ticks.append(n)

        def close(self):
            pass

    monkeypatch.setattr("tqdm.tqdm", Bar)
    children_before = set(multiprocessing.active_children())
    made = []
    real = runner._ScoringProcess
    monkeypatch.setattr(runner, "_ScoringProcess", lambda *a: made.append(1) or real(*a))
    together = run_suites(order, settings=load_settings(llm="none"), progress=True)
    assert made == [1] and len(ticks) == 17 + 1 + 1  # the child's cases reached this process's bar
    alone = run_suites(order, settings=load_settings(llm="none"), parallel=False)
    assert made == [1]
    assert list(together["suites"]) == ["gold-test", "builtin", "one-interview"]
    assert together["suites"]["gold-test"]["rows"] == alone["suites"]["gold-test"]["rows"]
    assert together["suites"]["gold-test"]["metrics"] == alone["suites"]["gold-test"]["metrics"]
    assert set(multiprocessing.active_children()) == children_before  # the child is gone


def test_scoring_alone_stays_in_this_process(monkeypatch):
    import evals.runner as runner
    from evals.suites import SUITES_DIR

    monkeypatch.setattr(runner, "_ScoringProcess", lambda *a: pytest.fail("no other work to overlap: no child"))
    assert run_suites([SUITES_DIR / "gold-test.yaml"], settings=load_settings(llm="none"))["suites"]["gold-test"]["cases"] == 17
