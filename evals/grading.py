"""Grade an answer: the deterministic scorer, the LLM judge, or both.

Shared by ``mlsd score``, the eval runner and the app's "Score my answer".
"""

from __future__ import annotations

from pathlib import Path

from evals.scorer import Segment, TranscriptScorer, score_segments, without_grader_notes
from knowledge.scenarios import STAGES, load_scenarios
from mlsd.errors import MLSDError

MAX_ANSWER_CHARS = 60_000


def read_answer(path: Path) -> str:
    if path.suffix.lower() not in (".md", ".txt", ".markdown", ""):
        raise MLSDError(f"{path}: give the answer as a .md or .txt file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MLSDError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MLSDError(f"{path}: cannot read it as UTF-8 text ({exc})") from exc
    if not text.strip():
        raise MLSDError(f"{path}: the file is empty; paste your answer into it first")
    return text


def transcript_segments(turns: list[dict]) -> list[Segment]:
    """Candidate turns of a transcript, keeping each turn's index for evidence."""
    return [Segment(t["text"], i) for i, t in enumerate(turns) if t.get("role") == "candidate"]


def grade(
    scenario_id: str, text: str | None = None, segments: list[Segment] | None = None, judge: str = "deterministic", chat=None, model_label: str = "",
    samples: int = 3, cache=None, scorer: TranscriptScorer | None = None, workers: int = 1,
) -> dict:
    """The scoring result as a plain dict (the `mlsd score --json` shape).

    ``scorer``: this scenario's :class:`TranscriptScorer`, whose analyses a caller
    reuses (the eval runner's robustness variants); the scores are the same.
    ``workers``: LLM judge calls made side by side (see :func:`evals.judge.judge_answer`).
    """
    scenarios = load_scenarios()
    if scenario_id not in scenarios:
        raise MLSDError(f"unknown scenario {scenario_id!r}; valid scenarios: {', '.join(sorted(scenarios))}")
    if segments is None:
        if text is None:
            raise ValueError("give text or segments")
        if len(text) > MAX_ANSWER_CHARS:
            raise MLSDError(f"The answer has {len(text):,} characters; the grader reads at most {MAX_ANSWER_CHARS:,}. Trim it to the design itself.")
        segments = [Segment(text)]
    scenario = scenarios[scenario_id]
    others = {k: v for k, v in scenarios.items() if k != scenario_id}
    result = scorer.score(segments) if scorer is not None else score_segments(scenario, segments, others)
    det = result.to_dict()
    det["judge"] = "deterministic"
    if judge == "deterministic":
        return det
    if chat is None:
        raise MLSDError("--judge llm needs an LLM: set MLSD_LLM=local (the default) or MLSD_LLM=openai")
    from evals.judge import ANSWER_CHARS, judge_answer, stage_passages

    # The judge reads what the scorer reads: no note to the grader; past one prompt's worth,
    # each stage's own passages rather than the answer's opening.
    answer = "\n\n".join(without_grader_notes(s.text).strip() for s in segments)
    passages = stage_passages(scenario, segments, result) if len(answer) > ANSWER_CHARS else None
    judged = judge_answer(chat, model_label, scenario, answer, samples, cache, workers, passages)
    out = {"scenario": scenario_id, "judge": judge, "stages": {}, "flags": det["flags"], "judge_failures": {}}
    if passages:
        out["judge_read"] = "passages"
    for s in STAGES:
        d = det["stages"][s]
        j = judged[s]
        if j.failures:
            out["judge_failures"][s] = j.failures
        entry = dict(d)
        entry["llm"] = {"score": j.score, "samples": j.samples, "spread": j.spread, "evidence": j.evidence, "failures": len(j.failures)}
        # The guards bound every judge: a keyword list, an answer to another question or a
        # pitfall claim caps the judge's score as it caps the scorer's.
        ceiling = result.stages[s].ceiling
        llm = None if j.score is None else min(j.score, ceiling)
        if llm is not None and llm < j.score:
            entry["llm"]["ceiling"] = ceiling
        if judge == "llm":
            entry["score"] = llm  # None when the judge failed: reported, never a 0
        elif llm is not None:  # ensemble: the mean, rounded toward the deterministic score
            mean = (d["score"] + llm) / 2
            entry["score"] = int(mean) if d["score"] < llm else -int(-mean)
        out["stages"][s] = entry
    valid = [out["stages"][s]["score"] for s in STAGES if out["stages"][s]["score"] is not None]
    weights = {s: sum(x.weight for x in scenario.signals[s]) for s in STAGES}
    den = sum(weights[s] for s in STAGES if out["stages"][s]["score"] is not None)
    out["overall"] = round(sum(out["stages"][s]["score"] * weights[s] for s in STAGES if out["stages"][s]["score"] is not None) / den, 2) if valid else None
    return out


def grade_file(path: Path, scenario_id: str, judge: str = "deterministic", settings=None, samples: int = 3) -> dict:
    text = read_answer(path)
    chat, label, cache, workers = None, "", None, 1
    if judge != "deterministic":
        from evals.judge import JudgeCache
        from mlsd import runtime

        chat = runtime.chat_model(settings)
        label = settings.model_label
        cache = JudgeCache(settings.home / "judge-cache")
        workers = settings.llm_concurrency
    return grade(scenario_id, text, judge=judge, chat=chat, model_label=label, samples=samples, cache=cache, workers=workers)


def render_table(result: dict) -> str:
    lines = [f"scenario: {result['scenario']}   judge: {result.get('judge', 'deterministic')}", ""]
    # the confidence belongs to the deterministic score: the chance a calibrated grader gives the same
    sure = result.get("judge", "deterministic") == "deterministic"
    lines.append(f"{'stage':12} {'score':>5}  {'agree':>5}  covered / missed" if sure else f"{'stage':12} {'score':>5}  covered / missed")
    for s, d in result["stages"].items():
        score = "fail" if d["score"] is None else f"{d['score']}/4"
        agree = f"  {d['confidence']:>5.0%}" if sure else ""
        lines.append(f"{s:12} {score:>5}{agree}  {len(d['covered'])} covered, {len(d['missed'])} missed")
        for e in d["evidence"][:2]:
            lines.append(f"{'':19}“{e['quote'][:110]}”")
        for p in d.get("pitfalls", [])[:2]:
            lines.append(f"{'':19}challenged: “{p['quote'][:90]}” {p['pushback']}")
        if d["missed"]:
            lines.append(f"{'':19}missed: {', '.join(d['missed'][:3])}")
    overall = result.get("overall")
    lines += ["", f"overall: {overall if overall is not None else 'n/a'} / 4"]
    if sure:
        lines.append("agree: the chance a calibrated human grader gives the same score (measured on the gold tune answers)")
    if result.get("flags"):
        lines.append("flags: " + ", ".join(result["flags"]))
    if result.get("judge_read") == "passages":
        lines.append("the judge read each stage's own passages: the answer is longer than one judge prompt")
    capped = [s for s, d in result["stages"].items() if "ceiling" in d.get("llm", {})]
    if capped:
        lines.append("the judge's score held to the guards' ceiling: " + ", ".join(capped))
    if result.get("judge_failures"):
        lines.append("judge failures (not scored): " + ", ".join(result["judge_failures"]))
    return "\n".join(lines)
