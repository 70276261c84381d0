"""Classify a candidate's message: what kind of turn is it?

Pure rules, no model: they are fast, testable and never hallucinate a class.
Kinds: empty, done, done_stage, hint, injection, clarify_question, off_topic,
design.  ``design`` is the default; the scorer decides what it covers.
"""

from __future__ import annotations

import re
import unicodedata

from evals.text import normalize

KINDS = ("empty", "done", "done_stage", "hint", "injection", "clarify_question", "off_topic", "design")

DONE = re.compile(
    r"^(?:ok(?:ay)?,?\s*)?(?:i'?m|i am|we'?re|we are)\s+(?:all\s+)?(?:done|finished)\.?!?$"
    r"|\b(?:that'?s (?:all|it) from me|let'?s (?:wrap|finish) (?:up|the interview)|end (?:the|this) interview"
    r"|finish (?:the|this) interview|i'?m done with the interview|nothing (?:else|more) to add)\b"
)
DONE_STAGE = re.compile(
    r"\b(?:done with this (?:part|stage|section|step)|let'?s move on|move on to|moving on|next (?:stage|part|step|section|topic)"
    r"|that'?s (?:it|all) for (?:this|the) (?:part|stage|section)|can we move on|shall we move on)\b"
)
HINT = re.compile(
    r"\b(?:hint|i'?m stuck|i am stuck|not sure (?:what|how|where)|no idea|i don'?t know (?:what|how|where)"
    r"|can you help|give me a (?:pointer|clue|nudge)|what should i (?:talk|focus) (?:about|on))\b"
)
INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget) (?:all |any |your |the |previous |prior |above )*(?:instructions|rules|prompt)"
    r"|\b(?:answer key|rubric|grading criteria|reference (?:answer|outline|solution)|system prompt|hidden facts?)\b"
    r"|\bshow me the (?:answer|solution)\b|\byou are now\b|\bdeveloper mode\b"
)
QUESTION_START = re.compile(
    r"^(?:what|how|do|does|did|is|are|was|were|can|could|should|would|will|which|who|when|where|why|any|may i|can i|"
    r"shall|are there|is there|do we|should i|am i)\b"
)
DESIGN_WORDS = re.compile(
    r"\b(?:model|data|feature|label|train|metric|latency|user|item|rank|embed|predict|loss|serv|deploy|monitor|"
    r"precision|recall|auc|click|sampl|dataset|pipeline|inference|baseline|objective|scale|system|recommend|"
    r"classif|retriev|index|drift|test|evaluat|cache|batch|online|offline|requirement|privacy|signal|catalog|how many|"
    r"how big|how much|budget|goal|business|revenue|device|region|countr|language|traffic|qps|growth|assum|content|"
    r"post|video|image|ad|event|listing|friend|feed|search|quer)"
)


def clean(text: str) -> str:
    """Drop control characters (keeping newlines and tabs) and normalise Unicode."""
    text = unicodedata.normalize("NFKC", text or "")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")


def classify(text: str, vocabulary: re.Pattern[str] | None = None) -> str:
    """The kind of a candidate message; ``vocabulary`` adds scenario words that mark it on topic."""
    body = clean(text).strip()
    if not re.search(r"\w", body):
        return "empty"
    norm = normalize(body)
    words = norm.split()
    if INJECTION.search(norm):
        return "injection"
    if len(words) <= 25 and DONE.search(norm):
        return "done"
    if len(words) <= 30 and DONE_STAGE.search(norm):
        return "done_stage"
    if len(words) <= 30 and HINT.search(norm):
        return "hint"
    on_topic = bool(DESIGN_WORDS.search(norm) or (vocabulary and vocabulary.search(norm)))
    if not on_topic:
        return "off_topic"
    is_question = body.rstrip().endswith("?") or bool(QUESTION_START.match(norm))
    if is_question and len(words) <= 60:
        return "clarify_question"
    return "design"
