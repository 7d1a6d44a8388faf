"""The server against hostile input and hostile pages (issue 11, items 12-16), on the real app.

Every refusal is a 4xx in the one error shape, never a 5xx: dates checked by the
library's one rule, lone surrogates anywhere in a body, integers that are not
integers, bodies over the limit. Every response carries the security headers;
the Host header is checked (DNS rebinding); a token, when set, guards the API;
a per-client rate limit answers 429; HEAD works wherever GET does; `qa serve`
reads QA_TOKEN and warns when it listens beyond this machine without one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from qa.embed import HashEmbedder
from qa.errors import InvalidQuery
from qa.index import MAX_K, Index
from qa.index.filters import date_bound
from qa.ingest import iter_articles
from qa.records import ReadReport
from qa.server import create_app, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
LOCAL = "http://127.0.0.1"
QUESTION = "2020年破获了多少电信网络诈骗案件？"
TOKEN = "s3cret-Token_42"
J = {"content-type": "application/json"}
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hardening") / "index"
    report = ReadReport()
    Index.update(path, iter_articles([EXAMPLES], report), HashEmbedder(), progress=False)
    return path


@pytest.fixture(scope="module")
def client(index_dir):
    with TestClient(create_app(index_dir, embedder=HashEmbedder()), base_url=LOCAL) as c:
        yield c


def app_client(index_dir: Path, **settings) -> TestClient:
    return TestClient(create_app(index_dir, embedder=HashEmbedder(), **settings), base_url=LOCAL)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"].strip()
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]


def raw_post(client: TestClient, text: str, path: str = "/api/ask") -> httpx.Response:
    """POST a JSON text as written (json= would refuse a lone surrogate)."""
    return client.post(path, content=text.encode("utf-8"), headers=J)


# --- 12. dates: one rule, shared with the library and the CLI -------------------------

DATES = [
    "2021", "2021-04", "2021-4-1", "2021-04-10", "20210410", "2021-04-10T09:00:00Z", "2021-04-10 09:00",
    "0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59-05:00",
    "9999-12-31T23:59:59+14:00", "0001-01-01", "9999-12-31", "9999", "0000-01-01", "10000-01-01",
    "2021-02-30", "2021-13", "yesterday", "2021/04/10", "2021-04-10T25:00:00", "-1", "", "   ",
]  # fmt: skip


@pytest.mark.parametrize("value", DATES)
@pytest.mark.parametrize("field", ["date_from", "date_to"])
def test_the_server_accepts_exactly_the_dates_the_library_accepts(client, field, value):
    """POST and GET agree with qa.index.filters.date_bound on every date, edges of the calendar included."""
    try:
        accepted = not value.strip() or date_bound(value, end=field == "date_to") is not None
    except InvalidQuery:
        accepted = False
    post = client.post("/api/ask", json={"question": "x", "mode": "lexical", "filters": {field: value}})
    get = client.get("/api/ask", params={"q": "x", "mode": "lexical", field: value})
    for r in (post, get):
        if accepted:
            assert r.status_code == 200, r.text
        else:
            assert field in assert_error(r, 422)


def test_a_range_is_ordered_by_instant_not_by_text(client):
    """10:00 at +05:00 is 05:00 UTC, before 06:00 UTC: a valid range (the text compares the other way)."""
    filters = {"date_from": "2021-01-01T10:00:00+05:00", "date_to": "2021-01-01T06:00:00Z"}
    assert client.post("/api/ask", json={"question": "x", "filters": filters}).status_code == 200
    message = assert_error(client.post("/api/ask", json={"question": "x", "filters": {
        "date_from": "2021-01-01T06:00:00Z", "date_to": "2021-01-01T10:00:00+05:00"}}), 422)  # fmt: skip
    assert "after" in message
    whole_year = client.get("/api/ask", params={"q": QUESTION, "date_from": "2021", "date_to": "2021", "k": 50})
    assert whole_year.status_code == 200
    dates = {p["citation"]["published"][:4] for p in whole_year.json()["passages"]}
    assert dates == {"2021"}, dates


def test_qa_ask_takes_dates_at_the_edges_of_the_calendar(index_dir, capsys):
    from qa.cli import main

    args = ["ask", "诈骗", "--index", str(index_dir), "--mode", "lexical", "-k", "1"]
    assert main([*args, "--from", "0001-01-01T00:00:00+05:00", "--to", "9999-12-31T23:59:59-05:00"]) == 0
    assert "1 passages" in capsys.readouterr().out
    assert main([*args, "--from", "2021-02-30"]) == 2
    assert "invalid date '2021-02-30'" in capsys.readouterr().err


# --- 12. lone surrogates and other text that is not text ----------------------------

SURROGATE_BODIES = {
    "question": '{"question": "\\ud800"}',
    "question-tail": '{"question": "fraud \\udfff"}',
    "history": '{"question": "x", "history": ["\\ud800"]}',
    "history-tail": '{"question": "x", "history": ["ok", "a\\udc80b"]}',
    "source": '{"question": "x", "filters": {"sources": ["\\ud800"]}}',
    "tag": '{"question": "x", "filters": {"tags": ["\\udbff"]}}',
    "date": '{"question": "x", "filters": {"date_from": "2021\\ud800"}}',
    "mode": '{"question": "x", "mode": "\\ud800"}',
    "key": '{"question": "x", "\\ud800": 1}',
    "filters-key": '{"question": "x", "filters": {"\\ud800": 1}}',
}


@pytest.mark.parametrize("body", SURROGATE_BODIES.values(), ids=SURROGATE_BODIES.keys())
def test_a_lone_surrogate_anywhere_in_a_body_is_422(client, body):
    assert "surrogate" in assert_error(raw_post(client, body), 422)


def test_bad_text_keeps_the_connection_alive(index_dir):
    """On a real server: each hostile body is answered, and the same keep-alive connection
    then answers a good request (a 500 used to reset it)."""
    with serve_in_thread(create_app(index_dir, embedder=HashEmbedder())) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            for body in SURROGATE_BODIES.values():
                r = http.post("/api/ask", content=body.encode(), headers=J)
                assert r.status_code == 422, r.text
            r = http.get("/api/ask", params={"q": "x", "date_from": "0001-01-01T00:00:00+05:00"})
            assert r.status_code == 200
            r = http.post("/api/ask", json={"question": QUESTION, "mode": "lexical"})
            assert r.status_code == 200 and r.json()["passages"]


def test_an_unexpected_error_is_a_json_500_with_the_security_headers(index_dir, monkeypatch):
    """The last resort still speaks the one error shape (and this test proves the others are not it)."""
    app = create_app(index_dir, embedder=HashEmbedder())
    with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as c:
        monkeypatch.setattr(Index, "search", lambda *a, **k: 1 / 0)
        r = c.post("/api/ask", json={"question": "x"})
    assert "ZeroDivisionError" in assert_error(r, 500, "internal_error")
    for name, value in SECURITY.items():
        assert r.headers[name] == value


# --- 15. strict integers --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"question": "x", "top_k": True},
        {"question": "x", "top_k": False},
        {"question": "x", "top_k": 5.0},
        {"question": "x", "top_k": "5"},
        {"question": "x", "filters": {"max_per_article": True}},
        {"question": "x", "filters": {"max_per_article": 2.0}},
    ],
)
def test_json_integers_are_strict(client, body):
    assert_error(client.post("/api/ask", json=body), 422)


@pytest.mark.parametrize("k", ["true", "1.0", "1e1", "+3", " 3", "٣", "0x3"])
def test_query_string_k_is_a_whole_number(client, k):
    assert "k" in assert_error(client.get("/api/ask", params={"q": "x", "k": k}), 422)


def test_whole_numbers_still_work(client):
    assert len(client.post("/api/ask", json={"question": QUESTION, "top_k": 3}).json()["passages"]) == 3
    assert len(client.get("/api/ask", params={"q": QUESTION, "k": "2"}).json()["passages"]) == 2


# --- 13. the body limit -------------------------------------------------------------


def test_a_body_over_the_limit_is_413_from_its_length_alone(client):
    big = json.dumps({"question": "x", "history": ["问" * 1000] * 20})  # as \\u95ee: 6 bytes a character
    assert len(big.encode()) > 64 * 1024
    r = client.post("/api/ask", content=big.encode(), headers=J)
    assert "64 KB" in assert_error(r, 413, "body_too_large")


def test_a_refused_body_never_resets_the_connection(index_dir):
    """On a real server and one keep-alive connection: the rest of a refused body is read and
    dropped, so the client always gets its 413 (closing on unread bytes sends a reset that
    loses the answer, about one time in twenty) and the connection goes on. A body past
    what is worth reading (a declared 5 MB) is answered at once, and the connection closed."""
    over = b'{"question": "x"' + b" " * 70_000 + b"}"
    with serve_in_thread(create_app(index_dir, embedder=HashEmbedder())) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(60):
                assert http.post("/api/ask", content=b"{", headers=J).status_code == 400
                r = http.post("/api/ask", content=over, headers=J)
                assert r.status_code == 413 and "connection" not in r.headers
            assert http.get("/api/health").status_code == 200
        # only the head of a 5 MB request is sent: the answer comes without waiting for the body
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 5000000\r\n\r\n")  # fmt: skip
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413") and b"connection: close" in head.lower()
        assert json.loads(body)["error"]["code"] == "body_too_large"


def test_the_limit_is_checked_before_parsing(index_dir):
    """101 bytes that are not JSON: 413 (the limit), not 400 (the parser)."""
    with app_client(index_dir, max_body_bytes=100) as c:
        assert_error(c.post("/api/ask", content=b"{" * 101, headers=J), 413)
        assert_error(c.post("/api/ask", content=b"{" * 100, headers=J), 400, "invalid_json")
        assert c.post("/api/ask", json={"question": "x"}).status_code == 200


def test_a_chunked_body_is_counted_as_it_arrives(index_dir):
    """No Content-Length: the bytes are counted on a real server."""
    with serve_in_thread(create_app(index_dir, embedder=HashEmbedder(), max_body_bytes=4096)) as url:

        def chunks(n: int):
            yield b'{"question": "x", "history": ["'
            for _ in range(n):
                yield b"a" * 100
            yield b'"]}'

        r = httpx.post(url + "/api/ask", content=chunks(100), headers=J, timeout=30)
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "body_too_large")
        r = httpx.post(url + "/api/ask", content=chunks(5), headers=J, timeout=30)
        assert r.status_code == 200, r.text


def test_the_largest_request_the_page_sends_fits(client):
    """Ten earlier questions of 1,000 Chinese characters each, as the page sends them (UTF-8)."""
    body = {"question": "那2021年呢？", "history": ["问" * 1000] * 10, "filters": {"sources": ["联合早报"] * 100}}
    text = json.dumps(body, ensure_ascii=False).encode()
    assert 30_000 < len(text) < 64 * 1024
    assert client.post("/api/ask", content=text, headers=J).status_code == 200


# --- 15. limits published in the OpenAPI schema -----------------------------------------


def test_the_openapi_schema_publishes_the_limits(client):
    schema = client.get("/openapi.json").json()
    parts = schema["components"]["schemas"]
    ask, filters = parts["AskRequest"]["properties"], parts["Filters"]["properties"]
    assert (ask["question"]["minLength"], ask["question"]["maxLength"]) == (1, 1000)
    assert ask["history"]["maxItems"] == 20 and ask["history"]["items"]["maxLength"] == 1000
    assert (ask["top_k"]["minimum"], ask["top_k"]["maximum"], ask["top_k"]["type"]) == (1, MAX_K, "integer")
    for name in ("sources", "tags"):
        assert filters[name]["maxItems"] == 100 and filters[name]["items"]["maxLength"] == 200
    for name in ("date_from", "date_to"):
        assert any(option.get("maxLength") == 64 for option in filters[name]["anyOf"]), filters[name]
    get = {p["name"]: p["schema"] for p in schema["paths"]["/api/ask"]["get"]["parameters"]}
    assert get["q"]["maxLength"] == 1000 and get["k"]["maximum"] == MAX_K
    assert any(option.get("maxItems") == 100 for option in get["source"]["anyOf"])
    responses = schema["paths"]["/api/ask"]["post"]["responses"]
    assert {"400", "413", "422", "429", "503"} <= set(responses)


# --- 14. HEAD wherever GET --------------------------------------------------------------

GET_PATHS = ["/", "/static/app.js", "/static/app.css", "/api/health", "/api/stats", "/openapi.json", "/docs",
             "/api/ask?q=x&k=1", "/api/articles/url:0000000000000000", "/no/such/page"]  # fmt: skip


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_answers_wherever_get_does(client, path):
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code != 405
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if "/api/ask" not in path:  # the same bytes but for took_ms
        assert head.headers.get("content-length") == get.headers.get("content-length")


# --- 14. security headers on every response -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/", {}),
        ("get", "/static/app.js", {}),
        ("get", "/api/stats", {}),
        ("post", "/api/ask", {"json": {"question": "x"}}),
        ("post", "/api/ask", {"json": {"question": ""}}),
        ("post", "/api/ask", {"content": b"{", "headers": J}),
        ("post", "/api/ask", {"content": b" " * 70_000, "headers": J}),
        ("get", "/api/nothing", {}),
        ("delete", "/api/ask", {}),
        ("get", "/api/health", {"headers": {"host": "evil.example"}}),
        ("get", "/docs", {}),
    ],
)
def test_every_response_has_the_security_headers(client, method, path, kwargs):
    r = getattr(client, method)(path, **kwargs)
    for name, value in SECURITY.items():
        assert r.headers[name] == value, (name, r.status_code)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_the_chat_page_needs_nothing_inline(client):
    """The page's CSP allows only its own files: so the page may hold no inline script, style
    or event handler (the browser test shows it runs so)."""
    r = client.get("/")
    page = r.text
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="/static/app.js">']
    assert "<style" not in page and not re.search(r"\sstyle\s*=", page)
    assert not re.search(r"\son[a-z]+\s*=", page)
    assert not re.search(r"(href|src)\s*=\s*[\"']?javascript:", page)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "sha256-" not in csp


def test_the_docs_page_allows_exactly_its_inline_script_by_hash(client):
    import base64
    import hashlib

    r = client.get("/docs")
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert inline
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in r.headers["content-security-policy"]


# --- 14. the Host allow-list (DNS rebinding) -------------------------------------------


LOOPBACK_NAMES = ["127.0.0.1", "127.0.0.1:8000", "localhost", "LocalHost:1234", "localhost.", "[::1]:8000", "[::1]"]
OTHER_NAMES = ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil", "127.0.0.2", "[::2]", "",
               "0.0.0.0"]  # fmt: skip


@pytest.mark.parametrize("host", LOOPBACK_NAMES)
def test_loopback_names_are_answered(client, host):
    assert client.get("/api/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", OTHER_NAMES)
def test_other_host_names_are_400(client, host):
    r = client.get("/api/stats", headers={"host": host})
    assert "--allow-host" in assert_error(r, 400, "host_not_allowed")


def test_allow_host_adds_names(index_dir):
    with app_client(index_dir, allowed_hosts=["127.0.0.1", "qa.example", "::1"]) as c:
        assert c.get("/api/health", headers={"host": "qa.example:8443"}).status_code == 200
        assert c.get("/api/health", headers={"host": "[::1]:80"}).status_code == 200
        assert_error(c.get("/api/health", headers={"host": "localhost"}), 400)
    with app_client(index_dir, allowed_hosts=["*"]) as c:
        assert c.get("/api/health", headers={"host": "anything.example"}).status_code == 200


def test_a_rebinding_page_cannot_reach_a_real_server(index_dir):
    """Over TCP to 127.0.0.1, as a browser would after DNS rebinding: the Host is the attacker's name;
    a request with no Host at all (HTTP/1.0) is refused too."""
    with serve_in_thread(create_app(index_dir, embedder=HashEmbedder())) as url:
        r = httpx.get(url + "/api/ask", params={"q": QUESTION}, headers={"host": "attacker.example"})
        assert_error(r, 400, "host_not_allowed")
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /api/health HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400") and b"host_not_allowed" in answer


# --- 16. the bearer token --------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(index_dir):
    with app_client(index_dir, token=TOKEN) as c:
        yield c


@pytest.mark.parametrize("path", ["/api/stats", "/api/ask?q=x", "/api/articles/url:0000000000000000", "/api/nothing"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer"])
def test_without_the_token_the_api_is_401(guarded, path, authorization):
    headers = {"authorization": authorization} if authorization else {}
    r = guarded.get(path, headers=headers)
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_error(guarded.post("/api/ask", json={"question": "x"}, headers=headers), 401)


def test_with_the_token_the_api_answers(guarded):
    for scheme in ("Bearer", "bearer"):
        headers = {"authorization": f"{scheme} {TOKEN}"}
        assert guarded.get("/api/stats", headers=headers).status_code == 200
        r = guarded.post("/api/ask", json={"question": QUESTION, "mode": "lexical"}, headers=headers)
        assert r.status_code == 200 and r.json()["passages"]


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/health", "/openapi.json", "/docs"])
def test_the_page_docs_and_health_stay_open(guarded, path):
    assert guarded.get(path).status_code == 200


def test_the_token_is_declared_in_the_schema(guarded, client):
    schema = guarded.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert schema["paths"]["/api/ask"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/api/health"]["get"]
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


@pytest.mark.parametrize("token", ["", "two words", "令牌", "tab\there"])
def test_a_token_a_header_cannot_carry_is_refused_at_start(index_dir, token):
    with pytest.raises(ValueError, match="visible ASCII"):
        create_app(index_dir, token=token)


# --- 16. the rate limit ----------------------------------------------------------------


def test_a_client_over_the_rate_gets_429_with_retry_after(index_dir):
    from qa.middleware import RateLimit

    limit = RateLimit(per_second=0.5, burst=3, exempt_loopback=False)
    with app_client(index_dir, rate_limit=limit) as c:
        assert [c.get("/api/health").status_code for _ in range(3)] == [200] * 3
        r = c.get("/api/health")
        assert "retry" in assert_error(r, 429, "rate_limited")
        assert r.headers["retry-after"] == "2"
    with TestClient(create_app(index_dir, embedder=HashEmbedder(), rate_limit="3/min"), base_url=LOCAL,
                    client=("203.0.113.9", 5000)) as c:  # fmt: skip
        assert [c.get("/api/health").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_clients_are_limited_separately_and_loopback_not_at_all(index_dir):
    app = create_app(index_dir, embedder=HashEmbedder(), rate_limit="2/s")
    statuses = {}
    for address in ("203.0.113.9", "198.51.100.4", "127.0.0.1", "::1", "::ffff:127.0.0.1"):
        with TestClient(app, base_url=LOCAL, client=(address, 5000)) as c:
            statuses[address] = [c.get("/api/health").status_code for _ in range(4)]
    assert statuses["203.0.113.9"] == statuses["198.51.100.4"] == [200, 200, 429, 429]
    assert statuses["127.0.0.1"] == statuses["::1"] == statuses["::ffff:127.0.0.1"] == [200] * 4


def test_a_bucket_refills_at_the_rate_and_old_clients_are_forgotten():
    from qa.middleware import RateLimit, RateLimiter

    clock = [0.0]
    limiter = RateLimiter(app=None, limit=RateLimit(per_second=2, burst=2), clock=lambda: clock[0])
    assert [limiter.take("a") for _ in range(2)] == [0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    clock[0] = 0.5  # one token back
    assert limiter.take("a") == 0 and limiter.take("a") > 0
    for i in range(10_050):  # the table of clients stays bounded
        limiter.take(f"client-{i}")
    assert len(limiter.buckets) == 10_000


@pytest.mark.parametrize(
    ("text", "per_second", "burst"),
    [("20/s", 20, 20), ("600/min", 10, 600), ("1.5/sec", 1.5, 2), ("3 / minute", 0.05, 3)],
)
def test_rates_are_read_from_text(text, per_second, burst):
    from qa.middleware import RateLimit

    limit = RateLimit.parse(text)
    assert limit.per_second == pytest.approx(per_second) and limit.burst == burst and limit.exempt_loopback
    assert RateLimit.parse("off") is None
    with pytest.raises(ValueError, match="N/s"):
        RateLimit.parse("fast")


# --- 15. stats shows no filesystem paths ------------------------------------------------


def test_stats_and_health_show_no_filesystem_path(client, index_dir):
    for path in ("/api/stats", "/api/health"):
        text = client.get(path).text
        assert str(index_dir) not in text and str(index_dir.parent) not in text
        assert not re.search(r'"/(tmp|home|root|Users|var)/', text), text


# --- qa serve: QA_TOKEN, --allow-host, the warning ---------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(index_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(index_dir), "--port", str(port),
         "--log-level", "warning", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/api/health", timeout=5)
            return proc, url
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    return proc.communicate(timeout=30)


def test_qa_serve_reads_the_token_from_qa_token(index_dir):
    proc, url = _serve(index_dir, "--allow-host", "qa.example", env={"QA_TOKEN": TOKEN})
    try:
        assert_error(httpx.get(url + "/api/stats"), 401)
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.get(url + "/api/stats", headers=auth).status_code == 200
        assert httpx.get(url + "/api/stats", headers={**auth, "host": "qa.example"}).status_code == 200
        assert_error(httpx.get(url + "/api/stats", headers={**auth, "host": "other.example"}), 400)
    finally:
        out, err = _stop(proc)
    assert "token is required" in out and TOKEN not in out + err and "warning" not in err


def test_qa_serve_warns_when_listening_beyond_this_machine_without_a_token(index_dir):
    proc, url = _serve(index_dir, "--host", "0.0.0.0")
    try:
        assert httpx.get(url + "/api/health").status_code == 200  # loopback names still answered
    finally:
        out, err = _stop(proc)
    assert "warning: listening on 0.0.0.0 without a token" in err and "--token" in err
    assert "--allow-host" in err
    proc, url = _serve(index_dir, "--host", "0.0.0.0", "--token", TOKEN)
    out, err = _stop(proc)
    assert "warning" not in err


def test_qa_serve_refuses_bad_settings_in_one_line(index_dir):
    for args, needle in ((["--token", "two words"], "visible ASCII"), (["--rate-limit", "fast"], "N/s")):
        r = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--index", str(index_dir), *args],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
