"""The Streamlit app: mock interview, concept Q&A, score my answer, history.

It imports the core; nothing in the core imports it.  Heavy resources load
once per process (``st.cache_resource``); the page renders before the model
has loaded, and the interviewer uses template phrasing until it has.
Anything a user typed is rendered as text, never as HTML.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time

import streamlit as st

from agents.interviewer import Deps, InterviewSession
from agents.tutor import Answer, ask
from evals.grading import MAX_ANSWER_CHARS, grade
from knowledge.scenarios import STAGES, load_scenarios
from mlsd.errors import MLSDError
from mlsd.settings import load_settings

st.set_page_config(page_title="mlsd-interviewer", page_icon=":material/record_voice_over:", layout="wide")
INTERVIEWER = ":material/record_voice_over:"
CANDIDATE = ":material/person:"

STAGE_LABELS = {
    "clarify": "Clarify",
    "frame": "Frame",
    "data": "Data",
    "model": "Model",
    "evaluation": "Evaluation",
    "deployment": "Deployment",
    "monitoring": "Monitoring",
}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def as_text(text: str) -> str:
    """Markdown-escape user text so it shows literally (no links, images, HTML or formatting)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


# --- resources, once per process ------------------------------------------------------------
@st.cache_resource
def settings():
    return load_settings()


@st.cache_resource
def database():
    from mlsd import runtime

    return runtime.database(settings())


@st.cache_resource
def retriever():
    from mlsd import runtime

    try:
        r = runtime.retriever(settings())
        r.refresh()
        return r
    except MLSDError as exc:
        st.session_state["_retriever_error"] = str(exc)
        return None


class ModelLoader:
    """Loads the chat model in a background thread so the first page never waits for it."""

    def __init__(self, s) -> None:
        self.model = None
        self.error: str | None = None
        self.done = threading.Event()
        if s.llm == "none":
            self.done.set()
            return
        threading.Thread(target=self._load, args=(s,), daemon=True).start()

    def _load(self, s) -> None:
        from mlsd import runtime

        try:
            self.model = runtime.chat_model(s)
        except Exception as exc:  # shown in the settings panel; templates are used meanwhile
            self.error = str(exc)
        finally:
            self.done.set()

    @property
    def status(self) -> str:
        if settings().llm == "none":
            return "none (template phrasing)"
        if not self.done.is_set():
            return "warming up…"
        return "loaded" if self.model is not None else f"unavailable: {self.error}"


@st.cache_resource
def model_loader() -> ModelLoader:
    return ModelLoader(settings())


def deps() -> Deps:
    loader = model_loader()
    return Deps(db=database(), scenarios=load_scenarios(), retriever=retriever(), chat=loader.model, llm_label=settings().model_label if loader.model else "none")


# --- sidebar ---------------------------------------------------------------------------------
MODES = ["Mock interview", "Concept Q&A", "Score my answer", "History"]


def sidebar() -> str:
    with st.sidebar:
        st.title("mlsd-interviewer")
        st.caption("Practise ML system design interviews, offline.")
        default = st.query_params.get("mode", MODES[0])
        mode = st.radio("Mode", MODES, index=MODES.index(default) if default in MODES else 0, key="mode_radio")
        if mode != st.query_params.get("mode"):
            st.query_params["mode"] = mode
        with st.expander("Settings", expanded=False):
            s = settings()
            st.write(f"**LLM provider:** {s.llm}")
            st.write(f"**Model:** {as_text(s.model_label)}")
            st.write(f"**Model status:** {model_loader().status}")
            st.write(f"**Knowledge store:** {as_text(s.chroma_host + ':' + str(s.chroma_port)) if s.chroma_host else as_text(str(s.store_dir))}")
            st.write(f"**Database:** {as_text(database().engine.url.render_as_string(hide_password=True))}")
            if st.session_state.get("_retriever_error"):
                st.warning(st.session_state["_retriever_error"])
            st.caption("Change these with MLSD_* environment variables or a .env file; secrets are never shown.")
    return mode


# --- mock interview --------------------------------------------------------------------------
def current_session() -> InterviewSession | None:
    iid = st.query_params.get("iid")
    if not iid:
        return None
    try:
        return InterviewSession.resume(deps(), iid)
    except MLSDError as exc:
        st.error(str(exc))
        del st.query_params["iid"]
        return None


