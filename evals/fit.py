"""Fit the scorer's stage model on the gold tune split: ``python -m evals.fit [--write]``.

The deterministic scorer finds rubric signals in an answer; how those hits add
up to a 0-4 stage score is a small linear model (:class:`evals.scorer.StageModel`)
over :func:`evals.scorer.stage_features` and the other stages' substance
(``elsewhere``), cut into five grades.  This module
fits it: ridge regression on every (answer, stage) of the tune split, then the
four cut points, each moved in turn to the value that maximises quadratic
weighted kappa.  Answers the guards cap (off topic, keyword lists, no product)
stay in the fit although the guard sets their score: their hits with low gold
grades teach the model what a stray hit is worth (when this was decided,
leave-one-scenario-out QWK 0.834 with them, 0.819 without).

Then the confidence model (:class:`evals.scorer.ConfidenceModel`): a logistic
regression of whether the fitted scores agree exactly with gold, on the score,
its depth inside its band and the guards' cap.  Measured by tenfold cross
validation over the tune answers when it replaced a hand-set formula (0.5 plus
the distance to the nearest cut), the Brier score went 0.354 -> 0.219 and the
expected calibration error 0.31 -> 0.02: the old confidence averaged 0.88 where
the scores agreed with gold 62 % of the time, and its most confident tenth agreed
least.

Refit after changing the cards, the gold tune split or the features; a test
holds the shipped file equal to a refit.  The held-aside test split is never
read here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from evals import metrics
from evals.runner import case_segments
from evals.scorer import (
    STAGE_MODEL_PATH,
    ConfidenceModel,
    ScorerConfig,
    Segment,
    StageModel,
    anchored,
    score_segments,
)
from evals.suites import SUITES_DIR, ScoringCase, load_suite
from knowledge.scenarios import STAGES, load_scenarios

FEATURES = ("touched", "substantive", "specific", "sentences", "named", "elsewhere")
ALPHA = 1.0  # ridge penalty; the intercept is not penalised
TUNE = SUITES_DIR / "gold-tune.yaml"


@dataclass(frozen=True)
class Row:
    case: str
    scenario: str
    stage: str
    gold: int
    x: tuple[float, ...]
    cap: int = 4  # the most the guards and the card's pitfalls let the stage score (StageScore.ceiling)
    justified: bool = False  # a justified hit: the scale's anchors hold the stage to at least 2


def rows(cases: Sequence[ScoringCase]) -> list[Row]:
    scenarios = load_scenarios()
    # features and flags need neither fitted part; the confidence may not be fitted yet
    cfg = ScorerConfig(confidence=ConfidenceModel((0.0,) * 5, 0.0, 0.0))
    out = []
    for case in cases:
        segments, text = case_segments(case)
        sc = scenarios[case.scenario]
        res = score_segments(sc, segments or [Segment(text or "")], {k: v for k, v in scenarios.items() if k != sc.id}, cfg)
        for stage in STAGES:
            st = res.stages[stage]
            out.append(Row(case.id, case.scenario, stage, case.gold[stage].score, tuple(st.features[f] for f in FEATURES), st.ceiling, st.features["justified"] > 0))
    return out


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    mx, my = x.mean(axis=0), y.mean()
    xc = x - mx
    coef = np.linalg.solve(xc.T @ xc + ALPHA * np.eye(x.shape[1]), xc.T @ (y - my))
    return coef, float(my - mx @ coef)


Anchors = list[tuple[bool, bool, bool]]  # per row, StageModel.anchor_flags


def _grades(values: np.ndarray, cuts: Sequence[float], anchors: Anchors | None) -> list[int]:
    """As :meth:`StageModel.score`: cut, then held to the scale's anchors (:func:`evals.scorer.anchored`)."""
    raw = [int(g) for g in np.searchsorted(np.asarray(cuts), values, side="right")]
    return raw if anchors is None else [anchored(g, *a) for g, a in zip(raw, anchors)]


def _cuts(values: np.ndarray, gold: np.ndarray, anchors: Anchors | None) -> tuple[float, float, float, float]:
    cuts = [0.5, 1.5, 2.5, 3.5]
    for _ in range(3):
        for i in range(4):
            lo = cuts[i - 1] if i else -np.inf
            hi = cuts[i + 1] if i < 3 else np.inf
            options = [c for c in np.round(np.linspace(cuts[i] - 0.6, cuts[i] + 0.6, 49), 4) if lo <= c <= hi]
            # first best wins: the search is deterministic
            cuts[i] = max(options, key=lambda c: metrics.qwk(_grades(values, cuts[:i] + [c] + cuts[i + 1 :], anchors), [int(g) for g in gold]))
    return tuple(float(c) for c in cuts)


