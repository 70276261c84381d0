"""The concept tutor: retrieve, then answer from the passages only, with citations.

With no LLM it answers extractively: the passages' sentences that best match
the question, each cited.  When nothing relevant is retrieved it says so and
names the nearest topics instead of inventing an answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

import prompts
from agents.llm import LLMError, stream_text
from evals.text import normalize
from knowledge.retrieval import Passage, Retriever

MIN_SIMILARITY = 0.3  # below this cosine, the best passage is not about the question
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the to of and or is are what when why how do does i would use over in on for with vs versus should".split())


@dataclass
class Answer:
    question: str
    text: str
    passages: list[Passage] = field(default_factory=list)
    grounded: bool = True
    notice: str = ""

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "grounded": self.grounded,
            "citations": [{"n": i, **p.to_dict()} for i, p in enumerate(self.passages, 1)],
            "notice": self.notice,
        }


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(normalize(text)) if w not in _STOP and len(w) > 2}


def relevant(passages: list[Passage], question: str) -> bool:
    if not passages:
        return False
    best = max(p.similarity for p in passages)
    overlap = max(len(_content(question) & _content(p.section + " " + p.text)) for p in passages)
    return best >= MIN_SIMILARITY or (best >= 0.2 and overlap >= 2)


def extractive(question: str, passages: list[Passage], limit: int = 3) -> str:
    """The best-matching sentence or two of each passage, cited."""
    wanted = _content(question)
    lines = [prompts.text("phrases", "tutor_extractive_intro")]
    for n, p in enumerate(passages[:limit], 1):
        sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+", p.text) if len(s.strip()) > 20]
        ranked = sorted(sents, key=lambda s: -len(wanted & _content(s)))[:2]
        ordered = [s for s in sents if s in ranked] or [p.text[:300]]
        lines.append(f"- {' '.join(ordered)} [{n}]")
    return "\n".join(lines)


def ask(question: str, retriever: Retriever, chat: BaseChatModel | None, k: int = 4) -> Iterator[str | Answer]:
    """Stream the answer's text pieces, then yield the complete :class:`Answer`."""
    passages = retriever.search(question, k=k)
    if not relevant(passages, question):
        topics = "; ".join(dict.fromkeys(p.section or p.source for p in passages[:3])) or "none (the index is empty)"
        text = prompts.text("phrases", "tutor_not_found", topics=topics)
        yield text
        yield Answer(question, text, passages[:3], grounded=False)
        return
    if chat is None:
        text = extractive(question, passages)
        yield text
        yield Answer(question, text, passages[:3])
        return
    numbered = "\n\n".join(f"[{i}] ({p.section}) {p.text}" for i, p in enumerate(passages, 1))
    messages = prompts.messages("tutor", passages=numbered, question=question)
    text = ""
    try:
        for piece in stream_text(chat, messages, max_tokens=300):
            text += piece
            yield piece
    except LLMError as exc:
        fallback = extractive(question, passages)
        yield "\n" + fallback
        yield Answer(question, fallback, passages[:3], notice=str(exc))
        return
    yield Answer(question, text.strip(), passages)
