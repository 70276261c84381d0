"""The optional LLM judge: per stage, reference-guided, constrained JSON, n samples.

A reply that does not parse is a *failure*, recorded as such and never turned
into a score.  Results are cached on disk keyed by model, prompt hash, rubric
version, answer hash, stage and sample index.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

import prompts
from agents.llm import LLMError, structured
from knowledge.scenarios import CARDS_DIR, STAGES, Scenario

ANSWER_CHARS = 6000


class StageJudgement(BaseModel):
    score: Literal[0, 1, 2, 3, 4]
    # Bounded so the constrained reply always fits in max_tokens (an unbounded
    # string was measured to run past it and truncate the JSON).
    evidence: str = Field(default="", max_length=160)
    reason: str = Field(default="", max_length=160)


@dataclass
class JudgedStage:
    stage: str
    score: int | None  # median of the valid samples; None when every sample failed
    samples: list[int] = field(default_factory=list)
    spread: int = 0
    failures: list[str] = field(default_factory=list)
    evidence: str = ""


def rubric_version(scenario: Scenario) -> str:
    path = CARDS_DIR / f"{scenario.id}.yaml"
    data = path.read_bytes() if path.exists() else scenario.model_dump_json().encode()
    return hashlib.sha256(data).hexdigest()[:12]


class JudgeCache:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path | None:
        return self.folder / f"{key}.json" if self.folder else None

    def get(self, key: str) -> dict | None:
        p = self._path(key)
        if p and p.exists():
            try:
                return json.loads(p.read_text())
            except (OSError, ValueError):
                return None
        return None

    def put(self, key: str, value: dict) -> None:
        p = self._path(key)
        if p:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(".tmp")
            tmp.write_text(json.dumps(value))
            tmp.replace(p)


def judge_stage(
    chat: BaseChatModel, model_label: str, scenario: Scenario, stage: str, answer: str, samples: int = 3, cache: JudgeCache | None = None
) -> JudgedStage:
    signals = "\n".join(f"- {s.shows}" for s in scenario.signals[stage])
    fenced = answer[:ANSWER_CHARS].replace("</answer>", "</ answer>")
    messages = prompts.messages("judge", title=scenario.title, stage=stage, signals=signals, answer=fenced)
    answer_hash = hashlib.sha256(answer.encode()).hexdigest()[:16]
    result = JudgedStage(stage, None)
    for i in range(samples):
        key = hashlib.sha256(f"{model_label}|{prompts.prompt_hash('judge')}|{rubric_version(scenario)}|{answer_hash}|{stage}|{i}".encode()).hexdigest()[:32]
        cached = (cache or JudgeCache(None)).get(key)
        if cached is not None:
            if cached.get("score") is None:
                result.failures.append(cached.get("failure", "failed"))
            else:
                result.samples.append(int(cached["score"]))
                result.evidence = result.evidence or cached.get("evidence", "")
            continue
        try:
            j = structured(chat, messages, StageJudgement, max_tokens=200)
        except LLMError as exc:
            result.failures.append(str(exc)[:200])
            continue  # transient or unparseable: never cached as a score, never a 0
        result.samples.append(j.score)
        result.evidence = result.evidence or j.evidence
        if cache:
            cache.put(key, {"score": j.score, "evidence": j.evidence, "reason": j.reason})
    if result.samples:
        result.score = int(round(statistics.median(result.samples)))
        result.spread = max(result.samples) - min(result.samples)
    return result


def judge_answer(chat, model_label, scenario, answer, samples=3, cache=None) -> dict[str, JudgedStage]:
    return {s: judge_stage(chat, model_label, scenario, s, answer, samples, cache) for s in STAGES}
