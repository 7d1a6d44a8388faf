"""What makes ``qa serve`` safe to expose: ASGI middleware, one job per class.

:func:`qa.server.create_app` stacks them, outermost first:

==================  ==========================================================
``SecurityHeaders``  CSP, nosniff, no framing, no referrer on every response
``HostAllowList``    400 unless the Host header names this server (DNS rebinding)
``RateLimiter``      a token bucket per client address; 429 with Retry-After
``BearerToken``      401 without ``Authorization: Bearer <token>`` (when one is set)
``BodyLimit``        413 for a body over the limit, before anything parses it
``HeadAsGet``        HEAD answered wherever GET is, without the body
``UrlEncoding``      400 for percent-escapes that are not UTF-8 (``q=%FF``)
==================  ==========================================================

Below the app, :class:`JsonErrorsH11Protocol` gives a request uvicorn cannot
parse (a URL that is not percent-encoded, an over-long request line) the same
error shape instead of uvicorn's plain-text 400.

Each refuses with the project's one error shape, ``{"error": {"code",
"message"}}`` (:func:`error_response`), and passes everything else, and every
non-HTTP scope (the lifespan), through untouched. Plain ASGI rather than
Starlette's ``BaseHTTPMiddleware``: no extra task per request, streaming
responses stay streaming.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

import h11
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 64 * 1024  # the largest request the page sends is ~30 KB (10 history items)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MAX_RATE_CLIENTS = 10_000  # buckets kept; the least recently seen client is forgotten beyond this


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape. A lone surrogate in the message (echoed input) is escaped, so
    encoding the response can never fail."""
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": {"code": code, "message": text}}, status_code=status, headers=headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


# ---------------------------------------------------------------------------
# Security headers
# ---------------------------------------------------------------------------

# The chat page loads only its own script and style sheet and talks only to this server.
CSP_DIRECTIVES: dict[str, str] = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "manifest-src": "'self'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": "; ".join(f"{k} {v}" for k, v in CSP_DIRECTIVES.items()),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_SECURITY_PAIRS = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
_SECURITY_NAMES = frozenset(k for k, _ in _SECURITY_PAIRS)
_INLINE = {
    "script-src": re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL),
    "style-src": re.compile(rb"<style[^>]*>(.*?)</style\s*>", re.IGNORECASE | re.DOTALL),
}
_MAX_HTML_BYTES = 1 << 20


def csp_for_html(body: bytes) -> str:
    """The policy for one HTML page: the strict one, plus the hash of each inline script
    and style element the page holds (the API docs pages have a few; the chat page none)."""
    directives = dict(CSP_DIRECTIVES)
    for directive, pattern in _INLINE.items():
        hashes = sorted({_sha256(m) for m in pattern.findall(body)})
        if hashes:
            directives[directive] += "".join(f" '{h}'" for h in hashes)
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def _sha256(text: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode("ascii")


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response. An HTML page is held until its
    end (pages here are a few KB) so that its inline elements can be hashed into its CSP."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: list[Message] = []  # an HTML response: its start and body so far

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _SECURITY_NAMES]
                headers += _SECURITY_PAIRS
                message = {**message, "headers": headers}
                if (_content_type(headers) or "").startswith("text/html"):
                    held.append(message)
                    return
                return await send(message)
            if held and message["type"] == "http.response.body":
                held.append(message)
                size = sum(len(m.get("body", b"")) for m in held[1:])
                if message.get("more_body") and size <= _MAX_HTML_BYTES:
                    return
                return await self._flush(held, send)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _flush(held: list[Message], send: Send) -> None:
        start, bodies = held[0], held[1:]
        csp = csp_for_html(b"".join(m.get("body", b"") for m in bodies))
        start["headers"] = [(k, csp.encode() if k == b"content-security-policy" else v) for k, v in start["headers"]]
        await send(start)
        for message in bodies:
            await send(message)
        held.clear()


