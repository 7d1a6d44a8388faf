"""The one JSON form of an answer, and of an error, wherever one leaves the library.

``qa ask --json``, ``qa chat``, the HTTP API (``/api/ask``) and library users
all describe a search the same way, because they all build it here from the
typed records of :mod:`qa.records` (:class:`~qa.records.SearchResult`,
:class:`~qa.records.Hit`, :class:`~qa.records.Citation`,
:class:`~qa.records.Span`)::

    {"question": "那2021年呢？",            # as asked (stripped)
     "searched": "2021年破获了多少电信网络诈骗案件？",   # what was searched (a follow-up differs)
     "follow_up": true,
     "mode": "hybrid",
     "took_ms": 41.7,                       # the search itself (timing: not part of the answer)
     "answerable": true,                    # a passage is relevant enough (null: no calibration)
     "passages": [{"rank": 1, "score": 0.83, "chunk_id": "…", "text": "…",
                   "highlights": [[18, 23]],        # [start, end) offsets into text
                   "best_sentence": [0, 60],        # or null
                   "citation": {"article_id", "title", "source", "url", "published",
                                "paragraphs": "¶6", "para_start", "para_end", "path"},
                   "dense_score": 0.83, "lexical_score": 11.2, "relevance": 0.91,
                   "language": "zh-Hans"}]}         # the passage's own (qa.lang), for a page's lang

Errors have one shape too, ``{"error": {"code", "message"}}``, with one code
per kind of failure (:data:`ERRORS`): the CLI prints the same code and
message the server sends for the same mistake.

The models below are pydantic models because the server publishes them as its
OpenAPI schema; :meth:`Answer.to_json` is the JSON everyone prints.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qa import errors
from qa.conversation import analyze
from qa.index import MAX_K, check_question
from qa.index.filters import date_bound
from qa.lang import detect_language
from qa.records import Citation, Hit, SearchFilters, SearchResult, Span

MAX_TOP_K = MAX_K  # passages per answer: one limit for the library, the CLI and the API
Mode = Literal["dense", "lexical", "hybrid"]
Language = Literal["zh-Hans", "zh-Hant", "en", "mixed", "und"]  # qa.lang.detect_language

# Every error a person can get, as (class, HTTP status, code). The first match wins.
ERRORS: list[tuple[type[errors.QAError], int, str]] = [
    (errors.InvalidQuery, 422, "invalid_request"),
    (errors.ArticleNotFound, 404, "article_not_found"),
    (errors.IndexNotFound, 503, "index_not_found"),
    (errors.IndexMismatch, 503, "index_mismatch"),
    (errors.IndexCorrupt, 503, "index_corrupt"),
    (errors.ModelNotAvailable, 503, "model_not_available"),
    (errors.QAError, 500, "error"),
]
INVALID_REQUEST = "invalid_request"  # the code of every refused input (422), however it was found


def error_status(exc: errors.QAError) -> tuple[int, str]:
    """(HTTP status, code) for a domain error, from :data:`ERRORS`."""
    for cls, status, code in ERRORS:
        if isinstance(exc, cls):
            return status, code
    return 500, "error"  # pragma: no cover  (QAError is the last row)


def error_json(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one error shape."""
    return {"error": {"code": code, "message": message}}


def _pair(span: Span | None) -> tuple[int, int] | None:
    return None if span is None else (span.start, span.end)


class CitationOut(BaseModel):
    """Everything a person needs to check a passage (:class:`qa.records.Citation`)."""

    article_id: str = Field(description="Opens the whole article: GET /api/articles/{article_id}.")
    title: str
    source: str = Field(description='The outlet ("联合早报").')
    url: str | None = Field(description="The article's link, when it has one.")
    published: str | None = Field(description="ISO 8601 UTC, e.g. 2021-04-10T09:42:12Z.")
    paragraphs: str = Field(description='As shown to people: "¶3" or "¶3–4".')
    para_start: int = Field(description="First cited paragraph, 1-based.")
    para_end: int = Field(description="Last cited paragraph, 1-based, inclusive.")
    path: str = Field(description="The file it was read from, relative to the folder indexed.")

    @classmethod
    def from_citation(cls, c: Citation) -> CitationOut:
        return cls(
            article_id=c.article_id, title=c.title, source=c.source, url=c.url, published=c.published,
            paragraphs=c.paragraphs, para_start=c.para_start, para_end=c.para_end, path=c.path,
        )  # fmt: skip


