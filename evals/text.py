"""Text units the scorer works on: segments, sentences with spans, term matching.

Pure functions only.  Normalisation is shared by the term patterns and the
text so that "two-tower", "Two Tower" and "two_tower" match alike.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[-_/–—]+")
_SPACES = re.compile(r"\s+")
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?<!e\.g\.)(?<!i\.e\.)(?<!vs\.)(?<!etc\.)(?=\s|$)|$)", re.I)
_HEADING = re.compile(r"^\s*(#{1,6}\s+.*|\*\*[^*\n]{1,60}\*\*:?\s*|__[^_\n]{1,60}__:?\s*|[A-Z][A-Za-z /&()-]{0,40}:\s*)$")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
# A stage's name used as a label: at the start of a line before its content
# ("Monitoring: track CTR", "**3. Model.** A two-tower ...", "Evaluation - offline AUC")
# or as a line of its own ("7. Monitoring").  Skipped like a heading, so an answer
# scores the same with and without the names of its stages.
_STAGE_NAME = (
    r"(?:\*\*|__)?(?:(?:step|stage|part)\s*)?(?:\d+[.)]?\s*)?"
    r"(?:clarify(?:ing questions?)?|clarifications?|requirements?|frame|framing|problem framing|ml framing|"
    r"data|model|modell?ing|evaluation|deployment|monitoring)\s*(?:\*\*|__)?"
)
STAGE_LABEL = re.compile(_STAGE_NAME + r"\s*(?::|\.|\s[-\u2013\u2014]+)\s*(?:\*\*|__)?\s*(?=\S)", re.I)
STAGE_NAME_LINE = re.compile(_STAGE_NAME + r"\s*[:.]?\s*(?:\*\*|__)?\s*$", re.I)
FILLERS = re.compile(r"\b(?:um+|uh+|erm|hmm+|you know|i mean|kind of|sort of|basically|like,)\s*", re.I)


def normalize(text: str) -> str:
    """Lowercase, separators to spaces, whitespace folded."""
    return _SPACES.sub(" ", _SEPARATORS.sub(" ", text.lower())).strip()


@functools.lru_cache(maxsize=20000)
def term_pattern(term: str) -> str:
    """Regex source for one term: whole words, a trailing * is a prefix wildcard."""
    norm = normalize(term)
    wildcard = norm.endswith("*")
    core = re.escape(norm.rstrip("*").strip()).replace(r"\ ", r"\s+")
    return rf"(?<![a-z0-9]){core}{r'[a-z0-9]*' if wildcard else r'(?![a-z0-9])'}"


@functools.lru_cache(maxsize=20000)
def group_regex(terms: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(term_pattern(t) for t in terms))


_WORDS = re.compile(r"[a-z0-9]+")


def words_of(norm: str) -> list[str]:
    return _WORDS.findall(norm)


class GroupMatcher:
    """Matches any of a group's terms against pre-split words: sets for words, regex only for phrases.

    Equivalent to :func:`group_regex` on word boundaries, but an order of
    magnitude faster, which keeps the scorer well above 20 answers a second.
    """

    __slots__ = ("exact", "pattern")

    def __init__(self, terms: tuple[str, ...]) -> None:
        exact, patterns = set(), []
        for term in terms:
            norm = normalize(term)
            wildcard = norm.endswith("*")
            parts = words_of(norm.rstrip("*"))
            if not parts:
                continue
            if len(parts) == 1 and not wildcard:
                exact.add(parts[0])
            else:  # prefixes and phrases: one regex over the space-joined words
                patterns.append(" " + re.escape(" ".join(parts)) + ("" if wildcard else " "))
        self.exact = frozenset(exact)
        self.pattern = re.compile("|".join(patterns)) if patterns else None

    def match(self, words: frozenset[str], joined: str) -> bool:
        if not self.exact.isdisjoint(words):
            return True
        return bool(self.pattern and self.pattern.search(joined))


class SentenceIndex:
    """Which sentences of one answer a group matches, answered once per group.

    ``GroupMatcher.match`` per sentence costs a call per (group, sentence);
    here a group costs one posting lookup per exact term and one regex scan
    of the whole answer, and gives the same sentences.  Sentences are joined
    with a double space, so no phrase can match across two of them.
    """

    def __init__(self, sents: list[Sentence]) -> None:
        self.postings: dict[str, list[int]] = {}
        for i, sent in enumerate(sents):
            for w in sent.words:
                self.postings.setdefault(w, []).append(i)
        self.starts: list[int] = []
        parts, pos = [], 0
        for sent in sents:
            self.starts.append(pos)
            parts.append(sent.joined)
            pos += len(sent.joined)
        self.text = "".join(parts)
        self.vocab = frozenset(self.postings)
        self._cache: dict[GroupMatcher, frozenset[int]] = {}  # keyed by the matcher itself (identity)

    def hits(self, group: GroupMatcher) -> frozenset[int]:
        found = self._cache.get(group)
        if found is None:
            out = {i for w in group.exact & self.vocab for i in self.postings[w]}
            if group.pattern is not None:
                out.update(bisect.bisect_right(self.starts, m.start()) - 1 for m in group.pattern.finditer(self.text))
            found = self._cache[group] = frozenset(out)
        return found


@functools.lru_cache(maxsize=20000)
def matcher(terms: tuple[str, ...]) -> GroupMatcher:
    return GroupMatcher(terms)


def bag(norm: str) -> tuple[frozenset[str], str]:
    """(word set, space-padded joined words) of normalized text, for GroupMatcher."""
    ws = words_of(norm)
    return frozenset(ws), " " + " ".join(ws) + " "


@dataclass(frozen=True)
class Sentence:
    """One sentence of a candidate's text, with where it came from."""

    text: str  # as written, for quoting
    norm: str  # normalized, for matching
    turn: int | None  # transcript turn index, None for a plain answer
    start: int  # character span in the turn's text
    end: int
    position: int  # index among all sentences of the answer
    words: frozenset[str] = frozenset()
    joined: str = " "


