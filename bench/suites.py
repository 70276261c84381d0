"""Suites: wall time of ``evals.runner.run_suites`` over every shipped suite, without an LLM.

Deterministic judge, a fresh Retriever over the built-in corpus index (so
its BM25 build on first search counts, as in `mlsd eval`; the embedder is
already loaded).  Reference: the work the runner wraps, called directly on
the same cases with its own fresh retriever (BM25 built before timing): per
scoring case the scorer on the answer and its three robustness variants (made
as the runner makes them), per retrieval case the three searches (dense, BM25,
hybrid), per interview
case the self-play and its checks, all in this one process (the runner
scores in a child process beside the other suites, so it can beat its
reference).  Every scenario's patterns are compiled by a warm-up first.
Goal: <= 15 s.
With --quick only the gold-test suite runs (no index needed).
"""

from __future__ import annotations

import time

from bench.common import Ctx, Figure, Goal

NAME = "suites"
TITLE = "evals.runner.run_suites over the shipped suites (deterministic, no LLM)"


def direct_work(suites, retriever, scenarios) -> None:
    """What the runner computes, without its bookkeeping."""
    from agents.db import InterviewDB
    from agents.interviewer import Deps
    from evals.grading import transcript_segments
    from evals.interview_checks import check_expectation, play
    from evals.runner import robustness_scores, scenario_scorer
    from evals.scorer import Segment, score_segments

    db = InterviewDB("sqlite://")
    scorers: dict = {}
    for suite in suites:
        for case in suite.cases:
            if suite.kind == "scoring":
                sc = scenarios[case.scenario]
                others = {k: v for k, v in scenarios.items() if k != case.scenario}
                if case.transcript is not None:
                    score_segments(sc, transcript_segments([t.model_dump() for t in case.transcript]), others)
                else:  # as the runner: the answer, then its robustness variants, from one analysis
                    scenario_scorer(scorers, case.scenario).score([Segment(case.answer)])
                    robustness_scores(scorers, case.scenario, case.answer)
            elif suite.kind == "retrieval":
                for mode in ("dense", "bm25", "hybrid"):
                    retriever.search(case.query, k=10, mode=mode)
            elif suite.kind == "interview":  # the self-play itself, with the runner's deps (sqlite://, same retriever)
                session = play(Deps(db=db, scenarios=scenarios, retriever=retriever), case)
                for exp in case.expect:
                    check_expectation(session, case, exp)
            else:
                raise RuntimeError(f"suite {suite.name}: kind {suite.kind} has no direct reference here")


def warm_up(scenarios) -> None:
    """Compile every scenario's term patterns first, so neither side pays for it: one answer and one template-only self-play each."""
    from agents.candidate import SimulatedCandidate
    from agents.db import InterviewDB
    from agents.interviewer import Deps, InterviewSession
    from evals.scorer import Segment, score_segments

    db = InterviewDB("sqlite://")
    for sid, sc in scenarios.items():
        others = {k: v for k, v in scenarios.items() if k != sid}
        score_segments(sc, [Segment(" ".join(s.examples[0] for s in sc.all_signals()))], others)
        session = InterviewSession.start(Deps(db=db, scenarios=scenarios), sid)
        cand = SimulatedCandidate(sc, "strong", max_turns=12)
        while not session.finished and len(session.turns) < 30:
            for _ in session.respond(cand.next_message(session.turns[-1])):
                pass


def run(ctx: Ctx) -> list[Figure]:
    from evals.runner import run_suites
    from evals.suites import SUITES_DIR, load_suite, shipped_suites
    from mlsd.settings import load_settings

    paths = [SUITES_DIR / "gold-test.yaml"] if ctx.quick else shipped_suites()
    suites = [load_suite(p) for p in paths]
    settings = load_settings(llm="none")
    needs_index = any(s.kind != "scoring" for s in suites)
    if needs_index:
        ctx.embedder  # loaded before timing: a process-start cost, not the suites'
    warm_up(ctx.scenarios)

    # Each side gets its own fresh retriever: the retriever caches repeated queries.
    retriever = ctx.retriever() if needs_index else None
    t0 = time.perf_counter()
    results = run_suites(paths, judge="deterministic", settings=settings, retriever=retriever)
    wall = time.perf_counter() - t0

    retriever = ctx.retriever() if needs_index else None
    if retriever is not None:
        retriever.refresh()
    t0 = time.perf_counter()
    direct_work(suites, retriever, ctx.scenarios)
    direct = time.perf_counter() - t0

    per_suite = ", ".join(f"{n} {r['seconds']:.1f} s ({r['cases']} cases)" for n, r in results["suites"].items())
    quality = []
    for n, r in results["suites"].items():
        m = r["metrics"]
        if "qwk" in m:
            quality.append(f"{n} qwk {m['qwk']:.3f}")
        if "hit@5" in m:
            quality.append(f"{n} hit@5 {m['hit@5']:.3f}")
        if "pass_rate" in m:
            quality.append(f"{n} pass rate {m['pass_rate']:.3f}")
    cases = sum(len(s.cases) for s in suites)
    return [
        Figure(
            NAME, "wall time", wall, "s", direct, "scorer + searches called directly",
            goal=Goal("<= 15 s", (("value", "<=", 15.0),)),
            note=f"{len(suites)} suites, {cases} cases: {per_suite}; sanity: {', '.join(quality)}",
            samples=1,
        )
    ]
