"""The HTTP API and the chat page: a thin FastAPI layer over :class:`qa.index.Index`.

``create_app(index_dir)`` builds the app. The index is opened once, in the
lifespan, held by an :class:`IndexHolder` on ``app.state`` and handed to the
endpoints through a dependency (no module globals). The holder

- serves 503 with the command that builds the index while there is none, and
  picks the index up as soon as ``qa index`` has written it;
- watches, in a background thread, every ``reload_interval_s`` whether
  ``qa index`` has committed a newer version (or rebuilt the index), opens it
  sharing the unchanged segments while requests go on being served from the
  old one, swaps it in, and closes the old version once the last request
  using it has finished: no request ever waits for a reload;
- shares one embedding model across versions (the model is loaded once).

Searches are CPU-bound and run in FastAPI's threadpool (the endpoints are
plain ``def``). An answer is :class:`qa.answer.Answer`, the one shape ``qa ask
--json`` prints too. Every error is JSON of one shape,
``{"error": {"code": ..., "message": ...}}``: domain errors from
:mod:`qa.errors` are mapped to statuses by :data:`qa.answer.ERRORS`, request
validation errors become 422 ``invalid_request`` (400 for a body that is not
JSON). Input is checked by the library's own rules (``check_question``,
``date_bound``, k from 1 to ``MAX_K``) with the library's messages, so the
API, the CLI and the library accept the same questions and dates and refuse
the rest in the same words.

The app is wrapped in the guards of :mod:`qa.middleware` (security headers,
Host allow-list, rate limit, bearer token, body limit, HEAD), configured by
:func:`create_app`'s keyword arguments; environment variables are read by the
CLI only.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator,
)  # fmt: skip
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa import errors
from qa.answer import INVALID_REQUEST, MAX_TOP_K, Answer, ErrorOut, Mode, check_date, error_status
from qa.answer import ask as answer_question
from qa.index import MAX_QUESTION_CHARS, check_question
from qa.index.filters import check_filters
from qa.middleware import (
    DEFAULT_MAX_BODY_BYTES, LOOPBACK_HOSTS, MAX_REQUEST_HEAD_BYTES, SECURITY_HEADERS, BearerToken, BodyLimit,
    HeadAsGet, HostAllowList, JsonErrorsH11Protocol, RateLimit, RateLimiter, SecurityHeaders, UrlEncoding,
    check_token, error_response,
)  # fmt: skip
from qa.records import SearchFilters

log = logging.getLogger("qa.server")

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_HISTORY = 20
MAX_DATE_CHARS = 64
MAX_ARTICLE_ID_CHARS = 4096
DEFAULT_RELOAD_INTERVAL_S = 1.0
# How uvicorn should run the app: requests it cannot parse get the JSON error shape too,
# and a request line may hold any question up to the length limit (qa serve uses these).
UVICORN: dict[str, Any] = {"http": JsonErrorsH11Protocol, "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES}

# ---------------------------------------------------------------------------
# Request and response models (these are also the OpenAPI schema)
# ---------------------------------------------------------------------------


def _library_rule(message: str) -> PydanticCustomError:
    """A refusal by one of the library's rules, whose message names what it refuses: the
    API shows it as is (no location prefix), word for word what ``qa ask`` says."""
    return PydanticCustomError("qa_rule", message.replace("{", "{{").replace("}", "}}"))


def _check_question(value: str) -> str:
    """The library's question check, as the error pydantic validators raise."""
    try:
        return check_question(value)
    except errors.InvalidQuery as exc:
        raise _library_rule(str(exc)) from None


def _k_rule(name: str):
    """The library's rule for k (1..MAX_TOP_K), under the parameter's own name."""

    def check(value: int) -> int:
        if not 1 <= value <= MAX_TOP_K:
            raise _library_rule(f"{name} must be a whole number from 1 to {MAX_TOP_K}, not {value!r}")
        return value

    return AfterValidator(check)


def _history_items(items: Any) -> Any:
    """Say what a history item is when one is not a string (a common guess is an object)."""
    if isinstance(items, list):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise _library_rule(
                    f"history.{i}: each history item is an earlier question, as a string (oldest first), "
                    f"not {type(item).__name__ if item is not None else 'null'}"
                )
    return items