def start_form() -> None:
    scenarios = load_scenarios()
    st.header("Mock interview")
    st.write("Pick a case and a length. The interviewer asks, probes and pushes back like a real one; at the end you get scores with quoted evidence.")
    options = ["Random"] + sorted(scenarios)
    with st.form("start"):
        choice = st.selectbox("Scenario", options, format_func=lambda k: "Random scenario" if k == "Random" else scenarios[k].title)
        minutes = st.slider("Duration (minutes)", 15, 90, 45, step=5)
        go = st.form_submit_button("Start interview", type="primary")
    if go:
        sid = random.choice(sorted(scenarios)) if choice == "Random" else choice
        session = InterviewSession.start(deps(), sid, minutes)
        session.warm()  # the cold prompt runs while the candidate reads the opening
        st.query_params["iid"] = session.id
        st.rerun()


def render_turn(turn) -> None:
    if turn.role == "candidate":
        with st.chat_message("user", avatar=CANDIDATE):
            st.markdown(as_text(turn.text) if turn.text.strip() else "_(empty message)_")
            if turn.note:
                st.caption(turn.note)
        return
    with st.chat_message("assistant", avatar=INTERVIEWER):
        st.markdown(turn.text)
        if turn.sources and turn.action != "feedback":
            with st.expander(f"Sources ({len(turn.sources)})"):
                for src in turn.sources:
                    st.markdown(f"**{as_text(src.get('section') or src.get('source', ''))}** · _{as_text(src.get('source', ''))}_")
                    st.caption(src.get("text", "")[:600])


def stage_map(session: InterviewSession) -> None:
    cov = session.coverage()
    seconds = session.seconds_per_stage()
    current = session.stage
    st.subheader("Stage map")
    for s in STAGES:
        used = seconds[s] / 60
        budget = float(session.record.budgets.get(s, 5))
        marker = "▶ " if s == current and not session.finished else ""
        covered = cov.stages[s].coverage
        over = " · over budget" if used > budget else ""
        st.markdown(f"{marker}**{STAGE_LABELS[s]}** · {used:.1f}/{budget:g} min{over}")
        st.progress(min(covered, 1.0), text=f"{round(covered * 100)}% covered")


def interview_view(session: InterviewSession) -> None:
    chat_col, map_col = st.columns([3, 1], gap="large")
    with map_col:
        st.caption(f"Interview `{session.id}` · {session.scenario.title}")
        stage_map(session)
        if not session.finished:
            if st.button("End interview and get feedback", use_container_width=True):
                for _ in session.end():
                    pass
                st.rerun()
        if st.button("New interview", use_container_width=True):
            del st.query_params["iid"]
            st.rerun()
        status = model_loader().status
        if status == "warming up…":
            st.info("The local model is warming up; the interviewer uses its template phrasing until it is ready.")
    with chat_col:
        for turn in session.turns:
            if turn.action == "feedback":
                continue
            render_turn(turn)
        if session.finished:
            st.success("Interview finished: your feedback is below.")
    if session.finished:
        feedback_view(session)  # full width, below the transcript
        return
    with chat_col:
        if session.awaiting_reply:  # the last run stopped between saving a message and replying
            stream_reply(session.answer_pending())
            st.rerun()
        text = st.chat_input("Your answer, or a clarifying question…")
        if text is not None:
            with st.chat_message("user", avatar=CANDIDATE):
                st.markdown(as_text(text) if text.strip() else "_(empty message)_")
            stream_reply(session.respond(text))
            st.rerun()


def stream_reply(events) -> None:
    """Show the interviewer's reply as it streams."""
    with st.chat_message("assistant", avatar=INTERVIEWER):
        box = st.empty()
        shown = ""
        for ev in events:
            if ev.type == "delta":
                shown += ev.text
                box.markdown(shown + "▌")
            elif ev.type == "replace":  # the checker refused the model's words
                shown = ev.text
                box.markdown(shown + "▌")
            elif ev.type == "notice":
                st.caption(ev.text)
        box.markdown(shown)


def radar(stages: dict) -> None:
    import plotly.graph_objects as go

    names = [STAGE_LABELS[s] for s in STAGES]
    values = [stages[s]["score"] for s in STAGES]
    fig = go.Figure(go.Scatterpolar(r=values + values[:1], theta=names + names[:1], fill="toself", name="score"))
    fig.update_layout(polar={"radialaxis": {"range": [0, 4], "tickvals": [0, 1, 2, 3, 4]}}, showlegend=False, height=360, margin={"l": 40, "r": 40, "t": 20, "b": 20})
    st.plotly_chart(fig, use_container_width=True)


