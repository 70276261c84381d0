"""`python -m bench [--only NAME[,NAME]] [--quick] [--out FILE] [--merge]`: run the benchmarks, print a table, write JSON.

Benchmarks run one after another in this process (the memory benchmark in a
child process of its own), so their figures do not disturb each other.  A
benchmark that cannot run here (no local model, say) prints why and is
recorded as skipped; one that crashes is recorded as an error and makes the
exit status 1.  Missed goals are reported, never turned into a failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench import BENCHMARKS
from bench.common import RESULTS_DIR, Ctx, Figure, Skip, fmt_value, offline_env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks for mlsd-interviewer (see bench/__init__.py).")
    p.add_argument("--only", default="", help=f"comma-separated benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run (figures are not comparable to a full run)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the JSON results (default: %(default)s)")
    p.add_argument("--merge", action="store_true", help="keep the figures of benchmarks not run now from the existing --out file")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.names = [n for n in BENCHMARKS if n in names]  # always in the canonical order
    return args


def render_table(figures: list[dict], earlier: frozenset[str] = frozenset()) -> str:
    """The figures (as in the JSON) as an aligned text table; ``earlier``: benchmarks carried over by --merge."""
    rows = [("benchmark", "figure", "value", "reference (same run)", "ratio", "goal", "status")]
    for f in figures:
        unit = f["unit"]
        ref = f"{fmt_value(f['reference'], unit)}  {f['reference_label']}" if f["reference"] is not None else f"-  {f['reference_label']}"
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
        ok = {True: "ok", False: "MISSED", None: ""}[f["goal_met"]]
        bench = f["bench"] + (" *" if f["bench"] in earlier else "")
        rows.append((bench, f["name"], fmt_value(f["value"], unit), ref, ratio, f["goal"], ok))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 4}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if earlier:
        lines.append("* from an earlier run (--merge)")
    return "\n".join(lines)


def _merge_previous(result: dict, path: Path, ran: list[str]) -> None:
    """Carry over the benchmarks this run did not run from an earlier results file (each keeps its own run's data)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    kept = [n for n in old.get("benchmarks", {}) if n not in ran]
    for name in kept:
        result["benchmarks"][name] = {**old["benchmarks"][name], "from_earlier_run_at": old.get("started_at")}
    result["figures"] += [f for f in old.get("figures", []) if f.get("bench") in kept]
    order = {n: i for i, n in enumerate(BENCHMARKS)}
    result["figures"].sort(key=lambda f: order.get(f["bench"], len(order)))
    result["benchmarks"] = dict(sorted(result["benchmarks"].items(), key=lambda kv: order.get(kv[0], len(order))))


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _status(state: str, t0: float, load0: float | None, **more) -> dict:
    """One benchmark's entry in the JSON: how it ended, how long it took, how busy the machine was."""
    return {"status": state, **more, "seconds": round(time.perf_counter() - t0, 2), "loadavg_1m": [load0, _loadavg()]}


def main(argv: list[str] | None = None) -> int:
    offline_env()
    args = parse_args(argv)
    ctx = Ctx(quick=args.quick)
    figures: list[Figure] = []
    status: dict[str, dict] = {}
    started = time.time()
    load_before = _loadavg()
    print(f"mlsd-interviewer benchmarks{' (quick)' if args.quick else ''}: {', '.join(args.names)}", flush=True)
    try:
        for name in args.names:
            module = importlib.import_module(f"bench.{name}")
            print(f"\n[{name}] {module.TITLE}", flush=True)
            t0, load0 = time.perf_counter(), _loadavg()
            try:
                got = module.run(ctx)
            except Skip as exc:
                print(f"  SKIPPED {name}: {exc}", flush=True)
                status[name] = _status("skipped", t0, load0, reason=str(exc))
                continue
            except Exception as exc:  # keep going: one broken benchmark must not hide the others
                traceback.print_exc()
                print(f"  ERROR in {name}: {exc.__class__.__name__}: {exc}", flush=True)
                status[name] = _status("error", t0, load0, reason=f"{exc.__class__.__name__}: {exc}")
                continue
            for f in got:
                line = f"  {f.name}: {fmt_value(f.value, f.unit)} vs {fmt_value(f.reference, f.unit)} ({f.reference_label})"
                if f.ratio is not None:
                    line += f" = {f.ratio:.2f}x"
                print(line, flush=True)
            figures.extend(got)
            status[name] = st = _status("ok", t0, load0)
            print(f"  ({st['seconds']:.0f} s; load average {load0} -> {st['loadavg_1m'][1]} on {os.cpu_count()} CPUs)", flush=True)
    finally:
        ctx.close()

    result = {
        "started_at": started,
        "seconds": round(time.time() - started, 2),
        "quick": args.quick,
        "benchmarks": status,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m": {"before": load_before, "after": _loadavg()},
        },
        "figures": [f.to_dict() for f in figures],
    }
    if args.merge:
        _merge_previous(result, args.out, args.names)
    earlier = frozenset(n for n, st in result["benchmarks"].items() if "from_earlier_run_at" in st)

    print("\n" + render_table(result["figures"], earlier))
    notes = [f for f in result["figures"] if f["note"]]
    if notes:
        print("\nnotes:")
        for f in notes:
            print(f"  {f['bench']}/{f['name']}: {f['note']}")
    for name, st in result["benchmarks"].items():
        if st["status"] != "ok":
            print(f"{name}: {st['status'].upper()}: {st['reason']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nload average (1 min) before/after: {load_before} / {result['machine']['loadavg_1m']['after']} on {os.cpu_count()} CPUs")
    print(f"results: {args.out}")
    return 1 if any(st["status"] == "error" for st in status.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
