"""The `mlsd` command line, in process (fast) and once as a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlsd.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLSD_LLM", "none")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def test_score_json_shape(home, tmp_path, capsys):
    f = tmp_path / "a.md"
    f.write_text("Because the auction multiplies pCTR by the bid, I'd check calibration with normalized cross-entropy.\n")
    assert main(["score", str(f), "--scenario", "ad-click-prediction", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenario"] == "ad-click-prediction" and 0 <= out["overall"] <= 4
    ev = out["stages"]["evaluation"]
    assert set(ev) >= {"score", "evidence", "covered", "missed"} and ev["score"] >= 1


def test_score_table_and_errors(home, tmp_path, capsys):
    f = tmp_path / "a.txt"
    f.write_text("I would monitor drift.")
    assert main(["score", str(f), "--scenario", "news-feed"]) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "agree" in out
    # each stage line carries its confidence: the chance a calibrated grader gives the same score
    line = next(ln for ln in out.splitlines() if ln.startswith("monitoring"))
    assert 0 < int(line.split()[2].rstrip("%")) < 100
    assert main(["score", str(f), "--scenario", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario" in err and "news-feed" in err
    assert main(["score", str(tmp_path / "nope.md"), "--scenario", "news-feed"]) == 2
    assert "no such file" in capsys.readouterr().err
    for flag in ("--jobs", "--samples"):  # a count below 1 is refused by name before anything runs
        with pytest.raises(SystemExit) as exc:
            main(["score", str(f), "--scenario", "news-feed", flag, "0"])
        assert exc.value.code == 2 and f"argument {flag}: give a whole number of at least 1" in capsys.readouterr().err


def test_eval_writes_report_and_gates_on_thresholds(home, tmp_path, capsys):
    report = tmp_path / "run1"
    suite = str(ROOT / "evals/suites/gold-tune.yaml")
    assert main(["eval", suite, "--report", str(report), "--quiet"]) == 0
    res = json.loads((report / "results.json").read_text())
    m = res["suites"]["gold-tune"]["metrics"]
    assert "qwk" in m and 0 < m["confidence_ece"] < 0.05  # the confidence is calibrated where it was fitted
    html = (report / "report.html").read_text()
    assert "Confusion matrices" in html and "Confidence calibration" in html and "<script" not in html
    assert main(["eval", suite, "--quiet", "--fail-under", "gold-tune/qwk=1.01"]) == 1
    assert main(["eval", suite, "--quiet", "--fail-under", "qwk=0.1", "--compare", str(report)]) == 0
    assert "->" in capsys.readouterr().out
    # error metrics gate from above
    assert main(["eval", suite, "--quiet", "--fail-over", "gold-tune/mae=0.01"]) == 1
    assert "mae" in capsys.readouterr().err
    assert main(["eval", suite, "--quiet", "--fail-over", "mae=2", "--fail-over", "robust_stuffed_max=1"]) == 0


def test_a_comparison_knows_which_way_is_better():
    from evals.runner import compare_runs

    old = {"suites": {"s": {"metrics": {"qwk": 0.70, "mae": 0.60, "confidence_ece": 0.05, "hit@5": 0.9, "spearman": 0.8}}}}
    new = {"suites": {"s": {"metrics": {"qwk": 0.75, "mae": 0.50, "confidence_ece": 0.08, "hit@5": 0.9, "spearman": 0.8 - 1e-4}}}}
    better = {r["metric"]: r["better"] for r in compare_runs(old, new)}
    # a move that prints as -0.000 is neither better nor worse
    assert better == {"qwk": True, "mae": True, "confidence_ece": False, "hit@5": None, "spearman": None}


def test_a_comparison_of_scoring_runs_pairs_the_answers():
    from evals.runner import compare_runs

    def run(preds):  # 40 answers, 7 stages each, gold 0-4 in turn; preds: per answer, the 7 scores
        rows = [{"id": f"a{i}", "stages": {f"s{k}": {"pred": p[k], "gold": (i + k) % 5} for k in range(7)}} for i, p in enumerate(preds)]
        return {"suites": {"g": {"kind": "scoring", "metrics": {"qwk": 0.0}, "rows": rows}}}

    exact = [[(i + k) % 5 for k in range(7)] for i in range(40)]
    off = [[min(4, s + 1) if (i + k) % 3 == 0 else s for k, s in enumerate(a)] for i, a in enumerate(exact)]
    row = compare_runs(run(off), run(exact))[0]
    low, high = row["interval"]
    assert 0 < low <= high  # every answer's change is a gain: no resample sees a loss
    old = run(off)
    old["suites"]["g"]["rows"] = old["suites"]["g"]["rows"][:1]  # one answer in common, the rest unpaired
    assert compare_runs(old, run(exact))[0]["interval"][0] >= 0
    del old["suites"]["g"]["rows"]  # an older results.json without rows: no interval, no error
    assert "interval" not in compare_runs(old, run(exact))[0]


def test_interviews_list_and_scenarios(home, capsys):
    assert main(["interviews"]) == 0
    assert "no saved interviews" in capsys.readouterr().out
    assert main(["scenarios"]) == 0
    assert "people-you-may-know" in capsys.readouterr().out


def test_search_without_index_names_the_fix(home, capsys):
    assert main(["search", "ndcg"]) == 2
    assert "mlsd ingest" in capsys.readouterr().err


def test_bad_setting_is_a_clear_error(home, monkeypatch, capsys):
    monkeypatch.setenv("MLSD_LLM", "gpt9")
    assert main(["ask", "what is ndcg"]) == 2
    assert "MLSD_LLM" in capsys.readouterr().err


@pytest.mark.real
def test_ingest_search_ask_as_real_subprocesses(tmp_path):
    env = {"MLSD_HOME": str(tmp_path / "h"), "MLSD_LLM": "none", "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    mlsd = [sys.executable, "-m", "mlsd.cli"]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.md").write_text("# Bandits\nThompson sampling balances exploration and exploitation for new items.\n")
    r = subprocess.run(mlsd + ["ingest", str(notes), "--quiet"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ingested 1 files" in r.stdout
    q = tmp_path / "q.txt"
    q.write_text("exploration for new items\nthompson\n")
    r = subprocess.run(mlsd + ["search", "--queries", str(q), "--k", "1"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["query"] for x in lines] == ["exploration for new items", "thompson"]
    assert set(lines[0]["results"][0]) == {"text", "source", "section", "stage", "score"}
    r = subprocess.run(mlsd + ["ask", "How does Thompson sampling handle new items?", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = json.loads(r.stdout)
    assert out["grounded"] and out["citations"][0]["source"].endswith("mine.md")
    r = subprocess.run(mlsd + ["ingest", str(tmp_path / "missing")], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 1 and "missing" in r.stderr


def test_asking_the_local_model_to_judge_says_how_it_measured(capsys):
    from mlsd.cli import _judge_note
    from mlsd.settings import load_settings

    _judge_note("llm", load_settings(llm="local"))
    assert "close to chance" in capsys.readouterr().err
    _judge_note("deterministic", load_settings(llm="local"))
    _judge_note("ensemble", load_settings(llm="openai", openai_api_key="sk-test"))
    assert capsys.readouterr().err == ""
