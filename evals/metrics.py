"""Agreement and retrieval metrics, as pure functions over plain lists.

Quadratic weighted kappa (with a bootstrap interval over answers) and Spearman
for scores against gold; mean absolute error; omission precision/recall; the
calibration of a confidence (Brier score, expected calibration error); hit@k and
MRR for retrieval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def qwk(a: Sequence[int], b: Sequence[int], lo: int = 0, hi: int = 4) -> float:
    """Quadratic weighted kappa between two integer raters on [lo, hi]."""
    if len(a) != len(b):
        raise ValueError("raters must rate the same items")
    n = hi - lo + 1
    if not a:
        return float("nan")
    observed = [[0.0] * n for _ in range(n)]
    for x, y in zip(a, b):
        observed[x - lo][y - lo] += 1
    hist_a = [sum(row) for row in observed]
    hist_b = [sum(observed[i][j] for i in range(n)) for j in range(n)]
    total = len(a)
    num = den = 0.0
    for i in range(n):
        for j in range(n):
            w = (i - j) ** 2 / (n - 1) ** 2
            num += w * observed[i][j]
            den += w * hist_a[i] * hist_b[j] / total
    return 1.0 - num / den if den else 1.0


def qwk_interval(
    a: Sequence[int], b: Sequence[int], groups: Sequence[object], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap interval for :func:`qwk` on [0, 4], resampling whole ``groups``
    (one label per item).

    The stages of one answer are not independent (one writer, one answer), so
    answers, not stage scores, are drawn with replacement.  Seeded: the same
    inputs give the same interval.
    """
    if not (len(a) == len(b) == len(groups)):
        raise ValueError("raters and groups must cover the same items")
    if not a:
        return float("nan"), float("nan")
    counts = _draws(groups, resamples, seed)
    return _percentiles(_kappas(counts, _group_confusions(a, b, groups)), level)


def qwk_difference_interval(
    new: Sequence[int], old: Sequence[int], gold: Sequence[int], groups: Sequence[object], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """A paired bootstrap interval for ``qwk(new, gold) - qwk(old, gold)``: two scorers on the
    same items, each resample of ``groups`` scoring both.  An interval that holds 0 means
    this gold set cannot tell the two apart."""
    if not (len(new) == len(old) == len(gold) == len(groups)):
        raise ValueError("scorers, gold and groups must cover the same items")
    if not gold:
        return float("nan"), float("nan")
    counts = _draws(groups, resamples, seed)
    diff = _kappas(counts, _group_confusions(new, gold, groups)) - _kappas(counts, _group_confusions(old, gold, groups))
    return _percentiles(diff, level)


GRADES = 5  # the 0-4 scale


def _draws(groups: Sequence[object], resamples: int, seed: int) -> np.ndarray:
    """(resamples, groups): how many times each group is drawn in each resample."""
    n = len(dict.fromkeys(groups))
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    return counts


def _group_confusions(a: Sequence[int], b: Sequence[int], groups: Sequence[object]) -> np.ndarray:
    """(groups, GRADES * GRADES): each group's confusion matrix, flattened; groups in first-seen order."""
    index = {k: i for i, k in enumerate(dict.fromkeys(groups))}
    out = np.zeros((len(index), GRADES * GRADES))
    for x, y, g in zip(a, b, groups):
        out[index[g], x * GRADES + y] += 1
    return out


def _kappas(counts: np.ndarray, per_group: np.ndarray) -> np.ndarray:
    """:func:`qwk` of every resample at once, from its confusion matrix."""
    observed = (counts @ per_group).reshape(len(counts), GRADES, GRADES)
    w = (np.arange(GRADES)[:, None] - np.arange(GRADES)[None, :]) ** 2 / (GRADES - 1) ** 2
    num = (observed * w).sum(axis=(1, 2))
    den = np.einsum("ri,rj,ij->r", observed.sum(axis=2), observed.sum(axis=1), w) / observed.sum(axis=(1, 2))
    return np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1.0), 1.0)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when undefined."""
    if len(a) != len(b) or len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else float("nan")


def mae(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a) if a else float("nan")


def omission(pred: Sequence[int], gold: Sequence[int]) -> tuple[float, float]:
    """Precision and recall of flagging a stage as missed (score 0) against gold 0s."""
    tp = sum(1 for p, g in zip(pred, gold) if p == 0 and g == 0)
    fp = sum(1 for p, g in zip(pred, gold) if p == 0 and g != 0)
    fn = sum(1 for p, g in zip(pred, gold) if p != 0 and g == 0)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


def brier(prob: Sequence[float], outcome: Sequence[float]) -> float:
    """Mean squared error of probabilities against 0/1 outcomes (0 is perfect; 0.25 is a coin)."""
    return sum((p - o) ** 2 for p, o in zip(prob, outcome)) / len(prob) if prob else float("nan")


def reliability(prob: Sequence[float], outcome: Sequence[float], bins: int = 10) -> list[dict]:
    """Per non-empty equal-width bin of probability: its bounds, size, mean probability and
    the share of outcomes that happened (a reliability diagram as a table)."""
    binned: dict[int, list[tuple[float, float]]] = {}
    for p, o in zip(prob, outcome):
        binned.setdefault(min(int(p * bins), bins - 1), []).append((p, o))
    return [
        {"lo": k / bins, "hi": (k + 1) / bins, "n": len(b), "probability": sum(p for p, _ in b) / len(b), "observed": sum(o for _, o in b) / len(b)}
        for k, b in sorted(binned.items())
    ]


def ece(prob: Sequence[float], outcome: Sequence[float], bins: int = 10) -> float:
    """Expected calibration error: over equal-width bins of probability, the size-weighted gap
    between the mean probability and the share of outcomes that happened."""
    if not prob:
        return float("nan")
    return sum(b["n"] * abs(b["probability"] - b["observed"]) for b in reliability(prob, outcome, bins)) / len(prob)


def confusion(pred: Sequence[int], gold: Sequence[int], n: int = 5) -> list[list[int]]:
    """rows: gold score, columns: predicted score."""
    m = [[0] * n for _ in range(n)]
    for p, g in zip(pred, gold):
        m[g][p] += 1
    return m


def hit_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries whose first relevant result is at rank <= k (1-based)."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else float("nan")


def mrr(ranks: Sequence[int | None]) -> float:
    return sum(1.0 / r for r in ranks if r) / len(ranks) if ranks else float("nan")