class Filters(BaseModel):
    """What may be returned. Every field is optional; empty means no restriction.

    Dates are checked by the library's one date rule (:func:`qa.index.filters.date_bound`,
    which the CLI uses too), so the server accepts and refuses exactly what ``qa ask`` does.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"date_from": "2021-01-01", "date_to": "2021-12-31", "sources": ["联合早报"]}]},
    )

    date_from: str | None = Field(
        None, max_length=MAX_DATE_CHARS, description="Inclusive. YYYY, YYYY-MM, YYYY-MM-DD or an ISO 8601 time."
    )
    date_to: str | None = Field(
        None, max_length=MAX_DATE_CHARS, description="Inclusive; a year, month or day means all of it."
    )
    sources: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=100, description="Outlets, as listed by /api/stats."
    )
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=100)
    max_per_article: int | None = Field(
        None, ge=1, le=MAX_TOP_K, strict=True, description="At most N passages from one article."
    )

    @field_validator("date_from", "date_to")
    @classmethod
    def _date(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Blank is no bound; anything else must be a date ``date_bound`` accepts."""
        if value is None or not value.strip():
            return None
        try:
            check_date(info.field_name, value)
        except errors.InvalidQuery as exc:
            raise _library_rule(str(exc)) from None
        return value.strip()

    @model_validator(mode="after")
    def _ordered(self) -> Filters:
        """The library's rule for the range as a whole (date_from after date_to is empty)."""
        try:
            check_filters(self.to_search_filters())
        except errors.InvalidQuery as exc:
            raise _library_rule(str(exc)) from None
        return self

    def to_search_filters(self) -> SearchFilters:
        return SearchFilters(
            date_from=self.date_from,
            date_to=self.date_to,
            sources=tuple(s for s in self.sources if s.strip()),
            tags=tuple(t for t in self.tags if t.strip()),
            max_per_article=self.max_per_article,
        )


