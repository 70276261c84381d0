"""The deterministic scorer's promises: robust, not fooled, explainable."""


import pytest
import yaml

from evals.runner import INJECTED, STUFFING, strip_headings
from evals.scorer import CLARIFY_CUE, ScorerConfig, Segment, find_pitfalls, is_list_like, match_signal, score_segments, score_text
from evals.suites import SUITES_DIR
from evals.text import sentences, strip_stage_names
from knowledge.scenarios import STAGES

GOLD = yaml.safe_load((SUITES_DIR / "gold-tune.yaml").read_text())["cases"]
STRONG = [c for c in GOLD if c["style"] in ("strong", "medium") and c.get("answer")]


def scores(result):
    return {s: result.stages[s].score for s in STAGES}


def others(scenarios, sid):
    return {k: v for k, v in scenarios.items() if k != sid}


@pytest.mark.parametrize("case", STRONG, ids=lambda c: c["id"])
def test_headings_do_not_change_scores(scenarios, case):
    sc = scenarios[case["scenario"]]
    a = scores(score_text(sc, case["answer"], others(scenarios, sc.id)))
    b = scores(score_text(sc, strip_headings(case["answer"]), others(scenarios, sc.id)))
    assert all(abs(a[s] - b[s]) <= 0.5 for s in STAGES), (a, b)


@pytest.mark.parametrize("case", STRONG, ids=lambda c: c["id"])
def test_stage_names_do_not_change_scores(scenarios, case):
    sc = scenarios[case["scenario"]]
    a = scores(score_text(sc, case["answer"], others(scenarios, sc.id)))
    b = scores(score_text(sc, strip_stage_names(strip_headings(case["answer"])), others(scenarios, sc.id)))
    assert all(abs(a[s] - b[s]) <= 0.5 for s in STAGES), (a, b)


def test_a_stage_name_as_a_label_is_not_content(scenarios):
    sc = scenarios["similar-listings"]
    said = "Check CTR over time and rebuild the index when listings change."
    for labelled in (f"Monitoring: {said}", f"**7. Monitoring.** {said}", f"- Monitoring - {said}", f"7. Monitoring\n{said}"):
        assert [x.text for x in sentences(labelled)] == [said]
        assert scores(score_text(sc, labelled)) == scores(score_text(sc, said))
    # a sentence that only starts with a stage's word keeps it
    assert [x.text for x in sentences("Data is logged daily.")] == ["Data is logged daily."]
    assert [x.text for x in sentences("Model selection comes last: a GBDT.")] == ["Model selection comes last: a GBDT."]


@pytest.mark.parametrize("case", STRONG, ids=lambda c: c["id"])
def test_injected_instruction_changes_nothing(scenarios, case):
    sc = scenarios[case["scenario"]]
    a = score_text(sc, case["answer"], others(scenarios, sc.id))
    b = score_text(sc, case["answer"] + INJECTED, others(scenarios, sc.id))
    assert scores(a) == scores(b)
    assert "injection_ignored" in b.flags


@pytest.mark.parametrize("case", STRONG, ids=lambda c: c["id"])
def test_appended_buzzwords_earn_nothing(scenarios, case):
    sc = scenarios[case["scenario"]]
    a = scores(score_text(sc, case["answer"], others(scenarios, sc.id)))
    b = scores(score_text(sc, case["answer"] + STUFFING, others(scenarios, sc.id)))
    # a buzzword can at most "name" a stage the answer left out (score 1), never add depth
    assert all(b[s] <= max(a[s], 1) for s in STAGES), (a, b)


def test_pure_keyword_stuffing_scores_at_most_one(scenarios):
    sc = scenarios["ad-click-prediction"]
    stuffed = "\n".join(
        ", ".join(t for g in sig.terms for t in g[:2]).replace("*", "") for sig in sc.all_signals()
    )
    res = score_text(sc, stuffed, others(scenarios, sc.id))
    assert max(scores(res).values()) <= 1, scores(res)


