"""The interviewer: one interview, turn by turn, persisted as it goes.

For each candidate message: save it, classify it, update coverage with the
scorer, let the policy decide, ground the decision in retrieved passages,
phrase it (LLM, checked, else template), save the reply.  State is derived
from the saved turns, so an interview resumes from the database alone.
This module orchestrates; the decisions live in ``agents.policy``, the
scoring in ``evals.scorer``, the words in ``prompts/``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

import prompts
from agents.classify import classify, clean
from agents.db import InterviewDB, InterviewRecord, Turn
from agents.llm import LLMError, is_local, stream_text
from agents.phrasing import stream_checked
from agents.policy import Plan, View, budgets_for, decide
from evals.scorer import ScoreResult, Segment, TranscriptScorer, find_pitfalls
from evals.text import group_regex, normalize
from knowledge.retrieval import Passage, Retriever
from knowledge.scenarios import STAGES, Scenario, Signal

MODEL_CHARS = 1500  # what the model sees of a long message; the database keeps it all
PHRASING_CHARS = 140  # of the candidate's words in the phrasing prompt: every token here is
# prompt processing the KV cache cannot save, and the question only needs the gist.  Measured
# on the local 1.5B model, 2 cores, warm prefix: median first token 2.29 s at 280 characters,
# 1.68 s at 200, 1.28 s at 140; checker acceptance 8/8 at 280 and 7/8 at 160 on gold excerpts.
IDLE_CAP = 600.0  # a pause longer than this does not count as time spent on a stage


@dataclass
class Deps:
    db: InterviewDB
    scenarios: dict[str, Scenario]
    retriever: Retriever | None = None
    chat: BaseChatModel | None = None
    llm_label: str = "none"
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Event:
    """Streamed to the UI: text pieces, a replacement, a notice, the saved turn."""

    type: str  # delta | replace | notice | turn
    text: str = ""
    turn: Turn | None = None


@dataclass
class Feedback:
    scenario: str
    overall: float
    stages: dict[str, dict]
    improvements: list[dict]
    time_per_stage: dict[str, dict]
    reference_outline: dict[str, list[str]]
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "overall": round(self.overall, 2),
            "stages": self.stages,
            "improvements": self.improvements,
            "time_per_stage": self.time_per_stage,
            "reference_outline": self.reference_outline,
            "flags": self.flags,
        }


def match_facts(scenario: Scenario, question: str) -> tuple[str, ...]:
    """Fact keys a clarifying question asks about, best first (at most two)."""
    norm = normalize(question)
    hits = []
    for key, fact in scenario.facts.items():
        n = sum(1 for term in fact.ask if group_regex((term,)).search(norm))
        if n:
            hits.append((n, key))
    hits.sort(key=lambda p: -p[0])
    return tuple(k for _, k in hits[:2])


def stage_seconds(turns: list[Turn], now: float) -> dict[str, float]:
    """Seconds spent per stage: each gap between turns counts to the stage in play."""
    spent = dict.fromkeys(STAGES, 0.0)
    stage = "clarify"
    for i, turn in enumerate(turns):
        if turn.role == "interviewer":
            stage = turn.position or turn.stage
        end = turns[i + 1].at if i + 1 < len(turns) else now
        spent[stage] += min(max(end - turn.at, 0.0), IDLE_CAP)
    return spent


class InterviewSession:
    def __init__(self, deps: Deps, record: InterviewRecord) -> None:
        self.deps = deps
        self.record = record
        self.scenario = deps.scenarios[record.scenario]
        # one scorer per interview: each candidate turn is matched against the rubric once
        self.scorer = TranscriptScorer(self.scenario, {k: v for k, v in deps.scenarios.items() if k != record.scenario})
        self._vocab = group_regex(tuple(self.scenario.product_terms) + tuple(t for f in self.scenario.facts.values() for t in f.ask))

    # --- lifecycle -------------------------------------------------------------------
    @classmethod
    def start(cls, deps: Deps, scenario_id: str, minutes: float | None = None) -> "InterviewSession":
        scenario = deps.scenarios[scenario_id]
        budgets = budgets_for(minutes)
        iid = deps.db.create_interview(scenario_id, deps.llm_label, budgets)
        opening = prompts.text(
            "phrases", "opening", title=scenario.title, question=scenario.question.strip(), minutes=round(sum(budgets.values()))
        )
        deps.db.add_turn(iid, Turn(0, "interviewer", opening, "clarify", action="open", at=deps.clock(), position="clarify"))
        return cls(deps, deps.db.get(iid))

    @classmethod
    def resume(cls, deps: Deps, interview_id: str) -> "InterviewSession":
        return cls(deps, deps.db.get(interview_id))

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def turns(self) -> list[Turn]:
        return self.record.turns

    @property
    def finished(self) -> bool:
        return self.record.status == "finished"

    @property
    def stage(self) -> str:
        """Where the interview stands: detours (revisits, pushbacks) do not move it."""
        for t in reversed(self.turns):
            if t.role == "interviewer":
                return t.position or t.stage
        return "clarify"

    def warm(self) -> threading.Thread | None:
        """Fill llama.cpp's KV cache with this interview's fixed prompt prefix, in the background.

        Started while the candidate reads the opening, so the first real turn
        streams quickly instead of paying the cold prompt (about 13 s on 2 cores).
        """
        chat = self.deps.chat
        if chat is None or not is_local(chat):
            return None  # a remote model keeps no cache for us, and a warm-up call would cost money
        messages = prompts.messages(
            "interviewer", title=self.scenario.title, question=self.scenario.question.strip(), candidate="", topic=""
        )

        def run() -> None:
            try:
                for _ in stream_text(chat, messages[:-1] + [("user", "Ready?")], max_tokens=1):
                    break
            except LLMError:
                pass  # warming is best effort; the turn itself reports failures

        thread = threading.Thread(target=run, daemon=True, name=f"warm-{self.id}")
        thread.start()
        return thread

    # --- coverage --------------------------------------------------------------------
    def coverage(self) -> ScoreResult:
        segments = [Segment(t.text, t.index) for t in self.turns if t.role == "candidate" and t.kind not in ("injection", "off_topic")]
        return self.scorer.score(segments)

    def seconds_per_stage(self) -> dict[str, float]:
        """Time per stage; a finished interview's clock stopped at its last turn."""
        end = self.turns[-1].at if self.finished and self.turns else self.deps.clock()
        return stage_seconds(self.turns, end)

    def message_stage(self, text: str, during: str | None = None) -> str | None:
        """The stage a message mostly speaks to: the most rubric weight hit substantively.

        Said ``during`` a design stage (default: the stage the interview is at),
        requirements are design, not clarifying (the scorer's rule), so clarify
        signals do not count: "8 million frames a day" in a serving plan does
        not take the candidate back to clarify.  Said during clarify, they all
        count, even beside a design choice: the message answers the question asked.
        """
        hits = self.scorer.analysis(Segment(text)).best  # before the scorer's clarify-in-place rule
        stages = STAGES if (during or self.stage) == "clarify" else STAGES[1:]
        weights = {
            s: sum(sig.weight for sig in self.scenario.signals[s] if sig.id in hits and hits[sig.id].quality >= 2)
            for s in stages
        }
        best = max(stages, key=lambda s: (weights[s], -STAGES.index(s)))
        return best if weights[best] > 0 else None

    def _view(self, kind: str, text: str, cov: ScoreResult) -> View:
        mine = [t for t in self.turns if t.role == "interviewer"]
        stage = self.stage
        seconds = self.seconds_per_stage()
        skipped, seen_stage = [], "clarify"
        for t in mine:  # stages jumped over when the interview moved forward
            pos = t.position or t.stage
            if STAGES.index(pos) > STAGES.index(seen_stage) + 1:
                skipped += STAGES[STAGES.index(seen_stage) + 1 : STAGES.index(pos)]
            seen_stage = max(seen_stage, pos, key=STAGES.index)
        return View(
            kind=kind,
            stage=stage,
            coverage={s: cov.stages[s].coverage for s in STAGES},
            covered=frozenset(sid for sid, h in cov.hits.items() if h.quality >= 2),
            message_stage=self.message_stage(text) if kind == "design" else None,
            asked=frozenset(t.target for t in mine if t.target and t.action in ("probe", "advance", "nudge")),
            pushed=frozenset(t.target for t in mine if t.action == "pushback" and t.target),
            pitfalls=tuple(p.id for p, _ in find_pitfalls(self.scenario, text)) if kind == "design" else (),
            facts=match_facts(self.scenario, text) if kind == "clarify_question" else (),
            question=mine[-1].stage if mine and mine[-1].action in ("probe", "advance", "nudge") else None,
            revisited=frozenset(t.stage for t in mine if t.note in ("revisit", "wrap")),
            skipped=tuple(dict.fromkeys(skipped)),
            nudged=frozenset(t.stage for t in mine if t.action == "nudge" and t.note == "time"),
            wrapped=any(t.note == "wrap" for t in mine),
            seconds_in_stage=seconds[stage],
            budget_seconds=float(self.record.budgets.get(stage, 5)) * 60,
        )

    # --- one turn --------------------------------------------------------------------
    def respond(self, text: str) -> Iterator[Event]:
        """Save the candidate's message, then stream and save the interviewer's reply."""
        if self.finished:
            yield Event("notice", "This interview is finished; start a new one to practise again.")
            return
        kind = classify(text, self._vocab)
        note = None
        if len(text) > MODEL_CHARS:
            note = prompts.text("phrases", "long_message_note", chars=MODEL_CHARS)
        cand = self.deps.db.add_turn(self.id, Turn(0, "candidate", text, self.stage, kind=kind, note=note, at=self.deps.clock()))
        self.record.turns.append(cand)
        yield from self._reply(cand)

    @property
    def awaiting_reply(self) -> bool:
        """The last saved message is the candidate's and has no reply (the process died in between)."""
        return not self.finished and bool(self.turns) and self.turns[-1].role == "candidate"

    def answer_pending(self) -> Iterator[Event]:
        """Reply to a message saved before a crash; nothing to do otherwise."""
        if self.awaiting_reply:
            yield from self._reply(self.turns[-1])

    def _reply(self, cand: Turn) -> Iterator[Event]:
        cov = self.coverage()
        plan = decide(self.scenario, self._view(cand.kind, cand.text, cov))
        yield from self._speak(plan, clean(cand.text)[:MODEL_CHARS], cand.note)

    def end(self) -> Iterator[Event]:
        """Finish now (the candidate pressed "end"): feedback, no wrap-up questions."""
        if not self.finished:
            yield from self._speak(Plan("feedback", self.stage, position=self.stage), "", None)

    def _speak(self, plan: Plan, candidate: str, note: str | None) -> Iterator[Event]:
        signal = self._signal(plan.target)
        sources = self._ground(plan, signal)
        prefix, question_slot = self._frame(plan, signal, sources)
        head = note + "\n\n" if note else ""
        if head:
            yield Event("delta", head)
        if question_slot is None:
            yield Event("delta", prefix)
            text = head + prefix
        else:
            before, _, after = prefix.partition("{{question}}")
            if before:
                yield Event("delta", before)
            question = yield from self._question(plan, signal, candidate, question_slot, head + before)
            if after:
                yield Event("delta", after)
            text = head + before + question + after
        turn = Turn(
            0, "interviewer", text.strip(), plan.stage, action=plan.action, target=plan.target, sources=sources,
            note=plan.note, at=self.deps.clock(), position=plan.position or plan.stage,
        )
        saved = self.deps.db.add_turn(self.id, turn)
        self.record.turns.append(saved)
        if plan.action == "feedback":
            self.finish()  # after the closing turn is saved, so its time counts
        yield Event("turn", turn=saved)

    def _signal(self, target: str | None) -> Signal | None:
        return next((s for s in self.scenario.all_signals() if s.id == target), None)

    def _ground(self, plan: Plan, signal: Signal | None) -> list[dict]:
        if self.deps.retriever is None or plan.action in ("feedback", "answer_clarification"):
            return []
        if signal is not None:
            query = signal.query
        elif plan.action == "pushback":
            query = next(p.pushback for p in self.scenario.pitfalls if p.id == plan.target)
        else:
            query = prompts.text("phrases", f"generic_probes.{plan.stage}")
        passages = self.deps.retriever.search(query, k=2, stage=plan.stage) or self.deps.retriever.search(query, k=2)
        return [_source(p) for p in passages]

    def _frame(self, plan: Plan, signal: Signal | None, sources: list[dict]) -> tuple[str, str | None]:
        """The reply's template around a {{question}} slot, and the slot's template question."""
        names = lambda s: prompts.text("phrases", f"stage_names.{s}")  # noqa: E731
        q = signal.probe if signal else prompts.text("phrases", f"generic_probes.{plan.stage}")
        slot = "{{question}}"
        a = plan.action
        if a == "answer_clarification":
            if plan.facts:
                body = " ".join(self.scenario.facts[k].answer.strip() for k in plan.facts)
            else:
                body = prompts.text("phrases", "assumption")
            tail = prompts.text("phrases", "continue_after_answer" if self.stage == "clarify" else "continue_after_answer_later")
            return f"{body}\n\n{tail}", None
        if a == "feedback":
            return prompts.text("phrases", "feedback_intro"), None
        if a == "pushback":
            pitfall = next(p for p in self.scenario.pitfalls if p.id == plan.target)
            return prompts.text("phrases", "pushback", pushback="{{question}}"), pitfall.pushback
        if a == "advance":
            key = {"time": "advance_time", "candidate": "advance_candidate"}.get(plan.note or "", "advance")
            return prompts.text("phrases", key, from_stage=names(plan.from_stage or self.stage), to_stage=names(plan.stage), question=slot), q
        if a == "nudge":
            if plan.note == "time":
                minutes = round(self.seconds_per_stage()[plan.stage] / 60)
                return prompts.text("phrases", "nudge_time", minutes=minutes, stage=names(plan.stage), budget=self.record.budgets.get(plan.stage), question=slot), q
            return prompts.text("phrases", plan.note or "empty", question=slot), q
        if plan.note == "revisit":
            return prompts.text("phrases", "revisit", current=names(plan.from_stage or self.stage), stage=names(plan.stage), question=slot), q
        if plan.note == "wrap":
            return prompts.text("phrases", "wrap", stage=names(plan.stage), question=slot), q
        if plan.note == "hint":
            hint = _first_sentence(sources[0]["text"]) if sources else (signal.why if signal else "")
            return prompts.text("phrases", "hint", hint=hint, question=slot), q
        return slot, q

    def _question(self, plan: Plan, signal: Signal | None, candidate: str, template: str, before: str = ""):
        """Stream the slot's question: LLM-phrased and checked, else the template.

        A "replace" event carries the reply so far with the template question,
        for the UI to show instead of what it streamed.
        """
        chat = self.deps.chat
        if chat is None or plan.note == "refusal":  # a refusal is said in our words only
            yield Event("delta", template)
            return template
        if plan.action == "pushback":
            messages = prompts.messages("pushback", title=self.scenario.title, candidate=_gist(candidate), problem=template)
        else:
            messages = prompts.messages(
                "interviewer", title=self.scenario.title, question=self.scenario.question.strip(), candidate=_gist(candidate) or "(nothing yet)", topic=template
            )
        secrets = [signal.shows, *signal.examples] if signal else []
        if plan.action == "pushback":
            secrets = []  # the pushback text is meant to be said
        streamed = ""
        try:
            for kind, value in stream_checked(stream_text(chat, messages, max_tokens=80), candidate, secrets, template):
                if kind == "delta":
                    streamed += value
                    yield Event("delta", value)
                elif kind == "final":
                    return value
                else:
                    yield Event("replace", before + template) if streamed else Event("delta", template)
                    return template
        except LLMError as exc:
            yield Event("notice", prompts.text("phrases", "llm_fallback_notice", reason=str(exc)[:120]))
            yield Event("replace", before + template) if streamed else Event("delta", template)
            return template
        return template

    # --- the end -----------------------------------------------------------------------
    def feedback(self) -> Feedback:
        cov = self.coverage()
        seconds = self.seconds_per_stage()
        stages = {}
        for s in STAGES:
            st = cov.stages[s]
            stages[s] = {
                "score": st.score,
                "confidence": round(st.confidence, 2),
                "evidence": [{"quote": e.quote, "turn": e.turn, "signal": e.signal} for e in st.evidence],
                "covered": st.covered,
                "missed": st.missed,
            }
        weights = {sig.id: sig.weight for sig in self.scenario.all_signals()}
        ranked = sorted(
            ((weights[m] * (4 - cov.stages[s].score), s, m) for s in STAGES for m in cov.stages[s].missed),
            key=lambda x: -x[0],
        )
        improvements = []
        for _, s, m in ranked:
            if len(improvements) == 3:
                break
            if any(i["stage"] == s for i in improvements) and len({r[1] for r in ranked}) > 3:
                continue  # spread the three across stages when possible
            sig = self._signal(m)
            passages = self.deps.retriever.search(sig.query, k=1, stage=s) if self.deps.retriever else []
            improvements.append(
                {"stage": s, "signal": m, "what": sig.shows, "why": sig.why, "study": _source(passages[0]) if passages else None}
            )
        time_per_stage = {s: {"minutes": round(seconds[s] / 60, 1), "budget": self.record.budgets.get(s)} for s in STAGES}
        return Feedback(self.scenario.id, cov.overall, stages, improvements, time_per_stage, self.scenario.reference_outline, cov.flags)

    def finish(self) -> Feedback:
        fb = self.feedback()
        if not self.finished:
            self.deps.db.finish(self.id, fb.stages)
            self.record.status = "finished"
        return fb


def _source(p: Passage) -> dict:
    return {"source": p.source, "section": p.section, "stage": p.stage, "text": p.text[:600], "score": p.score}


def _gist(text: str) -> str:
    """The end of the candidate's message, where they usually land, cut on a word boundary."""
    text = " ".join(text.split())
    if len(text) <= PHRASING_CHARS:
        return text
    return "…" + text[-PHRASING_CHARS:].split(" ", 1)[-1]


def _first_sentence(text: str) -> str:
    m = re.match(r"(.{20,280}?[.!?])(\s|$)", text.strip())
    return m.group(1) if m else text.strip()[:200]
