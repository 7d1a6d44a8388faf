"""Property-based tests (hypothesis) of reading and chunking on arbitrary input:
decode, parse, clean and chunk either succeed or raise ReadError (never any
other exception), and what they return keeps its contract: paragraphs are
non-empty single-line text, and chunk offsets point at the chunk's text.

Bounded so the file runs in a few seconds: 150 examples per property. For a
longer search, set QA_FUZZ_EXAMPLES (e.g. ``QA_FUZZ_EXAMPLES=5000 pytest
tests/test_properties.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.chunk import chunk_article, size
from qa.clean import clean_html, normalize_space, strip_trailer, text_paragraphs
from qa.errors import ReadError
from qa.ingest import FileEntry, article_from_bytes
from qa.parse import decode, parse_document
from qa.records import PARAGRAPH_SEPARATOR, Article

# bs4 warns when a body looks like a URL or a file name; reading it as HTML is what we mean
pytestmark = pytest.mark.filterwarnings("ignore::bs4.MarkupResemblesLocatorWarning")

BOUNDED = settings(
    max_examples=int(os.environ.get("QA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,  # no .hypothesis folder in the working tree
)

# Text that looks like the corpus: CJK, punctuation, Latin words, whitespace of every kind.
_CHARS = st.sampled_from(list("中文新闻正文記者编辑责编。，！？、：；“”（）《》<>&#/=\"' \t\n\r\u3000\xa0abcXYZ019.-@©＃"))
_TEXT = st.text(_CHARS, max_size=80) | st.text(max_size=40)

# Fragments of HTML, well-formed or not, with the boilerplate the cleaner looks for.
_FRAGMENTS = st.one_of(
    _TEXT,
    st.sampled_from([
        "<p>", "</p>", "<div>", "</div>", "<ul>", "<li>", "</li>", "</ul>", "<br>", "<i>", "</i>",
        "<a href='x'>", "<a href=”https://x.org/a.pdf”>", "</a>", "<table><tr><td>", "</td><td>", "</tr></table>",
        "<script>var a = '<p>';", "</script>", "<noscript>", "<!--", "-->", "<![CDATA[x]]>", "<span class='dfp-ad'>",
        '<p class="article-editor">', "<div class='entry-content'>", "&lt;p&gt;", "&lt;/a&gt;", "&amp;lt;b&amp;gt;",
        "&#8221;", "&nbsp;", "&", "<", "责任编辑：王五", "文字整理：李洁思；责任编辑：高静 ＃", "（編輯：郭無患）1090909",
        "获取更多RSS：", "https://feedx.net", "© 2020年德国之声版权声明：", "...more", "\u2029", "\x00", "\ufeff",
    ]),
)  # fmt: skip
_HTML = st.lists(_FRAGMENTS, max_size=30).map("".join)
_DOCUMENT = st.one_of(
    _HTML,
    st.tuples(_TEXT, _HTML).map(lambda t: f"---\n{t[0]}\n---\n{t[1]}"),
    st.tuples(st.sampled_from(["title: x", "date: 0001-01-01T00:00:00+14:00", "tags: &a [*a]", "a: [[[", "- x"]),
              _HTML).map(lambda t: f"\n---\n{t[0]}\n---\n{t[1]}"),  # fmt: skip
)
_SUFFIX = st.sampled_from([".md", ".html", ".txt", ".markdown", ".htm"])


def _paragraph_contract(paragraphs) -> None:
    for p in paragraphs:
        assert p and p == p.strip() and "\n" not in p and "\u2029" not in p, repr(p)


@BOUNDED
@given(st.binary(max_size=300) | _DOCUMENT.map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_decode_returns_text_or_read_error(data):
    try:
        text = decode(data, "x.md")
    except ReadError as exc:
        assert exc.reason in ("binary", "encoding")
        return
    assert "\r" not in text and "\x00" not in text


@BOUNDED
@given(_DOCUMENT, _SUFFIX)
def test_parse_returns_a_record_or_read_error(text, suffix):
    try:
        parsed = parse_document(text, suffix, "x" + suffix)
    except ReadError as exc:
        assert exc.reason == "front matter"
        return
    assert isinstance(parsed.title, str) and isinstance(parsed.body, str)
    assert parsed.published is None or (len(parsed.published) == 20 and parsed.published.endswith("Z"))
    assert all(isinstance(tag, str) and tag for tag in parsed.tags)


@BOUNDED
@given(_HTML, st.none() | _TEXT)
def test_clean_html_keeps_its_contract(html, title):
    cleaned = clean_html(html, title)
    _paragraph_contract(cleaned.paragraphs)
    assert cleaned.editor is None or (cleaned.editor and "\n" not in cleaned.editor)
    assert not any("<p" in p or "&lt;p" in p for p in cleaned.paragraphs)


@BOUNDED
@given(_TEXT)
def test_text_cleaning_helpers(text):
    _paragraph_contract(text_paragraphs(text))
    normalized = normalize_space(text)
    kept, _ = strip_trailer(normalized)
    assert normalized.startswith(kept.rstrip("）)")) and len(kept) <= len(normalized)


@BOUNDED
@given(st.lists(st.text(_CHARS, min_size=1, max_size=120).map(normalize_space).filter(bool), min_size=1, max_size=8),
       st.integers(min_value=1, max_value=40), st.integers(min_value=20, max_value=300))  # fmt: skip
def test_chunk_offsets_and_sizes(paragraphs, min_size, max_size):
    article = Article(id="path:x", title="t", source="", url=None, published=None, tags=(), language="und",
                      path="x.md", paragraphs=tuple(paragraphs))  # fmt: skip
    chunks = chunk_article(article, min_size=min_size, max_size=max_size)
    text, end = article.text, 0
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text and chunk.text == chunk.text.strip()
        assert chunk.char_start >= end  # in order, never overlapping
        end = chunk.char_end
        assert 1 <= chunk.para_start <= chunk.para_end <= len(paragraphs)
        assert size(chunk.text) <= max_size or PARAGRAPH_SEPARATOR not in chunk.text
    # only whitespace between pieces is left out
    assert "".join("".join(c.text for c in chunks).split()) == "".join(text.split())


@BOUNDED
@given(st.binary(max_size=200) | _DOCUMENT.map(str.encode), _SUFFIX)
def test_whole_file_reads_or_is_skipped_with_a_reason(data, suffix):
    entry = FileEntry(path=Path("x" + suffix), root=Path("."), rel="x" + suffix, size=len(data), mtime_ns=0)
    try:
        article = article_from_bytes(data, entry)
    except ReadError as exc:
        assert exc.reason in ("binary", "encoding", "front matter", "no text")
        return
    _paragraph_contract(article.paragraphs)
    for chunk in chunk_article(article):
        assert article.text[chunk.char_start : chunk.char_end] == chunk.text