@pytest.mark.parametrize("text", [
    "asdf qwer zxcv uiop " * 50,
    "I would build a good system. It would be scalable and fast. We would make sure it works well.",
    "",
])
def test_gibberish_or_vague_scores_at_most_one(scenarios, text):
    sc = scenarios["news-feed"]
    assert max(scores(score_text(sc, text, others(scenarios, sc.id))).values()) <= 1


def test_justified_tradeoff_beats_bare_mention(scenarios):
    sc = scenarios["ad-click-prediction"]
    bare = "Calibration. AUC."
    justified = (
        "Because the ad auction multiplies pCTR by the bid, I'd check calibration of the predicted probabilities "
        "with a reliability plot and normalized cross-entropy, rather than AUC alone, since AUC ignores calibration."
    )
    b = score_text(sc, bare).stages["evaluation"].score
    j = score_text(sc, justified).stages["evaluation"].score
    assert j > b


def test_answer_to_another_question_scores_low(scenarios):
    src = next(c for c in GOLD if c["scenario"] == "ad-click-prediction" and c["style"] == "strong")
    sc = scenarios["people-you-may-know"]
    res = score_text(sc, src["answer"], others(scenarios, sc.id))
    assert "off_topic" in res.flags
    assert max(scores(res).values()) <= 1


def test_another_products_questions_and_task_earn_nothing(scenarios):
    # an ad-click design that clarifies and frames well, handed in for PYMK: its metrics may
    # carry over (at most 1), its questions and its framing cannot
    src = next(c for c in GOLD if c["scenario"] == "ad-click-prediction" and c["style"] == "strong")
    own = score_text(scenarios["ad-click-prediction"], src["answer"], others(scenarios, "ad-click-prediction"))
    assert own.stages["clarify"].score >= 2 and own.stages["frame"].score >= 2
    res = score_text(scenarios["people-you-may-know"], src["answer"], others(scenarios, "people-you-may-know"))
    assert res.stages["clarify"].score == res.stages["frame"].score == 0
    assert max(scores(res).values()) == 1


def test_answer_for_another_product_is_caught_even_on_a_card_with_generic_vocabulary(scenarios):
    # a moderation design handed in for the news feed shares "posts", "feed" and "users" with it
    src = next(c for c in GOLD if c["id"] == "newsfeed-fresh-2")
    sc = scenarios["news-feed"]
    res = score_text(sc, src["answer"], others(scenarios, sc.id))
    assert "off_topic" in res.flags and max(scores(res).values()) <= 1
    for c in STRONG:  # and no answer written for its own product is taken for off-topic
        assert "off_topic" not in score_text(scenarios[c["scenario"]], c["answer"], others(scenarios, c["scenario"])).flags


def test_transcript_evidence_carries_turn_indexes(scenarios):
    sc = scenarios["ad-click-prediction"]
    segs = [Segment("Hello.", 1), Segment("Because the auction multiplies pCTR by the bid, I'd track calibration with normalized cross-entropy.", 3)]
    res = score_segments(sc, segs)
    ev = res.stages["evaluation"].evidence
    assert ev and ev[0].turn == 3
    assert "auction" in ev[0].quote


def test_evidence_spans_point_into_the_answer(scenarios):
    case = STRONG[0]
    text = case["answer"]
    res = score_text(scenarios[case["scenario"]], text)
    for st in res.stages.values():
        for e in st.evidence:
            assert text[e.start : e.end].startswith(e.quote[:20])


def test_result_is_deterministic_and_serialisable(scenarios):
    import json

    case = STRONG[1]
    sc = scenarios[case["scenario"]]
    a, b = score_text(sc, case["answer"]).to_dict(), score_text(sc, case["answer"]).to_dict()
    assert a == b
    json.dumps(a)
    assert set(a["stages"]) == set(STAGES) and 0 <= a["overall"] <= 4


