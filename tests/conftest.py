"""Shared fixtures: a network guard, scripted fakes at the seams, real stores in temp dirs."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
for _var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MLSD_LLM", "MLSD_HOME", "MLSD_DATABASE_URL", "MLSD_CHROMA_HOST"):
    os.environ.pop(_var, None)

ROOT = Path(__file__).resolve().parents[1]
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlocked(RuntimeError):
    pass


def _allowed(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _allowed(address):
        raise NetworkBlocked(f"test tried to reach {address!r}: only loopback is allowed")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _allowed(address):
        raise NetworkBlocked(f"test tried to reach {address!r}: only loopback is allowed")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def block_network():
    """Fail any test that opens a non-loopback connection."""
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(scope="session")
def scenarios():
    from knowledge.scenarios import load_scenarios

    return load_scenarios()


@pytest.fixture(scope="session")
def real_embedder():
    from mlsd import runtime

    return runtime.embedder()


class HashEmbeddings:
    """Deterministic bag-of-words embeddings you can reason about: shared words, closer vectors."""

    dim = 64

    def _vec(self, text: str) -> list[float]:
        import hashlib
        import math
        import re

        v = [0.0] * self.dim
        for w in re.findall(r"[a-z0-9]+", text.lower()):
            h = int(hashlib.md5(w.encode()).hexdigest(), 16)
            v[h % self.dim] += 1.0
        n = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / n for x in v]

    def embed_documents(self, texts):
        return [self._vec(t) for t in texts]

    def embed_query(self, text):
        return self._vec(text)


@pytest.fixture
def fake_embedder():
    return HashEmbeddings()


def word_count(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, real_embedder):
    """The built-in corpus ingested once with the real embedder into a real Chroma folder."""
    from knowledge.embedder import count_word_pieces
    from knowledge.ingest import ingest
    from knowledge.store import KnowledgeStore

    path = tmp_path_factory.mktemp("index")
    store = KnowledgeStore.open_local(path)
    summary = ingest(None, store, real_embedder, count_word_pieces, warn=lambda m: None)
    assert summary.files > 10
    return path


@pytest.fixture(scope="session")
def retriever(built_index, real_embedder):
    from knowledge.retrieval import Retriever
    from knowledge.store import KnowledgeStore

    return Retriever(KnowledgeStore.open_local(built_index), real_embedder)


class ScriptedChat:
    """Builds a GenericFakeChatModel fed a queue of replies; it fails loudly when the queue runs out."""

    @staticmethod
    def make(replies: list[str]):
        from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
        from langchain_core.messages import AIMessage

        return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


@pytest.fixture
def scripted_chat():
    return ScriptedChat.make


@pytest.fixture
def db(tmp_path):
    from agents.db import InterviewDB

    return InterviewDB(f"sqlite:///{tmp_path / 'test.db'}")
