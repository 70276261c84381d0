"""Heading-aware chunking bounded in the embedder's word pieces.

Pure: the word-piece counter is passed in (word pieces without the two
special tokens), so tests can use the real tokenizer or a toy one.  Every chunk's *embedded* text (its section title plus
body) fits in ``limit`` word pieces, because the embedder silently truncates
anything longer and the tail would then be unsearchable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=[\"'(\[A-Z0-9*`-])|\n+")
Counter = Callable[[str], int]

STAGE_HINTS = {
    "clarify": ("requirement", "clarif", "scope", "constraint", "business objective", "ask the interviewer"),
    "frame": ("ml objective", "framing", "frame the problem", "input and output", "classification", "regression"),
    "data": ("feature", "label", "dataset", "etl", "imputation", "encoding", "sampling", "data source"),
    "model": ("architecture", "loss", "training", "baseline", "neural", "gradient", "embedding model", "fine-tun"),
    "evaluation": ("metric", "precision", "recall", "ndcg", "auc", "a/b test", "offline evaluation", "online metric"),
    "deployment": ("serving", "latency", "deploy", "inference", "quantiz", "canary", "shadow", "batch prediction"),
    "monitoring": ("monitor", "drift", "alert", "retrain", "dashboard", "degrad"),
}


@dataclass(frozen=True)
class Chunk:
    text: str  # the body, shown to people
    section: str  # heading path, "A > B"
    index: int
    word_pieces: int

    @property
    def embed_text(self) -> str:
        return f"{self.section}\n{self.text}" if self.section else self.text

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()[:16]


def sections(text: str) -> list[tuple[str, str]]:
    """Split Markdown into (heading path, body) pairs, keeping body paragraphs intact."""
    path: list[tuple[int, str]] = []
    out: list[tuple[str, str]] = []
    body: list[str] = []
    in_code = False

    def flush() -> None:
        joined = "\n".join(body).strip()
        if joined:
            out.append((" > ".join(title for _, title in path), joined))
        body.clear()

    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, match.group(2).strip())]
        else:
            body.append(line)
    flush()
    return out


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in SENTENCE_END.split(text)]
    return [p for p in parts if p]


def _hard_split(sentence: str, budget: int, count: Counter) -> list[str]:
    """A single sentence over budget: cut it on word boundaries."""
    words, pieces, current = sentence.split(), [], []
    for word in words:
        if current and count(" ".join(current + [word])) > budget:
            pieces.append(" ".join(current))
            current = []
        if not current and count(word) > budget:  # one absurdly long token: cut characters
            step = max(1, len(word) * budget // max(count(word), 1) - 1)
            pieces.extend(word[i : i + step] for i in range(0, len(word), step))
            continue
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def chunk_text(text: str, count: Counter, limit: int = 256, overlap: int = 40) -> list[Chunk]:
    """Chunk Markdown or plain text; each chunk's embed_text counts at most ``limit`` word pieces."""
    chunks: list[Chunk] = []
    for section, body in sections(text):
        section = section[:200]
        header = count(section + "\n") if section else 0
        budget = limit - header - 2  # the two special tokens
        if budget < 32:  # an absurd heading: drop it rather than starve the body
            section, budget = section[:60], limit - count(section[:60] + "\n") - 2
        # Word pieces add up across a space (the tokenizer splits on whitespace
        # first), so each unit is counted once rather than every growing join.
        units: list[str] = []
        sizes: list[int] = []
        for sentence in split_sentences(body):
            size = count(sentence)
            if size <= budget:
                units.append(sentence)
                sizes.append(size)
            else:
                pieces = _hard_split(sentence, budget, count)
                units.extend(pieces)
                sizes.extend(count(p) for p in pieces)
        current: list[int] = []  # indexes into units
        for i, size in enumerate(sizes):
            if current and sum(sizes[j] for j in current) + size > budget:
                chunks.append(_make(section, [units[j] for j in current], len(chunks), count))
                tail: list[int] = []
                for j in reversed(current):  # overlap: carry trailing sentences forward
                    if sum(sizes[t] for t in tail) + sizes[j] > overlap:
                        break
                    tail.insert(0, j)
                fits = sum(sizes[t] for t in tail) + size <= budget
                current = tail + [i] if fits else [i]
            else:
                current.append(i)
        if current:
            chunks.append(_make(section, [units[j] for j in current], len(chunks), count))
    return chunks


def _make(section: str, units: list[str], index: int, count: Counter) -> Chunk:
    body = " ".join(units)
    chunk = Chunk(text=body, section=section, index=index, word_pieces=0)
    return Chunk(text=body, section=section, index=index, word_pieces=count(chunk.embed_text) + 2)


def infer_stage(text: str) -> str:
    """Best-guess stage id for a document without front matter ('general' when unclear)."""
    lowered = text.lower()
    scores = {stage: sum(lowered.count(h) for h in hints) for stage, hints in STAGE_HINTS.items()}
    best = max(scores, key=scores.get)
    return best if scores[best] >= 3 else "general"
