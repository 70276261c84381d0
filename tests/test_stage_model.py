"""The scorer's stage model: fitted on the tune split, shipped as data, never stale."""

import numpy as np
import pytest
import yaml

from evals import fit, metrics
from evals.scorer import STAGE_MODEL_PATH, ConfidenceModel, StageModel, shipped_confidence, shipped_stage_model
from evals.suites import load_suite


@pytest.fixture(scope="module")
def tune_rows():
    return fit.rows(load_suite(fit.TUNE).cases)


def test_shipped_model_is_a_refit_of_the_tune_split(tune_rows):
    # cards, the tune split or the features changed without `python -m evals.fit --write`?
    refit, shipped = fit.fit(tune_rows), shipped_stage_model()
    assert refit.features == shipped.features
    assert np.allclose(refit.coef, shipped.coef, atol=1e-5) and abs(refit.intercept - shipped.intercept) < 1e-5
    assert refit.cuts == shipped.cuts
    assert [k for k, _ in refit.offsets] == [k for k, _ in shipped.offsets]
    assert np.allclose([v for _, v in refit.offsets], [v for _, v in shipped.offsets], atol=1e-5)
    conf, shipped_conf = fit.fit_confidence(refit, tune_rows), shipped_confidence()
    assert np.allclose(conf.grade + (conf.depth, conf.capped), shipped_conf.grade + (shipped_conf.depth, shipped_conf.capped), atol=1e-5)


def test_confidence_is_calibrated_on_the_tune_split(tune_rows):
    # a confidence of 0.6 means the gold grader gave the same score about 60 % of the time
    p, agreed = fit.confidences(shipped_stage_model(), shipped_confidence(), tune_rows)
    assert metrics.ece(p, agreed) < 0.05
    assert abs(sum(p) / len(p) - sum(agreed) / len(agreed)) < 0.02
    assert metrics.brier(p, agreed) < metrics.brier([sum(agreed) / len(agreed)] * len(agreed), agreed)  # beats a constant


def test_fit_confidence_recovers_known_agreement_rates():
    # scores of 1 agree with gold 80 % of the time, scores of 3 only 40 %, whatever the features
    model = StageModel(("a",), (1.0,), 0.0, (0.5, 1.5, 2.5, 3.5), anchor=None)
    rows = []
    for i in range(500):
        for value, grade, rate in ((1.0, 1, 0.8), (3.0, 3, 0.4)):
            rows.append(fit.Row(f"c{i}", "s", "data", grade if i < rate * 500 else grade + 1, (value,)))
    conf = fit.fit_confidence(model, rows)
    assert isinstance(conf, ConfidenceModel)
    assert conf.probability(1, 1.0, False) == pytest.approx(0.8, abs=0.03)
    assert conf.probability(3, 1.0, False) == pytest.approx(0.4, abs=0.03)


def test_fit_confidence_separates_the_anchors_one_from_the_models():
    # the same score of 1, held there by the anchors (nothing substantive) or chosen by the model
    # for a stage with a substantive hit: agreement 90 % and 50 %
    model = StageModel(("a", "substantive"), (1.0, 0.0), 0.0, (0.5, 1.5, 2.5, 3.5))
    rows = []
    for i in range(500):
        for sub, rate in ((0.0, 0.9), (0.3, 0.5)):
            rows.append(fit.Row(f"c{i}", "s", "data", 1 if i < rate * 500 else 2, (1.0, sub)))
    conf = fit.fit_confidence(model, rows)
    assert conf.probability(1, 1.0, False, bare=True) == pytest.approx(0.9, abs=0.03)
    assert conf.probability(1, 1.0, False, bare=False) == pytest.approx(0.5, abs=0.03)
    p, agreed = fit.confidences(model, conf, rows)
    assert metrics.ece(p, agreed) < 0.01

def test_every_feature_adds_to_the_score(tune_rows):
    # more of anything the rubric asks for never lowers a stage: the model is monotone
    assert all(c > 0 for c in shipped_stage_model().coef)
    assert list(shipped_stage_model().cuts) == sorted(shipped_stage_model().cuts)


def test_cut_points_map_values_to_grades():
    m = StageModel(("a",), (1.0,), 0.0, (0.5, 1.5, 2.5, 3.5), anchor=None)
    assert [m.score({"a": v})[0] for v in (0.0, 0.5, 1.0, 2.49, 3.6)] == [0, 1, 1, 2, 4]
    assert m.score({"a": 1.4})[1] == pytest.approx(0.2)  # depth: 0.1 from a cut, of half a band's 0.5


def test_depth_is_how_far_inside_its_band_a_value_lies():
    m = StageModel(("a", "substantive"), (1.0, 0.0), 0.0, (0.5, 1.5, 2.5, 3.5))
    assert m.depth(1.0, 1) == 1.0 and m.depth(1.5, 2) == 0.0 and m.depth(2.25, 2) == pytest.approx(0.5)
    assert m.depth(0.0, 0) == 1.0 and m.depth(0.4, 0) == pytest.approx(0.2)  # open bands: half a grade is the middle
    assert m.depth(3.0, 1) == 0.0  # an anchor moved the grade out of the value's band
    assert m.score({"a": 3.0, "substantive": 0.0}) == (1, 0.0)


