"""Scenario cards: the answer key shared by the interviewer and the grader.

A card is a YAML file in ``knowledge/scenarios/``.  This module validates and
loads cards into typed records; it knows nothing about scoring or policy.
A broken card raises :class:`mlsd.errors.MLSDError` naming the file and field.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlsd.errors import MLSDError

STAGES: tuple[str, ...] = ("clarify", "frame", "data", "model", "evaluation", "deployment", "monitoring")
FACT_TOPICS: tuple[str, ...] = (
    "business_objective",
    "users_items",
    "scale_growth",
    "latency",
    "data_labels",
    "constraints",
    "privacy",
)
SCENARIO_IDS: tuple[str, ...] = (
    "visual-search",
    "street-view-blurring",
    "video-search",
    "harmful-content",
    "video-recommendation",
    "event-recommendation",
    "ad-click-prediction",
    "similar-listings",
    "news-feed",
    "people-you-may-know",
)
CARDS_DIR = Path(__file__).parent / "scenarios"

def _star_at_end(term: str) -> str:
    if "*" in term[:-1]:
        raise ValueError(f"{term!r}: '*' works only at the end of a term (a prefix wildcard); list the variants as separate terms")
    return term


Term = Annotated[str, Field(min_length=2, max_length=60), AfterValidator(_star_at_end)]
TermGroup = Annotated[list[Term], Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fact(_Strict):
    """A hidden fact, revealed only when the candidate asks about it."""

    ask: list[Term] = Field(min_length=2, description="terms in a question that select this fact")
    answer: str = Field(min_length=20, max_length=600)


class Signal(_Strict):
    """One thing a strong answer shows at one stage, and how to recognise it."""

    id: str = Field(pattern=r"^[a-z]+\.[a-z0-9-]+$")
    shows: str = Field(min_length=20, max_length=400)
    why: str = Field(min_length=15, max_length=400)
    examples: list[str] = Field(min_length=2, max_length=3)
    terms: list[TermGroup] = Field(min_length=2, max_length=5)
    need: int = Field(default=2, ge=1, le=5)
    weight: int = Field(ge=1, le=3)
    probe: str = Field(min_length=15, max_length=300)

    @property
    def query(self) -> str:
        """The retrieval query that grounds a probe of this signal."""
        return f"{self.shows} {self.probe}"

    @model_validator(mode="after")
    def _need_fits(self) -> "Signal":
        if self.need > len(self.terms):
            raise ValueError(f"need={self.need} but only {len(self.terms)} term groups")
        if not self.probe.rstrip().endswith("?"):
            raise ValueError("probe must be a single question ending with '?'")
        return self


class Pitfall(_Strict):
    """A claim the interviewer pushes back on (e.g. accuracy on a 1 % class)."""

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    stage: str
    claim: list[TermGroup] = Field(min_length=1, max_length=4, description="every group must match one sentence")
    unless: list[Term] = Field(default_factory=list, description="terms that show the candidate already knows")
    pushback: str = Field(min_length=20, max_length=400)

    @field_validator("stage")
    @classmethod
    def _stage(cls, v: str) -> str:
        if v not in STAGES:
            raise ValueError(f"unknown stage {v!r}; use one of {', '.join(STAGES)}")
        return v


class Curveball(_Strict):
    stage: str
    prompt: str = Field(min_length=15, max_length=300)
    expects: str = Field(min_length=15, max_length=500)

    _stage = field_validator("stage")(Pitfall._stage.__func__)


class Scenario(_Strict):
    id: str
    title: str = Field(min_length=5, max_length=80)
    question: str = Field(min_length=40, max_length=800)
    product_terms: list[Term] = Field(min_length=8)
    facts: dict[str, Fact]
    signals: dict[str, list[Signal]]
    pitfalls: list[Pitfall] = Field(min_length=2)
    reference_outline: dict[str, list[str]]
    curveballs: list[Curveball] = Field(min_length=3)

    @field_validator("id")
    @classmethod
    def _known_id(cls, v: str) -> str:
        if v not in SCENARIO_IDS:
            raise ValueError(f"unknown scenario id {v!r}; valid ids: {', '.join(SCENARIO_IDS)}")
        return v

    @field_validator("facts")
    @classmethod
    def _all_facts(cls, v: dict[str, Fact]) -> dict[str, Fact]:
        missing = [t for t in FACT_TOPICS if t not in v]
        if missing:
            raise ValueError(f"missing fact topics: {', '.join(missing)}")
        return v

    @field_validator("signals", "reference_outline")
    @classmethod
    def _every_stage(cls, v: dict) -> dict:
        unknown = [s for s in v if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage ids {unknown}; use {', '.join(STAGES)}")
        missing = [s for s in STAGES if s not in v]
        if missing:
            raise ValueError(f"missing stages: {', '.join(missing)}")
        return {s: v[s] for s in STAGES}

    @model_validator(mode="after")
    def _signal_rules(self) -> "Scenario":
        seen: set[str] = set()
        for stage, sigs in self.signals.items():
            if len(sigs) < 3:
                raise ValueError(f"signals.{stage}: needs at least 3 signals, has {len(sigs)}")
            for s in sigs:
                if not s.id.startswith(stage + "."):
                    raise ValueError(f"signals.{stage}: id {s.id!r} must start with '{stage}.'")
                if s.id in seen:
                    raise ValueError(f"signals.{stage}: duplicate id {s.id!r}")
                seen.add(s.id)
        if len(seen) < 25:
            raise ValueError(f"signals: needs at least 25 in all, has {len(seen)}")
        return self

    def all_signals(self) -> list[Signal]:
        return [s for stage in STAGES for s in self.signals[stage]]

    def stage_of(self, signal_id: str) -> str:
        return signal_id.split(".", 1)[0]


def _format_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid scenario card"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  field {loc}: {e['msg']}")
    return "\n".join(lines)


# libyaml's safe loader where PyYAML has it: the pure-Python one took 1.2 s over the ten cards,
# 0.2 s here (and 2.8 s over the shipped suites, which evals.suites reads with it too)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_card(path: Path) -> Scenario:
    """Parse and validate one card, or raise MLSDError naming file and field."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)  # noqa: S506 (a safe loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise MLSDError(f"{path}: cannot read scenario card ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise MLSDError(f"{path}:{where} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise MLSDError(f"{path}: a scenario card must be a YAML mapping")
    try:
        card = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise MLSDError(_format_error(path, exc)) from exc
    if path.stem != card.id:
        raise MLSDError(f"{path}: field id is {card.id!r} but the file is named {path.name}; make them match")
    return card


@functools.cache
def load_scenarios(directory: Path = CARDS_DIR) -> dict[str, Scenario]:
    """All cards in ``directory`` keyed by id (cached: cards are read-only)."""
    cards = {}
    for path in sorted(directory.glob("*.yaml")):
        card = load_card(path)
        cards[card.id] = card
    return cards


def get_scenario(scenario_id: str, directory: Path = CARDS_DIR) -> Scenario:
    cards = load_scenarios(directory)
    if scenario_id not in cards:
        raise MLSDError(f"unknown scenario {scenario_id!r}; valid scenarios: {', '.join(sorted(cards))}")
    return cards[scenario_id]


def grounding_queries(scenarios: dict[str, Scenario]) -> list[str]:
    """Every retrieval query the interviewer issues from the cards: each signal's, and each pushback."""
    out = [sig.query for sc in scenarios.values() for sig in sc.all_signals()]
    out += [p.pushback for sc in scenarios.values() for p in sc.pitfalls]
    return list(dict.fromkeys(out))


if __name__ == "__main__":  # python -m knowledge.scenarios FILE... : validate cards
    import sys

    status = 0
    for arg in sys.argv[1:] or [str(p) for p in sorted(CARDS_DIR.glob("*.yaml"))]:
        try:
            c = load_card(Path(arg))
            print(f"ok  {arg}: {len(c.all_signals())} signals")
        except MLSDError as exc:
            status = 1
            print(exc)
    sys.exit(status)