def transcript_markdown(session: InterviewSession, fb: dict) -> str:
    lines = [f"# {session.scenario.title}", "", f"Interview `{session.id}`", ""]
    for t in session.turns:
        if t.action == "feedback":
            continue
        who = "Interviewer" if t.role == "interviewer" else "Candidate"
        lines += [f"**{who}** ({t.stage}): {t.text}", ""]
    lines += ["## Feedback", "", f"Overall: {fb['overall']:.2f} / 4", ""]
    for s in STAGES:
        d = fb["stages"][s]
        lines.append(f"- **{STAGE_LABELS[s]}**: {d['score']}/4")
        lines += [f"  - “{e['quote']}”" for e in d["evidence"][:2]]
    return "\n".join(lines)


def feedback_view(session: InterviewSession) -> None:
    fb = session.feedback().to_dict()
    st.divider()
    st.header("Feedback")
    top = st.columns([2, 3])
    with top[0]:
        st.metric("Overall", f"{fb['overall']:.2f} / 4")
        radar(fb["stages"])
    with top[1]:
        st.subheader("Three things to improve")
        sigs = {s.id: s for s in session.scenario.all_signals()}
        for i, imp in enumerate(fb["improvements"], 1):
            st.markdown(f"**{i}. {STAGE_LABELS[imp['stage']]}** — {imp['what']}")
            st.caption(f"Why it matters: {imp['why']}")
            if imp.get("study"):
                with st.expander(f"Study: {imp['study']['section'] or imp['study']['source']}"):
                    st.write(imp["study"]["text"])
        st.subheader("Time per stage")
        st.dataframe(
            [{"stage": STAGE_LABELS[s], "minutes": v["minutes"], "budget": v["budget"]} for s, v in fb["time_per_stage"].items()],
            hide_index=True,
            use_container_width=True,
        )
    st.subheader("Stage by stage")
    sigs = {s.id: s for s in session.scenario.all_signals()}
    for s in STAGES:
        d = fb["stages"][s]
        with st.expander(f"{STAGE_LABELS[s]}: {d['score']}/4"):
            if d["evidence"]:
                st.markdown("**What you said**")
                for e in d["evidence"]:
                    st.markdown(f"> {as_text(e['quote'])}")
            if d["missed"]:
                st.markdown("**What a strong answer also covers**")
                for m in d["missed"][:4]:
                    st.markdown(f"- {sigs[m].shows}")
    with st.expander("Reference outline of a strong answer"):
        for s in STAGES:
            st.markdown(f"**{STAGE_LABELS[s]}**")
            for b in fb["reference_outline"][s]:
                st.markdown(f"- {b}")
    payload = {"interview_id": session.id, "scenario": session.scenario.id, "turns": [t.to_dict() for t in session.turns if t.action != "feedback"], "feedback": fb}
    c1, c2 = st.columns(2)
    c1.download_button("Download transcript (Markdown)", transcript_markdown(session, fb), file_name=f"interview-{session.id}.md", mime="text/markdown")
    c2.download_button("Download transcript (JSON)", json.dumps(payload, indent=2, ensure_ascii=False), file_name=f"interview-{session.id}.json", mime="application/json")


def mock_interview() -> None:
    session = current_session()
    if session is None:
        start_form()
    else:
        interview_view(session)


# --- concept Q&A -------------------------------------------------------------------------------
def concept_qa() -> None:
    st.header("Concept Q&A")
    st.write("Ask about ML system design concepts. Answers come from the knowledge base, with citations.")
    r = retriever()
    if r is None:
        st.error(st.session_state.get("_retriever_error", "The knowledge index is missing: run `mlsd ingest`."))
        return
    history = st.session_state.setdefault("qa_history", [])
    for q, a in history:
        with st.chat_message("user", avatar=CANDIDATE):
            st.markdown(as_text(q))
        show_answer(a)
    q = st.chat_input("e.g. When would I use nDCG over MAP?")
    if q:
        with st.chat_message("user", avatar=CANDIDATE):
            st.markdown(as_text(q))
        with st.chat_message("assistant", avatar=INTERVIEWER):
            box = st.empty()
            text, answer = "", None
            for piece in ask(q[:2000], r, model_loader().model):
                if isinstance(piece, Answer):
                    answer = piece
                else:
                    text += piece
                    box.markdown(text + "▌")
            box.empty()
        history.append((q, answer))
        st.rerun()


