"""The stage policy: given what just happened, decide the interviewer's next move.

A pure function of a small typed view of the interview (:class:`View`) and the
scenario card; no model, no I/O.  The LLM only phrases what this decides.

Rules, in order: handle empty / injected / off-topic / finished messages;
answer clarifying questions from the card's hidden facts; push back once per
wrong claim; when the candidate jumps ahead leaving a stage thin, go back to
it at once; advance when a stage is covered enough or its time is spent;
nudge once when a stage runs long; otherwise probe the highest-weight
uncovered signal of the stage.  No signal is ever probed twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from knowledge.scenarios import STAGES, Scenario, Signal

ENOUGH = 0.6  # weighted coverage at which a stage is done
THIN = 0.34  # below this a stage is "thin" and worth coming back to
OVERTIME = 1.5  # past budget x this, the interviewer moves on regardless

DEFAULT_BUDGET_MINUTES = {
    "clarify": 5,
    "frame": 5,
    "data": 8,
    "model": 10,
    "evaluation": 7,
    "deployment": 5,
    "monitoring": 5,
}


def budgets_for(total_minutes: float | None) -> dict[str, float]:
    """Per-stage minutes, scaled from the 45-minute default to ``total_minutes``."""
    base = sum(DEFAULT_BUDGET_MINUTES.values())
    factor = (total_minutes or base) / base
    return {s: round(m * factor, 2) for s, m in DEFAULT_BUDGET_MINUTES.items()}


@dataclass(frozen=True)
class View:
    """What the policy may look at."""

    kind: str  # from agents.classify
    stage: str  # the stage the interview is at
    coverage: dict[str, float]  # stage -> weighted coverage 0..1
    covered: frozenset[str]  # signal ids covered substantively
    message_stage: str | None = None  # stage the latest message mostly spoke to
    asked: frozenset[str] = frozenset()  # signal ids already probed
    pushed: frozenset[str] = frozenset()  # pitfall ids already pushed back on
    pitfalls: tuple[str, ...] = ()  # pitfall ids the latest message triggered
    facts: tuple[str, ...] = ()  # fact keys the latest question asks about
    question: str | None = None  # stage of the interviewer's last turn, when that turn asked something
    revisited: frozenset[str] = frozenset()  # stages already gone back to
    skipped: tuple[str, ...] = ()  # stages the candidate jumped over
    nudged: frozenset[str] = frozenset()  # stages already nudged for time
    wrapped: bool = False  # the interviewer already said "before we wrap up"
    seconds_in_stage: float = 0.0
    budget_seconds: float = 300.0


@dataclass(frozen=True)
class Plan:
    action: str  # open | probe | answer_clarification | pushback | advance | nudge | feedback
    stage: str
    target: str | None = None  # signal id (probe) or pitfall id (pushback)
    facts: tuple[str, ...] = ()
    note: str | None = None  # why: revisit, wrap, hint, refusal, off_topic, empty, time, covered, candidate, assumption
    from_stage: str | None = None
    position: str | None = None  # where the interview stands after this turn (default: stage)


def next_stage(stage: str) -> str | None:
    i = STAGES.index(stage)
    return STAGES[i + 1] if i + 1 < len(STAGES) else None


def best_signal(scenario: Scenario, stage: str, view: View) -> Signal | None:
    """Highest-weight signal of ``stage`` that is neither covered nor asked."""
    options = [s for s in scenario.signals[stage] if s.id not in view.covered and s.id not in view.asked]
    return max(options, key=lambda s: s.weight) if options else None


def _probe(
    scenario: Scenario, stage: str, view: View, note: str | None = None, action: str = "probe", from_stage: str | None = None
) -> Plan | None:
    signal = best_signal(scenario, stage, view)
    if signal is None:
        return None
    # A detour (going back, wrapping up) leaves the interview where it stood.
    position = (from_stage or view.stage) if note in ("revisit", "wrap") else stage
    return Plan(action, stage, signal.id, note=note, from_stage=from_stage, position=position)


def _thin_stages(view: View, upto: str | None = None) -> list[str]:
    limit = STAGES.index(upto) if upto else len(STAGES)
    return [s for s in STAGES[:limit] if view.coverage.get(s, 0.0) < THIN and s not in view.revisited]


def _advance(scenario: Scenario, view: View, note: str) -> Plan:
    """Move to the next stage with something left to ask, or finish."""
    stage = view.stage
    while (stage := next_stage(stage)) is not None:
        plan = _probe(scenario, stage, view, note=note, action="advance", from_stage=view.stage)
        if plan:
            return plan
    return _wrap_or_finish(scenario, view)


def _wrap_or_finish(scenario: Scenario, view: View) -> Plan:
    if not view.wrapped:
        for stage in sorted(_thin_stages(view), key=lambda s: view.coverage.get(s, 0.0)):
            plan = _probe(scenario, stage, view, note="wrap")
            if plan:
                return plan
    return Plan("feedback", view.stage, position=view.stage)


def decide(scenario: Scenario, view: View) -> Plan:
    stage = view.stage
    kind = view.kind
    if kind == "done":
        return _wrap_or_finish(scenario, view)
    if kind in ("empty", "off_topic", "injection"):
        note = {"empty": "empty", "off_topic": "off_topic", "injection": "refusal"}[kind]
        signal = best_signal(scenario, stage, view)
        return Plan("nudge", stage, signal.id if signal else None, note=note, position=stage)
    if kind == "clarify_question":
        return Plan("answer_clarification", stage, facts=view.facts, note=None if view.facts else "assumption", position=stage)
    if kind == "hint":
        return _probe(scenario, stage, view, note="hint") or _advance(scenario, view, "covered")
    if kind == "done_stage":
        return _advance(scenario, view, "candidate")

    # design content
    for pid in view.pitfalls:
        if pid not in view.pushed:
            pitfall = next(p for p in scenario.pitfalls if p.id == pid)
            return Plan("pushback", pitfall.stage, pid, position=stage)
    if view.message_stage and STAGES.index(view.message_stage) > STAGES.index(stage):
        # The candidate moved on: follow them, but first go back to what they skipped. A question
        # the interviewer just asked comes first until its stage is covered enough (the candidate
        # left it unanswered, whatever they said about the stage in passing); then the thin
        # stages, the emptiest first and, among equals, the one just jumped over.
        moved = View(**{**view.__dict__, "stage": view.message_stage})
        behind = sorted(
            _thin_stages(moved, upto=view.message_stage),
            key=lambda s: (view.coverage.get(s, 0.0), -STAGES.index(s)),
        )
        asked = view.question
        if asked and asked == stage and asked not in view.revisited and view.coverage.get(asked, 0.0) < ENOUGH:
            behind = [asked] + [s for s in behind if s != asked]
        for skipped in behind:
            plan = _probe(scenario, skipped, moved, note="revisit", from_stage=view.message_stage)
            if plan:
                return plan
        return _probe(scenario, view.message_stage, moved) or _advance(scenario, moved, "covered")
    for skipped in view.skipped:
        if skipped not in view.revisited and view.coverage.get(skipped, 0.0) < THIN:
            plan = _probe(scenario, skipped, view, note="revisit")
            if plan:
                return plan
    if view.coverage.get(stage, 0.0) >= ENOUGH:
        return _advance(scenario, view, "covered")
    if view.seconds_in_stage > view.budget_seconds * OVERTIME:
        return _advance(scenario, view, "time")
    if view.seconds_in_stage > view.budget_seconds and stage not in view.nudged:
        plan = _probe(scenario, stage, view, note="time", action="nudge")
        if plan:
            return plan
    return _probe(scenario, stage, view) or _advance(scenario, view, "covered")
