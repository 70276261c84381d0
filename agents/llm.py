"""The LLM seam: settings in, a LangChain chat model out; plus constrained JSON and streaming.

The only module that imports llama-cpp or OpenAI integrations.  Everything
else receives a ``BaseChatModel`` (or ``None`` for the template-only mode)
and calls :func:`stream_text` or :func:`structured`.  Failures surface as
:class:`LLMError` with a message that names the fix; callers fall back to
template phrasing and say so.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterator, Sequence
from typing import TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from agents.local_model import resolve_model_path
from mlsd.errors import MLSDError
from mlsd.settings import DEFAULT_OPENAI_MODEL, Settings

T = TypeVar("T", bound=BaseModel)
Messages = Sequence[tuple[str, str]]

_LOCAL: dict[str, BaseChatModel] = {}
_LOCAL_LOCK = threading.Lock()
# llama.cpp contexts are not thread-safe: one generation at a time per process.
GENERATION_LOCK = threading.RLock()


class LLMError(MLSDError):
    """The configured LLM failed; the message says what to do."""


class LLMOutputError(LLMError):
    """The LLM answered, but not in the required shape: a failure, never a score."""


def to_langchain(messages: Messages) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[role](content=content) for role, content in messages]


@atexit.register
def _close_local_models() -> None:
    # Close llama.cpp while the interpreter is intact; its __del__ at shutdown
    # otherwise runs after the bindings are gone and prints a traceback.
    for model in _LOCAL.values():
        try:
            model.client.close()
        except Exception:  # best effort at exit
            pass
    _LOCAL.clear()


def local_model_loaded() -> bool:
    return bool(_LOCAL)


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """The chat model the settings ask for; ``None`` means template phrasing only.

    The local model is built once per process and reused, so llama.cpp keeps the
    KV cache of an unchanged prompt prefix between turns.
    """
    if settings.llm == "none":
        return None
    if settings.llm == "openai":
        return _openai(settings)
    return _local(settings)


def _openai(settings: Settings) -> BaseChatModel:
    if settings.openai_api_key is None and settings.openai_base_url is None:
        raise LLMError(
            "MLSD_LLM=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server "
            "such as Ollama, vLLM or llama.cpp's server); or set MLSD_LLM=local to use the built-in model"
        )
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.model or DEFAULT_OPENAI_MODEL,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed",
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_retries,
        temperature=0.3,
        max_tokens=400,
    )


def _local(settings: Settings) -> BaseChatModel:
    path = resolve_model_path(settings.local_model_path, settings.local_model, settings.home)
    key = str(path)
    with _LOCAL_LOCK:
        if key not in _LOCAL:
            try:
                from langchain_community.chat_models import ChatLlamaCpp
            except ImportError as exc:
                raise LLMError("llama-cpp-python is not installed: run `make run` to install it") from exc
            try:
                _LOCAL[key] = ChatLlamaCpp(
                    model_path=key,
                    n_ctx=4096,
                    n_batch=256,
                    # None would leave llama.cpp at 1 thread on a 2-core machine (measured):
                    # use every core unless MLSD_THREADS says otherwise.
                    n_threads=settings.threads or os.cpu_count() or 1,
                    max_tokens=200,
                    temperature=0.3,
                    top_p=0.9,
                    verbose=False,
                    streaming=True,
                )
            except Exception as exc:  # llama.cpp reports load failures as ValueError / RuntimeError
                raise LLMError(f"The local model {path} could not be loaded ({exc}); run `mlsd doctor`") from exc
        return _LOCAL[key]


def is_local(model: BaseChatModel) -> bool:
    """True for the in-process llama.cpp model."""
    return type(model).__name__ == "ChatLlamaCpp"


def stream_text(model: BaseChatModel, messages: Messages, max_tokens: int = 200) -> Iterator[str]:
    """Stream the reply's text; any failure becomes an LLMError."""
    lc_messages = to_langchain(messages)
    try:
        with GENERATION_LOCK:
            stream = model.stream(lc_messages, max_tokens=max_tokens) if is_local(model) else model.stream(lc_messages)
            for chunk in stream:
                piece = chunk.content if isinstance(chunk.content, str) else ""
                if piece:
                    yield piece
    except LLMError:
        raise
    except Exception as exc:
        raise LLMError(f"The LLM call failed ({exc.__class__.__name__}: {str(exc)[:200]}); using template phrasing") from exc


def structured(model: BaseChatModel, messages: Messages, schema: type[T], max_tokens: int = 300) -> T:
    """A reply constrained to ``schema`` (JSON schema), parsed and validated.

    llama.cpp gets a grammar from the schema; OpenAI gets ``response_format``
    json_schema; any other chat model (test fakes) is parsed as it answers.
    Unparseable or invalid output raises LLMOutputError: a failure, not a value.
    """
    json_schema = schema.model_json_schema()
    try:
        if is_local(model):
            with GENERATION_LOCK:
                reply = model.client.create_chat_completion(
                    messages=[{"role": r, "content": c} for r, c in messages],
                    response_format={"type": "json_object", "schema": json_schema},
                    temperature=0.0,
                    max_tokens=max_tokens,
                )
            raw = reply["choices"][0]["message"]["content"] or ""
        else:
            runnable = model
            if type(model).__name__ == "ChatOpenAI":
                runnable = model.bind(
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": schema.__name__, "schema": json_schema},
                    }
                )
            content = runnable.invoke(to_langchain(messages)).content
            raw = content if isinstance(content, str) else json.dumps(content)
    except Exception as exc:
        raise LLMError(f"The LLM call failed ({exc.__class__.__name__}: {str(exc)[:200]})") from exc
    return parse_json_reply(raw, schema)


def parse_json_reply(raw: str, schema: type[T]) -> T:
    """Pure parser: the reply must be one JSON object valid under ``schema``."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        raise LLMOutputError(f"The LLM reply is not valid {schema.__name__} JSON: {str(exc)[:300]}") from exc
