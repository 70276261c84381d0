"""Turn: the interviewer's own latency per turn, without an LLM (``InterviewSession.respond`` with chat=None).

A scripted 20-turn interview on one scenario, built from its card: four
clarifying questions, design answers stage by stage (two of the card's
example phrasings per message, 25-45 words), a request for a hint, a "let's
move on", a claim that earns a pushback, and "I'm done" last (the feedback
turn, which scores and saves the whole interview).  The clock advances 15 s
per reading, so time nudges can happen as in a real session.
Each turn covers classification, coverage scoring, the policy, retrieval and
the two database writes.

Product: retrieval over the built-in corpus index and a SQLite file (WAL),
as the app runs, with a fresh retriever per interview (its query cache
empty, as on a scenario's first interview; the note gives the cached case).  Reference: the same script with ``retriever=None`` and an
in-memory ``sqlite://`` database, so the ratio is the cost of grounding and
saving.  The two run alternately, several interviews each.
Goal: p50 <= 100 ms.
"""

from __future__ import annotations

import time

from bench.common import Ctx, Figure, Goal, percentile

NAME = "turn"
TITLE = "InterviewSession.respond (chat=None) over a 20-turn scripted interview"
SCENARIO = "video-recommendation"
TURNS = 20
def _design(scenario, stage: str, m: int) -> str:
    """The m-th answer about ``stage``: two of its signals' example phrasings, lightest signals first."""
    signals = sorted(scenario.signals[stage], key=lambda s: s.weight)
    picks = [signals[(m * 2 + j) % len(signals)] for j in range(2)]
    return " ".join(p.examples[(m + j) % len(p.examples)] for j, p in enumerate(picks))


def _wrong_claim(scenario) -> str:
    """A sentence that makes a claim one of the card's pitfalls pushes back on (evaluation's if any)."""
    pitfall = next((p for p in scenario.pitfalls if p.stage == "evaluation"), scenario.pitfalls[0])
    first, second = (g[0].rstrip("*") for g in pitfall.claim[:2])
    return f"Once the {first} number looks better in our tests, I think we can {second} it to everyone."


def script(scenario) -> list[str]:
    """20 candidate messages built from the scenario card (deterministic)."""
    import prompts

    ask = prompts.load("candidate")["questions"][0]
    q = [prompts.fill(ask, topic=f.ask[0]) for f in list(scenario.facts.values())[:4]]
    d = _design
    msgs = [
        q[0], q[1], d(scenario, "frame", 0), d(scenario, "frame", 1), q[2],
        d(scenario, "data", 0), d(scenario, "data", 1), "I'm stuck here, can you give me a hint?",
        d(scenario, "model", 0), d(scenario, "model", 1), d(scenario, "model", 2), "Let's move on to the next part.",
        _wrong_claim(scenario), d(scenario, "evaluation", 0), d(scenario, "evaluation", 1),
        d(scenario, "deployment", 0), d(scenario, "deployment", 1), d(scenario, "monitoring", 0), q[3], "I'm done.",
    ]
    assert len(msgs) == TURNS, len(msgs)
    return msgs


