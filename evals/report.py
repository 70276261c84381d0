"""A self-contained HTML report of an eval run: tables, confusion matrices, worst cases.

Every value is escaped: reports show candidate text and must never run it.
"""

from __future__ import annotations

import html
from pathlib import Path

from knowledge.scenarios import STAGES

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{border:1px solid #dde;padding:.25rem .55rem;text-align:right}
th{background:#f3f5fa}td.l,th.l{text-align:left}.bad{background:#fde8e8}.good{background:#e7f6ec}
.cm td{width:2.2rem;text-align:center}.muted{color:#667}blockquote{margin:.2rem 0 .2rem 1rem;color:#334}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else _e(v)


def _metrics_table(m: dict) -> str:
    rows = "".join(f"<tr><td class=l>{_e(k)}</td><td>{_num(v)}</td></tr>" for k, v in m.items())
    return f"<table><tr><th class=l>metric</th><th>value</th></tr>{rows}</table>"


def _confusion(name: str, cm: list[list[int]]) -> str:
    head = "".join(f"<th>{i}</th>" for i in range(len(cm)))
    body = ""
    for g, row in enumerate(cm):
        cells = "".join(f"<td class={'good' if g == p and v else ('bad' if v and abs(g - p) > 1 else '')}>{v or ''}</td>" for p, v in enumerate(row))
        body += f"<tr><th>{g}</th>{cells}</tr>"
    return f"<div style='display:inline-block;margin-right:1rem'><b>{_e(name)}</b><table class=cm><tr><th class=muted>gold\\pred</th>{head}</tr>{body}</table></div>"


def write_report(results: dict, path: Path) -> None:
    parts = [f"<!doctype html><meta charset=utf-8><title>mlsd eval report</title><style>{CSS}</style>"]
    parts.append(f"<h1>Eval report</h1><p class=muted>judge: {_e(results['judge'])} · total {results['seconds']:.1f} s</p>")
    failed = results.get("thresholds", {}).get("failed", [])
    if failed:
        parts.append("<p class=bad>Failed thresholds: " + "; ".join(_e(f) for f in failed) + "</p>")
    for name, res in results["suites"].items():
        parts.append(f"<h2>{_e(name)} <span class=muted>({_e(res['kind'])}, split {_e(res['split'])}, {res['cases']} cases, {res['seconds']:.1f} s)</span></h2>")
        m = res["metrics"]
        if "graders_qwk" in m:  # the ceiling: how far two graders agree on these answers
            parts.append(
                f"<p>Graded twice: the two graders agree at QWK {m['graders_qwk']:.3f} ({m['graders_exact']:.0%} of stage scores equal); "
                f"this run agrees with the first at {m['qwk']:.3f} and with the second at {m['qwk_second_grader']:.3f}.</p>"
            )
        if "qwk_low" in m:
            parts.append(f"<p>QWK {m['qwk']:.3f}, 95 % bootstrap interval {m['qwk_low']:.3f} to {m['qwk_high']:.3f} (answers resampled: the fewer the answers, the wider).</p>")
        parts.append(_metrics_table(m))
        if res["kind"] == "scoring":
            parts.append("<h3>Confusion matrices</h3>")
            parts.append("".join(_confusion(s, res["confusion"][s]) for s in (*STAGES, "all")))
            if res.get("reliability"):
                parts.append("<h3>Confidence calibration</h3><p class=muted>Stage scores grouped by their confidence: how often the gold grader gave the same score.</p>"
                             "<table><tr><th class=l>confidence</th><th>stages</th><th>mean confidence</th><th>same score as gold</th></tr>")
                for b in res["reliability"]:
                    parts.append(f"<tr><td class=l>{b['lo']:.1f}–{b['hi']:.1f}</td><td>{b['n']}</td><td>{b['probability']:.2f}</td><td>{b['observed']:.2f}</td></tr>")
                parts.append("</table>")
            parts.append("<h3>Worst disagreements</h3><table><tr><th class=l>case</th><th class=l>stage</th><th>gold</th><th>pred</th><th class=l>gold rationale / evidence</th></tr>")
            for w in res["worst"]:
                ev = "".join(f"<blockquote>“{_e(q)}”</blockquote>" for q in w["evidence"])
                parts.append(f"<tr><td class=l>{_e(w['case'])}</td><td class=l>{_e(w['stage'])}</td><td>{w['gold']}</td><td>{w['pred']}</td><td class=l>{_e(w['why'])}{ev}</td></tr>")
            parts.append("</table>")
        elif res["worst"]:
            parts.append("<h3>Misses</h3><table>")
            for w in res["worst"]:
                parts.append(f"<tr><td class=l><code>{_e(w)}</code></td></tr>")
            parts.append("</table>")
    if results.get("comparison"):
        parts.append(
            "<h2>Comparison with the earlier run</h2><p class=muted>For QWK on a scoring suite, a paired bootstrap 95 % interval of the "
            "change over the answers both runs graded: one that holds 0 is within what this gold set can tell apart.</p>"
            "<table><tr><th class=l>suite</th><th class=l>metric</th><th>before</th><th>after</th><th>delta</th><th>paired 95 %</th></tr>"
        )
        for r in results["comparison"]:
            cls = {True: "good", False: "bad"}.get(r.get("better"), "")  # less is better for errors
            interval = f"{r['interval'][0]:+.3f} to {r['interval'][1]:+.3f}" if r.get("interval") else ""
            if r.get("interval") and r["interval"][0] <= 0 <= r["interval"][1]:
                cls = ""  # a move this gold set cannot tell from noise is not coloured as a gain or a loss
            parts.append(
                f"<tr><td class=l>{_e(r['suite'])}</td><td class=l>{_e(r['metric'])}</td><td>{_num(r['before'])}</td><td>{_num(r['after'])}</td>"
                f"<td class={cls}>{r['delta']:+.3f}</td><td>{interval}</td></tr>"
            )
        parts.append("</table>")
    path.write_text("\n".join(parts), encoding="utf-8")
