"""The deterministic scorer: per-stage scores 0-4 with quoted evidence.

One implementation, two callers: the offline grader (``mlsd score``, eval
suites) and the interviewer's live coverage tracker.  It is a pure function of
the scenario card and the candidate's text: no language model, no randomness;
its one fitted part, the stage model, ships as data.

How a stage is scored, in short:
* each rubric signal is *hit* by a sentence (or two adjacent sentences) that
  matches ``need`` of its term groups;
* a hit has a quality: 1 a bare mention (a keyword list, a fragment),
  2 substantive, 3 specific to this product (its vocabulary or numbers),
  4 justified (3 plus reasoning about why or what it costs);
* the stage score comes from a few features of the stage's hits (the
  weighted share of signals touched, hit substantively and hit specifically,
  the number of sentences that carry them, whether the stage is named) and
  one of the rest of the answer (how substantive the other stages are) through
  a linear model with a shift per stage and four cut points, fitted on the
  gold tune split (``evals/stage_model.yaml``, refitted by
  ``python -m evals.fit --write``), and bounded by the scale: nothing there,
  0; no substantive hit, at most 1; a justified one, at least 2.
Guards, each visible in the result's flags: headings and the stages' names used
as labels are ignored (so stage names cannot earn points), instructions
addressed to the grader are dropped, list-like keyword stuffing can at most
name a stage, and an answer written for a different scenario, or tied to no
product at all, is capped at 1 (0 for clarifying and framing, when it is
another scenario's: see :func:`stage_ceiling`).
It does not judge prose quality or correctness beyond the card's signals;
the optional LLM judge (``evals.judge``) does that.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from evals.text import GroupMatcher, Sentence, SentenceIndex, bag, group_regex, matcher, sentences
from knowledge.scenarios import STAGES, Pitfall, Scenario, Signal

INJECTION = re.compile(
    r"\b(grader|grading|scorer|evaluator|examiner|assessor)\b"
    r"|full marks|maximum score|perfect score|score (?:this|me|it) (?:as|a|4|5|10)"
    r"|ignore (?:all |any |the )?(?:previous|prior|above|earlier|your) (?:instructions|rules|rubric)"
    r"|system prompt|you are now|disregard (?:the|your|all)",
    re.I,
)
REASONING = re.compile(
    r"\b(because|since|so that|so we|which means|otherwise|trade ?offs?|instead of|rather than|at the cost of"
    r"|whereas|however|but|the downside|downsides?|the risk|risks?|to avoid|avoids?|versus|vs|compared (?:to|with)"
    r"|cheaper|faster|slower|simpler|in exchange|at the expense|prefer|preferable|outweighs?|costs?|worth)\b"
)
FUNCTION_WORDS = frozenset(
    "a an the to of and or we i it is are be would will should can could for with on in at by from that this "
    "which so if then than as our their its they them because but not when while into per".split()
)
# Words of the ML process itself: a sentence made of nothing else, with no
# reason given, would fit any product.  On gold tune (119 answers) such
# sentences had been worth 2 ("partial with some specifics") where the graders
# gave 1; counting them as named-only took leave-one-scenario-out QWK 0.840 -> 0.841,
# and 0.767 -> 0.781 on the fifth writer's batch held out of the fit (the batch
# whose errors suggested the list: a soft figure).
GENERIC_WORDS = frozenset(
    "monitor monitoring monitored track tracking tracked watch keep eye check checking measure measuring log logging "
    "model models system pipeline data dataset performance metric metrics accuracy quality results result "
    "retrain retraining retrained train training trained update updated updating refresh "
    "drift drifts drifting degrade degrades degrading degradation drop drops dropping decline declines worse "
    "periodically regularly weekly daily monthly time over new regular schedule scheduled needed necessary "
    "make sure ensure good well fine use using used build built evaluate evaluation test testing deploy deployment "
    "serve serving production also just etc s".split()
)
# A pitfall's claim said as a rejection ("accuracy would be misleading here", "I would not
# use a random split", "no protected attributes as features") is the candidate steering
# clear of it, not making it.
REJECTION = re.compile(
    r"\b(?:not|no|never|wrong|avoid\w*|instead of|rather than|cannot|(?:do|does|did|is|are|was|were|should|would|could|wo|ca)n'?t"
    r"|mislead\w*|leak\w*|fails?|meaningless|useless|flawed|trap)\b"
)
NUMBER = re.compile(r"\d")
FIGURE = re.compile(r"(?<![A-Za-z0-9])\d")  # a quantity, not the digits of a name ("bm25", "word2vec", "vgg16")
# Flags that cap every stage at 1, whatever was hit.
CAPPING_FLAGS = frozenset({"off_topic", "keyword_list", "no_product_link"})
# Clarifying is asking or stating an assumption.  Requirement words said in the
# middle of the design (a latency budget while serving) are design, not clarifying;
# nor is "how many" inside a statement ("count how many friends they share").  A note
# that opens with a requirement's label ("Scale: ~1B daily users") states one: on gold
# tune (179 answers) the labels took leave-one-scenario-out QWK 0.826 -> 0.829.
CLARIFY_CUE = re.compile(
    r"\?|\bassum|\bclarif|\brequirement|\bi'?d ask|\bi would ask|\bask (?:about|whether|if|what|how)|\bconfirm"
    r"|^\W*(?:scale|goal|objective|business goal|business objective|success|privacy|constraints?|volume|freshness|traffic)\s*[:=]"
    r"|\bwant to know|(?:^|[.:;(•*-]\s*|\b(?:ask|know|and|or)\s+)how (?:many|much|big|fast|often)"
    r"|\bsuppose|\blet'?s say|\bi'?ll take it|\bscope\b",
    re.I,
)
LIST_SPLIT = re.compile(r",|;|/|\band\b|\bor\b|\s\+\s")  # "a + b", not "100+ languages"
# A stage is *named* when one of its words starts a word of the text ("retrain"
# must not fire inside "pretrained").  Besides the stage's own name, the words
# of a vague pass at it count: the task said ("predict whether they buy") frames
# it, a technique named ("use a neural net") picks a model, a bare metric
# evaluates, "put it in production" or "store them in a database" deploys.
# Graders give such a pass 1 ("named only") where the scorer had 0: frame alone
# was 1 in gold and 0 here on 26 stages of gold tune (219 answers).  These words
# took leave-one-scenario-out QWK 0.825 -> 0.830 and the mean over ten fits each
# without one writer's batch 0.813 -> 0.817.  Drift words for monitoring
# ("keep an eye on", "update") cost 0.004 and are left out.
STAGE_WORDS = {
    stage: re.compile(r"\b(?:" + "|".join(words) + ")")
    for stage, words in {
        "clarify": ("clarif", "requirement", "ask about", "scope", "constraint"),
        "frame": ("framing", "frame", "ml objective", "ml task", "formulat",
                  "predict", "classif", "rank", "recommend", "detect", "retriev"),
        "data": ("data", "feature", "label"),
        "model": ("model", "architecture", "training", r"train\b",
                  "neural", "deep learning", "transformer", "lstm", "xgboost", "gradient boost", "gbdt",
                  "logistic", "embedding", "bert", "resnet", "cnn", "matrix factori", "collaborative filter", "heuristic"),
        "evaluation": ("metric", "evaluat", "offline", "a b test", "online",
                       "accuracy", "click through", "ctr", "measure", "auc", "precision", "recall"),
        "deployment": ("deploy", "serving", "serve", "inference", "latency",
                       "production", "launch", "database", "vector db", "indexing", "gpu", "precomput"),
        "monitoring": ("monitor", "drift", "alert", "retrain"),
    }.items()
}
# Stage model features read from the rest of the answer, not from the stage's own hits: they
# never make a stage present (:func:`anchored`).
CONTEXT_FEATURES = frozenset({"elsewhere"})
# Stages about the product itself, whatever the technique: questions about another
# product clarify nothing here, and another product's task frames nothing.
PRODUCT_STAGES = frozenset({"clarify", "frame"})


@dataclass(frozen=True)
class Segment:
    """A piece of candidate text: a whole answer, or one transcript turn."""

    text: str
    turn: int | None = None


@dataclass(frozen=True)
class StageModel:
    """Stage score from hit features: a linear score cut at four points into 0-4.

    ``offsets`` shift the linear value per stage: graders hold some stages to a
    higher bar than their hits alone suggest (on gold tune, monitoring
    scores lower and model higher for the same share of signals hit).  Features in
    :data:`CONTEXT_FEATURES` describe the rest of the answer and never make a
    stage present.
    """

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    cuts: tuple[float, float, float, float]
    anchor: str | None = "substantive"  # the feature the scale's anchors read (:func:`anchored`); None: no anchors
    offsets: tuple[tuple[str, float], ...] = ()  # (stage, shift) pairs; a stage not listed shifts by 0
    lift: str | None = "justified"  # the feature that, above 0, lifts an anchored stage to at least 2; None: no lift

    def value(self, feats: dict[str, float], stage: str | None = None) -> float:
        shift = next((v for s, v in self.offsets if s == stage), 0.0)
        return self.intercept + shift + sum(c * feats[f] for f, c in zip(self.features, self.coef))

    def score(self, feats: dict[str, float], stage: str | None = None) -> tuple[int, float]:
        """(score held to the scale's anchors, its depth: :meth:`depth`)."""
        v = self.value(feats, stage)
        grade = bisect.bisect_right(self.cuts, v)
        if self.anchor:
            grade = anchored(grade, *self.anchor_flags(feats))
        return grade, self.depth(v, grade)

    def anchor_flags(self, feats: dict[str, float]) -> tuple[bool, bool, bool]:
        """What :func:`anchored` reads from a stage's features: (a substantive hit, anything
        present, a justified hit).  Only the stage's own features make it present."""
        present = any(x > 0 for f, x in feats.items() if f not in CONTEXT_FEATURES)
        return feats[self.anchor] > 0, present, bool(self.lift) and feats.get(self.lift, 0.0) > 0

    def depth(self, value: float, grade: int) -> float:
        """How far inside ``grade``'s band the linear value lies, 0-1.

        0 on a cut point (or outside the band, where an anchor moved the grade),
        1 in the middle of a band; for the open bands of 0 and 4, half a grade
        from their one cut counts as the middle.
        """
        lo = self.cuts[grade - 1] if grade > 0 else None
        hi = self.cuts[grade] if grade < len(self.cuts) else None
        if (lo is not None and value < lo) or (hi is not None and value >= hi):
            return 0.0
        if lo is None or hi is None:
            return min(1.0, 2 * (value - lo if hi is None else hi - value))
        half = (hi - lo) / 2
        return min(value - lo, hi - value) / half if half > 0 else 0.0

    @classmethod
    def from_dict(cls, data: dict) -> "StageModel":
        return cls(
            tuple(data["features"]),
            tuple(float(c) for c in data["coef"]),
            float(data["intercept"]),
            tuple(float(c) for c in data["cuts"]),
            data.get("anchor"),
            tuple((str(k), float(v)) for k, v in (data.get("offsets") or {}).items()),
            data.get("lift"),
        )


def anchored(grade: int, substantive: bool, present: bool = True, justified: bool = False) -> int:
    """The scale's own definitions bound the model: a stage with nothing in the answer (no
    signal touched, the stage not named) is "absent" (0); with no substantive hit a stage is
    at most "named only" (1); with a justified hit (specific to the product, and saying why
    or what it costs) it is at least "partial with some specifics" (2).

    The first keeps the per-stage offsets from lifting an absent stage to 1 (graders give a
    frame they cannot find 1 more often than 0: they read framing into the design, which
    the scorer cannot).  The last once held for any substantive hit, and took
    leave-one-scenario-out QWK 0.812 -> 0.827 (a single well-argued sentence had scored 1).
    Once the model read the rest of the answer (``elsewhere``), that floor cost more than it
    saved: a substantive sentence that graders still call "named only" (a generic "monitor
    CTR and retrain regularly") was the most common disagreement on gold tune (166 stages
    gold 1, scored 2).  Held to justified hits, leave-one-scenario-out 0.839 -> 0.843 and
    the mean of fourteen fits each without one writer's batch 0.834 -> 0.840; with no floor
    at all 0.841 and 0.842, but one justified sentence then scored no more than a bare
    mention.
    """
    if not present:
        return 0
    if not substantive:
        return min(grade, 1)
    return max(grade, 2 if justified else 1)


@dataclass(frozen=True)
class ConfidenceModel:
    """A stage score's confidence: the chance that a calibrated grader gives the same score.

    A logistic model of the score (graders agree on 0 and 1 far more often than
    on 2 and 3), how deep inside its band the stage model's value lies, whether
    a guard capped the answer, and whether the stage had no substantive hit (the
    scale's anchors, not the model, then hold it to 0 or 1: on gold tune such a 1
    agrees with gold 80 % of the time, a 1 the model gave a substantive stage 62 %);
    fitted on the gold tune split with the stage model (:func:`evals.fit.fit_confidence`).
    """

    grade: tuple[float, float, float, float, float]  # log-odds of agreement at each score, at depth 0
    depth: float
    capped: float
    bare: float = 0.0  # added when the stage has no substantive hit

    def probability(self, grade: int, depth: float, capped: bool, bare: bool = False) -> float:
        z = self.grade[grade] + self.depth * depth + self.capped * capped + self.bare * bare
        return 1 / (1 + math.exp(-z))

    @classmethod
    def from_dict(cls, data: dict) -> "ConfidenceModel":
        return cls(tuple(float(g) for g in data["grade"]), float(data["depth"]), float(data["capped"]), float(data.get("bare", 0.0)))


STAGE_MODEL_PATH = Path(__file__).with_name("stage_model.yaml")


@functools.cache
def _shipped() -> dict:
    return yaml.safe_load(STAGE_MODEL_PATH.read_text())


@functools.cache
def shipped_stage_model() -> StageModel:
    return StageModel.from_dict(_shipped()["model"])


@functools.cache
def shipped_confidence() -> ConfidenceModel:
    return ConfidenceModel.from_dict(_shipped()["confidence"])


@dataclass(frozen=True)
class ScorerConfig:
    """Guards' thresholds, set on the gold tune split only; the stage model is fitted on it."""

    min_substantive_words: int = 6
    list_like_fragments: int = 4
    off_topic_ratio: float = 1.8
    off_topic_own_max: float = 0.3
    own_topic_floor: float = 0.1
    pitfall_cap: int = 3  # a stage that makes one of the card's pitfall claims, uncorrected, scores at most this
    model: StageModel = field(default_factory=shipped_stage_model)
    confidence: ConfidenceModel = field(default_factory=shipped_confidence)


@dataclass(frozen=True)
class Evidence:
    quote: str
    turn: int | None
    start: int
    end: int
    signal: str


@dataclass(frozen=True)
class SignalHit:
    signal: str
    quality: int  # 1 mention, 2 substantive, 3 specific, 4 justified
    evidence: Evidence
    listed: bool = False  # found in a run of buzzwords: it can name the stage, nothing more


@dataclass
class StageScore:
    stage: str
    score: int
    confidence: float
    covered: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    coverage: float = 0.0  # weighted share of this stage's signals hit substantively
    features: dict[str, float] = field(default_factory=dict)  # what the stage model read (stage_features)
    pitfalls: list[tuple[Pitfall, Evidence]] = field(default_factory=list)  # claims the card pushes back on
    ceiling: int = 4  # the most the guards and the card's pitfalls let this stage score (stage_ceiling)


@dataclass
class ScoreResult:
    scenario: str
    stages: dict[str, StageScore]
    overall: float
    hits: dict[str, SignalHit]
    flags: list[str]

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "stages": {
                s: {
                    "score": st.score,
                    "confidence": round(st.confidence, 2),
                    "coverage": round(st.coverage, 3),
                    "evidence": [
                        {"quote": e.quote, "turn": e.turn, "span": [e.start, e.end], "signal": e.signal}
                        for e in st.evidence
                    ],
                    "covered": st.covered,
                    "missed": st.missed,
                    "pitfalls": [
                        {"id": p.id, "quote": e.quote, "turn": e.turn, "span": [e.start, e.end], "pushback": p.pushback}
                        for p, e in st.pitfalls
                    ],
                }
                for s, st in self.stages.items()
            },
            "overall": round(self.overall, 2),
            "flags": self.flags,
        }