class AskRequest(BaseModel):
    """A question, with the conversation so far for follow-ups."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "2020年破获了多少电信网络诈骗案件？", "top_k": 5, "mode": "hybrid"},
                {
                    "question": "那2021年呢？",
                    "history": ["2020年破获了多少电信网络诈骗案件？"],
                    "filters": {"date_from": "2021-01-01"},
                },
            ]
        },
    )

    question: str = Field(
        description=f"1 to {MAX_QUESTION_CHARS} characters (leading and trailing spaces do not count).",
        json_schema_extra={"minLength": 1, "maxLength": MAX_QUESTION_CHARS},  # enforced by check_question
    )
    top_k: Annotated[int, _k_rule("top_k")] = Field(
        5, strict=True, description="How many passages to return.",
        json_schema_extra={"minimum": 1, "maximum": MAX_TOP_K},  # enforced by _k_rule, with the library's message
    )  # fmt: skip
    mode: Mode = Field("hybrid", description="dense (meaning), lexical (words, BM25) or hybrid (both, fused).")
    filters: Filters = Field(default_factory=Filters)
    history: Annotated[list[Annotated[str, Field(max_length=MAX_QUESTION_CHARS)]], BeforeValidator(_history_items)] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="The earlier questions of this conversation, oldest first, each a string as the person "
        'typed it (not an object): ["2020年破获了多少电信网络诈骗案件？"]. A short follow-up ("那2021年呢？") '
        "is searched together with them; blank items are ignored. The chat page sends its last 10.",
    )  # fmt: skip

    @field_validator("history")
    @classmethod
    def _history(cls, items: list[str]) -> list[str]:
        """Earlier questions pass the same check as the question; blank ones are dropped."""
        try:
            return [check_question(q) for q in items if q.strip()]
        except errors.InvalidQuery as exc:
            raise ValueError(str(exc)) from None


class ArticleOut(BaseModel):
    id: str
    title: str
    source: str
    url: str | None
    published: str | None
    tags: list[str]
    language: str
    path: str
    editor: str | None
    paragraphs: list[str] = Field(description="Paragraph n of a citation is paragraphs[n-1].")


class SourceCount(BaseModel):
    name: str
    articles: int


class StatsOut(BaseModel):
    articles: int
    chunks: int
    sources: list[SourceCount]
    date_from: str | None
    date_to: str | None
    model: str
    backend: str
    built_at: str | None
    version: int = Field(description="The index version: one more at every commit of `qa index`.")
    segments: int


class HealthOut(BaseModel):
    status: Literal["ok", "no index"]
    index: str | None = Field(description="null when the index is ready, else why it is not.")
    version: int | None


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not a JSON object, the Host header is not allowed, or the "
          "request is not valid HTTP (code bad_request: e.g. a URL that is not percent-encoded)."},
    401: {"model": ErrorOut, "description": "The server was started with a token and the request did not send it."},
    413: {"model": ErrorOut, "description": "The request body is over the limit (64 KB unless configured)."},
    414: {"model": ErrorOut, "description": "The request line is over 64 KB: send a long question with POST."},
    422: {"model": ErrorOut, "description": "Code invalid_request: a parameter is missing, out of range or not text, "
          "or the question is empty (the same code and message `qa ask --json` gives)."},
    429: {"model": ErrorOut, "description": "Too many requests from this client: wait Retry-After seconds."},
    503: {"model": ErrorOut, "description": "No usable index yet: the message says how to build it."},
}

# ---------------------------------------------------------------------------
# The index, held across versions
# ---------------------------------------------------------------------------


class _Generation:
    """One opened index version and how many requests are using it."""

    def __init__(self, index: Any):
        self.index = index
        self.users = 0
        self.retired = False


class IndexHolder:
    """Owns the open index: opens it, leases it to requests, swaps in new versions.

    A background thread (started by :meth:`start`) looks every
    ``reload_interval_s`` for a newer commit, or an index deleted and rebuilt
    in place (:meth:`Index.is_stale`), and opens it with
    :meth:`Index.reopen`, which shares every unchanged segment with the
    version being served: requests never wait for a reload, and memory grows
    only by what changed. The old version is closed when its last request
    ends. ``embedder``: the one model used for every version (``None``: the
    model the index names, loaded once and kept while it stays the same).
    """

    def __init__(self, index_dir: Path, *, embedder: Any = None,
                 reload_interval_s: float = DEFAULT_RELOAD_INTERVAL_S, translator: Any = None):  # fmt: skip
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.translator = translator  # qa.crosslingual.Translator; None: the default one
        self._interval = max(0.01, float(reload_interval_s))
        self._lock = threading.Lock()  # guards _current and the lease counters (never held while searching)
        self._check_lock = threading.Lock()  # one open/reopen at a time
        self._current: _Generation | None = None
        self._last_error: errors.QAError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0

    # -- opening -----------------------------------------------------------

    def _open_first(self) -> Any:
        from qa.index import Index

        index = Index.open(self.index_dir, self.embedder, translator=self.translator)
        # Warm up before serving: the first search loads the tokenizer's dictionary and the
        # model (seconds), the first English one the English->Chinese dictionary: no request
        # should wait for them.
        with contextlib.suppress(errors.QAError):
            index.search("warm-up 预热", k=1, mode="hybrid")
            index.search("warm-up", k=1, mode="hybrid")
        return index

    def _swap(self, index: Any) -> None:
        with self._lock:
            old, self._current = self._current, _Generation(index)
            self._last_error = None
            if old is not None:
                old.retired = True
                self.reloads += 1
                close_now = old.users == 0
            else:
                close_now = False
        if old is not None and close_now:
            old.index.close()

    def check_now(self) -> bool:
        """Open the index if there is none, or the newest version if it changed; True if swapped."""
        with self._check_lock:
            current = self._current
            try:
                if current is None:
                    self._swap(self._open_first())
                    return True
                if current.index.is_stale():
                    log.info("index at %s changed on disk: opening the new version", self.index_dir)
                    self._swap(current.index.reopen(self.embedder))
                    return True
            except errors.QAError as exc:
                if self._current is not None and str(exc) != str(self._last_error):  # once, not every poll
                    log.warning("keeping the current index: the new one cannot be opened: %s", exc)
                self._last_error = exc
            except Exception as exc:  # noqa: BLE001 - a reload must never kill the server
                log.exception("reloading the index at %s failed", self.index_dir)
                self._last_error = errors.IndexCorrupt(f"the index cannot be opened: {type(exc).__name__}: {exc}")
            return False

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            self.check_now()

    def start(self) -> None:
        """Open the index now, if there is one, and start watching for new versions."""
        self.check_now()
        if self._last_error is not None:
            log.warning("%s", self._unavailable().args[0])
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="qa-index-reload", daemon=True)
        self._thread.start()

    def _unavailable(self) -> errors.QAError:
        exc = self._last_error
        if exc is None or isinstance(exc, errors.IndexNotFound):
            return errors.IndexNotFound(
                f"there is no index at {self.index_dir} yet: build it with "
                f"`qa index FOLDER --index {self.index_dir}` (FOLDER: your articles, e.g. examples/articles); "
                "the server picks it up without a restart"
            )
        return exc

    # -- leasing -----------------------------------------------------------

    @contextlib.contextmanager
    def lease(self) -> Iterator[Any]:
        """The current index, kept open until the with-block ends even if a newer one is swapped in."""
        with self._lock:
            gen = self._current
            if gen is None:
                raise self._unavailable()
            gen.users += 1
        try:
            yield gen.index
        finally:
            with self._lock:
                gen.users -= 1
                close_now = gen.retired and gen.users == 0
            if close_now:
                gen.index.close()

    def status(self) -> tuple[Any | None, errors.QAError | None]:
        """(current index or None, why there is none)."""
        gen = self._current
        return (gen.index if gen else None), (None if gen else self._unavailable())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            gen, self._current = self._current, None
            if gen is not None:
                gen.retired = True
                close_now = gen.users == 0
            else:
                close_now = False
        if gen is not None and close_now:
            gen.index.close()


def get_holder(request: Request) -> IndexHolder:
    return request.app.state.holder


def get_index(holder: Annotated[IndexHolder, Depends(get_holder)]) -> Iterator[Any]:
    """The dependency every search endpoint uses: a lease on the current index."""
    with holder.lease() as index:
        yield index


IndexDep = Annotated[Any, Depends(get_index)]

# ---------------------------------------------------------------------------
# Errors: one shape, one place
# ---------------------------------------------------------------------------

_error = error_response  # the one error shape, shared with the middleware


async def _qa_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Domain errors, by the one table of :mod:`qa.answer` (the CLI uses it too)."""
    assert isinstance(exc, errors.QAError)
    status, code = error_status(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return _error(status, code, str(exc) or type(exc).__doc__ or code, headers)


def _describe(err: dict[str, Any]) -> str:
    """One validation error for a person: where, then what (a library rule names its own subject)."""
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "qa_rule":
        return msg
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    msg = msg.removeprefix("Value error, ")
    return f"{'.'.join(loc)}: {msg}" if loc else msg


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errs):
        return _error(400, "invalid_json", 'the request body is not valid JSON: send {"question": "..."}')
    if any(e.get("type") == "string_unicode" for e in errs):  # a lone surrogate, anywhere in the body
        where = ", ".join(sorted({".".join(map(str, e["loc"][1:])) or "a key" for e in errs}))
        return _error(422, INVALID_REQUEST, f"{where}: not valid text (it holds a lone surrogate)")
    if any(tuple(e.get("loc", ())) == ("body",) for e in errs):  # the body as a whole: missing, a list...
        return _error(400, "invalid_json", 'the request body must be a JSON object: {"question": "..."}')
    return _error(422, INVALID_REQUEST, "; ".join(_describe(e) for e in errs) or "invalid request")


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"nothing at {request.url.path}: see /docs for the API"
    if exc.status_code == 400 and message == "There was an error parsing the body":  # e.g. nested too deep
        return _error(400, "invalid_json", "the request body could not be read as JSON")
    return _error(exc.status_code, codes.get(exc.status_code, "http_error"), message, exc.headers)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    # sent from outside every middleware (Starlette's ServerErrorMiddleware): add the headers here
    return _error(500, "internal_error", f"unexpected error ({type(exc).__name__}); the server log has details",
                  headers=dict(SECURITY_HEADERS))  # fmt: skip