def is_heading(line: str) -> bool:
    return bool(_HEADING.match(line)) and len(line.split()) <= 8


def _text_span(line: str) -> tuple[int, int] | None:
    """Where a line's text starts after any bullet, and after a stage's name used as its
    label too; None for a line that is only a stage's name."""
    bullet = _BULLET.match(line)
    start = bullet.end() if bullet else 0
    if STAGE_NAME_LINE.match(line, start):
        return None
    label = STAGE_LABEL.match(line, start)
    return start, label.end() if label else start


def strip_stage_names(text: str) -> str:
    """``text`` without its stages' names used as labels (see :data:`STAGE_LABEL`)."""
    out = []
    for line in text.split("\n"):
        span = _text_span(line)
        if span is not None:
            out.append(line[: span[0]] + line[span[1] :])
    return "\n".join(out)


def sentences(text: str, turn: int | None = None, offset: int = 0) -> list[Sentence]:
    """Split text into sentences, skipping headings; spans point into ``text``."""
    out: list[Sentence] = []
    pos = 0
    for line in text.split("\n"):
        line_start = pos
        pos += len(line) + 1
        if not line.strip() or is_heading(line):
            continue
        span = _text_span(line)
        if span is None:
            continue
        after_bullet, body_start = span
        if body_start > after_bullet and is_heading(line[body_start:]):  # "Model. Three components:" is a heading once named
            continue
        for m in _SENTENCE.finditer(line, body_start):
            raw = m.group(0).strip()
            if len(raw) < 2:
                continue
            start = line_start + m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
            cleaned = FILLERS.sub("", raw)
            norm = normalize(cleaned)
            ws, joined = bag(norm)
            out.append(Sentence(raw, norm, turn, start, start + len(raw), offset + len(out), ws, joined))
    return out
