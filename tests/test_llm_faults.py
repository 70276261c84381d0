"""Fault injection at the LLM seam: a fake OpenAI-compatible server on loopback.

The server (stdlib ``http.server`` in a thread, on a free port) can hang past
the client timeout, answer 500, send malformed or truncated JSON, drop a
stream half-way, or answer correctly.  The chat model is built exactly as the
product builds it (``agents.llm.make_chat_model`` from ``load_settings``), so
these tests exercise the real ChatOpenAI client, its retries and timeouts.

What must hold: retries happen where they are safe (before any output), an
LLM failure in an interview falls back to the template question with a
notice, the transcript in the database stays intact, and the judge reports an
unusable reply as a failure (``score is None``), never as a 0.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from agents.interviewer import Deps, InterviewSession
from agents.llm import LLMError, LLMOutputError, make_chat_model, stream_text, structured
from evals.judge import JudgeCache, StageJudgement, judge_stage
from mlsd.settings import load_settings
from tests.fakes import QUESTION as GOOD_QUESTION
from tests.fakes import DESIGN, LoopbackOpenAI

class FakeOpenAI(LoopbackOpenAI):
    """A loopback OpenAI-compatible /v1/chat/completions with scripted behaviour.

    ``modes`` is a queue consumed one entry per request; when it is empty,
    ``default`` is used.  An entry is a mode name or a (mode, text) pair.
    Modes: ok, hang, e500, truncated, garbage, drop (stream two chunks, then reset).
    Every request is recorded in ``requests`` (path, JSON body, headers).
    """

    def __init__(self) -> None:
        self.modes: list = []
        self.default = "ok"
        self.reply = GOOD_QUESTION
        self.hang_seconds = 5.0
        self._stop = threading.Event()
        super().__init__()

    def handle(self, h, body, raw) -> None:
        mode = self.modes.pop(0) if self.modes else self.default
        text = self.reply
        if isinstance(mode, tuple):
            mode, text = mode
        getattr(self, "_" + mode)(h, body, text)

    def close(self) -> None:
        self._stop.set()
        super().close()

    # --- behaviours ----------------------------------------------------------------
    def _ok(self, h, body, text) -> None:
        self.answer(h, body, text)

    def _hang(self, h, body, text) -> None:
        self._stop.wait(self.hang_seconds)

    def _e500(self, h, body, text) -> None:
        self.send_json(h, 500, {"error": {"message": "internal error", "type": "server_error"}})

    def _truncated(self, h, body, text) -> None:
        self.send_json(h, 200, b'{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assis')

    def _garbage(self, h, body, text) -> None:
        self.send_json(h, 200, b"<html><body>502 Bad Gateway</body></html>")

    def _drop(self, h, body, text) -> None:
        self.sse_headers(h)
        for piece in ("How would ", "you measure "):
            self.chunk(h, self.event(piece))
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def fake_server():
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture
def fake(fake_server):
    """The module's server, reset: one server keeps the client's connection pool warm."""
    fake_server.modes, fake_server.default, fake_server.reply = [], "ok", GOOD_QUESTION
    fake_server.requests.clear()
    yield fake_server
    fake_server.modes, fake_server.default = [], "ok"


def chat_for(fake: FakeOpenAI, timeout: float = 1, retries: int = 1):
    settings = load_settings(llm="openai", openai_base_url=fake.base_url, openai_api_key="sk-test", llm_timeout=timeout, llm_retries=retries)
    return make_chat_model(settings)


MESSAGES = [("system", "You are terse."), ("user", "Ask one question.")]



# --- the client: retries, timeouts, malformed replies ---------------------------------------
def test_500_is_retried_then_reported(fake):
    chat = chat_for(fake, retries=1)
    fake.default = "e500"
    with pytest.raises(LLMError, match="500"):
        list(stream_text(chat, MESSAGES))
    assert len(fake.requests) == 2  # one try plus one retry: nothing was streamed yet, so retrying is safe


def test_500_then_success_recovers_through_the_retry(fake):
    chat = chat_for(fake, retries=1)
    fake.modes = ["e500", "ok"]
    assert "".join(stream_text(chat, MESSAGES)) == GOOD_QUESTION
    assert len(fake.requests) == 2


def test_retries_zero_means_one_request(fake):
    chat = chat_for(fake, retries=0)
    fake.default = "e500"
    with pytest.raises(LLMError):
        list(stream_text(chat, MESSAGES))
    assert len(fake.requests) == 1


def test_hang_times_out_quickly(fake):
    chat = chat_for(fake, timeout=0.5, retries=1)
    fake.default = "hang"
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="(?i)timed? ?out"):
        list(stream_text(chat, MESSAGES))
    elapsed = time.monotonic() - t0
    assert len(fake.requests) == 2  # a timeout before any output is retried once
    assert elapsed < 4.0, f"timeout 0.5 s x 2 tries took {elapsed:.1f} s"


def test_dropped_stream_is_an_error_and_not_retried(fake):
    chat = chat_for(fake, retries=2)
    fake.default = "drop"
    got = []
    with pytest.raises(LLMError):
        for piece in stream_text(chat, MESSAGES):
            got.append(piece)
    assert "".join(got) == "How would you measure "  # what arrived before the drop
    assert len(fake.requests) == 1  # output was already shown: a retry would repeat it


@pytest.mark.parametrize("mode", ["truncated", "garbage"])
def test_malformed_json_body_is_an_llm_error(fake, mode):
    chat = chat_for(fake)
    fake.default = mode
    with pytest.raises(LLMError):
        structured(chat, MESSAGES, StageJudgement)
    with pytest.raises(LLMError):
        list(stream_text(chat, MESSAGES))


def test_structured_success_and_bad_shape(fake):
    chat = chat_for(fake)
    fake.modes = [("ok", '{"score": 3, "evidence": "two tower", "reason": "ok"}')]
    j = structured(chat, MESSAGES, StageJudgement)
    assert j.score == 3
    body = fake.requests[-1]["body"]
    assert body["response_format"]["type"] == "json_schema"
    fake.modes = [("ok", "I'd give it a 3 out of 4.")]
    with pytest.raises(LLMOutputError):
        structured(chat, MESSAGES, StageJudgement)


# --- the interviewer: fall back to the template, keep the transcript ----------------------
def _respond(session: InterviewSession, text: str):
    events = list(session.respond(text))
    assert events[-1].type == "turn"
    return events, events[-1].turn


def _template_question(session: InterviewSession, turn) -> str | None:
    sig = session._signal(turn.target)
    return sig.probe if sig else None


@pytest.mark.parametrize("mode", ["e500", "hang", "truncated", "drop"])
def test_interview_falls_back_to_template_on_llm_failure(fake, db, scenarios, mode):
    chat = chat_for(fake, timeout=0.5, retries=1)
    session = InterviewSession.start(Deps(db=db, scenarios=scenarios, chat=chat, llm_label="fake"), "news-feed")
    fake.default = mode
    events, turn = _respond(session, DESIGN[0])
    assert fake.requests, "the interviewer never asked the LLM: pick a message that gets a probe"
    notices = [e for e in events if e.type == "notice"]
    assert len(notices) == 1 and "template" in notices[0].text
    assert turn.role == "interviewer" and turn.text.rstrip().endswith("?")
    probe = _template_question(session, turn)
    assert probe and probe in turn.text
    if mode == "drop":  # partial text was streamed: the UI is told to replace it
        assert any(e.type == "replace" and e.text == probe for e in events)
        assert "How would you measure" not in turn.text
    saved = db.get(session.id).turns
    assert [t.role for t in saved] == ["interviewer", "candidate", "interviewer"]
    assert saved[1].text == DESIGN[0]
    assert saved[2].text == turn.text


def test_interview_uses_llm_when_it_answers(fake, db, scenarios):
    chat = chat_for(fake)
    session = InterviewSession.start(Deps(db=db, scenarios=scenarios, chat=chat, llm_label="fake"), "news-feed")
    events, turn = _respond(session, DESIGN[0])
    assert not [e for e in events if e.type == "notice"]
    assert turn.text.endswith(GOOD_QUESTION)
    assert "".join(e.text for e in events if e.type == "delta").strip() == turn.text
    req = fake.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["body"]["stream"] is True
    assert req["headers"].get("authorization") == "Bearer sk-test"


def test_transcript_intact_across_mixed_faults(fake, db, scenarios):
    chat = chat_for(fake, timeout=0.5, retries=1)
    session = InterviewSession.start(Deps(db=db, scenarios=scenarios, chat=chat, llm_label="fake"), "news-feed")
    modes = ["ok", "e500", "truncated", "drop", "garbage", "ok"]
    for mode, msg in zip(modes, DESIGN):
        fake.default = mode
        _, turn = _respond(session, msg)
        assert turn.text.strip()
    saved = db.get(session.id).turns
    assert [t.index for t in saved] == list(range(len(saved)))
    assert [t.text for t in saved if t.role == "candidate"] == DESIGN
    assert [t.role for t in saved] == ["interviewer"] + ["candidate", "interviewer"] * len(DESIGN)
    for t in saved[2::2]:
        assert "?" in t.text or t.action == "feedback", t
    # the database is the source of truth: a resumed session sees the same turns
    resumed = InterviewSession.resume(Deps(db=db, scenarios=scenarios), session.id)
    assert [t.to_dict() for t in resumed.turns] == [t.to_dict() for t in session.turns]


def test_interview_survives_unreachable_server(db, scenarios):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = load_settings(llm="openai", openai_base_url=f"http://127.0.0.1:{port}/v1", openai_api_key="sk-test", llm_timeout=0.5, llm_retries=0)
    session = InterviewSession.start(Deps(db=db, scenarios=scenarios, chat=make_chat_model(settings)), "news-feed")
    events, turn = _respond(session, DESIGN[0])
    assert any(e.type == "notice" for e in events)
    assert _template_question(session, turn) in turn.text


# --- the judge: an unusable reply is a failure, never a 0 ---------------------------------
ANSWER = "I would predict engagement with a two tower model trained on clicks, because it scales to many posts."


@pytest.mark.parametrize(
    "mode",
    [
        ("ok", "The answer deserves a 3."),  # prose, not JSON
        ("ok", '{"score": 7, "evidence": "", "reason": ""}'),  # out of range
        ("ok", '{"score": "three"}'),  # wrong type
        ("ok", '{"evidence": "no score at all"}'),  # missing field
        ("ok", '{"score": 2, "evidence": "cut off'),  # truncated JSON content
        ("ok", ""),  # empty reply
        "truncated",  # malformed HTTP body
        "garbage",  # HTML from a proxy
        "e500",
    ],
    ids=["prose", "range", "type", "missing", "cutoff", "empty", "http-truncated", "html", "500"],
)
def test_judge_reports_failures_not_zero(fake, scenarios, tmp_path, mode):
    chat = chat_for(fake, retries=0)
    fake.default = mode
    cache = JudgeCache(tmp_path / "cache")
    res = judge_stage(chat, "fake", scenarios["news-feed"], "model", ANSWER, samples=2, cache=cache)
    assert res.score is None
    assert res.samples == []
    assert len(res.failures) == 2 and all(isinstance(f, str) and f for f in res.failures)
    assert not list(tmp_path.rglob("*.json"))  # failures are never cached


def test_judge_times_out_as_failure(fake, scenarios):
    chat = chat_for(fake, timeout=0.5, retries=0)
    fake.default = "hang"
    t0 = time.monotonic()
    res = judge_stage(chat, "fake", scenarios["news-feed"], "data", ANSWER, samples=1)
    assert res.score is None and len(res.failures) == 1
    assert time.monotonic() - t0 < 3


def test_judge_500_retried_per_sample(fake, scenarios):
    chat = chat_for(fake, retries=1)
    fake.default = "e500"
    res = judge_stage(chat, "fake", scenarios["news-feed"], "data", ANSWER, samples=2)
    assert res.score is None and len(res.failures) == 2
    assert len(fake.requests) == 4


def test_judge_mixes_valid_and_failed_samples(fake, scenarios):
    chat = chat_for(fake, retries=0)
    fake.modes = [("ok", "not json"), ("ok", '{"score": 2, "evidence": "clicks"}'), "e500", ("ok", '{"score": 2}')]
    res = judge_stage(chat, "fake", scenarios["news-feed"], "data", ANSWER, samples=4)
    assert res.samples == [2, 2] and res.score == 2 and len(res.failures) == 2 and res.evidence == "clicks"


def test_judge_valid_zero_is_a_score(fake, scenarios):
    chat = chat_for(fake, retries=0)
    fake.default = ("ok", '{"score": 0, "evidence": "", "reason": "absent"}')
    res = judge_stage(chat, "fake", scenarios["news-feed"], "monitoring", ANSWER, samples=1)
    assert res.score == 0 and res.failures == []


def test_judge_cache_keeps_scores_not_failures(fake, scenarios, tmp_path):
    chat = chat_for(fake, retries=0)
    cache = JudgeCache(tmp_path / "cache")
    fake.modes = [("ok", '{"score": 3}'), "e500"]
    first = judge_stage(chat, "fake", scenarios["news-feed"], "model", ANSWER, samples=2, cache=cache)
    assert first.samples == [3] and len(first.failures) == 1
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    fake.requests.clear()
    fake.default = ("ok", '{"score": 1}')
    second = judge_stage(chat, "fake", scenarios["news-feed"], "model", ANSWER, samples=2, cache=cache)
    assert len(fake.requests) == 1  # only the failed sample is asked again
    assert sorted(second.samples) == [1, 3] and second.failures == []


def test_grade_with_failing_judge_reports_none_overall(fake):
    from evals.grading import grade

    chat = chat_for(fake, retries=0)
    fake.default = ("ok", "I cannot grade this.")
    out = grade("news-feed", text=ANSWER, judge="llm", chat=chat, model_label="fake", samples=1)
    assert all(out["stages"][s]["score"] is None for s in out["stages"])
    assert out["overall"] is None
    assert set(out["judge_failures"]) == set(out["stages"])
    json.dumps(out)