# ---------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------


def _stats(index: Any, holder: IndexHolder) -> StatsOut:
    s = index.stats()
    return StatsOut(
        articles=s.articles,
        chunks=s.chunks,
        sources=[SourceCount(name=name, articles=n) for name, n in index.sources()],
        date_from=s.date_from,
        date_to=s.date_to,
        model=s.model,
        backend=s.backend,
        built_at=s.built_at or None,
        version=s.version,
        segments=s.segments,
    )


def _plain_docs_page(app: FastAPI) -> HTMLResponse:
    """/docs without Swagger UI (fastapi-offline not installed): the schema, readable, all local."""
    schema = app.openapi()
    rows = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            rows.append(
                f"<h2><code>{html.escape(method.upper())} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(op.get('summary', ''))}</p>"
                f"<p class=description>{html.escape(op.get('description', ''))}</p>"
            )
    pretty = html.escape(json.dumps(schema, ensure_ascii=False, indent=2))
    return HTMLResponse(  # one <style> element: the CSP allows it by its hash (qa.middleware)
        "<!doctype html><meta charset=utf-8><title>qa API</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        ".description{white-space:pre-wrap}</style><body>"
        f"<h1>{html.escape(app.title)} API</h1><p>Schema: <a href='/openapi.json'>/openapi.json</a></p>"
        f"{''.join(rows)}<details><summary>OpenAPI schema</summary><pre>{pretty}</pre></details>"
    )


