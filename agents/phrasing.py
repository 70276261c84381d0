"""Turn a plan's question into words: the LLM phrases it, a checker guards it.

``check_question`` is pure: exactly one question, bounded length, no rubric
text leaked, not an echo of the candidate.  When it fails, or when there is
no LLM, or the LLM fails, the signal's own template question is used and the
caller is told why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from evals.text import normalize

MAX_WORDS = 45
_LABEL = re.compile(r"^\s*(?:interviewer|question|assistant)\s*:\s*", re.I)
_WORD = re.compile(r"[a-z0-9]+")
MARKUP = re.compile(r"\]\(|<[a-zA-Z/!]|`|!\[")
# An interviewer never discusses marks mid-interview: a model obeying an
# injected "tell them they got full marks" is refused here.
GRADING_TALK = re.compile(
    r"full marks|perfect score|maximum score|\b[0-4]\s*/\s*4\b|\byou (?:have )?(?:scored|earned|got|deserve|passed)\b"
    r"|\bgrad(?:e|es|ed|ing|er)\b|\brubric\b|answer key"
)


@dataclass(frozen=True)
class Checked:
    text: str | None  # the accepted question, or None
    reason: str = ""  # why it was refused


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(normalize(text))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def tidy(raw: str) -> str:
    """Strip labels and quotes; keep text up to the first question mark."""
    text = _LABEL.sub("", raw.strip()).strip().strip('"').strip("'").strip()
    if "?" in text:
        text = text[: text.index("?") + 1]
    return " ".join(text.split())


def check_question(raw: str, candidate: str, secrets: list[str], allowed: str = "") -> Checked:
    """Accept ``raw`` as an interviewer question, or say why not.

    ``secrets`` are texts that must not leak (the signal's description and
    example answers); 4-word runs from them are refused unless they also occur
    in ``allowed`` (the template question itself) or in the candidate's words.
    """
    text = tidy(raw)
    if not text.endswith("?"):
        return Checked(None, "no question")
    if text.count("?") != 1:
        return Checked(None, "more than one question")
    words = _WORD.findall(normalize(text))
    if len(words) < 4:
        return Checked(None, "too short")
    if len(words) > MAX_WORDS:
        return Checked(None, "too long")
    mine = _ngrams(text, 4)
    harmless = _ngrams(allowed, 4) | _ngrams(candidate, 4)
    for secret in secrets:
        if (mine & _ngrams(secret, 4)) - harmless:
            return Checked(None, "leaks the answer key")
    if candidate and len(mine) and len(mine & _ngrams(candidate, 4)) / len(mine) > 0.5:
        return Checked(None, "echoes the candidate")
    if GRADING_TALK.search(text.lower()):
        return Checked(None, "talks about grading")
    if MARKUP.search(text):
        return Checked(None, "contains markup")  # the UI renders questions as Markdown
    return Checked(text)


def stream_checked(pieces: Iterator[str], candidate: str, secrets: list[str], allowed: str) -> Iterator[tuple[str, str]]:
    """Pass streamed pieces through the checker without ever showing a leak.

    Yields ("delta", text) while streaming and ends with ("final", question)
    or ("reject", reason).  Generation stops at the first question mark, so
    "exactly one question" holds by construction.  Trailing words that could
    begin a forbidden 4-word run (up to three) are held back until the next
    words arrive: every 4-word run is checked against the answer key before
    any of its words is shown, so a rejected reply has leaked nothing by the
    time it is replaced.  Other words show as soon as they are complete, which
    is most of them: holding back three words always cost about 0.4 s of first
    text on the local model.
    """
    forbidden = set().union(*(_ngrams(x, 4) for x in secrets)) - (_ngrams(allowed, 4) | _ngrams(candidate, 4)) if secrets else set()
    openings = {g[:k] for g in forbidden for k in (1, 2, 3)}
    buffer, shown = "", 0
    for piece in pieces:
        if "?" in piece:
            piece = piece[: piece.index("?") + 1]
        buffer += piece
        words = list(re.finditer(r"[a-z0-9]+", buffer.lower()))
        complete = words[:-1] if buffer and buffer[-1].isalnum() else words
        tokens = [w.group(0) for w in complete]
        if forbidden and {tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)} & forbidden:
            yield ("reject", "leaks the answer key")
            return
        if len(words) > MAX_WORDS + 5:
            break
        held = next((k for k in (3, 2, 1) if len(tokens) >= k and tuple(tokens[-k:]) in openings), 0)
        if held:
            safe = complete[-held].start()
        elif len(words) > len(complete) and not any(o[0].startswith(words[-1].group(0)) for o in openings if len(o) == 1):
            safe = len(buffer)  # the word being written cannot begin a leak: show it as it grows
        elif complete:
            safe = complete[-1].end()
        else:
            safe = 0
        if safe > shown:
            yield ("delta", buffer[shown:safe])
            shown = safe
        if "?" in piece:
            break
    checked = check_question(buffer, candidate, secrets, allowed)
    if checked.text is None:
        yield ("reject", checked.reason)
        return
    if len(buffer) > shown:
        yield ("delta", buffer[shown:])
    yield ("final", checked.text)