def show_answer(a: Answer) -> None:
    with st.chat_message("assistant", avatar=INTERVIEWER):
        st.markdown(a.text)
        if a.notice:
            st.caption(f"The model failed ({a.notice}); this is the extractive answer.")
        for i, p in enumerate(a.passages, 1):
            with st.expander(f"[{i}] {p.section or p.source}"):
                st.caption(p.source)
                st.write(p.text)


# --- score my answer -----------------------------------------------------------------------------
def score_answer() -> None:
    scenarios = load_scenarios()
    st.header("Score my answer")
    st.write("Paste or upload a written answer; get per-stage scores with quoted evidence and the signals you missed.")
    sid = st.selectbox("Scenario", sorted(scenarios), format_func=lambda k: scenarios[k].title)
    with st.expander("The question"):
        st.write(scenarios[sid].question)
    upload = st.file_uploader("Upload an answer (.md or .txt)", type=["md", "txt"])
    text = st.text_area("…or paste it here", height=260)
    if upload is not None:
        try:
            text = upload.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            st.error("That file is not UTF-8 text. Save it as plain text (.md or .txt) and upload it again.")
            return
    if st.button("Score", type="primary"):
        if not text.strip():
            st.warning("There is nothing to score yet: paste your answer or upload a file.")
            return
        if len(text) > MAX_ANSWER_CHARS:
            st.error(f"Your answer has {len(text):,} characters; the grader reads at most {MAX_ANSWER_CHARS:,}. Trim it to the design itself and score again.")
            return
        result = grade(sid, text)
        st.metric("Overall", f"{result['overall']:.2f} / 4")
        if result["flags"]:
            st.info("Notes from the grader: " + ", ".join(f.replace("_", " ") for f in result["flags"]))
        radar(result["stages"])
        sigs = {s.id: s for s in scenarios[sid].all_signals()}
        for s in STAGES:
            d = result["stages"][s]
            with st.expander(f"{STAGE_LABELS[s]}: {d['score']}/4", expanded=d["score"] < 2):
                st.caption(f"A human grader would give the same score about {d['confidence']:.0%} of the time (measured on our graded answers).")
                for e in d["evidence"][:3]:
                    st.markdown(f"> {as_text(e['quote'])}")
                for p in d.get("pitfalls", [])[:2]:
                    st.markdown(f"**Challenged:** “{as_text(p['quote'])}”: {as_text(p['pushback'])}")
                if d["missed"]:
                    st.markdown("**Missed:**")
                    for m in d["missed"][:4]:
                        st.markdown(f"- {sigs[m].shows}")


# --- history ---------------------------------------------------------------------------------------
def history() -> None:
    import pandas as pd

    st.header("History")
    db = database()
    rows = db.list(limit=200)
    if not rows:
        st.info("No interviews yet. Start one in Mock interview.")
        return
    scenarios = load_scenarios()
    table = [
        {"id": r.id, "scenario": scenarios[r.scenario].title if r.scenario in scenarios else r.scenario, "status": r.status, "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated_at))}
        for r in rows
    ]
    st.dataframe(table, hide_index=True, use_container_width=True)
    unfinished = [r.id for r in rows if r.status != "finished"]
    finished = [r.id for r in rows if r.status == "finished"]
    c1, c2 = st.columns(2)
    with c1:
        pick = st.selectbox("Resume an unfinished interview", unfinished, disabled=not unfinished)
        if st.button("Resume", disabled=not unfinished):
            st.query_params.update({"mode": "Mock interview", "iid": pick})
            st.rerun()
    with c2:
        pick2 = st.selectbox("Open a finished interview", finished, disabled=not finished)
        if st.button("Open", disabled=not finished):
            st.query_params.update({"mode": "Mock interview", "iid": pick2})
            st.rerun()
    hist = db.score_history()
    if hist:
        st.subheader("Progress")
        df = pd.DataFrame(hist)
        df["when"] = pd.to_datetime(df["created_at"], unit="s")
        wide = df.pivot_table(index="when", columns="stage", values="score", aggfunc="mean").reindex(columns=[s for s in STAGES if s in set(df["stage"])])
        st.line_chart(wide, height=280)


def main() -> None:
    try:
        settings()
    except MLSDError as exc:
        st.error(str(exc))
        st.stop()
    mode = sidebar()
    {"Mock interview": mock_interview, "Concept Q&A": concept_qa, "Score my answer": score_answer, "History": history}[mode]()


main()