def create_app(
    index_dir: Path | str,
    *,
    embedder: Any = None,
    model: str | None = None,
    reload_interval_s: float = DEFAULT_RELOAD_INTERVAL_S,
    token: str | None = None,
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
    rate_limit: RateLimit | str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    glossary: Path | str | None = None,
) -> FastAPI:
    """The FastAPI app serving the index at ``index_dir``.

    ``embedder``: the model to search with (shared across index versions);
    ``model``: load this model (``qa.loader.load_embedder``) at start-up instead;
    neither: the model the index's manifest names.

    Exposure (:mod:`qa.middleware`): ``token`` (every request but the page, the docs
    and /api/health then needs ``Authorization: Bearer <token>``; ValueError for a
    token a header cannot carry), ``allowed_hosts`` (the Host names answered, any
    port; ``"*"``: any), ``rate_limit`` (a :class:`RateLimit` or text such as
    ``"20/s"``; None: none) and ``max_body_bytes`` (413 beyond).

    ``glossary``: a file of English -> Chinese entries for English questions, before the
    shipped ones (:class:`qa.crosslingual.Translator`); read here, GlossaryError when unusable.
    """
    from qa.crosslingual import Translator

    index_dir = Path(index_dir)
    translator = Translator(user_glossary=Path(glossary)) if glossary is not None else None
    if token is not None:
        check_token(token)
    if isinstance(rate_limit, str):
        rate_limit = RateLimit.parse(rate_limit)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Requests are the parallelism: one BLAS/OpenMP thread per search. Multi-threaded
        # BLAS in every concurrent search oversubscribes the cores (measured on 2 cores:
        # 10 -> 170 dense searches/s with 8 clients, and a single search 29 -> 7 ms).
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
        shared = embedder
        if shared is None and model is not None:
            from qa.loader import load_embedder

            shared = await run_in_threadpool(load_embedder, model)
        holder = IndexHolder(index_dir, embedder=shared, reload_interval_s=reload_interval_s, translator=translator)
        await run_in_threadpool(holder.start)
        app.state.holder = holder
        try:
            yield
        finally:
            holder.close()

    settings: dict[str, Any] = dict(
        title="qa",
        summary="Ask questions of a folder of news articles; get ranked source passages with citations.",
        version="0.1.0",
        lifespan=lifespan,
        responses=_ERROR_RESPONSES,
    )
    try:  # Swagger UI with its assets served from the package, not a CDN. No ReDoc: it injects
        # inline styles at run time, which the CSP refuses (qa.middleware)
        from fastapi_offline import FastAPIOffline

        app = FastAPIOffline(static_url="/docs-assets", redoc_url=None, **settings)
    except ImportError:
        app = FastAPI(docs_url=None, redoc_url=None, **settings)

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return _plain_docs_page(app)

    app.add_exception_handler(errors.QAError, _qa_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)

    @app.post("/api/ask", response_model=Answer, tags=["search"], summary="Ask a question")
    def ask(body: AskRequest, index: IndexDep) -> Answer:
        """Ranked source passages for a question, each with its citation.

        A short follow-up ("那2021年呢？", "and in Hong Kong?") is searched together
        with the earlier questions given in `history`; `searched` says what was searched.
        The answer is what `qa ask --json` prints for the same question (see `qa.answer`).
        """
        return answer_question(index, body.question, history=body.history, k=body.top_k, mode=body.mode,
                               filters=body.filters.to_search_filters())  # fmt: skip

    @app.get("/api/ask", response_model=Answer, tags=["search"], summary="Ask a question (query string)")
    def ask_get(
        index: IndexDep,
        q: Annotated[str, Query(description="The question, percent-encoded (curl -G --data-urlencode 'q=...').",
                                examples=["2020年破获了多少电信网络诈骗案件？"],
                                json_schema_extra={"minLength": 1, "maxLength": MAX_QUESTION_CHARS})],
        k: Annotated[int, Query(strict=True, description="How many passages.",
                                json_schema_extra={"minimum": 1, "maximum": MAX_TOP_K}),
                     BeforeValidator(_whole_number), _k_rule("k")] = 5,
        mode: Annotated[Mode, Query()] = "hybrid",
        date_from: Annotated[str | None, Query(max_length=MAX_DATE_CHARS, examples=["2021-01-01"])] = None,
        date_to: Annotated[str | None, Query(max_length=MAX_DATE_CHARS)] = None,
        source: Annotated[list[Annotated[str, Field(max_length=200)]] | None,
                          Query(max_length=100, description="Repeat for several outlets.")] = None,
    ) -> Answer:  # fmt: skip
        """The same search as `POST /api/ask`, for a browser or curl: `/api/ask?q=...&k=5`."""
        try:
            filters = Filters(date_from=date_from, date_to=date_to, sources=source or [])
        except ValueError as exc:
            raise errors.InvalidQuery(_validation_message(exc)) from None
        return answer_question(index, q, k=k, mode=mode, filters=filters.to_search_filters())

    @app.get(
        "/api/articles/{article_id:path}",
        response_model=ArticleOut,
        tags=["articles"],
        summary="One cleaned article",
        responses={404: {"model": ErrorOut, "description": "No article with that id."}},
    )
    def article(article_id: Annotated[str, PathParam(max_length=MAX_ARTICLE_ID_CHARS)], index: IndexDep) -> ArticleOut:
        """The cleaned article with its paragraphs (citation ¶n is `paragraphs[n-1]`).

        Ids may be URLs: percent-encode them (`encodeURIComponent`)."""
        a = index.article(article_id)
        return ArticleOut(
            id=a.id,
            title=a.title,
            source=a.source,
            url=a.url,
            published=a.published,
            tags=list(a.tags),
            language=a.language,
            path=a.path,
            editor=a.editor,
            paragraphs=list(a.paragraphs),
        )

    @app.get("/api/stats", response_model=StatsOut, tags=["index"], summary="What the index holds")
    def stats(index: IndexDep, holder: Annotated[IndexHolder, Depends(get_holder)]) -> StatsOut:
        """Articles, chunks, sources, date range, model, build time and index version."""
        return _stats(index, holder)

    @app.get("/api/health", response_model=HealthOut, tags=["index"], summary="Is the server ready?")
    def health(holder: Annotated[IndexHolder, Depends(get_holder)]) -> HealthOut | JSONResponse:
        """200 with status "ok" when an index is loaded; 503 with status "no index" and why, otherwise."""
        index, why = holder.status()
        if index is None:
            body = HealthOut(status="no index", index=str(why), version=None)
            return JSONResponse(body.model_dump(), status_code=503)
        return HealthOut(status="ok", index=None, version=index.version)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if token is not None:
        _document_token(app)
    _protect(app, token=token, allowed_hosts=allowed_hosts, rate_limit=rate_limit, max_body_bytes=max_body_bytes)
    return app


