"""The optional LLM judge: per stage, reference-guided, constrained JSON, n samples.

A reply that does not parse is a *failure*, recorded as such and never turned
into a score.  Results are cached on disk keyed by model, prompt hash, rubric
version, answer hash, stage and sample index.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

import prompts
from agents.llm import LLMError, is_local, structured
from evals.scorer import STAGE_WORDS, ScoreResult, Segment, candidate_sentences
from knowledge.scenarios import CARDS_DIR, STAGES, Scenario

ANSWER_CHARS = 6000  # of the answer in one judge prompt: with the rubric, well inside the local model's 4,096 tokens
GAP = " [...] "


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


def stage_passages(scenario: Scenario, segments: list[Segment], result: ScoreResult, budget: int = ANSWER_CHARS) -> dict[str, str]:
    """For an answer too long for one judge prompt, what each stage's judge reads instead.

    The stage's own passages: the sentences of the scorer's hits on its signals,
    best hits first, and the sentences that name the stage, each with the sentence
    before and after it, up to ``budget`` characters, in the answer's order, with
    ``[...]`` where text was left out.  A stage with nothing of its own gets the
    answer's opening, as a prompt cut at the budget would.  Sentences addressed
    to the grader are never among them.
    """
    sents, _ = candidate_sentences(segments)
    where = {(s.turn, s.start): i for i, s in enumerate(sents)}
    out = {}
    for stage in STAGES:
        hits = sorted(
            (h for sid, h in result.hits.items() if scenario.stage_of(sid) == stage), key=lambda h: (-h.quality, h.evidence.turn or 0, h.evidence.start)
        )
        ranked = [where[(h.evidence.turn, h.evidence.start)] for h in hits if (h.evidence.turn, h.evidence.start) in where]
        ranked += [i for i, s in enumerate(sents) if STAGE_WORDS[stage].search(s.norm)]
        chosen: set[int] = set()
        used = 0
        for i in ranked:
            around = [j for j in (i - 1, i, i + 1) if 0 <= j < len(sents) and j not in chosen and sents[j].turn == sents[i].turn]
            for take in (around, [i] if i in around else []):  # with its neighbours if they fit, else alone
                cost = sum(len(sents[j].text) + len(GAP) for j in take)
                if take and used + cost <= budget:
                    chosen.update(take)
                    used += cost
                    break
        if not chosen:
            opening = " ".join(s.text for s in sents)
            out[stage] = opening[:budget]
            continue
        parts, last = [], None
        for i in sorted(chosen):
            if last is not None:
                parts.append(" " if i == last + 1 else GAP)
            parts.append(sents[i].text)
            last = i
        out[stage] = ("" if min(chosen) == 0 else GAP.lstrip()) + "".join(parts) + ("" if max(chosen) == len(sents) - 1 else GAP.rstrip())
    return out


Outcome = tuple[int | None, str, str]  # one sample: (score or None, evidence, failure message)


def _calls(model_label: str, scenario: Scenario, stage: str, answer: str, samples: int) -> tuple[list, list[str]]:
    """One stage's prompt and the cache key of each of its samples."""
    signals = "\n".join(f"- {s.shows}" for s in scenario.signals[stage])
    fenced = answer[:ANSWER_CHARS].replace("</answer>", "</ answer>")
    messages = prompts.messages("judge", title=scenario.title, stage=stage, signals=signals, answer=fenced)
    answer_hash = hashlib.sha256(answer.encode()).hexdigest()[:16]
    base = f"{model_label}|{prompts.prompt_hash('judge')}|{rubric_version(scenario)}|{answer_hash}|{stage}"
    return messages, [hashlib.sha256(f"{base}|{i}".encode()).hexdigest()[:32] for i in range(samples)]


def _sample(chat: BaseChatModel, messages, key: str, cache: JudgeCache | None) -> Outcome:
    """One judge call, or its cached reply.  A failure is reported, never cached as a score."""
    cached = (cache or JudgeCache(None)).get(key)
    if cached is not None:
        if cached.get("score") is None:
            return None, "", cached.get("failure", "failed")
        return int(cached["score"]), cached.get("evidence", ""), ""
    try:
        j = structured(chat, messages, StageJudgement, max_tokens=200)
    except LLMError as exc:  # transient or unparseable: never a 0
        return None, "", str(exc)[:200]
    if cache:
        cache.put(key, {"score": j.score, "evidence": j.evidence, "reason": j.reason})
    return j.score, j.evidence, ""


def _collect(stage: str, outcomes: list[Outcome]) -> JudgedStage:
    """The stage's judgement from its samples, in sample order: median, spread, first evidence."""
    result = JudgedStage(stage, None)
    for score, evidence, failure in outcomes:
        if score is None:
            result.failures.append(failure)
        else:
            result.samples.append(score)
            result.evidence = result.evidence or evidence
    if result.samples:
        result.score = int(round(statistics.median(result.samples)))
        result.spread = max(result.samples) - min(result.samples)
    return result


def judge_stage(
    chat: BaseChatModel, model_label: str, scenario: Scenario, stage: str, answer: str, samples: int = 3, cache: JudgeCache | None = None
) -> JudgedStage:
    messages, keys = _calls(model_label, scenario, stage, answer, samples)
    return _collect(stage, [_sample(chat, messages, key, cache) for key in keys])


def judge_answer(
    chat, model_label, scenario, answer, samples=3, cache=None, workers: int = 1, passages: dict[str, str] | None = None
) -> dict[str, JudgedStage]:
    """Every stage judged on ``answer``, or each on its own ``passages`` (:func:`stage_passages`).

    With ``workers`` > 1 the stage x sample calls go to the server side by side (an
    OpenAI-compatible server serves requests in parallel); the in-process model runs one
    generation at a time, so it is called in order, stage by stage, which keeps llama.cpp's
    prompt cache warm across the seven calls that share the answer."""
    plan = {s: _calls(model_label, scenario, s, (passages or {}).get(s, answer), samples) for s in STAGES}
    calls = [(s, messages, key) for s, (messages, keys) in plan.items() for key in keys]
    if workers > 1 and not is_local(chat) and len(calls) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="judge") as pool:
            outcomes = list(pool.map(lambda c: _sample(chat, c[1], c[2], cache), calls))
    else:
        outcomes = [_sample(chat, messages, key, cache) for _, messages, key in calls]
    return {s: _collect(s, [o for (stage, _, _), o in zip(calls, outcomes) if stage == s]) for s in STAGES}