def test_requirements_named_inside_the_design_are_not_clarifying(scenarios):
    sc = scenarios["ad-click-prediction"]
    design = next(c for c in GOLD if c["id"] == "adclick-strong-1")["answer"].split("## Framing", 1)[1]
    design = "## Framing" + design.split("## Monitoring")[0]
    # a requirement said plainly (no question mark, no "assume"), which names nothing of the design itself
    signal, statement = next(
        (sig, st)
        for sig in sorted(sc.signals["clarify"], key=lambda s: -s.weight)
        for st in (ex.rstrip("?.") + "." for ex in sig.examples)
        if not CLARIFY_CUE.search(st) and set(score_text(sc, st).hits) == {sig.id}
    )
    hit = lambda text: score_text(sc, text).hits.get(signal.id)  # noqa: E731
    assert hit(statement) and hit(statement).quality >= 2  # on its own, before any design: clarifying
    assert hit(design + "\n\n" + statement) is None  # said in passing after the design began: not clarifying
    assert hit(design + "\n\nI'd ask: " + statement[:-1] + "?").quality >= 2  # asked as a question
    assert hit(design + "\n\nI assume " + statement[0].lower() + statement[1:]).quality >= 2  # stated as an assumption


def test_a_requirement_inside_the_first_design_sentence_is_design(scenarios):
    """The catalogue's size, said to justify a funnel, is not a clarifying question."""
    sc = scenarios["video-recommendation"]
    design = "Candidate generation pulls maybe 1,000-2,000 videos out of the catalogue, because nothing heavy can look at a billion items per request."
    assert "frame.funnel" in score_text(sc, design).hits
    assert not [k for k in score_text(sc, design).hits if k.startswith("clarify.")]
    assumed = "I assume the catalogue holds about a billion videos. " + design
    assert "clarify.scale" in score_text(sc, assumed).hits


def test_a_stage_is_named_only_by_a_word_that_starts_with_its_name(scenarios):
    sc = scenarios["visual-search"]
    pretrained = "The image encoder is a ResNet pretrained on ImageNet and fine-tuned on our product photos."
    assert score_text(sc, pretrained).stages["monitoring"].score == 0  # "retrain" inside "pretrained"
    assert score_text(sc, pretrained + " We retrain it weekly.").stages["monitoring"].score >= 1


@pytest.mark.parametrize(("stage", "vague"), [
    ("frame", "I'd predict whether the user clicks on each one."),
    ("model", "I'd use a neural net, or XGBoost, either works."),
    ("deployment", "Then we put it in production."),
])
def test_a_vague_pass_at_a_stage_names_it(scenarios, stage, vague):
    sc = scenarios["news-feed"]
    base = "The feed shows posts from friends, groups and pages."
    assert score_text(sc, base).stages[stage].score == 0
    assert score_text(sc, base + " " + vague).stages[stage].score == 1


def test_how_many_is_a_question_only_where_one_is_asked():
    assert CLARIFY_CUE.search("How many members log in each day")
    assert CLARIFY_CUE.search("I'd want to know how many invites are accepted")
    assert not CLARIFY_CUE.search("Every night a job counts how many friends each pair of members shares")


def test_a_sentence_that_hits_alone_does_not_borrow_its_neighbour(scenarios):
    sc = scenarios["people-you-may-know"]
    signal = next(s for s in sc.signals["monitoring"] if s.id == "monitoring.retraining-ops")
    serving = "Deployment: the ranking service runs in real time when the member opens the page, over precomputed candidates."
    generic = "Monitoring: retrain the model periodically."
    sents = sentences(serving + " " + generic)
    assert match_signal(signal, sents) == [(1, 1)]
    hit = score_text(sc, serving + " " + generic).hits[signal.id]
    assert hit.quality == 1 and hit.evidence.quote == generic


def test_boilerplate_that_fits_any_product_only_names_the_stage(scenarios):
    sc = scenarios["event-recommendation"]
    quality = lambda text: score_text(sc, text).hits["monitoring.seasonality-drift"].quality  # noqa: E731
    assert quality("Monitor the model for data drift and retrain regularly when performance degrades.") == 1
    assert quality("Monitor the model for data drift, since what people book shifts between summer festivals and winter shows.") >= 2


