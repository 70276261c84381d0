"""Scorer: answers per second of ``evals.scorer.score_text`` on 600-word answers.

The answers are the shipped gold answers, each cycled line by line (keeping
its headings and bullets) to exactly 600 words.  They are scored as the
grader scores them: with the other scenario cards, so the off-topic guard
runs.  Reference: one plain precompiled regex alternation of the card's
terms scanned over the same lowercased text, the least any rubric matcher
has to do.  Goal: >= 20 answers/s.
"""

from __future__ import annotations

import re
import time

from bench.common import Ctx, Figure, Goal

NAME = "scorer"
TITLE = "evals.scorer.score_text on 600-word answers"
WORDS = 600


def to_length(text: str, words: int = WORDS) -> str:
    """``text`` cycled line by line to exactly ``words`` words."""
    lines = [ln for ln in text.splitlines() if ln.strip()] or [text]
    out, n, i = [], 0, 0
    while n < words:
        line = lines[i % len(lines)]
        w = line.split()
        if n + len(w) > words:
            line = " ".join(w[: words - n])
            w = line.split()
        out.append(line)
        n += len(w)
        i += 1
    return "\n".join(out)


def plain_regex(scenario) -> re.Pattern[str]:
    terms = set(scenario.product_terms)
    for sig in scenario.all_signals():
        for group in sig.terms:
            terms.update(group)
    alts = sorted({re.escape(t.lower().rstrip("*").strip()) for t in terms if t.strip("*").strip()}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alts) + r")")


def run(ctx: Ctx) -> list[Figure]:
    from evals.scorer import score_text

    scenarios = ctx.scenarios
    answers = [(sid, to_length(text)) for sid, text in ctx.gold_answers]
    if ctx.quick:
        answers = answers[:6]
    passes = 1 if ctx.quick else 4
    others = {sid: {k: v for k, v in scenarios.items() if k != sid} for sid in scenarios}
    patterns = {sid: plain_regex(scenarios[sid]) for sid in {a[0] for a in answers}}
    assert all(len(t.split()) == WORDS for _, t in answers)

    # warm-up: compiled term matchers and caches, as in a long-running app
    for sid, text in answers[:2]:
        score_text(scenarios[sid], text, others[sid])
        patterns[sid].findall(text.lower())

    scorer_s = regex_s = 0.0
    hits = 0
    for _ in range(passes):
        t0 = time.perf_counter()
        for sid, text in answers:
            score_text(scenarios[sid], text, others[sid])
        scorer_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        for sid, text in answers:
            hits += len(patterns[sid].findall(text.lower()))
        regex_s += time.perf_counter() - t0
    n = len(answers) * passes
    per_answer_ms = scorer_s / n * 1000
    return [
        Figure(
            NAME, "throughput (600 words)", n / scorer_s, "answers/s", n / regex_s, "plain regex scan of the card's terms",
            goal=Goal(">= 20 answers/s", (("value", ">=", 20.0),)),
            note=f"{len(answers)} answers x {passes} passes; {per_answer_ms:.1f} ms per answer with the off-topic guard",
            samples=n,
        )
    ]
