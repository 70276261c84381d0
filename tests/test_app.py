"""The Streamlit app, mode by mode, through streamlit.testing.v1.AppTest with a scripted fake model."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.real  # uses the real embedder and index


@pytest.fixture
def app_env(tmp_path, monkeypatch, built_index, scripted_chat):
    import streamlit as st

    home = tmp_path / "home"
    home.mkdir()
    (home / "chroma").symlink_to(built_index)
    monkeypatch.setenv("MLSD_HOME", str(home))
    monkeypatch.setenv("MLSD_LLM", "local")
    monkeypatch.chdir(ROOT)
    replies = ["How would you turn those engagement signals into one training target?"] * 3 + ["Calibration matters because the auction uses pCTR [1]."]
    monkeypatch.setattr("mlsd.runtime.chat_model", lambda s: scripted_chat(list(replies)))
    st.cache_resource.clear()
    yield home
    st.cache_resource.clear()


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at




def test_mock_interview_flow(app_env):
    at = _app()
    assert "Mock interview" in at.header[0].value
    at.selectbox[0].set_value("news-feed")
    at.button[0].click().run()
    assert at.query_params.get("iid")
    assert any("feed" in m.markdown[0].value.lower() for m in at.chat_message)
    at.chat_input[0].set_value("How many daily active users are there?").run()
    assert not at.exception, at.exception
    texts = [md.value for m in at.chat_message for md in m.markdown]
    assert any("daily" in t and ("million" in t or "billion" in t) for t in texts), texts[-2:]
    assert any("Stage map" in s.value for s in at.subheader)
    assert len(at.get("progress")) == 7
    at.chat_input[0].set_value("I'd rank posts with a multi-task model predicting likes, comments and shares from logged engagement.").run()
    assert not at.exception, at.exception
    end = next(b for b in at.button if "End interview" in b.label)
    end.click().run()
    assert not at.exception, at.exception
    assert any("Feedback" in h.value for h in at.header)
    assert any("Overall" in m.label for m in at.metric)


def test_refresh_resumes_the_same_interview(app_env):
    at = _app()
    at.button[0].click().run()
    iid = at.query_params["iid"]
    at2 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at2.query_params["iid"] = iid
    at2.run()
    assert not at2.exception
    assert any(iid in c.value for c in at2.caption)


def test_a_message_left_unanswered_by_a_crash_is_answered_on_reopening(app_env):
    from agents.db import InterviewDB, Turn

    at = _app()
    at.button[0].click().run()
    iid = at.query_params["iid"]
    db = InterviewDB(f"sqlite:///{app_env / 'mlsd.db'}")
    before = len(db.get(iid).turns)
    db.add_turn(iid, Turn(0, "candidate", "How many daily active users are there?", "clarify", kind="clarify_question"))
    at2 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at2.query_params["iid"] = iid
    at2.run()
    assert not at2.exception, at2.exception
    turns = db.get(iid).turns
    assert len(turns) == before + 2 and turns[-1].role == "interviewer"
    assert turns[-2].text == "How many daily active users are there?"


def test_concept_qa_cites_passages(app_env):
    at = _app()
    at.sidebar.radio[0].set_value("Concept Q&A").run()
    at.chat_input[0].set_value("When would I use nDCG instead of MAP?").run()
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    assert any(label.startswith("[1]") for label in labels), labels


def test_score_my_answer(app_env):
    at = _app()
    at.sidebar.radio[0].set_value("Score my answer").run()
    at.selectbox[0].set_value("ad-click-prediction")
    at.text_area[0].set_value(
        "Because the auction multiplies pCTR by the bid, I'd check calibration with normalized cross-entropy. "
        "I'd train a logistic regression baseline on impression logs, then a deep cross network."
    )
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Overall" in m.label for m in at.metric)
    assert any(e.label.startswith("Evaluation:") for e in at.expander)


def test_score_my_answer_refuses_huge_paste_with_a_clear_message(app_env):
    at = _app()
    at.sidebar.radio[0].set_value("Score my answer").run()
    at.text_area[0].set_value("word " * 13000)
    at.button[0].click().run()
    assert any("characters" in e.value for e in at.error)


def test_history_lists_interviews(app_env):
    at = _app()
    at.button[0].click().run()
    at.sidebar.radio[0].set_value("History").run()
    assert not at.exception, at.exception
    assert at.dataframe, "the history table is shown"


def test_settings_panel_never_shows_a_secret(app_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SECRET-SHOULD-NOT-SHOW")
    at = _app()
    everything = " ".join(str(m.value) for m in at.sidebar.markdown)
    assert "SECRET" not in everything and "LLM provider" in everything
