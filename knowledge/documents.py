"""Reading source files into plain text: Markdown (with front matter), text, PDF and HTML.

Pure apart from reading the file.  Bad input raises :class:`SkipFile` with a
reason a person can act on; the ingest step turns it into a warning.
"""

from __future__ import annotations

import hashlib
import io
import re
from html.parser import HTMLParser
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SUPPORTED = (".md", ".markdown", ".txt", ".pdf", ".html", ".htm")
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


class SkipFile(Exception):
    """This file cannot be ingested; the message says why."""


@dataclass(frozen=True)
class Document:
    source: str
    kind: str  # md | txt | pdf
    text: str
    meta: dict = field(default_factory=dict)
    digest: str = ""


def split_front_matter(text: str) -> tuple[dict, str]:
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    return (meta if isinstance(meta, dict) else {}), text[match.end():]


def _looks_binary(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return control > len(sample) * 0.1


def _pdf_text(data: bytes, path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise SkipFile(f"{path}: not a readable PDF ({exc.__class__.__name__}: {exc})") from exc
    # A page marker lets the chunker cite pages as sections.
    return "\n\n".join(f"# Page {i}\n\n{text.strip()}" for i, text in enumerate(pages, 1) if text.strip())


class _HTMLText(HTMLParser):
    """HTML to Markdown-ish text: headings become '#' lines, scripts and navigation are dropped.

    When the page marks its main content (``<main>``, ``role="main"``, or a
    single ``<article>``), only that is kept: documentation sites repeat their
    menu and table of contents on every page, which would otherwise turn up as
    search results.
    """

    SKIP = {"script", "style", "nav", "header", "footer", "aside", "form", "button", "noscript", "label"}
    BLOCK = {"p", "div", "li", "tr", "br", "section", "article", "dd", "dt", "pre", "table", "blockquote"}
    VOID = {"br", "img", "hr", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.main: list[str] = []
        self._skip = 0
        self._heading: str | None = None
        self._main_depth = 0  # open elements inside the main-content element (0: outside)
        self._main_start = 0  # where in out the current main region began

    def handle_starttag(self, tag, attrs):
        if self._main_depth:
            self._main_depth += tag not in self.VOID
        elif tag == "main" or dict(attrs).get("role") == "main":
            self._main_depth = 1
            self.main.append("")  # filled in when the region closes
            self._main_start = len(self.out)
        if tag in self.SKIP:
            self._skip += 1
        elif tag in ("h1", "h2", "h3", "h4") and not self._skip:
            self._heading = tag
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag == self._heading:
            self._heading = None
            self.out.append("\n\n")
        elif tag in self.BLOCK:
            self.out.append("\n")
        if self._main_depth and tag not in self.VOID:
            self._main_depth -= 1
            if not self._main_depth:
                self.main[-1] = "".join(self.out[self._main_start :])

    def handle_data(self, data):
        if not self._skip:
            self.out.append(data.replace("\n", " ") if self._heading else data)

    def text(self) -> str:
        main = "\n\n".join(m for m in self.main if m.strip())
        joined = (main or "".join(self.out)).replace("\xb6", "")  # Sphinx's pilcrow permalinks
        joined = re.sub(r"(?<=[a-z])-\n\s*(?=[a-z])", "-", joined)  # a compound broken across source lines
        lines = [" ".join(line.split()) for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_text(raw: str) -> str:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    return parser.text()


def read_document(path: Path, source: str | None = None) -> Document:
    """Load one file; raise SkipFile for missing, empty, binary, unreadable or corrupt input."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise SkipFile(f"{path}: unsupported file type {suffix or '(none)'}; use .md, .txt, .pdf or .html")
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SkipFile(f"{path}: no such file") from exc
    except OSError as exc:
        raise SkipFile(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if not data.strip():
        raise SkipFile(f"{path}: empty file")
    digest = hashlib.sha256(data).hexdigest()
    source = source or str(path)
    if suffix == ".pdf":
        if not data.startswith(b"%PDF"):
            raise SkipFile(f"{path}: not a PDF file (no %PDF header)")
        text = _pdf_text(data, path)
        if not text.strip():
            raise SkipFile(f"{path}: the PDF has no extractable text (scanned images need OCR first)")
        return Document(source, "pdf", text, {}, digest)
    if _looks_binary(data):
        raise SkipFile(f"{path}: looks binary, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if suffix in (".html", ".htm"):
        body = html_text(text)
        if not body.strip():
            raise SkipFile(f"{path}: the HTML page has no text")
        return Document(source, "html", body, {}, digest)
    meta, body = split_front_matter(text) if suffix != ".txt" else ({}, text)
    if not body.strip():
        raise SkipFile(f"{path}: no text after the front matter")
    return Document(source, "md" if suffix != ".txt" else "txt", body, meta, digest)
