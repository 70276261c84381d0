"""Many interviews at once on one SQLite file: threads in one process, and several processes.

Every candidate message carries a marker naming its interview and its place,
so a turn saved into the wrong interview, lost or duplicated shows up.
Template phrasing only (no LLM) and no retriever: this is about persistence.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import sqlite3
import threading
from pathlib import Path


from agents.db import InterviewDB, Turn
from agents.interviewer import Deps, InterviewSession

MARK = re.compile(r"\[iv(\d{3})-m(\d{2})\]")
TEMPLATES = [
    "I would rank items with a model trained on clicks and likes from the logs {mark}.",
    "The objective is to predict the probability of engagement for each user and item pair {mark}.",
    "For data I would use impressions and clicks as labels, with user history features {mark}.",
    "What is the latency budget for a request {mark}?",
    "I would start with logistic regression as a baseline and then a two tower network {mark}.",
]


def messages_for(iv: int, n: int) -> list[str]:
    return [TEMPLATES[m % len(TEMPLATES)].format(mark=f"[iv{iv:03d}-m{m:02d}]") for m in range(n)]


def run_interview(deps: Deps, scenario: str, iv: int, n: int, barrier=None) -> str:
    session = InterviewSession.start(deps, scenario)
    if barrier is not None:
        barrier.wait(timeout=60)
    for text in messages_for(iv, n):
        events = list(session.respond(text))
        assert events[-1].type == "turn"
    return session.id


def check_interview(db: InterviewDB, iid: str, iv: int, n: int) -> None:
    rec = db.get(iid)
    turns = rec.turns
    assert [t.index for t in turns] == list(range(len(turns))), f"interview {iv}: indexes not contiguous"
    assert [t.text for t in turns if t.role == "candidate"] == messages_for(iv, n), f"interview {iv}: candidate turns lost or foreign"
    assert len(turns) == 1 + 2 * n, f"interview {iv}: expected {1 + 2 * n} turns, got {len(turns)}"
    assert [t.role for t in turns] == ["interviewer"] + ["candidate", "interviewer"] * n
    for t in turns:
        for other, _ in MARK.findall(t.text):
            assert int(other) == iv, f"interview {iv} holds a message of interview {other}: {t.text[:80]!r}"


def count_rows(db_file: Path) -> int:
    con = sqlite3.connect(db_file)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return con.execute("SELECT count(*) FROM turns").fetchone()[0]
    finally:
        con.close()


def run_in_threads(n: int, work, timeout: float, on_error=lambda: None) -> list[BaseException]:
    """Call ``work(k)`` for k in range(n), one thread each; return what they raised (a hung thread fails the test)."""
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)
            on_error()

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def test_twenty_interviews_in_threads_share_one_file(tmp_path, scenarios):
    db_file = tmp_path / "shared.db"
    db = InterviewDB(f"sqlite:///{db_file}")  # one InterviewDB shared by all threads, as the app does
    n_threads, n_msgs = 20, 4
    ids: dict[int, str] = {}
    barrier = threading.Barrier(n_threads)
    names = sorted(scenarios)

    def work(iv: int) -> None:
        ids[iv] = run_interview(Deps(db=db, scenarios=scenarios), names[iv % len(names)], iv, n_msgs, barrier)

    errors = run_in_threads(n_threads, work, 120, on_error=barrier.abort)
    assert not errors, errors[0]
    assert len(ids) == n_threads and len(set(ids.values())) == n_threads
    for iv, iid in ids.items():
        check_interview(db, iid, iv, n_msgs)
    assert count_rows(db_file) == n_threads * (1 + 2 * n_msgs)
    assert {r.id for r in db.list(limit=1000)} == set(ids.values())


def _process_worker(db_url: str, scenario: str, first_iv: int, count: int, n_msgs: int, start, queue) -> None:
    """Runs in a spawned process: its own InterviewDB on the shared file."""
    try:
        from knowledge.scenarios import CARDS_DIR, load_card

        card = load_card(CARDS_DIR / f"{scenario}.yaml")  # one card: parsing all ten is the slow part
        db = InterviewDB(db_url)
        start.wait(timeout=120)
        out = {}
        for iv in range(first_iv, first_iv + count):
            out[iv] = run_interview(Deps(db=db, scenarios={card.id: card}), card.id, iv, n_msgs)
        queue.put(("ok", out))
    except BaseException as exc:
        queue.put(("error", f"{exc.__class__.__name__}: {exc}"))
    # Skip interpreter teardown: in a long pytest session the spawned child was
    # seen to abort (SIGABRT) while tearing down native libraries after its work
    # was done and reported; the database content is what this test checks.
    queue.close()
    queue.join_thread()
    os._exit(0)


def test_four_processes_share_one_file(tmp_path, scenarios):
    db_file = tmp_path / "shared.db"
    url = f"sqlite:///{db_file}"
    InterviewDB(url)  # create the schema once, before the race
    ctx = mp.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    n_proc, per_proc, n_msgs = 4, 2, 4
    names = sorted(scenarios)
    procs = [
        ctx.Process(target=_process_worker, args=(url, names[p], p * per_proc, per_proc, n_msgs, start, queue))
        for p in range(n_proc)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    bad = [r for r in results if r[0] != "ok"]
    assert not bad, bad
    ids = {iv: iid for _, out in results for iv, iid in out.items()}
    assert len(ids) == n_proc * per_proc and len(set(ids.values())) == len(ids)
    db = InterviewDB(url)
    for iv, iid in ids.items():
        check_interview(db, iid, iv, n_msgs)
    assert count_rows(db_file) == len(ids) * (1 + 2 * n_msgs)


def test_concurrent_writes_to_separate_interviews_with_separate_handles(tmp_path):
    """Raw add_turn from many threads, each with its own InterviewDB (separate engines, one file)."""
    url = f"sqlite:///{tmp_path / 'raw.db'}"
    iids = [InterviewDB(url).create_interview("news-feed", "none", {}) for _ in range(8)]

    def work(k: int) -> None:
        db = InterviewDB(url)
        for j in range(25):
            db.add_turn(iids[k], Turn(0, "candidate", f"[iv{k:03d}-m{j:02d}]", "clarify"))

    errors = run_in_threads(8, work, 60)
    assert not errors, errors[0]
    db = InterviewDB(url)
    for k, iid in enumerate(iids):
        turns = db.get(iid).turns
        assert [t.index for t in turns] == list(range(25))
        assert [t.text for t in turns] == [f"[iv{k:03d}-m{j:02d}]" for j in range(25)]


def test_concurrent_writes_to_the_same_interview_keep_every_turn(tmp_path):
    url = f"sqlite:///{tmp_path / 'same.db'}"
    shared = InterviewDB(url)
    iid = shared.create_interview("news-feed", "none", {})
    barrier = threading.Barrier(6)

    def work(k: int) -> None:
        barrier.wait(timeout=30)
        for j in range(20):
            shared.add_turn(iid, Turn(0, "candidate", f"[iv{k:03d}-m{j:02d}]", "clarify"))

    errors = run_in_threads(6, work, 60)
    turns = shared.get(iid).turns
    assert not errors, f"{len(errors)} writes failed, first: {errors[0]}"
    assert [t.index for t in turns] == list(range(6 * 20))
    assert sorted(t.text for t in turns) == sorted(f"[iv{k:03d}-m{j:02d}]" for k in range(6) for j in range(20))