def test_the_scale_anchors_bound_the_model():
    m = StageModel(("a", "substantive"), (1.0, 0.0), 0.0, (0.5, 1.5, 2.5, 3.5))
    assert m.score({"a": 3.0, "substantive": 0.0})[0] == 1  # nothing substantive: at most "named only"
    assert m.score({"a": 0.0, "substantive": 0.2})[0] == 1  # something substantive: at least "named", the model decides
    assert m.score({"a": 0.0, "substantive": 0.2, "justified": 0.1})[0] == 2  # a reason given: at least "partial"
    assert m.score({"a": 3.0, "substantive": 0.2})[0] == 3
    assert StageModel(("a", "substantive"), (1.0, 0.0), 0.0, (0.5, 1.5, 2.5, 3.5), lift=None).score(
        {"a": 0.0, "substantive": 0.2, "justified": 0.1})[0] == 1  # a model file without a lift has no such floor


def test_an_absent_stage_is_zero_whatever_its_offset():
    m = StageModel(("a", "substantive"), (1.0, 0.0), 0.8, (0.5, 1.5, 2.5, 3.5), offsets=(("frame", 0.3), ("monitoring", -0.3)))
    assert m.value({"a": 0.2, "substantive": 0.0}, "frame") == pytest.approx(1.3)
    assert m.value({"a": 0.2, "substantive": 0.0}, "monitoring") == pytest.approx(0.7)
    assert m.value({"a": 0.2, "substantive": 0.0}, "data") == pytest.approx(1.0)  # not listed: no shift
    assert m.score({"a": 0.0, "substantive": 0.0}, "frame")[0] == 0  # nothing there: "absent", not lifted to 1
    assert m.score({"a": 0.1, "substantive": 0.0}, "frame")[0] == 1


def test_fit_recovers_per_stage_offsets():
    # the same features earn a grade more on "model" than on "data": the fit finds the shift
    rng = np.random.default_rng(1)
    rows = []
    for i, v in enumerate(rng.uniform(0.1, 1, size=600)):
        stage = ("data", "model")[i % 2]
        rows.append(fit.Row(f"c{i}", "s", stage, int(np.clip(np.round(3 * v + (stage == "model")), 0, 4)), (float(v),)))
    model = fit.fit(rows, features=("a",))
    shift = dict(model.offsets)
    assert shift["model"] - shift["data"] == pytest.approx(1.0, abs=0.15)
    assert metrics.qwk(fit.predict(model, rows), [r.gold for r in rows]) > metrics.qwk(
        fit.predict(fit.fit(rows, ("a",), offsets=False), rows), [r.gold for r in rows])


def test_fit_recovers_a_known_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(400, 2))
    gold = np.clip(np.round(3 * x[:, 0] + 1 * x[:, 1]), 0, 4).astype(int)
    rows = [fit.Row(f"c{i}", "s", "data", int(g), tuple(v)) for i, (v, g) in enumerate(zip(x, gold))]
    model = fit.fit(rows, features=("a", "b"))
    assert model.coef[0] > 2 * model.coef[1] > 0
    assert metrics.qwk(fit.predict(model, rows), [r.gold for r in rows]) > 0.9


def test_model_file_records_where_it_came_from():
    data = yaml.safe_load(STAGE_MODEL_PATH.read_text())
    assert data["fitted_on"]["suite"] == "gold-tune.yaml" and data["fitted_on"]["answers"] >= 30


def test_the_rest_of_the_answer_never_makes_a_stage_present():
    m = StageModel(("a", "substantive", "elsewhere"), (1.0, 0.0, 2.0), 0.0, (0.5, 1.5, 2.5, 3.5))
    assert m.score({"a": 0.0, "substantive": 0.0, "elsewhere": 0.9})[0] == 0  # substance elsewhere, nothing here
    assert m.score({"a": 0.1, "substantive": 0.0, "elsewhere": 0.9})[0] == 1  # named here: at most "named only"
    assert m.score({"a": 0.0, "substantive": 0.2, "elsewhere": 0.9})[0] == 2


def test_elsewhere_is_the_substance_of_the_other_stages(scenarios):
    from evals.scorer import score_text

    sc = scenarios["ad-click-prediction"]
    res = score_text(sc, " ".join(sc.reference_outline["model"] + sc.reference_outline["evaluation"]))
    subs = {s: st.features["substantive"] for s, st in res.stages.items()}
    for stage, st in res.stages.items():
        assert st.features["elsewhere"] == pytest.approx(sum(v for s, v in subs.items() if s != stage) / 6)
    assert res.stages["monitoring"].score == 0 < res.stages["monitoring"].features["elsewhere"]
