import pytest

from knowledge.chunking import chunk_text, infer_stage, sections
from knowledge.documents import SkipFile, read_document


def words(t: str) -> int:
    return len(t.split())


def test_sections_follow_heading_path_and_ignore_code_blocks():
    md = "# A\nintro\n## B\nbody b\n```\n# not a heading\n```\n### C\nbody c\n## D\nbody d\n"
    got = sections(md)
    assert [s for s, _ in got] == ["A", "A > B", "A > B > C", "A > D"]
    assert "# not a heading" in got[1][1]


def test_chunks_respect_the_limit_and_overlap():
    body = " ".join(f"Sentence number {i} talks about calibration and ranking." for i in range(200))
    chunks = chunk_text("# Title\n" + body, words, limit=60, overlap=12)
    assert len(chunks) > 5
    assert all(c.word_pieces <= 60 for c in chunks)
    # consecutive chunks share a trailing sentence (overlap)
    assert any(a.text.split(". ")[-1] in b.text for a, b in zip(chunks, chunks[1:]))


def test_an_enormous_sentence_is_cut_not_truncated():
    text = "# T\n" + "x" * 5000 + " " + "word " * 500
    chunks = chunk_text(text, words, limit=50)
    assert all(c.word_pieces <= 50 for c in chunks)
    assert sum(c.text.count("word") for c in chunks) >= 500


@pytest.mark.real
def test_real_tokenizer_bound_on_the_builtin_corpus():
    from knowledge.embedder import count_word_pieces
    from knowledge.ingest import CORPUS_DIR

    for path in sorted(CORPUS_DIR.glob("*.md"))[:6]:
        doc = read_document(path)
        for c in chunk_text(doc.text, count_word_pieces):
            assert count_word_pieces(c.embed_text) + 2 <= 256


def test_stage_inference_without_front_matter():
    assert infer_stage("We monitor drift and alert on data drift, then retrain when drift persists.") == "monitoring"
    assert infer_stage("A recipe for banana bread.") == "general"


def test_bad_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "empty.md").write_text("   \n")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    (tmp_path / "fake.pdf").write_text("not a pdf at all")
    (tmp_path / "x.docx").write_text("hi")
    for name, reason in [("empty.md", "empty"), ("bin.txt", "binary"), ("bad.pdf", "PDF"), ("fake.pdf", "not a PDF"), ("x.docx", "unsupported"), ("missing.md", "no such file")]:
        with pytest.raises(SkipFile, match=reason):
            read_document(tmp_path / name)


def test_front_matter_is_parsed(tmp_path):
    f = tmp_path / "n.md"
    f.write_text("---\nstage: data\ntopic: Labels\n---\n# Labels\nNatural labels come from behaviour.\n")
    doc = read_document(f)
    assert doc.meta == {"stage": "data", "topic": "Labels"} and doc.text.startswith("# Labels")


def test_html_pages_become_headed_text(tmp_path):
    f = tmp_path / "page.html"
    f.write_text(
        "<html><head><script>var x = 1;</script><style>p{}</style></head><body><nav>Home | Docs</nav>"
        "<h1>Model evaluation<a>\u00b6</a></h1><p>Precision is the share of <b>predicted</b> positives that are right.</p>"
        "<h2>Ranking</h2><ul><li>nDCG discounts by position.</li></ul></body></html>"
    )
    doc = read_document(f)
    assert doc.kind == "html"
    assert "# Model evaluation" in doc.text and "## Ranking" in doc.text
    assert "Precision is the share of predicted positives that are right." in doc.text
    assert "var x" not in doc.text and "Home | Docs" not in doc.text
    assert [s for s, _ in sections(doc.text)] == ["Model evaluation", "Model evaluation > Ranking"]


def test_html_keeps_only_the_marked_main_content(tmp_path):
    f = tmp_path / "guide.html"
    f.write_text(
        "<html><body><label>Toggle Menu</label><div class='toc'><ul><li><a>3.1 Splitting</a></li></ul></div>"
        "<div class='content' role='main'><h1>Splitting</h1><p>Hold out a test set;<br>a meaningful cross-\n"
        "validation score needs shuffled folds.</p><img src='x.png'><div><p>Nested blocks stay.</p></div></div>"
        "<div class='footer-links'>Please cite us</div></body></html>"
    )
    text = read_document(f).text
    assert text.startswith("# Splitting")
    assert "meaningful cross-validation score" in text  # a compound split across source lines is joined
    assert "Nested blocks stay." in text
    assert "Toggle Menu" not in text and "3.1 Splitting" not in text and "Please cite" not in text


def test_html_without_a_main_region_keeps_the_whole_body(tmp_path):
    f = tmp_path / "plain.html"
    f.write_text("<html><body><div>Intro text.</div><p>More text.</p></body></html>")
    assert read_document(f).text == "Intro text.\n\nMore text."
