"""`mlsd doctor`: what the product will use, checked offline, never printing a secret."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Callable

from mlsd.errors import MLSDError
from mlsd.settings import Settings

PACKAGES = ("torch", "sentence-transformers", "chromadb", "llama-cpp-python", "langchain-core", "streamlit", "sqlalchemy", "bm25s", "tiktoken")


def _check(name: str, fn: Callable[[], str]) -> tuple[bool, str, str]:
    try:
        return True, name, fn()
    except MLSDError as exc:
        return False, name, str(exc)
    except Exception as exc:  # doctor reports, it does not crash
        return False, name, f"{exc.__class__.__name__}: {exc}"


def checks(settings: Settings) -> list[tuple[bool, str, str]]:
    from agents.local_model import MODELS, check_gguf, part_paths, verify

    out = []

    def llm() -> str:
        if settings.llm == "openai":
            if not (settings.openai_api_key or settings.openai_base_url):
                raise MLSDError("MLSD_LLM=openai but neither OPENAI_API_KEY nor OPENAI_BASE_URL is set")
            key = "set (hidden)" if settings.openai_api_key else "not set"
            return f"openai, model {settings.model_label}, base URL {settings.openai_base_url or 'api.openai.com'}, key {key}"
        return f"{settings.llm}, model {settings.model_label}"

    out.append(_check("LLM", llm))
    if settings.llm == "local":

        def model() -> str:
            if settings.local_model_path:
                check_gguf(settings.local_model_path)
                return f"{settings.local_model_path} (user-supplied GGUF)"
            spec = MODELS[settings.local_model]
            target = settings.home / "models" / spec.filename
            if target.exists():
                verify(target, spec)
                return f"{target}: sha256 verified"
            part_paths(spec)
            return f"parts installed; run `mlsd model prepare` (or `make run`) to assemble {target}"

        out.append(_check("local model", model))

        def llama() -> str:
            import llama_cpp

            return f"llama-cpp-python {llama_cpp.__version__}"

        out.append(_check("llama.cpp", llama))

    def embedder() -> str:
        from knowledge.embedder import model_path, tokenizer

        tokenizer()
        return f"all-MiniLM-L6-v2 at {model_path()} (offline)"

    out.append(_check("embedder", embedder))

    def store() -> str:
        from mlsd import runtime

        s = runtime.open_store(settings)
        n = s.count()
        if n == 0:
            raise MLSDError(f"store {s.location} is empty: run `mlsd ingest`")
        return f"{s.location}: {n} chunks from {len(s.current())} files"

    out.append(_check("knowledge store", store))

    def database() -> str:
        from mlsd import runtime

        db = runtime.database(settings)
        url = db.engine.url.render_as_string(hide_password=True)
        return f"{url}: {len(db.list())} interviews"

    out.append(_check("database", database))

    def tokens() -> str:
        from agents.tokens import count_tokens

        return f"tiktoken offline: cl100k_base {count_tokens('hello world', 'cl100k_base')} tokens, o200k_base ok ({count_tokens('hello', 'o200k_base')})"

    out.append(_check("tiktoken", tokens))

    def versions() -> str:
        found = []
        for p in PACKAGES:
            try:
                found.append(f"{p} {md.version(p)}")
            except md.PackageNotFoundError:
                found.append(f"{p} missing")
        if any(v.endswith("missing") for v in found):
            raise MLSDError(", ".join(found) + " — run `make run` to install")
        return ", ".join(found)

    out.append(_check("packages", versions))
    return out


def run_doctor(settings: Settings) -> int:
    results = checks(settings)
    for ok, name, detail in results:
        print(f"{'ok ' if ok else 'FAIL'}  {name:16} {detail}")
    bad = [r for r in results if not r[0]]
    print("\nall green" if not bad else f"\n{len(bad)} problem(s): fix them as each line says")
    return 0 if not bad else 1
