"""Interviews in the terminal: interactive with streaming, or a scripted candidate.

A thin driver over :class:`agents.interviewer.InterviewSession`; it owns
input and output only.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from agents.interviewer import Deps, InterviewSession
from knowledge.scenarios import load_scenarios
from mlsd.errors import MLSDError
from mlsd.settings import Settings


def read_script(path: Path) -> list[str]:
    """Candidate turns separated by lines containing only ``---``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MLSDError(f"Cannot read the script {path} ({exc}): give a UTF-8 text file") from exc
    turns, current = [], []
    for line in text.splitlines():
        if line.strip() == "---":
            turns.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    if any(line.strip() for line in current):
        turns.append("\n".join(current).strip())
    return turns


def build_deps(settings: Settings, quiet: bool = False) -> Deps:
    from mlsd import runtime

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)

    retriever = None
    try:
        retriever = runtime.retriever(settings)
    except MLSDError as exc:
        say(f"note: {exc}; probes will have no sources")
    chat = None
    if settings.llm != "none":
        try:
            chat = runtime.chat_model(settings)
        except MLSDError as exc:
            say(f"note: {exc}; using template phrasing")
    return Deps(db=runtime.database(settings), scenarios=load_scenarios(), retriever=retriever, chat=chat, llm_label=settings.model_label if chat else "none")


def transcript_json(session: InterviewSession) -> dict:
    feedback = session.feedback().to_dict() if session.finished else None
    return {
        "interview_id": session.id,
        "scenario": session.scenario.id,
        "turns": [
            {
                "role": t.role,
                "text": t.text,
                "stage": t.stage,
                "action": t.action,
                "target": t.target if t.action in ("probe", "advance", "nudge", "pushback") else None,
                "sources": t.sources,
            }
            for t in session.turns
        ],
        "feedback": feedback,
    }


def _say(session: InterviewSession, text: str | None, out) -> None:
    """Stream the interviewer's reply to ``text`` (None: to the message saved before a crash)."""
    shown = ""
    for ev in session.respond(text) if text is not None else session.answer_pending():
        if ev.type == "delta":
            shown += ev.text
            print(ev.text, end="", file=out, flush=True)
        elif ev.type == "replace":  # the checker refused the model's words
            print(f"\n(rephrased) {ev.text}", end="", file=out, flush=True)
        elif ev.type == "notice":
            print(f"\n[{ev.text}]", file=sys.stderr, flush=True)
    print("\n", file=out)


def run_terminal(settings: Settings, scenario: str | None, minutes: float | None, script: Path | None, as_json: bool, resume: str | None) -> int:
    scenarios = load_scenarios()
    if scenario and scenario not in scenarios:
        raise MLSDError(f"unknown scenario {scenario!r}; valid scenarios: {', '.join(sorted(scenarios))}")
    turns = read_script(script) if script else None
    deps = build_deps(settings, quiet=as_json)
    if resume:
        session = InterviewSession.resume(deps, resume)
    else:
        session = InterviewSession.start(deps, scenario or random.choice(sorted(scenarios)), minutes)
        session.warm()
    out = open("/dev/null", "w") if as_json else sys.stdout  # noqa: SIM115
    try:
        if not as_json:
            print(f"interview {session.id} ({session.scenario.title}); resume it any time with `mlsd interview --resume {session.id}`\n")
            for t in session.turns:
                who = "Interviewer" if t.role == "interviewer" else "You"
                print(f"{who}: {t.text}\n")
            if session.awaiting_reply:
                print("Interviewer: ", end="", flush=True)
        if session.awaiting_reply:  # the last run stopped before replying: reply first
            _say(session, None, out)
        if turns is not None:
            for text in turns:
                if session.finished:
                    break
                if not as_json:
                    print(f"You: {text}\n")
                _say(session, text, out)
            if not session.finished:
                _say(session, "I'm done", out)
                if not session.finished:
                    _say(session, "I'm done", out)
        else:
            while not session.finished:
                try:
                    text = input("You: ")
                except EOFError:
                    print("\nsaved; resume with `mlsd interview --resume " + session.id + "`")
                    return 0
                print("Interviewer: ", end="", flush=True)
                _say(session, text, out)
    finally:
        if as_json:
            out.close()
    if as_json:
        print(json.dumps(transcript_json(session), indent=2, ensure_ascii=False))
    else:
        print(render_feedback(session))
    return 0


def render_feedback(session: InterviewSession) -> str:
    """The feedback as plain text for the terminal."""
    fb = session.feedback()
    shows = {s.id: s.shows for s in session.scenario.all_signals()}
    lines = [f"Overall: {fb.overall:.2f} / 4", ""]
    for stage, d in fb.stages.items():
        t = fb.time_per_stage[stage]
        lines.append(f"{stage:11} {d['score']}/4   {t['minutes']:.1f} of {t['budget']:g} min")
        for e in d["evidence"][:2]:
            lines.append(f"            “{e['quote'][:120]}”")
        if d["missed"]:
            lines.append(f"            missed: {shows[d['missed'][0]][:120]}")
    if fb.improvements:
        lines += ["", "Three things to improve:"]
        for i, imp in enumerate(fb.improvements, 1):
            study = f" (study: {imp['study']['section']})" if imp.get("study") else ""
            lines.append(f"  {i}. [{imp['stage']}] {imp['what']}{study}")
    return "\n".join(lines)
