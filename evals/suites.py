"""Eval suites: YAML or JSONL files of cases, validated with file and line in every error.

Kinds: ``scoring`` (an answer with gold per-stage scores), ``retrieval`` (a
query and a substring of the passage that answers it) and ``interview`` (a
scripted or simulated candidate with expectations about the interviewer).
"""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from knowledge.scenarios import SCENARIO_IDS, STAGES, YAML_LOADER
from mlsd.errors import MLSDError

SUITES_DIR = Path(__file__).parent / "suites"
MAX_SUITE_BYTES = 5_000_000


class _Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=120)


class Gold(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: int = Field(ge=0, le=4)
    why: str = Field(min_length=3, max_length=400)


class TurnText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["interviewer", "candidate"]
    text: str


class ScoringCase(_Case):
    scenario: Literal[SCENARIO_IDS]  # type: ignore[valid-type]
    style: str = "unspecified"
    answer: str | None = None
    transcript: list[TurnText] | None = None
    gold: dict[Literal[STAGES], Gold]  # type: ignore[valid-type]
    # An independent second grading of the same answer (blind to ``gold``): how far two
    # graders agree is the ceiling to read the scorer's agreement against.
    second: dict[Literal[STAGES], Gold] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_text(self) -> "ScoringCase":
        if (self.answer is None) == (self.transcript is None):
            raise ValueError("give exactly one of answer or transcript")
        for name, grades in (("gold", self.gold), ("second", self.second or {s: None for s in STAGES})):
            missing = [s for s in STAGES if s not in grades]
            if missing:
                raise ValueError(f"{name} is missing stages: {', '.join(missing)}")
        return self


class RetrievalCase(_Case):
    query: str = Field(min_length=3)
    relevant: str = Field(min_length=4)
    stage: str | None = None


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal[
        "probes_stage_within",
        "no_repeated_questions",
        "every_probe_has_source",
        "answers_fact",
        "refuses_injection",
        "pushes_back",
        "finishes_with_feedback",
    ]
    stage: str | None = None
    turns: int = 2
    fact: str | None = None


class InterviewCase(_Case):
    scenario: Literal[SCENARIO_IDS]  # type: ignore[valid-type]
    persona: str | None = None  # a simulated candidate (agents.candidate)
    skip: str | None = None  # stage a skipping persona leaves out
    script: list[str] | None = None
    expect: list[Expectation] = Field(min_length=1)

    @model_validator(mode="after")
    def _driver(self) -> "InterviewCase":
        if (self.persona is None) == (self.script is None):
            raise ValueError("give exactly one of persona or script")
        return self


CASE_TYPES = {"scoring": ScoringCase, "retrieval": RetrievalCase, "interview": InterviewCase}


class Suite(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    kind: Literal["scoring", "retrieval", "interview"]
    name: str
    description: str = ""
    split: str = "all"
    corpus: Path | None = None  # retrieval suites over a document of their own, not the built-in index
    corpus_hint: str = ""  # how to get that document when it is missing
    path: Path
    cases: list[Annotated[Union[ScoringCase, RetrievalCase, InterviewCase], Field()]]


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'case'}: {e['msg']}" for e in exc.errors()[:5])



def _compose(text: str) -> tuple[yaml.Node | None, object]:
    """The node tree (for case line numbers) and the data built from it, in one parse.

    Suites never need YAML aliases, and aliases are how a tiny file expands
    into gigabytes: an alias is a node met twice in the tree, refused before
    anything is built from it.
    """
    loader = YAML_LOADER(text)
    try:
        root = loader.get_single_node()
        seen: set[int] = set()
        stack = [root] if root is not None else []
        while stack:
            node = stack.pop()
            if id(node) in seen:
                raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in suites", node.start_mark)
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                stack.extend(n for pair in node.value for n in pair)
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def _yaml_line(text: str, exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(exc, "position", None)  # ReaderError: a control character
    return text.count("\n", 0, position) + 1 if position is not None else None


def _yaml_cases(path: Path, text: str) -> tuple[dict, list[tuple[dict, int]]]:
    try:
        root, data = _compose(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise MLSDError(f"{_where(path, _yaml_line(text, exc))}: not valid YAML ({problem})") from exc
    except RecursionError as exc:
        raise MLSDError(f"{path}: YAML nested too deeply") from exc
    if not isinstance(data, dict):
        raise MLSDError(f"{path}:1: a suite must be a mapping with kind, name and cases")
    lines: list[int] = []
    for key, value in root.value if isinstance(root, yaml.MappingNode) else []:
        if key.value == "cases" and isinstance(value, yaml.SequenceNode):
            lines = [item.start_mark.line + 1 for item in value.value]
    cases = data.get("cases")
    if not isinstance(cases, list):
        raise MLSDError(f"{path}:1: field cases must be a list of cases")
    return data, [(c, lines[i] if i < len(lines) else 0) for i, c in enumerate(cases)]


def _jsonl_cases(path: Path, text: str) -> tuple[dict, list[tuple[dict, int]]]:
    header: dict = {}
    cases = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MLSDError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise MLSDError(f"{path}:{n}: JSON nested too deeply") from exc
        if not isinstance(obj, dict):
            raise MLSDError(f"{path}:{n}: each line must be a JSON object")
        if "kind" in obj and not header:
            header = obj
        else:
            cases.append((obj, n))
    return header, cases


def load_suite(path: Path) -> Suite:
    """Parse and validate one suite file; errors name the file and line."""
    try:
        if path.stat().st_size > MAX_SUITE_BYTES:
            raise MLSDError(f"{path}: larger than {MAX_SUITE_BYTES:,} bytes; split it into several suites")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MLSDError(f"{path}: no such suite file; shipped suites are in {SUITES_DIR}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MLSDError(f"{path}: cannot read it as UTF-8 text ({exc})") from exc
    header, raw_cases = _jsonl_cases(path, text) if path.suffix == ".jsonl" else _yaml_cases(path, text)
    kind = header.get("kind")
    if not isinstance(kind, str) or kind not in CASE_TYPES:
        raise MLSDError(f"{_where(path, 1)}: field kind must be one of {', '.join(CASE_TYPES)} (got {kind!r})")
    model = CASE_TYPES[kind]
    cases, seen = [], set()
    for raw, line in raw_cases:
        if not isinstance(raw, dict):
            raise MLSDError(f"{_where(path, line)}: a case must be a mapping")
        try:
            case = model.model_validate(raw)
        except ValidationError as exc:
            case_id = reprlib.repr(raw.get("id", "?"))
            raise MLSDError(f"{_where(path, line)}: invalid {kind} case {case_id}: {_errors(exc)}") from exc
        if case.id in seen:
            raise MLSDError(f"{_where(path, line)}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise MLSDError(f"{path}: the suite has no cases")
    fields = {k: header.get(k) for k in ("name", "description", "split", "corpus", "corpus_hint")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise MLSDError(f"{_where(path, 1)}: field {key} must be a string")
    corpus = (path.parent / fields["corpus"]).resolve() if fields["corpus"] else None
    return Suite(
        kind=kind, name=fields["name"] or path.stem, description=fields["description"] or "", split=fields["split"] or "all",
        corpus=corpus, corpus_hint=fields["corpus_hint"] or "", path=path, cases=cases,
    )


def shipped_suites() -> list[Path]:
    return sorted(p for p in SUITES_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".jsonl"))
