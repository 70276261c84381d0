"""Every shipped suite validates; broken suites name the file and the line."""

import pytest

from evals import metrics
from evals.runner import eval_scoring
from evals.suites import SUITES_DIR, load_suite, shipped_suites
from knowledge.scenarios import STAGES
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


def test_a_second_grading_must_cover_every_stage(tmp_path):
    gold = "{" + ", ".join(f"{s}: {{score: 1, why: named only}}" for s in STAGES) + "}"
    f = tmp_path / "s.yaml"
    f.write_text(f"kind: scoring\nname: x\ncases:\n  - id: a\n    scenario: news-feed\n    answer: hi\n    gold: {gold}\n    second: {{clarify: {{score: 1, why: named only}}}}\n")
    with pytest.raises(MLSDError) as err:
        load_suite(f)
    assert f"{f}:4" in str(err.value) and "second is missing stages: frame" in str(err.value)


def test_held_out_answers_are_all_graded_twice():
    for name in ("gold-test.yaml", "gold-test-writers.yaml"):
        assert all(c.second is not None for c in load_suite(SUITES_DIR / name).cases), name


def test_scoring_suites_report_agreement_between_graders(tmp_path):
    from evals.report import write_report

    """graders_qwk compares the two gradings; qwk_second_grader, the scorer against the second."""
    suite = load_suite(SUITES_DIR / "gold-test.yaml")
    suite.cases = suite.cases[:6]
    for c in suite.cases[::2]:  # a third of the stages regraded one point apart
        c.second = {s: g.model_copy(update={"score": min(4, g.score + 1)}) if i % 3 == 0 else g for i, (s, g) in enumerate(c.gold.items())}
    res = eval_scoring(suite, "deterministic")
    m = res["metrics"]
    first = [c.gold[s].score for c in suite.cases for s in STAGES]
    second = [c.second[s].score for c in suite.cases for s in STAGES]
    assert m["graders_exact"] == sum(a == b for a, b in zip(first, second)) / len(first) < 1
    assert m["graders_qwk"] == pytest.approx(metrics.qwk(first, second)) and m["graders_qwk"] < 1
    m_same = eval_scoring(suite.model_copy(update={"cases": [c.model_copy(update={"second": c.gold}) for c in suite.cases]}), "deterministic")["metrics"]
    assert m_same["graders_qwk"] == 1 and m_same["qwk_second_grader"] == pytest.approx(m_same["qwk"])
    assert "graders_qwk" not in eval_scoring(suite.model_copy(update={"cases": [c.model_copy(update={"second": None}) for c in suite.cases]}), "deterministic")["metrics"]
    res.update(seconds=0.1, path="x")
    write_report({"judge": "deterministic", "seconds": 0.1, "suites": {"gold-test": res}}, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert f"the two graders agree at QWK {m['graders_qwk']:.3f}" in html and f"with the second at {m['qwk_second_grader']:.3f}" in html
