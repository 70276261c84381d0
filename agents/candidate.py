"""Simulated candidates for self-play evals: scripted personas that react to the interviewer.

A persona reads the interviewer's last turn and the scenario card and writes
the next candidate message.  Scripted personas are deterministic (seeded), so interview suites are
reproducible; their words come from the card's example phrasings and the
persona's lines in ``prompts/candidate.yaml``.  Given a chat model, the same
persona is played by the model instead (falling back to the script if it fails).
Personas: strong, skips (leaves out one stage), wrong-claim, rambles,
one-liners, clarifier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import prompts
from agents.db import Turn
from knowledge.scenarios import STAGES, Scenario

PERSONAS = ("strong", "skips", "wrong-claim", "rambles", "one-liners", "clarifier")


def _lines(key: str) -> list[str]:
    data = prompts.load("candidate")
    return list(data[key])


@dataclass
class SimulatedCandidate:
    scenario: Scenario
    persona: str = "strong"
    skip: str | None = None
    seed: int = 0
    max_turns: int = 30
    chat: object | None = None  # a chat model makes the persona LLM-driven; None keeps it scripted
    _rng: random.Random = field(init=False)
    _stage_i: int = field(default=0, init=False)
    _turns: int = field(default=0, init=False)
    _asked_facts: list[str] = field(default_factory=list, init=False)
    _claimed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.persona not in PERSONAS:
            raise ValueError(f"unknown persona {self.persona!r}; use one of {', '.join(PERSONAS)}")
        self._rng = random.Random(f"{self.seed}-{self.scenario.id}-{self.persona}-{self.skip}")

    def _llm_message(self, last: Turn) -> str:
        """The persona played by a model; falls back to the scripted persona if it fails."""
        from agents.llm import LLMError, stream_text

        data = prompts.load("candidate")
        persona = prompts.fill(data["llm_personas"][self.persona], skip=self.skip or "monitoring")
        messages = [
            ("system", prompts.fill(data["llm"]["system"], title=self.scenario.title, question=self.scenario.question.strip(), persona=persona)),
            ("user", prompts.fill(data["llm"]["user"], interviewer=last.text[-800:])),
        ]
        try:
            reply = "".join(stream_text(self.chat, messages, max_tokens=180)).strip()
        except LLMError:
            reply = ""
        if reply:
            return reply
        chat, self.chat = self.chat, None
        try:
            return self.next_message(last)
        finally:
            self.chat = chat

    def _example(self, signal_id: str, which: int = 0) -> str:
        sig = next(s for s in self.scenario.all_signals() if s.id == signal_id)
        return sig.examples[min(which, len(sig.examples) - 1)]

    def _stage_text(self, stage: str) -> str:
        sigs = sorted(self.scenario.signals[stage], key=lambda s: -s.weight)[:2]
        text = " ".join(s.examples[0] for s in sigs)
        if self.persona == "wrong-claim" and stage == "evaluation" and not self._claimed:
            self._claimed = True
            text = _lines("wrong_claims")[0] + " " + text
        if self.persona == "rambles":
            fillers = _lines("fillers")
            text = " ".join(f"{self._rng.choice(fillers)} {part}" for part in text.split(". "))
        if self.persona == "one-liners":
            text = self._rng.choice(_lines("one_liners"))
        return text

    def _question(self) -> str | None:
        keys = [k for k in ("scale_growth", "latency", "data_labels", "business_objective", "privacy") if k not in self._asked_facts]
        if not keys:
            return None
        key = keys[0]
        self._asked_facts.append(key)
        return prompts.fill(_lines("questions")[0], topic=self.scenario.facts[key].ask[0])

    def next_message(self, last: Turn) -> str:
        """The candidate's reply to the interviewer's latest turn."""
        self._turns += 1
        if self._turns > self.max_turns:
            return "I'm done."
        if self.chat is not None:
            return self._llm_message(last)
        if self.persona == "clarifier":
            return self._question() or "I'm done."
        probed = last.action in ("probe", "advance", "nudge") and last.target and self._turns > 2
        # A candidate who drives: answer a probe, then move the design on, and so on.
        if probed and (self._turns % 2 == 1 or last.note in ("revisit", "wrap") or self._stage_i >= len(STAGES)):
            stage = last.target.split(".", 1)[0]
            if stage == self.skip and self.persona == "skips" and last.note != "revisit":
                pass  # a skipper ignores the stage until the interviewer comes back to it
            elif self.persona == "one-liners":
                return self._rng.choice(_lines("one_liners"))
            else:
                return self._example(last.target, 1)
        if last.action == "pushback":
            return _lines("corrections")[0]
        if self._turns <= 2 and self.persona != "one-liners":
            q = self._question()
            if q:
                return q
        while self._stage_i < len(STAGES):
            stage = STAGES[self._stage_i]
            self._stage_i += 1
            if stage == "clarify" or (self.persona == "skips" and stage == self.skip):
                continue
            return self._stage_text(stage)
        return "I'm done."