# --- sentence features --------------------------------------------------------------


def _words(norm: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", norm)


def is_list_like(s: Sentence, cfg: ScorerConfig) -> bool:
    """A run of buzzwords: many short fragments and few function words, and no figure.

    Terse engineering notes look like lists ("baseline: same market, price within
    20%, same room type, sort by rating"; "BM25 + a dense dual encoder, union of
    ~1000") but a quantity is a decision, which buzzwords never carry.  So a
    sentence with a figure whose fragments average two words or more is not a
    list; a run of single terms with figures ("nDCG@10, recall@100, p99 200 ms,
    HNSW") still is.  On gold tune (259 answers) such notes had been only named;
    with the exemption, leave-one-scenario-out QWK 0.827 -> 0.834 and the mean
    over twelve fits each without one writer's batch 0.816 -> 0.823.
    """
    fragments = [f for f in LIST_SPLIT.split(s.norm) if f.strip()]
    words = _words(s.norm)
    if not words:
        return True
    if FIGURE.search(s.norm) and len(words) >= 2 * len(fragments):
        return False  # a note of short phrases with a quantity; buzzwords come a word or two at a time
    short = sum(1 for f in fragments if len(_words(f)) <= 3)
    function_share = sum(w in FUNCTION_WORDS for w in words) / len(words)
    return (len(fragments) >= cfg.list_like_fragments and short >= 0.6 * len(fragments)) or (
        len(words) >= 8 and function_share < 0.12
    )


def is_substantive(s: Sentence, cfg: ScorerConfig) -> bool:
    words = _words(s.norm)
    return len(words) >= cfg.min_substantive_words and any(w in FUNCTION_WORDS for w in words)


def is_injection(s: Sentence) -> bool:
    return bool(INJECTION.search(s.norm))


def product_matcher(scenario: Scenario) -> GroupMatcher:
    return matcher(tuple(scenario.product_terms))


# --- matching ---------------------------------------------------------------------


def match_signal(signal: Signal, sents: list[Sentence], index: SentenceIndex | None = None) -> list[tuple[int, int]]:
    """(first, last) sentence index pairs whose window hits the signal.

    A window is one sentence, or two adjacent sentences of the same turn that
    hit the signal only together: each adds a term group.  A sentence that hits
    alone does not also form a pair with its neighbour, which would lend it the
    neighbour's substance (a bare "retrain the model periodically" after a
    serving sentence).  Measured on gold tune (119 answers), leave-one-scenario-out
    QWK 0.832 -> 0.840.
    ``index``: the sentences' :class:`SentenceIndex`, shared by every signal of one analysis.
    """
    index = index or SentenceIndex(sents)
    groups: dict[int, int] = {}  # sentence -> bit set of the term groups it hits
    for bit, g in enumerate(signal.terms):
        for i in index.hits(matcher(tuple(g))):
            groups[i] = groups.get(i, 0) | 1 << bit
    need = signal.need
    found = []
    for i in sorted(groups):
        here, after = groups[i], groups.get(i + 1, 0)
        if here.bit_count() >= need:
            found.append((i, i))
        elif after and after.bit_count() < need and (here | after).bit_count() >= need and sents[i + 1].turn == sents[i].turn:
            found.append((i, i + 1))
    return found


def _quality(window: list[Sentence], product: GroupMatcher, cfg: ScorerConfig, listed: bool | None = None) -> int:
    """A hit's quality (1-4); ``listed``, when the caller already knows whether the window is list-like."""
    if listed is None:
        listed = any(is_list_like(s, cfg) for s in window)
    if listed or not any(is_substantive(s, cfg) for s in window):
        return 1
    text = " ".join(s.norm for s in window)
    words, joined = bag(text)
    specific = bool(product.match(words, joined) or NUMBER.search(text))
    if not specific:
        # boilerplate that fits any product ("monitor for drift and retrain regularly") only names the stage
        generic = all(w in FUNCTION_WORDS or w in GENERIC_WORDS for w in _words(text))
        return 1 if generic and not REASONING.search(text) else 2
    return 4 if REASONING.search(text) else 3


def _evidence(window: list[Sentence], signal_id: str) -> Evidence:
    first, last = window[0], window[-1]
    quote = " ".join(s.text for s in window)
    if len(quote) > 300:
        quote = quote[:297].rstrip() + "..."
    return Evidence(quote, first.turn, first.start, last.end if last.turn == first.turn else first.end, signal_id)


def candidate_sentences(segments: Sequence[Segment]) -> tuple[list[Sentence], list[str]]:
    """Sentences worth scoring, and flags for what was dropped."""
    out: list[Sentence] = []
    flags: list[str] = []
    for seg in segments:
        for s in sentences(seg.text, seg.turn, offset=len(out)):
            if is_injection(s):
                if "injection_ignored" not in flags:
                    flags.append("injection_ignored")
                continue
            out.append(s)
    return out, flags


def without_grader_notes(text: str) -> str:
    """``text`` without the sentences addressed to the grader (those :func:`candidate_sentences`
    drops), cut out where they stand: the LLM judge reads what the scorer reads, so a note
    asking for full marks reaches neither."""
    notes = [s for s in sentences(text) if is_injection(s)]
    if not notes:
        return text
    out, pos = [], 0
    for s in notes:
        out.append(text[pos : s.start])
        pos = s.end
    kept = "".join(out) + text[pos:]
    # a line that held nothing but notes goes with them
    return "\n".join(line for line, was in zip(kept.split("\n"), text.split("\n")) if line.strip() or not was.strip())


def _affinity(scenarios: dict[str, Scenario], parts: Sequence["Analysis"]) -> dict[str, float]:
    """Share of each scenario's product vocabulary the text of ``parts`` uses (a term counts within one sentence)."""
    out = {}
    for sid, sc in scenarios.items():
        terms = tuple(sc.product_terms)
        out[sid] = len(frozenset().union(*(p.uses(terms) for p in parts))) / len(terms)
    return out


def _topic_flags(scenario: Scenario, others: dict[str, Scenario] | None, parts: Sequence["Analysis"], cfg: ScorerConfig) -> list[str]:
    """``off_topic``: written for another scenario; ``no_product_link``: about no product at all.

    Measured on the gold tune split: every answer that engages with its product
    uses at least 11 % of the card's product vocabulary, and at most 1.1 times
    as much of another card's; keyword lists and near-empty answers use under
    10 % of any card's.  An answer written for another product can still use
    17 % of a card with a generic vocabulary (a moderation design answering the
    news-feed question), but uses twice as much or more of its own card's: so
    the guard is a ratio, 1.8, for answers under 30 % of their card's vocabulary.
    """
    if not any(p.norms for p in parts):
        return []
    affinity = _affinity({**(others or {}), scenario.id: scenario}, parts)
    own = affinity[scenario.id]
    best_other = max((v for k, v in affinity.items() if k != scenario.id), default=0.0)
    if own < cfg.off_topic_own_max and best_other >= cfg.own_topic_floor and best_other >= cfg.off_topic_ratio * max(own, 0.01):
        return ["off_topic"]
    if own < cfg.own_topic_floor:
        return ["no_product_link"]
    return []


def _stage_named(stage: str, sents: list[Sentence]) -> bool:
    return any(STAGE_WORDS[stage].search(s.norm) for s in sents)


def stage_features(hits: list[tuple[Signal, SignalHit]], signals: list[Signal], named: bool) -> dict[str, float]:
    """What the stage model reads from one stage's best hits.

    ``touched``, ``substantive``, ``specific``, ``justified``: weighted shares
    of the stage's signals hit as a mention (outside a buzzword list),
    substantively, specifically to the product, and with a reason (the model
    reads the first three; ``justified`` lifts the scale's floor, :func:`anchored`);
    ``sentences``: distinct places those substantive hits were said; ``named``:
    the stage named, or only listed among buzzwords, and nothing else hit.
    """
    total = sum(s.weight for s in signals) or 1
    share = lambda ok: sum(sig.weight for sig, h in hits if ok(h)) / total  # noqa: E731
    return {
        "touched": share(lambda h: not h.listed),
        "substantive": share(lambda h: h.quality >= 2),
        "specific": share(lambda h: h.quality >= 3),
        "justified": share(lambda h: h.quality >= 4),
        "sentences": float(len({(h.evidence.turn, h.evidence.start) for _, h in hits if h.quality >= 2})),
        "named": float((named or bool(hits)) and all(h.listed for _, h in hits)),
    }


def stage_ceiling(stage: str, flags: Sequence[str], pitfall_said: bool, pitfall_cap: int) -> int:
    """The most a stage may score, after the guards and the card's pitfalls.

    An answer written for another scenario keeps 1 where its technique carries
    over (a metric, a model), but 0 for clarifying and framing: on the gold tune
    split every off-topic answer has 0 there (six answers, twelve stages).
    Leave-one-scenario-out QWK 0.830 -> 0.832.
    """
    if "off_topic" in flags and stage in PRODUCT_STAGES:
        return 0
    if CAPPING_FLAGS & set(flags):
        return 1
    return pitfall_cap if pitfall_said else 4


@dataclass(frozen=True)
class Analysis:
    """What a run of candidate text contributes to a score, before the pieces are combined.

    Analyses of text from different turns combine into exactly the score of
    that text taken together (:func:`combine`): a hit's window never spans two
    turns, a signal's best hit is the first of the highest quality, and the
    flags need only counts, the stages named and the sentences' words.
    """

    best: dict[str, SignalHit]  # per signal, the first hit of the highest quality (outside a list, if any)
    # per clarify signal, the best hit asked or assumed (CLARIFY_CUE) and the first substantive hit:
    # the fall-backs when the best hit turns out to be a requirement named mid-design
    asked: dict[str, SignalHit]
    earliest: dict[str, SignalHit]
    norms: tuple[str, ...]  # normalized sentences, for the topic guard
    list_like: int
    injection: bool
    named: frozenset[str]  # stages whose name the text mentions
    pitfalls: tuple[tuple[Pitfall, Evidence], ...]  # the card's pitfall claims made, in order
    # a card's product terms -> those a sentence uses, filled as the topic guard asks (shared with
    # at_turn copies): a transcript's earlier turns are matched once, not again after every turn
    terms_used: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def _vocab(self) -> tuple[frozenset[str], str]:
        """All the words, and each sentence's joined words kept apart, so no phrase spans two sentences."""
        joined = [bag(n) for n in self.norms]
        return frozenset().union(*(w for w, _ in joined)), " ".join(j for _, j in joined)

    def uses(self, terms: tuple[str, ...]) -> frozenset[str]:
        found = self.terms_used.get(terms)
        if found is None:
            found = self.terms_used[terms] = frozenset(t for t in terms if matcher((t,)).match(*self._vocab))
        return found

    def at_turn(self, turn: int | None) -> "Analysis":
        """The same analysis for the same text said at another turn (only the evidence changes)."""
        def moved(hits: dict[str, SignalHit]) -> dict[str, SignalHit]:
            return {k: replace(h, evidence=replace(h.evidence, turn=turn)) for k, h in hits.items()}

        pitfalls = tuple((p, replace(e, turn=turn)) for p, e in self.pitfalls)
        return replace(self, best=moved(self.best), asked=moved(self.asked), earliest=moved(self.earliest), pitfalls=pitfalls)


def _keep_best(best: dict[str, SignalHit], hit: SignalHit) -> None:
    old = best.get(hit.signal)
    if old is None or (hit.quality, not hit.listed) > (old.quality, not old.listed):
        best[hit.signal] = hit


def analyse(scenario: Scenario, segments: Sequence[Segment], cfg: ScorerConfig = ScorerConfig()) -> Analysis:
    """Match the rubric's signals in the segments taken together (a window may join two sentences of one turn)."""
    sents, flags = candidate_sentences(segments)
    product = product_matcher(scenario)
    best: dict[str, SignalHit] = {}
    asked: dict[str, SignalHit] = {}
    earliest: dict[str, SignalHit] = {}
    clarifying = {s.id for s in scenario.signals["clarify"]}
    list_like = [is_list_like(s, cfg) for s in sents]  # once per sentence, not once per hit
    index = SentenceIndex(sents)
    for signal in scenario.all_signals():
        for first, last in match_signal(signal, sents, index):
            window = sents[first : last + 1]
            listed = any(list_like[first : last + 1])
            if listed and signal.id in clarifying:
                # requirement notes are terse ("Scale: 1B DAU; 2k candidates; 200 ms?"), not buzzwords:
                # with a question, an assumption or a number they count as said
                text = " ".join(s.text for s in window)
                listed = not (CLARIFY_CUE.search(text) or FIGURE.search(text))
            hit = SignalHit(signal.id, _quality(window, product, cfg, listed), _evidence(window, signal.id), listed)
            _keep_best(best, hit)
            if signal.id in clarifying and hit.quality >= 2:
                earliest.setdefault(signal.id, hit)
                if CLARIFY_CUE.search(hit.evidence.quote):
                    _keep_best(asked, hit)
    return Analysis(
        best=best,
        asked=asked,
        earliest=earliest,
        norms=tuple(s.norm for s in sents),
        list_like=sum(list_like),
        injection="injection_ignored" in flags,
        named=frozenset(st for st in STAGES if _stage_named(st, sents)),
        pitfalls=tuple((p, _evidence([s], p.id)) for p, s in pitfall_claims(scenario, sents)),
    )


def combine(
    scenario: Scenario, parts: Sequence[Analysis], others: dict[str, Scenario] | None = None, cfg: ScorerConfig = ScorerConfig()
) -> ScoreResult:
    """Stage scores from analyses of consecutive pieces of text (in order; no two from the same turn)."""
    best: dict[str, SignalHit] = {}
    asked: dict[str, SignalHit] = {}
    earliest: dict[str, SignalHit] = {}
    for signal in scenario.all_signals():
        for part in parts:
            for mine, theirs in ((best, part.best), (asked, part.asked)):
                if signal.id in theirs:
                    _keep_best(mine, theirs[signal.id])
            if signal.id in part.earliest:
                earliest.setdefault(signal.id, part.earliest[signal.id])
    _clarify_in_place(scenario, best, asked, earliest)
    flags = ["injection_ignored"] if any(p.injection for p in parts) else []
    n_sents = sum(len(p.norms) for p in parts)
    list_like = sum(p.list_like for p in parts)
    if n_sents and list_like >= max(2, 0.5 * n_sents):
        flags.append("keyword_list")
    flags.extend(_topic_flags(scenario, others, parts, cfg))
    named = frozenset().union(*(p.named for p in parts))
    capped = bool(CAPPING_FLAGS & set(flags))
    hits_of = {stage: [(s, best[s.id]) for s in scenario.signals[stage] if s.id in best] for stage in STAGES}
    features = {stage: stage_features(hits_of[stage], scenario.signals[stage], stage in named) for stage in STAGES}
    # Graders read a stage in the light of the whole answer: the same two substantive lines on
    # monitoring earn more after a design that is substantive everywhere else.  The mean
    # substantive share of the other stages took gold tune leave-one-scenario-out QWK
    # 0.832 -> 0.839 and the mean over fourteen fits each without one writer's batch
    # 0.824 -> 0.834 (the hardest batch 0.743 -> 0.789).  It only moves a stage within the
    # scale's anchors: an absent stage stays 0, one with nothing substantive at most 1.
    for stage, feats in features.items():
        feats["elsewhere"] = sum(features[o]["substantive"] for o in STAGES if o != stage) / (len(STAGES) - 1)
    stages: dict[str, StageScore] = {}
    for stage in STAGES:
        signals = scenario.signals[stage]
        hits, feats = hits_of[stage], features[stage]
        modelled, depth = cfg.model.score(feats, stage)
        said = [(p, e) for part in parts for p, e in part.pitfalls if p.stage == stage]
        ceiling = stage_ceiling(stage, flags, bool(said), cfg.pitfall_cap)
        score = min(modelled, ceiling)
        confidence = cfg.confidence.probability(score, depth if score == modelled else 0.0, capped, not feats["substantive"])
        ordered = sorted(hits, key=lambda p: (-p[1].quality, -p[0].weight))
        stages[stage] = StageScore(
            stage=stage,
            score=score,
            confidence=confidence,
            covered=[s.id for s, h in ordered if h.quality >= 2],
            missed=[s.id for s in sorted(signals, key=lambda s: -s.weight) if s.id not in best or best[s.id].quality < 2],
            evidence=list({h.evidence.quote: h.evidence for _, h in ordered}.values())[:4],  # one quote once
            coverage=feats["substantive"],
            features=feats,
            pitfalls=said,
            ceiling=ceiling,
        )
    weights = {st: sum(s.weight for s in scenario.signals[st]) for st in STAGES}
    overall = sum(stages[st].score * weights[st] for st in STAGES) / sum(weights.values())
    return ScoreResult(scenario.id, stages, overall, best, flags)


def _clarify_in_place(scenario: Scenario, best: dict[str, SignalHit], asked: dict[str, SignalHit], earliest: dict[str, SignalHit]) -> None:
    """A clarify signal counts only when asked, assumed, or said before the design starts.

    Its best hit is replaced by the better of the signal's best asked hit and
    its first substantive hit when that came before the design; failing both,
    the hit is dropped: a requirement used inside the design is design, not a
    mention of clarifying.  Measured on the gold tune split (39 answers):
    answers that skip clarifying still name the objective or the scale inside
    their design, and scored 2-4 on clarify where the gold is 0.  The rule
    lifted clarify QWK 0.64 -> 0.78 and overall 0.788 -> 0.818; in a first
    trial, questions alone (clarify 0.525) or position alone (0.548) were each
    worse than no rule.  Dropping rather than keeping a mention took clarify
    to 0.82 (overall 0.856 -> 0.862).
    """
    where = lambda h: (h.evidence.turn or 0, h.evidence.start)  # noqa: E731
    design = [where(h) for sid, h in best.items() if h.quality >= 2 and scenario.stage_of(sid) != "clarify"]
    if not design:
        return
    starts = min(design)
    for signal in scenario.signals["clarify"]:
        h = best.get(signal.id)
        if h is None or h.quality < 2 or where(h) < starts or CLARIFY_CUE.search(h.evidence.quote):
            continue
        early = earliest.get(signal.id)
        options = [x for x in (asked.get(signal.id), early if early and where(early) < starts else None) if x]
        if options:
            best[signal.id] = max(options, key=lambda x: x.quality)
        else:
            del best[signal.id]


def score_segments(
    scenario: Scenario,
    segments: Sequence[Segment],
    others: dict[str, Scenario] | None = None,
    cfg: ScorerConfig = ScorerConfig(),
) -> ScoreResult:
    """Score candidate text against one scenario's rubric.

    ``others`` (the other scenario cards) enables the off-topic guard.
    """
    return combine(scenario, [analyse(scenario, segments, cfg)], others, cfg)


class TranscriptScorer:
    """``score_segments`` for one scenario's growing transcript, each turn's text analysed once.

    The live coverage tracker scores the whole transcript after every turn;
    re-matching every earlier turn made an interview quadratic.  Here a turn
    costs one analysis of its own text plus a cheap :func:`combine`, and the
    result equals ``score_segments`` on the same segments (tests hold it to
    that).  Analyses are kept per text for the scorer's lifetime: one
    interview's worth.
    """

    def __init__(self, scenario: Scenario, others: dict[str, Scenario] | None = None, cfg: ScorerConfig = ScorerConfig()) -> None:
        self.scenario = scenario
        self.others = others
        self.cfg = cfg
        self._by_text: dict[str, Analysis] = {}
        self._by_turn: dict[tuple[str, int], Analysis] = {}

    def analysis(self, segment: Segment) -> Analysis:
        base = self._by_text.get(segment.text)
        if base is None:
            base = self._by_text[segment.text] = analyse(self.scenario, [Segment(segment.text)], self.cfg)
        if segment.turn is None:
            return base
        key = (segment.text, segment.turn)
        found = self._by_turn.get(key)
        if found is None:
            found = self._by_turn[key] = base.at_turn(segment.turn)
        return found

    def score(self, segments: Sequence[Segment]) -> ScoreResult:
        turns = [s.turn for s in segments]
        if len(set(turns)) < len(turns):  # two pieces of one turn may share a window: score them together
            return score_segments(self.scenario, segments, self.others, self.cfg)
        return combine(self.scenario, [self.analysis(s) for s in segments], self.others, self.cfg)

    def hits(self, text: str) -> dict[str, SignalHit]:
        """The hits of ``text`` alone, as ``score_segments(scenario, [Segment(text)]).hits``."""
        return combine(self.scenario, [self.analysis(Segment(text))], None, self.cfg).hits


def score_text(scenario: Scenario, text: str, others: dict[str, Scenario] | None = None, cfg: ScorerConfig = ScorerConfig()) -> ScoreResult:
    return score_segments(scenario, [Segment(text)], others, cfg)


def pitfall_claims(scenario: Scenario, sents: Sequence[Sentence]) -> list[tuple[Pitfall, Sentence]]:
    """The sentences that make one of the card's pitfall claims, not corrected in the same breath.

    A claim counts when every group of the pitfall matches one sentence, none of
    its ``unless`` terms does ("accuracy" next to "imbalanced" is the candidate
    who knows), and the sentence does not reject it (:data:`REJECTION`).  The
    scorer caps the pitfall's stage (``ScorerConfig.pitfall_cap``); the
    interviewer pushes back.  On gold tune (179 answers) the cap at 3 took
    leave-one-scenario-out QWK 0.821 -> 0.826: a confident wrong choice (reports
    as labels, clicks as the target) had scored as highly as a right one.
    A question ("are we removing automatically or ranking a review queue?") asks
    and claims nothing.  With that, "no" as a rejection and seven claims made
    more precise on the cards, the tune split's strong answers are no longer
    challenged on what they did not say ("pairwise interactions" in a
    factorization machine is not a ranking loss): LOSO 0.832 -> 0.834.
    """
    found = []
    for s in sents:
        if "?" in s.text:
            continue
        for p in scenario.pitfalls:
            if not all(matcher(tuple(g)).match(s.words, s.joined) for g in p.claim):
                continue
            if (p.unless and matcher(tuple(p.unless)).match(s.words, s.joined)) or _rejects(p, s):
                continue
            found.append((p, s))
    return found


def _rejects(pitfall: Pitfall, s: Sentence) -> bool:
    """A rejection word outside the claim's own terms: "no human in the loop" claims, "no ethnicity as a feature" rejects."""
    rest = s.norm
    for group in pitfall.claim:
        rest = group_regex(tuple(group)).sub(" ", rest)
    return bool(REJECTION.search(rest))


def find_pitfalls(scenario: Scenario, text: str) -> list[tuple[Pitfall, str]]:
    """Claims in ``text`` that a pitfall pushes back on, with the sentence that made them."""
    return [(p, s.text) for p, s in pitfall_claims(scenario, sentences(text))]