def test_a_pitfall_claim_caps_its_stage_and_says_why(scenarios):
    sc = scenarios["ad-click-prediction"]
    case = next(c for c in GOLD if c["id"] == "adclick-strong-1")
    base = score_text(sc, case["answer"])
    assert base.stages["evaluation"].score == 4 and not base.stages["evaluation"].pitfalls
    claim = "To keep it simple, the offline test set is a random split of the same impressions."
    capped = score_text(sc, case["answer"] + "\n\n" + claim)
    ev = capped.to_dict()["stages"]["evaluation"]
    assert ev["score"] == ScorerConfig().pitfall_cap < 4
    assert [p["id"] for p in ev["pitfalls"]] == ["random-split"] and ev["pitfalls"][0]["quote"] == claim
    assert ev["pitfalls"][0]["pushback"] == next(p.pushback for p in sc.pitfalls if p.id == "random-split")
    assert all(capped.stages[s].score == base.stages[s].score for s in STAGES if s != "evaluation")


def test_a_question_or_a_no_makes_no_pitfall_claim(scenarios):
    harmful, ads = scenarios["harmful-content"], scenarios["ad-click-prediction"]
    assert find_pitfalls(harmful, "We remove flagged posts automatically, with no human in the loop.")
    assert not find_pitfalls(harmful, "Are we removing flagged posts automatically, or ranking a review queue?")
    assert find_pitfalls(ads, "Features include the user's religion and ethnicity.")
    assert not find_pitfalls(ads, "Privacy: no religion or ethnicity as features.")
    # a factorization machine's pairwise feature interactions are not a ranking loss
    assert not find_pitfalls(ads, "Factorization machines learn pairwise interactions through embeddings.")
    assert find_pitfalls(ads, "I'd train the ranker with a pairwise loss on clicked versus skipped ads.")


def test_a_pitfall_said_as_a_rejection_is_not_a_claim(scenarios):
    sc = scenarios["ad-click-prediction"]
    assert [p.id for p, _ in find_pitfalls(sc, "The offline test set is a random split of the impressions.")] == ["random-split"]
    for rejected in (
        "I would not use a random split of the impressions for the test set.",
        "A random split for the test set would leak tomorrow's clicks into training.",
        "Don't evaluate on a random split of impressions.",
    ):
        assert not find_pitfalls(sc, rejected), rejected


def test_terse_requirement_notes_count_as_clarifying(scenarios):
    sc = scenarios["news-feed"]
    signal = "clarify.scale-latency"
    notes = "Scale: ~1B DAU; 1,000-3,000 candidate posts per user; feed load budget 200 ms."
    design = "I'd rank candidate posts with a multi-task model that predicts like, comment and share, and combine them in a weighted value score."
    assert score_text(sc, notes).hits[signal].quality >= 2  # a list of figures, but a requirement stated
    assert signal in score_text(sc, design + "\n" + notes).hits  # its label marks it as a requirement, even after the design began
    assert signal not in score_text(sc, design + "\n" + notes.removeprefix("Scale: ")).hits


def test_a_plus_inside_a_number_does_not_make_a_list():
    (sent,) = sentences("Posts can hold text in 100+ languages, images and short videos.")
    assert not is_list_like(sent, ScorerConfig())


def test_a_terse_note_with_a_figure_is_not_a_buzzword_list(scenarios):
    (note,) = sentences("Retrieval: BM25 + a dense dual encoder over titles and transcripts, union of ~1000.")
    (bare,) = sentences("Retrieval: BM25 + a dense dual encoder over titles and transcripts, union.")
    assert not is_list_like(note, ScorerConfig()) and is_list_like(bare, ScorerConfig())
    # figures among buzzwords, with no sentence around them, still earn nothing
    sc = scenarios["video-search"]
    stuffed = "nDCG@10, recall@100, MRR, p99 200 ms, HNSW, BM25, two-tower, A/B test, 1B videos, drift, canary."
    assert max(scores(score_text(sc, stuffed, others(scenarios, sc.id))).values()) <= 1
