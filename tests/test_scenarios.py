"""Every shipped card validates, and its own example phrasings hit its own signals."""

import shutil

import pytest
import yaml

from evals.scorer import find_pitfalls, match_signal
from evals.text import sentences
from knowledge.scenarios import CARDS_DIR, SCENARIO_IDS, STAGES, load_card
from mlsd.errors import MLSDError


def test_all_ten_cards_ship(scenarios):
    assert sorted(scenarios) == sorted(SCENARIO_IDS)


@pytest.mark.parametrize("sid", SCENARIO_IDS)
def test_card_is_complete(scenarios, sid):
    card = scenarios[sid]
    assert len(card.all_signals()) >= 25
    assert all(len(card.signals[s]) >= 3 for s in STAGES)
    assert all(card.reference_outline[s] for s in STAGES)


@pytest.mark.parametrize("sid", SCENARIO_IDS)
def test_examples_hit_their_signal_and_no_pitfall(scenarios, sid):
    card = scenarios[sid]
    for signal in card.all_signals():
        for example in signal.examples:
            assert match_signal(signal, sentences(example)), f"{signal.id}: example does not match: {example}"
            assert not find_pitfalls(card, example), f"{signal.id}: example trips a pitfall: {example}"


@pytest.mark.parametrize("sid", SCENARIO_IDS)
def test_probes_do_not_cover_their_own_signal(scenarios, sid):
    """A probe that hits its signal's terms would hand the candidate the answer."""
    card = scenarios[sid]
    leaking = [s.id for s in card.all_signals() if match_signal(s, sentences(s.probe))]
    assert len(leaking) <= 3, leaking


def test_broken_card_names_file_and_field(tmp_path):
    src = CARDS_DIR / "news-feed.yaml"
    data = yaml.safe_load(src.read_text())
    data["signals"]["model"][0]["weight"] = 9
    bad = tmp_path / "news-feed.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(MLSDError) as err:
        load_card(bad)
    assert str(bad) in str(err.value) and "signals.model.0.weight" in str(err.value)


def test_a_wildcard_inside_a_term_is_refused(tmp_path):
    data = yaml.safe_load((CARDS_DIR / "news-feed.yaml").read_text())
    data["signals"]["model"][0]["terms"][0].append("break* down")  # the matcher only expands a trailing *
    bad = tmp_path / "news-feed.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(MLSDError) as err:
        load_card(bad)
    assert "signals.model.0.terms.0" in str(err.value) and "'*' works only at the end" in str(err.value)


def test_card_file_name_must_match_id(tmp_path):
    shutil.copy(CARDS_DIR / "news-feed.yaml", tmp_path / "feed.yaml")
    with pytest.raises(MLSDError, match="file is named feed.yaml"):
        load_card(tmp_path / "feed.yaml")


def test_invalid_yaml_reports_line(tmp_path):
    bad = tmp_path / "news-feed.yaml"
    bad.write_text("id: news-feed\ntitle: [unclosed\n")
    with pytest.raises(MLSDError, match="line"):
        load_card(bad)
