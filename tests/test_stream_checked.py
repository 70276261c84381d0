"""The streaming checker: words show as early as is safe, and nothing of a leak ever shows."""

from agents.phrasing import stream_checked

SECRET = "Uses a time-based split so that future impressions never leak into training"


def run(pieces, secrets=(SECRET,), candidate="", allowed=""):
    consumed = []

    def source():
        for p in pieces:
            consumed.append(p)
            yield p

    events = []
    for kind, value in stream_checked(source(), candidate, list(secrets), allowed):
        events.append((kind, value, len(consumed)))
    return events


def shown(events):
    return "".join(v for k, v, _ in events if k == "delta")


def test_a_leak_is_rejected_before_any_of_its_words_show():
    pieces = ["Would", " you", " say", " it", " uses", " a", " time", " based", " split", "?"]
    events = run(pieces)
    assert events[-1][0] == "reject"
    assert shown(events).strip() == "Would you say it"  # not one word of "uses a time based"


def test_safe_words_show_at_once():
    pieces = ["How", " would", " you", " check", " calibration", "?"]
    events = run(pieces)
    first = next(e for e in events if e[0] == "delta")
    assert first[1] == "How" and first[2] == 1  # no secret 4-gram starts with a word beginning "how"
    assert events[-1] == ("final", "How would you check calibration?", 6)
    assert shown(events) == "How would you check calibration?"


def test_a_half_written_word_that_could_open_a_leak_is_held():
    events = run(["Would", " you", " say", " it", " us"])  # "us" may become "uses", which opens a leak
    assert shown(events).strip() == "Would you say it"


def test_words_that_could_open_a_leak_wait_until_the_next_word_clears_them():
    pieces = ["Is", " a", " time", " series", " split", " enough", "?"]
    events = run(pieces)
    deltas = [(v, n) for k, v, n in events if k == "delta"]
    # "a time" could begin "a time based split": held until "series" arrives (piece 4 read, then piece 5)
    assert all("time" not in v for v, n in deltas if n <= 4)
    assert events[-1][0] == "final" and shown(events) == "Is a time series split enough?"


def test_without_secrets_nothing_is_held():
    events = run(["Uses", " a", " time", " based", " split", "?"], secrets=())
    assert events[-1][0] == "final"
    assert [v for k, v, n in events if k == "delta"][0] == "Uses"
