"""Typed records shared by every stage: articles, chunks, citations, hits.

These are the contract between the stages (ingest -> chunk -> embed -> index
-> search -> CLI / HTTP / eval). They are frozen dataclasses: plain values,
cheap to build, safe to share between threads, and trivially turned into JSON
with :func:`to_dict`.

Conventions
- Paragraph numbers are 1-based, as a person would cite them.
- Character offsets index into :attr:`Article.text`, the article's paragraphs
  joined with ``"\\n\\n"``.
- Times are ISO 8601 UTC strings, ``YYYY-MM-DDTHH:MM:SSZ`` (or ``None``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

PARAGRAPH_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Article:
    """One cleaned article, ready to be chunked."""

    id: str  # stable: from the URL when there is one, else the relative path
    title: str
    source: str  # the outlet ("联合早报", "新浪财经"); "" when unknown
    url: str | None
    published: str | None  # ISO 8601 UTC, e.g. "2021-04-10T09:42:12Z"
    tags: tuple[str, ...]
    language: str  # "zh-Hans" | "zh-Hant" | "en" | "mixed" | "und"
    path: str  # the file it was read from, relative to the folder given
    paragraphs: tuple[str, ...]
    editor: str | None = None  # 责任编辑, kept as metadata, never as text
    format: str = ""  # "jekyll" | "hexo" | "markdown" | "html" | "text" | "record"

    @property
    def text(self) -> str:
        return PARAGRAPH_SEPARATOR.join(self.paragraphs)


@dataclass(frozen=True)
class Chunk:
    """A passage: one paragraph, a few merged short ones, or part of a long one."""

    id: str  # stable, derived from the article id and the chunk's content
    article_id: str
    para_start: int  # 1-based, inclusive
    para_end: int  # 1-based, inclusive
    char_start: int  # offset into Article.text
    char_end: int  # exclusive
    text: str  # what a person is shown: the paragraph text itself
    embed_text: str  # what is embedded: may carry the title as context


@dataclass(frozen=True)
class Citation:
    """Everything a person needs to check a passage."""

    article_id: str
    title: str
    source: str
    url: str | None
    published: str | None
    para_start: int
    para_end: int
    path: str

    @property
    def paragraphs(self) -> str:
        """"¶3" or "¶3–4", as shown to people."""
        if self.para_start == self.para_end:
            return f"¶{self.para_start}"
        return f"¶{self.para_start}–{self.para_end}"


@dataclass(frozen=True)
class Span:
    """A highlighted stretch of Hit.text, [start, end)."""

    start: int
    end: int


@dataclass(frozen=True)
class Hit:
    """One ranked passage with its citation."""

    rank: int  # 1-based
    score: float  # the fused score in the mode used (higher is better)
    chunk_id: str
    text: str
    highlights: tuple[Span, ...]  # matched query terms in text
    best_sentence: Span | None  # the sentence that best answers the question
    citation: Citation
    dense_score: float | None = None  # cosine similarity, when dense ran
    lexical_score: float | None = None  # BM25 score, when lexical ran
    relevance: float | None = None  # calibrated 0-1: the estimated chance the passage answers (qa.relevance)

    @property
    def highlighted(self) -> str:
        """The text with highlights marked as **term** (for terminals/Markdown)."""
        out, pos = [], 0
        for span in self.highlights:
            out.append(self.text[pos : span.start])
            out.append("**" + self.text[span.start : span.end] + "**")
            pos = span.end
        out.append(self.text[pos:])
        return "".join(out)


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions on what may be returned. Empty means no restriction."""

    date_from: str | None = None  # ISO date or datetime, inclusive
    date_to: str | None = None  # ISO date or datetime, inclusive (a date means the whole day)
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    max_per_article: int | None = None  # at most N hits from one article


@dataclass(frozen=True)
class SearchResult:
    """The answer to one question."""

    question: str  # as searched
    mode: str  # "dense" | "lexical" | "hybrid"
    hits: tuple[Hit, ...]
    seconds: float
    # does the archive answer it? False: no passage is relevant enough (the hits are only the nearest);
    # None: not known (the model has no calibration). See qa.relevance.
    answerable: bool | None = None


@dataclass(frozen=True)
class Skipped:
    """A file that was not read, and why (one line a person understands)."""

    path: str
    reason: str  # short category: "binary", "encoding", "front matter", "no text", "io"
    detail: str = ""


@dataclass
class ReadReport:
    """What reading a folder did. Accounts for every file seen:
    ``files_seen == unchanged + articles + duplicates + len(skipped)``."""

    files_seen: int = 0
    unchanged: int = 0  # files an index recognised as unchanged since its last run (not read again)
    articles: int = 0
    duplicates: int = 0  # same URL or same text as an article already kept
    duplicate_paths: list[tuple[str, str]] = field(default_factory=list)  # (dropped, kept)
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0

    def skipped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return counts


def to_dict(record: Any) -> Any:
    """A JSON-ready dict of any record above (tuples become lists)."""
    return dataclasses.asdict(record)
