"""The benchmark harness runs and writes its JSON (speed itself is never asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_scorer_writes_json(tmp_path):
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "scorer", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["benchmarks"]["scorer"]["status"] == "ok"
    figures = [f for f in data["figures"] if f["bench"] == "scorer"]
    assert figures, data["figures"]
    for f in figures:
        assert isinstance(f["value"], (int, float)) and f["value"] > 0
        assert isinstance(f["reference"], (int, float)) and f["reference"] > 0
        assert isinstance(f["ratio"], (int, float)) and f["ratio"] > 0
    assert "scorer" in proc.stdout and "ratio" in proc.stdout  # the table was printed