class Passage(BaseModel):
    """One ranked passage (:class:`qa.records.Hit`)."""

    rank: int = Field(description="1-based.")
    score: float = Field(description="The score in the mode used; higher is better.")
    chunk_id: str = Field(description="The passage's stable id.")
    text: str
    highlights: list[tuple[int, int]] = Field(description="[start, end) offsets into text of the question's words.")
    best_sentence: tuple[int, int] | None = Field(description="[start, end) of the sentence that best answers.")
    citation: CitationOut
    dense_score: float | None = Field(None, description="Cosine similarity, when dense search ran.")
    lexical_score: float | None = Field(None, description="BM25 score, when lexical search ran.")
    relevance: float | None = Field(
        None, description="Calibrated 0-1: the estimated chance the passage answers; null without a calibration."
    )
    language: Language = Field(
        "und", description="The passage's own language, by the rule articles are read with (qa.lang): "
        '"mixed" is Chinese and English, "und" has no words to tell by. What a page declares as its lang.'
    )

    @classmethod
    def from_hit(cls, hit: Hit) -> Passage:
        return cls(
            rank=hit.rank, score=hit.score, chunk_id=hit.chunk_id, text=hit.text,
            highlights=[(s.start, s.end) for s in hit.highlights], best_sentence=_pair(hit.best_sentence),
            citation=CitationOut.from_citation(hit.citation), dense_score=hit.dense_score,
            lexical_score=hit.lexical_score, relevance=getattr(hit, "relevance", None),
            language=detect_language(hit.text),
        )  # fmt: skip


_EXAMPLE = {
    "question": "那2021年呢？",
    "searched": "2021年破获了多少电信网络诈骗案件？",
    "follow_up": True,
    "mode": "hybrid",
    "took_ms": 41.7,
    "answerable": True,
    "passages": [
        {
            "rank": 1,
            "score": 0.83,
            "chunk_id": "c3f0a1b2d4e5f607",
            "text": "另据中新社报道，中国公安部昨天表示，2020年全年共破获电信网络诈骗案件32.2万起……",
            "highlights": [[18, 23]],
            "best_sentence": [0, 60],
            "citation": {
                "article_id": "https://www.zaobao.com/realtime/china/story20210410-1138397",
                "title": "习近平指示打击电信网络诈骗：推进国际执法合作",
                "source": "联合早报",
                "url": "https://www.zaobao.com/realtime/china/story20210410-1138397",
                "published": "2021-04-10T09:42:12Z",
                "paragraphs": "¶6",
                "para_start": 6,
                "para_end": 6,
                "path": "000_9ab89037dc83bcbe.md",
            },
            "dense_score": 0.83,
            "lexical_score": 11.2,
            "relevance": 0.91,
            "language": "zh-Hans",
        }
    ],
}


class Answer(BaseModel):
    """The answer to one question: what was searched and the ranked passages."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    question: str = Field(description="The question as asked (without leading and trailing spaces).")
    searched: str = Field(description="The query actually searched (differs for a follow-up).")
    follow_up: bool = Field(False, description="Whether the question was searched with the earlier ones.")
    mode: Mode
    took_ms: float = Field(description="Time the search took, in milliseconds.")
    answerable: bool | None = Field(
        None, description="Whether a passage is relevant enough to answer (false: these are only the nearest); "
        "null when the model has no calibration."
    )
    passages: list[Passage]

    @classmethod
    def from_result(cls, question: str, result: SearchResult, *, follow_up: bool, took_ms: float) -> Answer:
        """The answer to ``question``, whose searched form gave ``result``."""
        return cls(
            question=question, searched=result.question, follow_up=follow_up, mode=result.mode,  # type: ignore[arg-type]
            took_ms=round(took_ms, 2), answerable=getattr(result, "answerable", None),
            passages=[Passage.from_hit(hit) for hit in result.hits],
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The JSON form: what ``qa ask --json`` prints and ``/api/ask`` sends."""
        return self.model_dump(mode="json")


class ErrorBody(BaseModel):
    code: str = Field(description="One per kind of failure, e.g. invalid_request, index_not_found.")
    message: str = Field(description="For a person: what went wrong and what to do.")


class ErrorOut(BaseModel):
    error: ErrorBody


def check_date(name: str, value: str) -> None:
    """The library's one date rule for the filter ``name`` (date_from or date_to), its
    message led by that name: the API and the CLI refuse a date in the same words."""
    try:
        date_bound(value, end=name == "date_to")
    except errors.InvalidQuery as exc:
        raise errors.InvalidQuery(f"{name}: {exc}") from None


def ask(index: Any, question: str, *, history: Sequence[str] = (), k: int = 5, mode: str = "hybrid",
        filters: SearchFilters | None = None) -> Answer:  # fmt: skip
    """Search ``index`` for ``question`` asked after ``history`` (earlier questions, oldest first).

    A short follow-up ("那2021年呢？") is searched together with the question it
    follows (:func:`qa.conversation.analyze`), as the chat page does. Raises
    :class:`qa.errors.InvalidQuery` for what the library refuses (an empty or
    over-long question, k outside 1..MAX_TOP_K, bad filters).
    """
    started = time.perf_counter()
    turn = analyze(check_question(question), history)
    for name in ("date_from", "date_to"):
        value = getattr(filters, name, None)
        if isinstance(value, str) and value.strip():
            check_date(name, value)
    result = index.search(turn.searched, k=k, mode=mode, filters=filters)
    return Answer.from_result(turn.question, result, follow_up=turn.is_follow_up,
                              took_ms=(time.perf_counter() - started) * 1000.0)  # fmt: skip
