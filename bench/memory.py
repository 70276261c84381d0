"""Memory: resident memory of a process that has loaded the embedder, the store and the local model.

Measured in a child process of its own (``python -m bench.memory --child``),
so nothing the other benchmarks loaded is counted.  Resident memory is
VmRSS from /proc/self/status (psutil where there is no /proc), read after
each step: the embedder (weights loaded, one query embedded), the store (the
corpus index opened, the retriever's BM25 index built, one search), the
local model (loaded and one short reply generated, so its memory-mapped
weights are actually resident).  Reference: the same child before loading
anything (the interpreter with the bench package).  Report only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.common import ROOT, Ctx, Figure, offline_env, rss_mib

NAME = "memory"
TITLE = "resident memory with the embedder, the store and the local model loaded (child process)"
MARK = "BENCH-MEMORY-JSON "


def child(store: str | None, quick: bool) -> dict:
    steps: dict[str, dict] = {"start": rss_mib()}
    from mlsd import runtime

    emb = runtime.embedder()
    emb.embed_query("how would you evaluate the ranker offline?")
    steps["embedder"] = rss_mib()

    from knowledge.retrieval import Retriever
    from knowledge.store import KnowledgeStore

    ctx = None
    if store is None:
        ctx = Ctx(quick=quick, verbose=False)
        store = str(ctx.corpus_index())
    retriever = Retriever(KnowledgeStore.open_local(store), emb)
    retriever.search("how would you evaluate the ranker offline?", k=5)
    steps["store"] = rss_mib()

    model_error = None
    try:
        from agents.llm import make_chat_model, stream_text
        from agents.local_model import MODELS
        from mlsd.settings import load_settings

        settings = load_settings(llm="local")
        path = settings.local_model_path or settings.home / "models" / MODELS[settings.local_model].filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not prepared: run `make model`")
        chat = make_chat_model(settings)
        steps["model_loaded"] = rss_mib()
        for _ in stream_text(chat, [("user", "Say hello.")], max_tokens=2):
            pass
        steps["model"] = rss_mib()
    except Exception as exc:  # report what was measured; say why the model is missing
        model_error = f"{exc.__class__.__name__}: {exc}"
    if ctx is not None:
        ctx.close()
    return {"steps": steps, "model_error": model_error, "store": store}


def run(ctx: Ctx) -> list[Figure]:
    cmd = [sys.executable, "-m", "bench.memory", "--child", "--store", str(ctx.corpus_index())]
    if ctx.quick:
        cmd.append("--quick")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"the memory child failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
    got = json.loads(line[len(MARK):])
    steps = got["steps"]
    base = steps["start"].get("VmRSS")

    def fig(step: str, label: str) -> Figure:
        s = steps[step]
        note = f"RssAnon {s.get('RssAnon', 0):.0f} MiB, RssFile {s.get('RssFile', 0):.0f} MiB, peak (VmHWM) {s.get('VmHWM', 0):.0f} MiB"
        return Figure(NAME, label, s.get("VmRSS"), "MiB", base, "bare interpreter (same child)", note=note, samples=1)

    figures = [fig("embedder", "RSS embedder"), fig("store", "RSS + store & BM25")]
    if "model" in steps:
        f = fig("model", "RSS + local model")
        f.note += f"; right after loading, before generating: {steps['model_loaded']['VmRSS']:.0f} MiB; child ran {seconds:.0f} s"
        figures.append(f)
    else:
        figures[-1].note += f"; local model not measured: {got['model_error']}"
        print(f"  local model not measured: {got['model_error']}", flush=True)
    return figures


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory")
    p.add_argument("--child", action="store_true", help="measure this process and print one JSON line")
    p.add_argument("--store", default=None, help="a Chroma folder holding the corpus (default: ingest one)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if not args.child:
        p.error("run `python -m bench --only memory`; --child is the measured process")
    offline_env()
    print(MARK + json.dumps(child(args.store, args.quick)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
