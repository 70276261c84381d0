"""The stage policy is a pure function: test its decisions directly."""

import pytest

from agents.policy import ENOUGH, View, budgets_for, decide
from knowledge.scenarios import STAGES


@pytest.fixture
def card(scenarios):
    return scenarios["ad-click-prediction"]


def view(**kw):
    base = dict(kind="design", stage="data", coverage={s: 0.0 for s in STAGES}, covered=frozenset())
    base.update(kw)
    return View(**base)


def test_budgets_default_to_45_minutes_and_scale():
    assert sum(budgets_for(None).values()) == 45
    assert budgets_for(90)["model"] == 20


def test_probes_highest_weight_uncovered_signal_of_the_stage(card):
    plan = decide(card, view())
    top = max(card.signals["data"], key=lambda s: s.weight)
    assert (plan.action, plan.stage, plan.target) == ("probe", "data", top.id)


def test_never_probes_the_same_signal_twice(card):
    asked = frozenset(s.id for s in card.signals["data"][:-1])
    plan = decide(card, view(asked=asked))
    assert plan.target == card.signals["data"][-1].id
    all_asked = frozenset(s.id for s in card.signals["data"])
    plan = decide(card, view(asked=all_asked))
    assert plan.action == "advance" and plan.stage == "model"


def test_advances_when_the_stage_is_covered(card):
    cov = {s: 0.0 for s in STAGES} | {"data": ENOUGH}
    plan = decide(card, view(coverage=cov))
    assert plan.action == "advance" and plan.stage == "model" and plan.note == "covered"


def test_jumping_ahead_goes_back_to_the_thin_stage_first(card):
    cov = {s: 0.0 for s in STAGES} | {"clarify": 0.8, "frame": 0.7}
    plan = decide(card, view(stage="frame", coverage=cov, message_stage="deployment"))
    assert plan.action == "probe" and plan.note == "revisit" and plan.stage in ("data", "model", "evaluation")
    assert plan.position == "deployment"  # the interview itself moved on


def test_an_unanswered_question_is_asked_again_before_the_emptier_stages(card):
    # asked about the model, the candidate talks evaluation: the model stage is not thin
    # (some of it came up in passing) but not covered either, and the question stands
    cov = {s: 0.0 for s in STAGES} | {"clarify": 0.8, "frame": 0.7, "data": 0.1, "model": 0.4}
    jump = dict(stage="model", coverage=cov, message_stage="evaluation")
    plan = decide(card, view(**jump, question="model"))
    assert (plan.action, plan.stage, plan.note, plan.position) == ("probe", "model", "revisit", "evaluation")
    # with no question pending (the last turn answered one of the candidate's), the emptiest stage first
    assert decide(card, view(**jump, question=None)).stage == "data"
    # once covered enough, the candidate is followed
    covered = decide(card, view(**jump | {"coverage": cov | {"model": ENOUGH}}, question="model"))
    assert covered.stage != "model"


def test_time_nudge_once_then_move_on(card):
    v = view(seconds_in_stage=9 * 60, budget_seconds=8 * 60)
    plan = decide(card, v)
    assert plan.action == "nudge" and plan.note == "time"
    plan = decide(card, view(seconds_in_stage=9 * 60, budget_seconds=8 * 60, nudged=frozenset({"data"})))
    assert plan.action == "probe"
    plan = decide(card, view(seconds_in_stage=13 * 60, budget_seconds=8 * 60))
    assert plan.action == "advance" and plan.note == "time"


def test_pushback_once_per_pitfall(card):
    pid = card.pitfalls[0].id
    assert decide(card, view(pitfalls=(pid,))).action == "pushback"
    assert decide(card, view(pitfalls=(pid,), pushed=frozenset({pid}))).action == "probe"


def test_clarifying_questions_get_facts_or_an_assumption(card):
    plan = decide(card, view(kind="clarify_question", facts=("latency",)))
    assert plan.action == "answer_clarification" and plan.facts == ("latency",)
    plan = decide(card, view(kind="clarify_question"))
    assert plan.note == "assumption"


@pytest.mark.parametrize("kind,note", [("empty", "empty"), ("off_topic", "off_topic"), ("injection", "refusal")])
def test_non_answers_get_a_nudge(card, kind, note):
    plan = decide(card, view(kind=kind))
    assert plan.action == "nudge" and plan.note == note


def test_done_wraps_up_a_thin_stage_once_then_gives_feedback(card):
    cov = {s: 0.7 for s in STAGES} | {"monitoring": 0.0}
    plan = decide(card, view(kind="done", coverage=cov))
    assert plan.note == "wrap" and plan.stage == "monitoring"
    assert decide(card, view(kind="done", coverage=cov, wrapped=True)).action == "feedback"