def fit(data: Sequence[Row], features: tuple[str, ...] = FEATURES, offsets: bool = True) -> StageModel:
    """Ridge regression of the gold grades on ``features`` (one per column of ``Row.x``) and, with
    ``offsets``, one indicator per stage (penalised like the features, so a stage's shift is
    what its rows support), then the cuts."""
    x = np.array([r.x for r in data])
    stages = [s for s in STAGES if any(r.stage == s for r in data)] if offsets else []
    design = np.hstack([x, np.array([[float(r.stage == s) for s in stages] for r in data]).reshape(len(data), len(stages))])
    y = np.array([r.gold for r in data], dtype=float)
    coef, intercept = _ridge(design, y)
    anchor = "substantive" if "substantive" in features else None
    n = len(features)
    shifts = tuple((s, round(float(c), 6)) for s, c in zip(stages, coef[n:]))
    # the cuts are placed last, on grades held to the anchors as the scorer will hold them
    model = StageModel(features, tuple(round(float(c), 6) for c in coef[:n]), round(intercept, 6), (0.0,) * 4, anchor, shifts, "justified" if anchor else None)
    anchors = [model.anchor_flags(_feats(model, r)) for r in data] if anchor else None
    return replace(model, cuts=_cuts(design @ coef + intercept, y, anchors))


def _feats(model: StageModel, r: Row) -> dict[str, float]:
    """A row's features as the scorer hands them to the model, with the lift's flag."""
    return dict(zip(model.features, r.x)) | {"justified": float(r.justified)}


def predict(model: StageModel, data: Sequence[Row]) -> list[int]:
    return [score for score, *_ in _scored(model, data)]


def _scored(model: StageModel, data: Sequence[Row]) -> list[tuple[int, float, bool, bool, bool]]:
    """Per row, as the scorer reports it: (score, depth inside its band, capped by a guard, no
    substantive hit, agrees with gold)."""
    out = []
    for r in data:
        feats = _feats(model, r)
        modelled, depth = model.score(feats, r.stage)
        score = min(modelled, r.cap)
        out.append((score, depth if score == modelled else 0.0, r.cap <= 1, not feats.get("substantive", 1.0), score == r.gold))
    return out


def fit_confidence(model: StageModel, data: Sequence[Row], l2: float = 1.0) -> ConfidenceModel:
    """Logistic regression (Newton's method, an L2 penalty of ``l2``) of exact agreement with gold
    on the score (one-hot), its depth, the guards' cap and the want of a substantive hit."""
    scored = _scored(model, data)
    x = np.array([[float(score == k) for k in range(5)] + [depth, float(capped), float(bare)] for score, depth, capped, bare, _ in scored])
    y = np.array([float(agrees) for *_, agrees in scored])
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        step = np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]) + l2 * np.eye(len(w)), x.T @ (p - y) + l2 * w)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    w = [round(float(v), 6) for v in w]
    return ConfidenceModel(tuple(w[:5]), w[5], w[6], w[7])


def confidences(model: StageModel, conf: ConfidenceModel, data: Sequence[Row]) -> tuple[list[float], list[float]]:
    """(confidence, 1.0 where the score agrees with gold) per row, as the scorer would report them."""
    scored = _scored(model, data)
    return [conf.probability(score, depth, capped, bare) for score, depth, capped, bare, _ in scored], [float(a) for *_, a in scored]


def leave_one_scenario_out(data: Sequence[Row]) -> float:
    """QWK of models each fitted without one scenario and scored on it."""
    pred: dict[int, int] = {}
    for held in sorted({r.scenario for r in data}):
        model = fit([r for r in data if r.scenario != held])
        idx = [i for i, r in enumerate(data) if r.scenario == held]
        for i, g in zip(idx, predict(model, [data[i] for i in idx])):
            pred[i] = g
    return metrics.qwk([pred[i] for i in range(len(data))], [r.gold for r in data])


def model_file(model: StageModel, conf: ConfidenceModel, data: Sequence[Row], loso: float) -> str:
    fitted = metrics.qwk(predict(model, data), [r.gold for r in data])
    p, agreed = confidences(model, conf, data)
    head = (
        "# The scorer's stage model, fitted by `python -m evals.fit --write` on the gold tune split.\n"
        "# Do not edit by hand; refit after changing the cards, the tune split or the features.\n"
    )
    body = {
        "fitted_on": {
            "suite": TUNE.name,
            "answers": len({r.case for r in data}),
            "stage_rows": len(data),
            "qwk_in_sample": round(fitted, 3),
            "qwk_leave_one_scenario_out": round(loso, 3),
            "exact_agreement": round(sum(agreed) / len(agreed), 3),
            "confidence_brier": round(metrics.brier(p, agreed), 3),
            "confidence_ece": round(metrics.ece(p, agreed), 3),
        },
        "model": {
            "features": list(model.features),
            "coef": list(model.coef),
            "intercept": model.intercept,
            "cuts": list(model.cuts),
            "anchor": model.anchor,
            "lift": model.lift,
            "offsets": dict(model.offsets),
        },
        "confidence": {"grade": list(conf.grade), "depth": conf.depth, "capped": conf.capped, "bare": conf.bare},
    }
    return head + yaml.safe_dump(body, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.fit", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {STAGE_MODEL_PATH.name}")
    args = ap.parse_args(argv)
    data = rows(load_suite(TUNE).cases)
    model = fit(data)
    text = model_file(model, fit_confidence(model, data), data, leave_one_scenario_out(data))
    print(text)
    if args.write:
        Path(STAGE_MODEL_PATH).write_text(text)
        print(f"wrote {STAGE_MODEL_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
