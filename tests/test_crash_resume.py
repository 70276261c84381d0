"""Crash and resume: SIGKILL a real `mlsd interview` mid-way, then resume it by id.

The interviewer writes every turn in its own short transaction, so a crash may
lose only the reply being generated.  The first test makes the crash land
exactly there: the interview runs against a loopback fake OpenAI server that
streams part of one reply and then stalls; the test kills the process while it
waits.  The second kills a template-only interview at an arbitrary point.
MLSD_HOME is a temp folder with no knowledge index, so the interviewer runs
without sources (fast, no embedder).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes import DESIGN, QUESTION, LoopbackOpenAI

from agents.db import InterviewDB

ROOT = Path(__file__).resolve().parents[1]
MLSD = [str(ROOT / ".venv" / "bin" / "mlsd")] if (ROOT / ".venv" / "bin" / "mlsd").exists() else [sys.executable, "-m", "mlsd.cli"]
# Long enough that its first words reach the screen: the checker holds back the
# last three words of a streamed question until the next ones arrive.
PARTIAL = "Which offline metric would you pick for this ranking problem "
SHOWN = "Which offline metric"

SCRIPT = ["What is the scale, how many users are there?", *DESIGN]
SCRIPT2 = [
    "For monitoring I would watch engagement rate, feature drift and latency, and retrain daily.",
    "Deployment: a two stage ranker, candidate generation then a heavier ranker, with a shadow test first.",
]


class StallingOpenAI(LoopbackOpenAI):
    """Answers every streamed request, except the first whose prompt quotes one of ``stall_on``:
    that one gets a fragment of a reply, then nothing (until released)."""

    def __init__(self, stall_on: list[str]) -> None:
        self.stall_on = [json.dumps(m)[1:-1] for m in stall_on]  # as they appear inside the JSON body
        self.bodies: list[dict] = []
        self.stalled_body: dict | None = None
        self.stalled = threading.Event()
        self.release = threading.Event()
        super().__init__()

    def handle(self, h, body, raw) -> None:
        self.bodies.append(body)
        stall = not self.stalled.is_set() and any(m in raw.decode() for m in self.stall_on)
        if not stall:
            self.stream_words(h, QUESTION)
            return
        self.stalled_body = body
        self.stream_words(h, PARTIAL, finish=False)
        self.stalled.set()
        self.release.wait(30)

    def close(self) -> None:
        self.release.set()
        super().close()


def _env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSD_", "OPENAI_"))}
    env.update(MLSD_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _write_script(path: Path, turns: list[str]) -> Path:
    path.write_text("\n---\n".join(turns) + "\n", encoding="utf-8")
    return path


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def _integrity(db_file: Path) -> str:
    con = sqlite3.connect(db_file)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def _check_shape(turns, script: list[str]) -> None:
    """Contiguous indexes, opening first, candidate texts a prefix of the script, each answered but maybe the last."""
    assert [t.index for t in turns] == list(range(len(turns)))
    assert turns[0].role == "interviewer" and turns[0].action == "open"
    said = [t.text for t in turns if t.role == "candidate"]
    assert said == script[: len(said)]
    for i, t in enumerate(turns[1:-1], 1):
        if t.role == "candidate":
            assert turns[i + 1].role == "interviewer", f"candidate turn {i} has no reply but is not the last turn"


def _resume(home: Path, iid: str, script: Path, env: dict) -> dict:
    done = subprocess.run(
        [*MLSD, "interview", "--resume", iid, "--llm", "none", "--script", str(script), "--json"],
        cwd=home.parent, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_sigkill_while_the_reply_streams_then_resume(tmp_path):
    home = tmp_path / "home"
    script = _write_script(tmp_path / "script.txt", SCRIPT)
    fake = StallingOpenAI(stall_on=SCRIPT[3:])  # stall once two design turns have had their LLM reply
    env = _env(home, MLSD_LLM="openai", OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="sk-test", MLSD_LLM_TIMEOUT="60", MLSD_LLM_RETRIES="0")
    proc = subprocess.Popen(
        [*MLSD, "interview", "--scenario", "news-feed", "--script", str(script)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    shown: list[bytes] = []
    reader = threading.Thread(target=lambda: shown.extend(iter(lambda: proc.stdout.read1(4096), b"")), daemon=True)
    reader.start()
    try:
        if not fake.stalled.wait(90):
            _kill(proc)
            pytest.fail(f"the interview never reached the stalled reply: rc={proc.returncode} {proc.stderr.read().decode()[-2000:]}")
        deadline = time.monotonic() + 20
        while SHOWN.encode() not in b"".join(shown) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the fragment is on the screen
        assert proc.poll() is None, "the interview ended on its own"
        _kill(proc)
    finally:
        fake.close()
    reader.join(timeout=10)
    assert SHOWN.encode() in b"".join(shown)  # the crash really came mid-reply

    db_file = home / "mlsd.db"
    assert _integrity(db_file) == "ok"
    db = InterviewDB(f"sqlite:///{db_file}")
    [rec] = db.list()
    assert rec.status == "active" and rec.scenario == "news-feed"
    turns = db.get(rec.id).turns
    _check_shape(turns, SCRIPT)
    # the candidate's message whose reply was streaming is saved, and it is the last turn
    stalled_prompt = json.dumps(fake.stalled_body["messages"])
    pending = [m for m in SCRIPT if json.dumps(m)[1:-1] in stalled_prompt]
    assert pending, "could not tell which message the stalled reply answered"
    assert turns[-1].role == "candidate" and turns[-1].text == pending[-1]
    assert not any(SHOWN in t.text for t in turns)  # a half reply is never saved
    completed = [t for t in turns if t.role == "interviewer"]
    assert len(completed) == len(turns) - len([t for t in turns if t.role == "candidate"])
    # every LLM reply that finished for a candidate turn is saved (warm-up requests quote no candidate turn)
    answered = [b for b in fake.bodies if b is not fake.stalled_body and any(json.dumps(m)[1:-1] in json.dumps(b) for m in SCRIPT)]
    assert len(answered) >= 2 and sum(QUESTION in t.text for t in completed) == len(answered)

    # resume by id: the saved turns come back unchanged, the new ones are appended
    data = _resume(home, rec.id, _write_script(tmp_path / "script2.txt", SCRIPT2), _env(home))
    assert data["interview_id"] == rec.id
    assert len(data["turns"]) > len(turns)
    assert [(t["role"], t["text"]) for t in data["turns"][: len(turns)]] == [(t.role, t.text) for t in turns]
    assert data["turns"][len(turns)]["role"] == "interviewer"  # the message left unanswered gets its reply first
    later = [t["text"] for t in data["turns"][len(turns):] if t["role"] == "candidate"]
    assert later[: len(SCRIPT2)] == SCRIPT2
    assert data["feedback"] is not None
    after = db.get(rec.id)
    assert after.status == "finished" and len(after.turns) == len(data["turns"])
    assert [t.index for t in after.turns] == list(range(len(after.turns)))


def test_sigkill_template_interview_at_any_point(tmp_path):
    home = tmp_path / "home"
    long_script = [f"{SCRIPT[1 + i % 6]} (point {i})" for i in range(60)]
    script = _write_script(tmp_path / "script.txt", long_script)
    env = _env(home)
    proc = subprocess.Popen(
        [*MLSD, "interview", "--llm", "none", "--scenario", "news-feed", "--script", str(script)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    db_file = home / "mlsd.db"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # kill once a few turns are in
            if db_file.exists():
                try:
                    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=1)
                    n = con.execute("SELECT count(*) FROM turns").fetchone()[0]
                    con.close()
                except sqlite3.Error:
                    n = 0
                if n >= 9:
                    break
            time.sleep(0.02)
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL, f"the interview ended before the kill: {proc.stderr.read().decode()[-2000:]}"
    assert _integrity(db_file) == "ok"
    db = InterviewDB(f"sqlite:///{db_file}")
    [rec] = db.list()
    turns = db.get(rec.id).turns
    assert len(turns) >= 9
    _check_shape(turns, long_script)
