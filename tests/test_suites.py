"""Every shipped suite validates; broken suites name the file and the line."""

import pytest

from evals.suites import SUITES_DIR, load_suite, shipped_suites
from mlsd.errors import MLSDError


@pytest.mark.parametrize("path", shipped_suites() + sorted((SUITES_DIR / "external").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_validate(path):
    suite = load_suite(path)
    assert suite.cases
    if suite.corpus is not None:  # an external document: say how to get it
        assert suite.corpus_hint


def test_gold_set_size_and_spread():
    tune, test = load_suite(SUITES_DIR / "gold-tune.yaml"), load_suite(SUITES_DIR / "gold-test.yaml")
    cases = tune.cases + test.cases
    assert len(cases) >= 30
    assert len({c.scenario for c in cases}) >= 6
    styles = {c.style for c in cases}
    for style in ("strong", "medium", "weak", "stage-skipping", "no-headings", "keyword-stuffed", "injected", "off-topic", "rambling-transcript", "near-empty"):
        assert style in styles
    assert not {c.id for c in tune.cases} & {c.id for c in test.cases}


def test_retrieval_relevant_substrings_occur_once_in_the_corpus():
    from knowledge.ingest import CORPUS_DIR

    corpus = "\n".join(p.read_text() for p in CORPUS_DIR.glob("*.md"))
    suite = load_suite(SUITES_DIR / "retrieval-corpus.yaml")
    assert len(suite.cases) >= 60
    for case in suite.cases:
        assert corpus.count(case.relevant) == 1, case.id


def test_bad_case_names_file_and_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("kind: scoring\nname: x\ncases:\n  - id: a\n    scenario: news-feed\n    answer: hi\n    gold: {}\n")
    with pytest.raises(MLSDError) as err:
        load_suite(f)
    assert f"{f}:4" in str(err.value) and "gold" in str(err.value)


def test_jsonl_suite_errors_give_the_line(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"kind": "retrieval", "name": "r"}\n{"id": "1", "query": "what is ndcg", "relevant": "nDCG"}\n{not json}\n')
    with pytest.raises(MLSDError, match=rf"{f}:3"):
        load_suite(f)


def test_unknown_kind_and_yaml_errors(tmp_path):
    f = tmp_path / "k.yaml"
    f.write_text("kind: vibes\nname: x\ncases: []\n")
    with pytest.raises(MLSDError, match="kind must be one of"):
        load_suite(f)
    g = tmp_path / "y.yaml"
    g.write_text("kind: scoring\ncases:\n  - id: [unclosed\n")
    with pytest.raises(MLSDError, match=rf"{g}:\d+"):
        load_suite(g)
