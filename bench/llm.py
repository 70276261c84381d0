"""LLM: the local model (``make_chat_model(load_settings(llm="local"))``): first-token latency and tokens/s.

The prompt is the interviewer's own (``prompts.messages("interviewer", ...)``)
for one scenario, with a candidate message cut from a gold answer the way the
product cuts it (``agents.interviewer._gist``).  Every call below uses a different
candidate message, so only the fixed part (system prompt and few-shot
examples) can be reused from llama.cpp's KV cache.

* cold first token: the first call after loading, through ``stream_text``
  (the product path).  Reference: the raw ``llama_cpp.Llama`` client on a new
  prompt of the same length after ``reset()`` (nothing cached), measured after,
  so the ratio is what being first costs (page faults, allocations, warm-up).
* warm first token: the next turn, same prefix, through ``stream_text``.
  Reference: the raw client's ``create_chat_completion(stream=True)`` on the
  next prompt with the same prefix.
* warm first text shown: two more turns through the product's checker
  (``stream_checked``), which holds back trailing words that could begin a
  leak until it has seen the next: the first words a candidate actually
  sees.  Goal: <= 2 s.
* tokens/s: decoding speed of the warm product call (pieces after the first,
  over the time after the first), against the raw client's warm call.

Skipped, with the reason, when the model is not prepared (`make model`) or
llama-cpp cannot load it.  Run it alone: it takes the machine's cores.
"""

from __future__ import annotations

import time

from bench.common import Ctx, Figure, Goal, Skip

NAME = "llm"
TITLE = "local model: cold / warm first-token latency and tokens/s"
SCENARIO = "video-recommendation"
MAX_TOKENS = 80  # what the interviewer asks for


def _candidates(ctx: Ctx, n: int) -> list[str]:
    from agents.interviewer import _gist  # what the product puts in the prompt

    texts = [a for sid, a in ctx.gold_answers if sid == SCENARIO] + [a for _, a in ctx.gold_answers]
    out = []
    for text in texts:
        flat = " ".join(text.split())
        for start in range(0, max(len(flat) - 600, 1), 700):
            out.append(_gist(flat[start : start + 600]))
            if len(out) == n:
                return out
    raise Skip("not enough gold answer text to build distinct candidate messages")


def _model_file(settings):
    """The GGUF file make_chat_model would load, without assembling anything."""
    from agents.local_model import MODELS

    if settings.local_model_path is not None:
        return settings.local_model_path
    return settings.home / "models" / MODELS[settings.local_model].filename


def _timed(pieces, t0: float, full: bool) -> tuple[float, float, int]:
    """(first-text seconds, seconds after it, pieces) of a stream of text pieces; closes it."""
    first = None
    count = 0
    try:
        for piece in pieces:
            if not piece:
                continue
            count += 1
            if first is None:
                first = time.perf_counter() - t0
                if not full:
                    break
    finally:
        pieces.close()
    if first is None:
        raise RuntimeError("the model produced no text")
    return first, time.perf_counter() - t0 - first, count


def _product_stream(chat, messages, full: bool) -> tuple[float, float, int]:
    """(first-token seconds, decode seconds after it, pieces) through the product's stream_text."""
    from agents.llm import stream_text

    t0 = time.perf_counter()
    return _timed(stream_text(chat, messages, max_tokens=MAX_TOKENS), t0, full)


def _shown_first(chat, messages, candidate: str, secrets: list[str], topic: str) -> float:
    """Seconds until the checker lets the first words of a phrased question through (the user's first text)."""
    from agents.llm import stream_text
    from agents.phrasing import stream_checked

    t0 = time.perf_counter()
    for kind, value in stream_checked(stream_text(chat, messages, max_tokens=MAX_TOKENS), candidate, secrets, topic):
        if kind == "delta" and value.strip():
            return time.perf_counter() - t0
        if kind != "delta":
            break
    return time.perf_counter() - t0  # rejected or empty: the template would show now


def _raw_stream(client, messages, full: bool) -> tuple[float, float, int]:
    """The same through llama_cpp.Llama.create_chat_completion(stream=True) with the product's sampling settings."""
    t0 = time.perf_counter()
    stream = client.create_chat_completion(
        messages=[{"role": r, "content": c} for r, c in messages], stream=True, max_tokens=MAX_TOKENS, temperature=0.3, top_p=0.9
    )

    def texts():
        try:
            for chunk in stream:
                yield chunk["choices"][0]["delta"].get("content")
        finally:
            stream.close()

    return _timed(texts(), t0, full)