class Clock:
    def __init__(self, step: float = 15.0) -> None:
        self.now = 1_700_000_000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Timer:
    """Wraps a callable and adds up its seconds (for the breakdown in the note)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *a, **kw):
        self.calls += 1
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.seconds += time.perf_counter() - t0


def play(deps, scenario_id: str, msgs: list[str], breakdown: dict | None = None) -> tuple[list[float], list[str]]:
    from agents.interviewer import InterviewSession

    session = InterviewSession.start(deps, scenario_id)
    timers = {}
    if breakdown is not None:  # instance-level wrappers: no change to the product code
        timers["coverage"] = session.coverage = Timer(session.coverage)
        timers["db"] = deps.db.add_turn = Timer(deps.db.add_turn)
        if deps.retriever is not None:
            timers["retrieval"] = deps.retriever.search = Timer(deps.retriever.search)
    times, actions = [], []
    for text in msgs:
        if session.finished:
            raise RuntimeError(f"the scripted interview finished early, after {len(times)} turns")
        t0 = time.perf_counter()
        for _ in session.respond(text):
            pass
        times.append(time.perf_counter() - t0)
        actions.append(session.turns[-1].action or "?")
    if breakdown is not None:
        for k, t in timers.items():
            secs, calls = breakdown.get(k, (0.0, 0))
            breakdown[k] = (secs + t.seconds, calls + t.calls)
        if deps.retriever is not None:
            del deps.retriever.search  # drop the instance wrapper
        del deps.db.add_turn
    return times, actions


def run(ctx: Ctx) -> list[Figure]:
    from agents.db import InterviewDB
    from agents.interviewer import Deps

    scenarios = ctx.scenarios
    msgs = script(scenarios[SCENARIO])
    last = {}

    def fresh_retriever():
        # A new retriever per interview: the retriever caches repeated queries, and the same
        # script asks the same ones, so a shared one would make every interview after the first
        # nearly free.  Its BM25 index is built here, as the app builds it once at start-up.
        r = ctx.retriever()
        r.refresh()
        last["retriever"] = r
        return r

    db_file = ctx.tmpdir("turn") / "bench.db"
    prod_db = InterviewDB(f"sqlite:///{db_file}")
    ref_db = InterviewDB("sqlite://")
    reps = 1 if ctx.quick else 4

    def prod_deps(retriever=None):
        return Deps(db=prod_db, scenarios=scenarios, retriever=retriever or fresh_retriever(), clock=Clock())

    def ref_deps():
        return Deps(db=ref_db, scenarios=scenarios, retriever=None, clock=Clock())

    play(prod_deps(), SCENARIO, msgs)  # warm-up: imports, compiled patterns, SQLite pages
    play(ref_deps(), SCENARIO, msgs)
    prod, ref, breakdown = [], [], {}
    actions: list[str] = []
    per_index = [[] for _ in msgs]
    for r in range(reps):
        order = (("prod", prod_deps), ("ref", ref_deps)) if r % 2 == 0 else (("ref", ref_deps), ("prod", prod_deps))
        for kind, make in order:
            if kind == "prod":
                t, actions = play(make(), SCENARIO, msgs, breakdown)
                prod.extend(t)
                for i, x in enumerate(t):
                    per_index[i].append(x)
            else:
                ref.extend(play(make(), SCENARIO, msgs)[0])
    # The same interview once more on the last retriever: its cache holds every grounding query.
    cached, _ = play(prod_deps(last["retriever"]), SCENARIO, msgs)
    n_turns = len(prod)
    ms = lambda s: s * 1000  # noqa: E731
    first5 = sum(percentile(per_index[i], 50) for i in range(5)) / 5
    last5 = sum(percentile(per_index[i], 50) for i in range(TURNS - 6, TURNS - 1)) / 5
    feedback_ms = percentile(per_index[-1], 50)
    parts = ", ".join(
        f"{k} {ms(secs) / n_turns:.1f} ({calls / n_turns:.2f} calls, {ms(secs) / max(calls, 1):.1f} ms each)"
        for k, (secs, calls) in sorted(breakdown.items(), key=lambda kv: -kv[1][0])
    )
    note = (
        f"{SCENARIO}, {reps} interviews x {TURNS} turns each side; actions: {' '.join(actions)}; "
        f"mean ms per turn: {parts} (overlapping: the feedback turn's coverage and retrieval count too); "
        f"p50 of turns 1-5 {ms(first5):.1f} ms vs turns 15-19 {ms(last5):.1f} ms; final feedback turn {ms(feedback_ms):.1f} ms; "
        f"the same interview again on a retriever whose cache already holds its queries: p50 {ms(percentile(cached, 50)):.1f} ms"
    )
    return [
        Figure(NAME, "p50", ms(percentile(prod, 50)), "ms", ms(percentile(ref, 50)), "no retrieval, sqlite:// in memory",
               goal=Goal("<= 100 ms", (("value", "<=", 100.0),)), note=note, samples=n_turns),
        Figure(NAME, "p95", ms(percentile(prod, 95)), "ms", ms(percentile(ref, 95)), "no retrieval, sqlite:// in memory", samples=n_turns),
    ]