def _content_type(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key.lower() == b"content-type":
            return value.decode("latin-1").lower()
    return None


# ---------------------------------------------------------------------------
# Host allow-list
# ---------------------------------------------------------------------------


def host_name(value: str) -> str:
    """A Host header or an allow-list entry as compared: lower case, no port, no trailing
    dot, an IPv6 address in brackets ("[::1]:8000" -> "[::1]", "::1" -> "[::1]")."""
    text = value.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[: end + 1] if end > 0 else text
    if text.count(":") > 1:  # a bare IPv6 address, as given on a command line
        return f"[{text}]"
    return text.split(":", 1)[0].rstrip(".")


class HostAllowList:
    """400 for a request whose Host header is not one of ``allowed`` (any port).

    Against DNS rebinding: a page on another site that points its own name at
    127.0.0.1 reaches this server with that name as Host, and is refused. ``"*"``
    in ``allowed`` turns the check off.
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = LOOPBACK_HOSTS):
        self.app = app
        self.allowed = frozenset(host_name(h) for h in allowed)
        self.any = "*" in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.any:
            return await self.app(scope, receive, send)
        host = _header(scope, b"host")
        if host is not None and host_name(host) in self.allowed:
            return await self.app(scope, receive, send)
        shown = repr(host[:100]) if host is not None else "(none: send a Host header)"
        response = error_response(
            400, "host_not_allowed",
            f"this server does not answer to the host name {shown}: to allow a name, start qa serve "
            "with --allow-host NAME",
        )  # fmt: skip
        await response(scope, receive, send)


# ---------------------------------------------------------------------------
# Rate limit
# ---------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimit:
    """``per_second`` requests a second on average per client address, in bursts of up to
    ``burst``. Loopback clients are exempt unless ``exempt_loopback`` is False (people on
    this machine, load tests; behind a reverse proxy every client looks local: limit there)."""

    per_second: float
    burst: int
    exempt_loopback: bool = True

    @classmethod
    def parse(cls, text: str, *, exempt_loopback: bool = True) -> RateLimit | None:
        """ "20/s" (burst 20), "600/min" (10 a second, burst 600), "off" -> None. ValueError otherwise."""
        if text.strip().lower() in ("off", "none", "0"):
            return None
        m = _RATE.match(text)
        if not m or float(m[1]) <= 0:
            raise ValueError(f"{text!r} is not a rate: use N/s or N/min (e.g. 20/s), or off")
        count = float(m[1])
        per_second = count if m[2].lower().startswith("s") else count / 60.0
        return cls(per_second=per_second, burst=max(1, math.ceil(count)), exempt_loopback=exempt_loopback)


class RateLimiter:
    """A token bucket per client address: each request takes a token, tokens come back at
    ``per_second`` up to ``burst``; an empty bucket is answered 429 with Retry-After."""

    def __init__(self, app: ASGIApp, limit: RateLimit, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.limit = limit
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        if self.limit.exempt_loopback and _is_loopback(client):
            return await self.app(scope, receive, send)
        wait = self.take(client)
        if wait <= 0:
            return await self.app(scope, receive, send)
        seconds = max(1, math.ceil(wait))
        response = error_response(
            429, "rate_limited",
            f"too many requests from {client}: at most {self.limit.per_second:g} a second; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )  # fmt: skip
        await response(scope, receive, send)

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0 if there was one, else the seconds until there is."""
        now = self.clock()
        tokens, then = self.buckets.pop(client, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - then) * self.limit.per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.limit.per_second
        self.buckets[client] = (tokens, now)
        while len(self.buckets) > MAX_RATE_CLIENTS:
            self.buckets.popitem(last=False)
        return wait


def _is_loopback(client: str) -> bool:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


# ---------------------------------------------------------------------------
# Bearer token
# ---------------------------------------------------------------------------

OPEN_PATHS = frozenset({"/", "/api/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
OPEN_PREFIXES = ("/static/", "/docs-assets/")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")


def check_token(token: str) -> str:
    """A token the page can send in a header: visible ASCII, no spaces. ValueError otherwise."""
    if not _TOKEN.match(token):
        raise ValueError("the token must be visible ASCII characters without spaces (e.g. from `openssl rand -hex 16`)")
    return token


class BearerToken:
    """401 for a request without ``Authorization: Bearer <token>``, except the chat page,
    its files, the API docs and /api/health (open by design: they hold no data)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = check_token(token).encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_open(scope["path"]) or self._authorized(scope):
            return await self.app(scope, receive, send)
        given = _header(scope, b"authorization") is not None
        message = (
            "the token is not right: send the one qa serve was started with"
            if given
            else "this server needs a token: send the header Authorization: Bearer <token> "
            "(the --token or QA_TOKEN qa serve was started with)"
        )
        response = error_response(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="qa"'})
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        value = _header(scope, b"authorization") or ""
        scheme, _, credentials = value.strip().partition(" ")
        given = credentials.strip().encode("latin-1")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self.token)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


# ---------------------------------------------------------------------------
# Body limit
# ---------------------------------------------------------------------------


class BodyLimit:
    """413 for a request body over ``max_bytes``, before anything parses it: the app only
    ever sees a body already known to fit, and never more than ``max_bytes`` of it is held.

    A body over the limit is refused by its Content-Length when it declares one, else
    by counting what arrives (chunked). The rest of a refused body, up to
    :data:`MAX_DRAIN_BYTES`, is read and dropped before answering: a server that closes
    a connection with unread bytes resets it, and the client never sees the 413. A
    larger body is answered at once and the connection closed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        size = int(declared) if declared is not None and declared.strip().isdigit() else None
        if size is not None and size > self.max_bytes:
            drained = size <= MAX_DRAIN_BYTES and await _drain(receive, MAX_DRAIN_BYTES)
            return await self._refuse(scope, receive, send, drained)
        body, ended = await self._read(receive)
        if body is None:  # nothing left to drain when the chunk that passed the limit was the last
            return await self._refuse(scope, receive, send, ended or await _drain(receive, MAX_DRAIN_BYTES))
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes | None, bool]:
        """(the whole body, or None once it passes the limit; whether the client has sent all of it)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            ended = not message.get("more_body", False)
            size += len(chunk)
            if size > self.max_bytes:
                return None, ended
            chunks.append(chunk)
            if ended:
                return b"".join(chunks), True

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, drained: bool) -> None:
        response = error_response(
            413, "body_too_large",
            f"the request body is larger than {self.max_bytes // 1024} KB: send a shorter question or history",
            headers=None if drained else {"Connection": "close"},
        )  # fmt: skip
        await response(scope, receive, send)


MAX_DRAIN_BYTES = 1 << 20


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and drop the rest of a body; False if the client left or it is over ``budget`` bytes."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        budget -= len(message.get("body", b""))
        if budget < 0:
            return False
        if not message.get("more_body", False):
            return True


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read already, then whatever the connection says next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# ---------------------------------------------------------------------------
# HEAD
# ---------------------------------------------------------------------------


class HeadAsGet:
    """A HEAD request is handled as GET and its body dropped: the same status and headers
    (Content-Length included) wherever GET works, without declaring HEAD on every route."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # a copy: the server's own scope must still say HEAD
        await self.app({**scope, "method": "GET"}, receive, send_without_body)


# ---------------------------------------------------------------------------
# URL encoding
# ---------------------------------------------------------------------------

PERCENT_ENCODING_HINT = "percent-encode it, e.g. curl -G --data-urlencode 'q=2020年破获了多少电信网络诈骗案件？' URL/api/ask"


def _decodes(raw: bytes) -> bool:
    """Whether percent-decoded ``raw`` is UTF-8 (an undecodable %XX would become U+FFFD, silently)."""
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class UrlEncoding:
    """400 for a path or query string whose percent-escapes are not UTF-8 (``q=%FF``):
    the server would otherwise search for a replacement character instead of refusing."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for part, raw in (("path", scope.get("raw_path") or b""), ("query string", scope.get("query_string", b""))):
            if not _decodes(raw):
                response = error_response(400, "bad_request", f"the {part} is not UTF-8 once percent-decoded: "
                                          + PERCENT_ENCODING_HINT)  # fmt: skip
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------
# Requests uvicorn cannot parse
# ---------------------------------------------------------------------------

MAX_REQUEST_HEAD_BYTES = 64 * 1024  # request line + headers; h11's default is 16 KB


class _RememberingConnection(h11.Connection):
    """h11's server connection, keeping the protocol error uvicorn catches and drops."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self):  # type: ignore[no-untyped-def]
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


def _unparsable(conn: _RememberingConnection) -> tuple[int, str, str]:
    """(status, code, message) for a request h11 refused: too long a head, or not HTTP."""
    exc = conn.last_error
    if exc is not None and exc.error_status_hint == 431:
        buffered = bytes(getattr(conn, "_receive_buffer", b""))[:MAX_REQUEST_HEAD_BYTES]
        if b"\n" not in buffered:
            return 414, "uri_too_long", (f"the request line is over {MAX_REQUEST_HEAD_BYTES // 1024} KB: send a long "
                                         'question with POST /api/ask, as JSON {"question": "..."}')  # fmt: skip
        return 431, "headers_too_large", f"the request headers are over {MAX_REQUEST_HEAD_BYTES // 1024} KB"
    return 400, "bad_request", ("the request is not valid HTTP: a URL cannot hold spaces or non-ASCII text as "
                                "they are typed; " + PERCENT_ENCODING_HINT)  # fmt: skip


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11), answering a request it cannot parse with the one
    error shape and the security headers instead of a plain-text "Invalid HTTP request
    received." Such a request never reaches the app, so no middleware can answer it.

    Pass it to uvicorn as ``http=JsonErrorsH11Protocol`` (``qa serve`` and
    :func:`qa.server.serve_in_thread` do) with ``h11_max_incomplete_event_size``
    set to :data:`MAX_REQUEST_HEAD_BYTES`: a question up to the length limit then always
    reaches the app, which refuses an over-long one with its own message.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size or MAX_REQUEST_HEAD_BYTES
        self.conn = _RememberingConnection(h11.SERVER, limit)

    def send_400_response(self, msg: str) -> None:
        status, code, message = _unparsable(self.conn)
        body = json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *_SECURITY_PAIRS]  # fmt: skip
        response = h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase.encode())
        for event in (response, h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
