"""Benchmarks for mlsd-interviewer: `python -m bench` (or `make bench`).

Every figure is measured together with a reference figure in the same run
(the raw library call the product wraps, or the same work without the
product's extras), so the ratio says what the product adds on this machine,
whatever the machine.  Results go to ``bench/results/latest.json``.

One module per benchmark; each exposes ``NAME``, ``TITLE`` and
``run(ctx) -> list[Figure]`` (see :mod:`bench.common`).
"""

BENCHMARKS = ("ingest", "search", "turn", "llm", "scorer", "suites", "memory")
