import math
import random

import pytest

from evals import metrics


def test_qwk_perfect_inverse_and_known_value():
    assert metrics.qwk([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) == 1.0
    assert metrics.qwk([0, 1, 2, 3, 4], [4, 3, 2, 1, 0]) == -1.0



@pytest.mark.parametrize("a,b", [([0, 1, 2, 3], [0, 1, 2, 2]), ([0, 0, 1, 4, 3, 2, 2], [1, 0, 1, 3, 3, 2, 0]), ([2, 2, 2, 1], [2, 3, 1, 1])])
def test_qwk_matches_scikit_learn(a, b):
    from sklearn.metrics import cohen_kappa_score

    assert metrics.qwk(a, b) == pytest.approx(cohen_kappa_score(a, b, weights="quadratic", labels=[0, 1, 2, 3, 4]))


def test_qwk_interval_brackets_the_estimate_and_narrows_with_more_answers():
    rng = random.Random(3)
    def answers(n):  # seven stages per answer; the scorer is off by one now and then
        gold = [rng.randint(0, 4) for _ in range(7 * n)]
        pred = [min(4, max(0, g + rng.choice((-1, 0, 0, 0, 1)))) for g in gold]
        return pred, gold, [i // 7 for i in range(7 * n)]
    small, large = answers(20), answers(300)
    lo_s, hi_s = metrics.qwk_interval(*small)
    lo_l, hi_l = metrics.qwk_interval(*large)
    assert lo_s < metrics.qwk(*small[:2]) < hi_s and lo_l < metrics.qwk(*large[:2]) < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2
    assert metrics.qwk_interval(*small) == (lo_s, hi_s)  # seeded


def test_qwk_interval_resamples_answers_not_stages():
    # every answer alike: each resample is the same set of stages, so the interval is the point
    pred, gold = [0, 1, 2, 3, 4, 2, 1] * 10, [0, 1, 3, 3, 4, 1, 1] * 10
    groups = [i // 7 for i in range(70)]
    q = metrics.qwk(pred, gold)
    assert metrics.qwk_interval(pred, gold, groups) == (pytest.approx(q), pytest.approx(q))
    with pytest.raises(ValueError):
        metrics.qwk_interval(pred, gold, groups[:-1])


def test_paired_interval_tells_a_real_gain_from_noise():
    rng = random.Random(5)
    gold = [rng.randint(0, 4) for _ in range(7 * 150)]
    groups = [i // 7 for i in range(len(gold))]
    noisy = lambda p: [min(4, max(0, g + (rng.choice((-1, 1)) if rng.random() < p else 0))) for g in gold]  # noqa: E731
    better, worse, alike = noisy(0.2), noisy(0.5), noisy(0.2)
    lo, hi = metrics.qwk_difference_interval(better, worse, gold, groups)
    assert 0 < lo < metrics.qwk(better, gold) - metrics.qwk(worse, gold) < hi
    lo, hi = metrics.qwk_difference_interval(better, alike, gold, groups)
    assert lo < 0 < hi
    assert metrics.qwk_difference_interval(better, better, gold, groups) == (0.0, 0.0)

def test_spearman_handles_ties_and_constant_input():
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    assert math.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))


def test_omission_precision_recall():
    p, r = metrics.omission(pred=[0, 0, 2, 0], gold=[0, 1, 0, 0])
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_retrieval_metrics():
    ranks = [1, 3, None, 6]
    assert metrics.hit_at(ranks, 1) == 0.25 and metrics.hit_at(ranks, 5) == 0.5
    assert metrics.mrr(ranks) == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)


def test_confusion_matrix_rows_are_gold():
    cm = metrics.confusion([1, 2], [0, 2])
    assert cm[0][1] == 1 and cm[2][2] == 1


def test_calibration_metrics():
    # a forecaster that says 0.8 and is right four times in five is calibrated
    assert metrics.ece([0.8] * 5, [1, 1, 1, 1, 0]) == pytest.approx(0.0)
    assert metrics.ece([0.9] * 4, [1, 0, 1, 0]) == pytest.approx(0.4)
    # bins are weighted by size: |0.25 - 0| on two of four, |0.75 - 1| on the other two
    assert metrics.ece([0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1]) == pytest.approx(0.25)
    assert metrics.brier([1.0, 0.0], [1, 0]) == 0.0 and metrics.brier([0.5, 0.5], [1, 0]) == 0.25
    assert math.isnan(metrics.ece([], [])) and math.isnan(metrics.brier([], []))


def test_reliability_table_groups_by_probability():
    table = metrics.reliability([0.15, 0.12, 0.85, 0.95], [0, 1, 1, 1])
    assert [(b["lo"], b["n"]) for b in table] == [(0.1, 2), (0.8, 1), (0.9, 1)]
    assert table[0]["probability"] == pytest.approx(0.135) and table[0]["observed"] == 0.5
