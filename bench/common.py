"""Shared pieces of the benchmarks: figures and goals, the run context, timing helpers.

A :class:`Figure` is one measured number with the reference number measured
in the same run; its ratio is ``value / reference`` (so > 1 means "more than
the reference": slower for a latency, faster for a throughput).  The goal is
checked on the value, the ratio or both, and only reported: a missed goal
never fails the run.
"""

from __future__ import annotations

import functools
import operator
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"

QUICK_INDEX_FILES = 8
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def offline_env() -> None:
    """Nothing a benchmark loads may try the network: the product's own guards, plus Chroma's."""
    from knowledge.embedder import offline_env as embedder_offline

    embedder_offline()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Skip(Exception):
    """A benchmark cannot run here (say why, and how to make it run)."""


@dataclass(frozen=True)
class Goal:
    """A target, e.g. ``Goal("<= 1.3x ref", [("ratio", "<=", 1.3)])``; no checks: report only."""

    text: str
    checks: tuple[tuple[str, str, float], ...] = ()

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        if not self.checks:
            return None
        got = {"value": value, "ratio": ratio}
        for what, op, limit in self.checks:
            x = got[what]
            if x is None or x != x or not _OPS[op](x, limit):
                return False
        return True


REPORT_ONLY = Goal("report only")


