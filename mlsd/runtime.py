"""Build the heavy resources from settings, once per process.

Entry points (the command line, the app, benchmarks) call these; the core
receives the results as arguments and never reads settings itself.
"""

from __future__ import annotations

import functools
from pathlib import Path

from mlsd.errors import MLSDError
from mlsd.settings import Settings


@functools.cache
def embedder():
    from knowledge.embedder import MiniLMEmbeddings

    return MiniLMEmbeddings()


def open_store(settings: Settings, store_dir: Path | None = None):
    from knowledge.store import KnowledgeStore

    if settings.chroma_host and store_dir is None:
        return KnowledgeStore.open_server(settings.chroma_host, settings.chroma_port)
    return KnowledgeStore.open_local(store_dir or settings.store_dir)


def retriever(settings: Settings, store_dir: Path | None = None, require_index: bool = True):
    from knowledge.retrieval import Retriever

    store = open_store(settings, store_dir)
    if require_index and store.count() == 0:
        raise MLSDError(f"The knowledge index at {store.location} is empty: build it with `mlsd ingest`")
    return Retriever(store, embedder())


def chat_model(settings: Settings):
    from agents.llm import make_chat_model

    return make_chat_model(settings)


def database(settings: Settings):
    from agents.db import InterviewDB

    return InterviewDB(settings.db_url)