def _protect(app: FastAPI, *, token: str | None, allowed_hosts: Iterable[str], rate_limit: RateLimit | None,
             max_body_bytes: int) -> None:  # fmt: skip
    """Stack the middleware of :mod:`qa.middleware`; the last added runs first.

    Order, outermost first: security headers (so every refusal has them too), the
    Host check, the rate limit (before the token check: guessing tokens is limited
    too), the token, the body limit, the URL's encoding, HEAD as GET.
    """
    app.add_middleware(HeadAsGet)
    app.add_middleware(UrlEncoding)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if token is not None:
        app.add_middleware(BearerToken, token=token)
    if rate_limit is not None:
        app.add_middleware(RateLimiter, limit=rate_limit)
    app.add_middleware(HostAllowList, allowed=allowed_hosts)
    app.add_middleware(SecurityHeaders)


def _document_token(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI schema, so that /docs offers "Authorize"."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, operations in schema.get("paths", {}).items():
                if path != "/api/health":
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _whole_number(value: Any) -> Any:
    """A query string's digits as an int; anything else is left for the strict int check to refuse
    ("true", "1.0", "1e3" are not whole numbers, as in a JSON body)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    return value


def _validation_message(exc: ValueError) -> str:
    errs = getattr(exc, "errors", None)
    if callable(errs):
        return "; ".join(_describe(e) for e in errs())
    return str(exc)


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields its base URL.

    For tests, browser tests and load runs: port 0 picks a free port. The
    server (and its lifespan) is stopped when the with-block ends.
    """
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", **UVICORN))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="qa-serve")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the server did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