@dataclass
class Figure:
    bench: str
    name: str
    value: float | None
    unit: str
    reference: float | None
    reference_label: str
    goal: Goal = REPORT_ONLY
    note: str = ""
    samples: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def ok(self) -> bool | None:
        return self.goal.met(self.value, self.ratio)

    def to_dict(self) -> dict:
        return {
            "bench": self.bench,
            "name": self.name,
            "value": _round(self.value),
            "unit": self.unit,
            "reference": _round(self.reference),
            "reference_label": self.reference_label,
            "ratio": _round(self.ratio),
            "goal": self.goal.text,
            "goal_met": self.ok,
            "samples": self.samples,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


def _round(x: float | None) -> float | None:
    if x is None:
        return None
    return float(f"{x:.4g}")


# --- timing -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def rss_mib() -> dict[str, float]:
    """Resident memory of this process in MiB: VmRSS, its anonymous and file parts, and the peak."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024.0  # kB
    except OSError:
        pass
    if "VmRSS" not in out:
        try:
            import psutil

            out["VmRSS"] = psutil.Process().memory_info().rss / 2**20
        except ImportError:
            pass
    return out


# --- the run context --------------------------------------------------------------------------
class Ctx:
    """What benchmarks share within one run: sizes, a temp folder, the embedder, the corpus index."""

    def __init__(self, quick: bool = False, verbose: bool = True) -> None:
        self.quick = quick
        self.verbose = verbose
        self._tmp = tempfile.TemporaryDirectory(prefix="mlsd-bench-")
        self.tmp = Path(self._tmp.name)
        self._corpus_index: Path | None = None
        self._queries_ready = False
        self.embedder_load_s: float | None = None

    def close(self) -> None:
        self._tmp.cleanup()

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"  · {msg}", flush=True)

    def tmpdir(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))
        return path

    # --- heavy shared resources ----------------------------------------------------------------
    @functools.cached_property
    def embedder(self):
        """The process-wide MiniLM embedder, weights loaded and warmed by one encode."""
        from knowledge.embedder import count_word_pieces
        from mlsd import runtime

        t0 = time.perf_counter()
        emb = runtime.embedder()
        emb.embed_documents(["warm up the embedder", "a second text"])
        emb.embed_query("warm up")
        count_word_pieces("warm up the tokenizer")
        self.embedder_load_s = time.perf_counter() - t0
        self.log(f"embedder loaded in {self.embedder_load_s:.1f} s")
        return emb

    @functools.cached_property
    def scenarios(self):
        from knowledge.scenarios import load_scenarios

        return load_scenarios()

    def corpus_files(self) -> list[tuple[Path, str]]:
        from knowledge.ingest import CORPUS_DIR, discover

        files, _, _ = discover([CORPUS_DIR])
        return files

    @functools.cached_property
    def corpus_chunks(self):
        """The built-in corpus as ingest would store it: list of StoredChunk (embedded text = section + body)."""
        from knowledge.documents import read_document
        from knowledge.embedder import count_word_pieces
        from knowledge.ingest import file_digest, to_stored

        out = []
        for path, source in self.corpus_files():
            doc = read_document(path, source)
            out.extend(to_stored(doc, count_word_pieces, file_digest(doc)))
        return out

    def set_corpus_index(self, path: Path) -> None:
        """Offer a store holding the whole built-in corpus (the ingest benchmark's output) for reuse."""
        self._corpus_index = path

    def corpus_index(self) -> Path:
        """A Chroma folder holding the built-in corpus (a few files of it with --quick), ingested once per run."""
        if self._corpus_index is None:
            from knowledge.embedder import count_word_pieces
            from knowledge.ingest import ingest
            from knowledge.store import KnowledgeStore

            path = self.tmpdir("corpus-index")
            # --quick: a few files are enough for a smoke run
            files = [p for p, _ in self.corpus_files()[:QUICK_INDEX_FILES]] if self.quick else None
            t0 = time.perf_counter()
            summary = ingest(files, KnowledgeStore.open_local(path), self.embedder, count_word_pieces, warn=lambda m: None)
            self.log(f"corpus index built: {summary.chunks} chunks in {time.perf_counter() - t0:.1f} s")
            self._corpus_index = path
        if not self._queries_ready:  # as `mlsd ingest` does for the built-in corpus
            from knowledge.ingest import prepare_card_queries
            from knowledge.store import KnowledgeStore

            t0 = time.perf_counter()
            added = prepare_card_queries(KnowledgeStore.open_local(self._corpus_index), self.embedder)
            self.log(f"card grounding queries embedded: {added} in {time.perf_counter() - t0:.1f} s")
            self._queries_ready = True
        return self._corpus_index

    def retriever(self):
        """A fresh Retriever over the corpus index (its BM25 index is built on first use)."""
        from knowledge.retrieval import Retriever
        from knowledge.store import KnowledgeStore

        return Retriever(KnowledgeStore.open_local(self.corpus_index()), self.embedder)

    # --- texts ---------------------------------------------------------------------------------
    def suites_of_kind(self, kind: str) -> list:
        """The shipped suites of one kind; a suite that does not load is left out with a warning
        (benchmarks that only borrow texts from the suites must not fail on an unrelated one)."""
        from evals.suites import load_suite, shipped_suites
        from mlsd.errors import MLSDError

        out = []
        for path in shipped_suites():
            try:
                suite = load_suite(path)
            except MLSDError as exc:
                self.log(f"warning: suite left out: {exc}")
                continue
            if suite.kind == kind:
                out.append(suite)
        return out

    @functools.cached_property
    def gold_answers(self) -> list[tuple[str, str]]:
        """(scenario id, answer text) of every written answer in the shipped scoring suites."""
        out = [(c.scenario, c.answer) for s in self.suites_of_kind("scoring") for c in s.cases if c.answer]
        if not out:
            raise RuntimeError("no written answers found in the shipped scoring suites")
        return out

    @functools.cached_property
    def retrieval_queries(self) -> list[str]:
        out = [c.query for s in self.suites_of_kind("retrieval") for c in s.cases]
        if not out:
            raise RuntimeError("no queries found in the shipped retrieval suites")
        return out


def fmt_value(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if x != x:
        return "nan"
    if abs(x) >= 1000:
        s = f"{x:,.0f}"
    elif abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    elif abs(x) >= 1:
        s = f"{x:.2f}"
    else:
        s = f"{x:.3f}"
    return f"{s} {unit}".rstrip()