def run(ctx: Ctx) -> list[Figure]:
    import os

    import prompts
    from mlsd.errors import MLSDError
    from mlsd.settings import load_settings

    settings = load_settings(llm="local")
    path = _model_file(settings)
    if not path.is_file():
        raise Skip(f"the local model {path} is not prepared: run `make model` (or `mlsd model prepare`) first")
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise Skip(f"llama-cpp-python is not importable ({exc}); run `make setup`") from exc
    from agents.llm import make_chat_model
    from agents.local_model import resolve_model_path

    sc = ctx.scenarios[SCENARIO]
    signal = max(sc.signals["model"], key=lambda s: s.weight)
    topic, secrets = signal.probe, [signal.shows, *signal.examples]  # what the interviewer would pass the checker
    cands = _candidates(ctx, 6)
    msgs = [
        prompts.messages("interviewer", title=sc.title, question=sc.question.strip(), candidate=c, topic=topic) for c in cands
    ]

    t0 = time.perf_counter()
    try:
        chat = make_chat_model(settings)
    except MLSDError as exc:
        raise Skip(f"the local model cannot be loaded: {exc}") from exc
    load_s = time.perf_counter() - t0
    client = chat.client
    ctx.log(f"model loaded in {load_s:.1f} s (n_threads {client.n_threads}, n_threads_batch {client.n_threads_batch}, {os.cpu_count()} CPUs)")

    cold_first, _, _ = _product_stream(chat, msgs[0], full=False)
    prompt_tokens = client.n_tokens  # the prompt, plus at most the one sampled token
    ctx.log(f"cold first token {cold_first:.2f} s for a ~{prompt_tokens}-token prompt")
    warm_first, warm_decode, warm_pieces = _product_stream(chat, msgs[1], full=True)
    ctx.log(f"warm first token {warm_first:.2f} s; {warm_pieces} pieces in {warm_decode:.2f} s after it")

    client.reset()  # nothing cached: the whole prompt is evaluated again
    raw_cold, _, _ = _raw_stream(client, msgs[2], full=False)
    raw_warm, raw_decode, raw_pieces = _raw_stream(client, msgs[3], full=True)
    ctx.log(f"raw: cold {raw_cold:.2f} s, warm {raw_warm:.2f} s, {raw_pieces} pieces in {raw_decode:.2f} s")

    # What the candidate sees: the checker holds back words that could begin a leak until it has seen the next ones.
    shown = [_shown_first(chat, msgs[i], cands[i], secrets, topic) for i in (4, 5)]
    ctx.log(f"warm first text shown through the checker: {', '.join(f'{x:.2f}' for x in shown)} s")

    t0 = time.perf_counter()
    resolve_model_path(settings.local_model_path, settings.local_model, settings.home)
    verify_s = time.perf_counter() - t0

    def rate(pieces: int, seconds: float) -> float | None:
        return (pieces - 1) / seconds if pieces > 1 and seconds > 0 else None

    note = (
        f"{settings.model_label}, prompt ~{prompt_tokens} tokens, max_tokens {MAX_TOKENS}; make_chat_model took {load_s:.1f} s, "
        f"of which the sha256 check of the GGUF alone is ~{verify_s:.1f} s (re-run afterwards, file cached); "
        f"llama.cpp threads: {client.n_threads} for decoding, {client.n_threads_batch} for the prompt, on {os.cpu_count()} CPUs"
    )
    return [
        Figure(NAME, "cold first token", cold_first, "s", raw_cold, "raw llama.cpp, nothing cached", note=note, samples=1,
               extra={"load_s": load_s, "verify_s": verify_s, "prompt_tokens": prompt_tokens}),
        Figure(NAME, "warm first token", warm_first, "s", raw_warm, "raw llama.cpp, same prefix cached", samples=1),
        Figure(NAME, "warm first text shown", sum(shown) / len(shown), "s", warm_first, "the model's first token (above)",
               goal=Goal("<= 2 s", (("value", "<=", 2.0),)), samples=len(shown),
               note="mean of two turns, through the product's checker (stream_checked): " + ", ".join(f"{x:.2f} s" for x in shown)),
        Figure(NAME, "decode speed", rate(warm_pieces, warm_decode), "tokens/s", rate(raw_pieces, raw_decode), "raw llama.cpp stream",
               note=f"{warm_pieces} pieces (product) and {raw_pieces} (raw) in the warm calls", samples=1),
    ]
