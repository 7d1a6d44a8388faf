"""The HTTP API against a small real index (HashEmbedder over the seeds + a few test articles).

Every endpoint, every bad-input case (always JSON ``{"error": {"code", "message"}}``,
never a 500), an index that appears after start-up, hot reload while serving,
and many simultaneous requests against a real uvicorn.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from qa.embed import HashEmbedder
from qa.errors import QAError
from qa.index import Index
from qa.ingest import iter_articles
from qa.records import ReadReport, SearchFilters
from qa.server import STATIC_DIR, create_app, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
SEEDS = (EXAMPLES / "000_9ab89037dc83bcbe.md", EXAMPLES / "001_ce7fc6476a78629f.md")  # the two seed articles
SEED_QUESTION = "2020年破获了多少电信网络诈骗案件？"
SEED_000_URL = "https://www.zaobao.com/realtime/china/story20210410-1138397"

# Test articles: hostile text, an id with URL characters, another source and year.
EXTRA = {
    "evil.md": """---
title: "<img src=x onerror=alert(1)> 恶意标题"
date: 2021-05-01
author: Evil Times
from: "javascript:window.__pwned=3"
---
<p>这段文字包含 &lt;script&gt;window.__pwned=1&lt;/script&gt; 和 &lt;img src=x onerror="window.__pwned=2"&gt; 电信诈骗的字样。</p>
""",
    "sub dir/q&a #1?.md": """---
title: "Quokka census on Rottnest Island"
date: 2019-03-02
author: Test Wire
---
<p>Rangers counted the quokka population on Rottnest Island in March 2019.</p>
<p>The quokka census found about twelve thousand animals, more than the last count.</p>
""",
    "wire/fraud-2019.md": """---
title: "Police report on telecom fraud in 2019"
date: 2019-12-30
author: Test Wire
---
<p>Police said telecom fraud cases rose in 2019 as gangs moved overseas.</p>
<p>Officers urged people to hang up on callers who ask for bank codes.</p>
""",
}
QUOKKA_ID = "path:extra/sub dir/q&a #1?.md"
LOCAL = "http://127.0.0.1"  # a Host the app answers to by default (TestClient's own is "testserver")


def write_articles(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def build(index_dir: Path, *folders: Path, embedder=None) -> None:
    report = ReadReport()
    Index.update(index_dir, iter_articles(list(folders), report), embedder or HashEmbedder(), progress=False)
    assert not report.skipped, report.skipped


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """(extra articles folder, built index dir)."""
    base = tmp_path_factory.mktemp("server")
    extra = write_articles(base / "extra", EXTRA)
    index_dir = base / "index"
    build(index_dir, *SEEDS, extra)
    return extra, index_dir


@pytest.fixture(scope="module")
def client(corpus):
    with TestClient(create_app(corpus[1], embedder=HashEmbedder()), base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def index(corpus):
    with Index.open(corpus[1], HashEmbedder()) as idx:
        yield idx


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"].strip()
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]


def passage_keys(body: dict) -> list[tuple]:
    return [(p["rank"], p["citation"]["article_id"], p["citation"]["para_start"], p["text"]) for p in body["passages"]]


# --- endpoints -------------------------------------------------------------


def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["index"] is None and body["version"] >= 1


def test_stats(client, index):
    body = client.get("/api/stats").json()
    stats = index.stats()
    assert body["articles"] == stats.articles == 5
    assert body["chunks"] == stats.chunks > 5
    names = {s["name"]: s["articles"] for s in body["sources"]}
    assert names == {"联合早报": 1, "新浪财经": 1, "Evil Times": 1, "Test Wire": 2}
    assert body["sources"][0]["name"] == "Test Wire"  # most articles first
    assert body["date_from"].startswith("2019-03-02") and body["date_to"].startswith("2022-07-25")
    assert body["model"] == HashEmbedder().model and body["backend"] == "hash"
    assert re.match(r"\d{4}-\d\d-\d\dT", body["built_at"])
    assert body["version"] == index.version


def test_ask_answers_the_seed_question_with_the_cited_paragraph(client):
    r = client.post("/api/ask", json={"question": SEED_QUESTION, "mode": "lexical"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["question"] == body["searched"] == SEED_QUESTION
    assert body["mode"] == "lexical" and body["follow_up"] is False and body["took_ms"] > 0
    top = body["passages"][0]
    assert "32.2万起" in top["text"]
    cite = top["citation"]
    assert cite["url"] == SEED_000_URL and cite["source"] == "联合早报"
    assert cite["title"] == "习近平指示打击电信网络诈骗：推进国际执法合作"
    assert cite["published"].startswith("2021-04-10")
    assert cite["path"] == "000_9ab89037dc83bcbe.md"
    for p in body["passages"]:
        c = p["citation"]
        expected = f"¶{c['para_start']}" if c["para_start"] == c["para_end"] else f"¶{c['para_start']}–{c['para_end']}"
        assert c["paragraphs"] == expected
        for start, end in p["highlights"]:
            assert 0 <= start < end <= len(p["text"])
        if p["best_sentence"] is not None:
            assert 0 <= p["best_sentence"][0] < p["best_sentence"][1] <= len(p["text"])
    assert [p["rank"] for p in body["passages"]] == list(range(1, len(body["passages"]) + 1))
    highlighted = [top["text"][s:e] for s, e in top["highlights"]]
    assert any("诈骗" in h or "2020" in h for h in highlighted), highlighted


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_ask_is_the_library_search(client, index, mode):
    """Differential: the API returns exactly what Index.search returns."""
    filters = {"sources": ["联合早报", "新浪财经"], "date_from": "2020-01-01"}
    r = client.post("/api/ask", json={"question": "国际执法合作", "top_k": 7, "mode": mode, "filters": filters})
    assert r.status_code == 200, r.text
    result = index.search("国际执法合作", k=7, mode=mode, filters=SearchFilters(sources=("联合早报", "新浪财经"), date_from="2020-01-01"))
    got = r.json()["passages"]
    assert len(got) == len(result.hits) > 0
    for p, hit in zip(got, result.hits):
        assert p["text"] == hit.text and p["rank"] == hit.rank
        assert p["score"] == pytest.approx(hit.score)
        assert p["citation"]["article_id"] == hit.citation.article_id
        assert p["highlights"] == [[s.start, s.end] for s in hit.highlights]


def test_get_ask_matches_post(client):
    post = client.post("/api/ask", json={"question": SEED_QUESTION, "top_k": 3, "mode": "hybrid"}).json()
    get = client.get("/api/ask", params={"q": SEED_QUESTION, "k": 3, "mode": "hybrid"})
    assert get.status_code == 200
    assert passage_keys(get.json()) == passage_keys(post)
    filtered = client.get("/api/ask", params=[("q", "telecom fraud"), ("source", "Test Wire"), ("date_from", "2019-01-01")])
    assert filtered.status_code == 200
    assert {p["citation"]["source"] for p in filtered.json()["passages"]} == {"Test Wire"}


def test_filters_restrict_sources_and_dates(client):
    r = client.post("/api/ask", json={"question": "quokka telecom fraud", "filters": {"sources": ["Test Wire"]}, "top_k": 10})
    passages = r.json()["passages"]
    assert passages and {p["citation"]["source"] for p in passages} == {"Test Wire"}
    r = client.post(
        "/api/ask", json={"question": "电信诈骗 fraud", "top_k": 10, "filters": {"date_from": "2019-01-01", "date_to": "2019-12-31"}}
    )
    passages = r.json()["passages"]
    assert passages and all(p["citation"]["published"].startswith("2019-") for p in passages)
    # a date_to that is a day includes the whole day
    r = client.post("/api/ask", json={"question": "telecom fraud", "filters": {"date_from": "2019-12-30", "date_to": "2019-12-30"}})
    assert [p["citation"]["title"] for p in r.json()["passages"]][:1] == ["Police report on telecom fraud in 2019"]
    # nothing in range: an empty list, not an error
    r = client.post("/api/ask", json={"question": SEED_QUESTION, "filters": {"date_to": "2000-01-01"}})
    assert r.status_code == 200 and r.json()["passages"] == []
    r = client.post("/api/ask", json={"question": SEED_QUESTION, "filters": {"sources": ["No Such Outlet"]}})
    assert r.status_code == 200 and r.json()["passages"] == []


def test_max_per_article(client):
    r = client.post("/api/ask", json={"question": "电信网络诈骗", "top_k": 10, "filters": {"max_per_article": 1}})
    ids = [p["citation"]["article_id"] for p in r.json()["passages"]]
    assert ids and len(ids) == len(set(ids))


def test_follow_up_is_searched_with_the_previous_question(client):
    r = client.post("/api/ask", json={"question": "那2021年呢？", "history": [SEED_QUESTION], "mode": "lexical"})
    body = r.json()
    assert body["question"] == "那2021年呢？"
    assert body["searched"] == "2021年破获了多少电信网络诈骗案件？"
    assert body["follow_up"] is True
    assert any("诈骗" in p["text"] for p in body["passages"])
    r = client.post("/api/ask", json={"question": "那2021年呢？"})
    assert r.json()["searched"] == "那2021年呢？" and r.json()["follow_up"] is False


def test_article_endpoint_with_url_characters_in_the_id(client, index):
    r = client.get("/api/articles/" + quote(QUOKKA_ID, safe=""))
    assert r.status_code == 200, r.text
    body = r.json()
    article = index.article(QUOKKA_ID)
    assert body["id"] == QUOKKA_ID and body["paragraphs"] == list(article.paragraphs)
    assert body["title"] == "Quokka census on Rottnest Island" and body["url"] is None
    assert body["source"] == "Test Wire" and body["path"] == "sub dir/q&a #1?.md"
    # slashes and ':' may also be sent unencoded
    r = client.get("/api/articles/path:extra/sub%20dir/q&a%20%231%3F.md")
    assert r.status_code == 200 and r.json()["id"] == QUOKKA_ID


def test_every_cited_article_opens(client, index):
    body = client.post("/api/ask", json={"question": "电信诈骗 quokka fraud", "top_k": 20}).json()
    ids = {p["citation"]["article_id"] for p in body["passages"]}
    assert len(ids) >= 3
    for article_id in ids:
        r = client.get("/api/articles/" + quote(article_id, safe=""))
        assert r.status_code == 200
        assert r.json()["paragraphs"] == list(index.article(article_id).paragraphs)
    cited = body["passages"][0]
    paragraphs = client.get("/api/articles/" + quote(cited["citation"]["article_id"], safe="")).json()["paragraphs"]
    start, end = cited["citation"]["para_start"], cited["citation"]["para_end"]
    assert cited["text"] in "\n\n".join(paragraphs[start - 1 : end])


def test_unknown_article_is_404(client):
    message = assert_error(client.get("/api/articles/url:0000000000000000"), 404, "article_not_found")
    assert "url:0000000000000000" in message
    assert_error(client.get("/api/articles/" + quote("path:no/such file?.md", safe="")), 404, "article_not_found")


# --- bad input ---------------------------------------------------------------

LONG = "问" * 1001


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"question": ""}, 422, "empty"),
        ({"question": " \n\t　 "}, 422, "empty"),
        ({"question": LONG}, 422, "1000"),
        ({}, 422, "question"),
        ({"question": 42}, 422, "question"),
        ({"question": "x", "top_k": 0}, 422, "top_k"),
        ({"question": "x", "top_k": 101}, 422, "top_k"),
        ({"question": "x", "top_k": "five"}, 422, "top_k"),
        ({"question": "x", "mode": "fuzzy"}, 422, "mode"),
        ({"question": "x", "filters": {"date_from": "2021-02-30"}}, 422, "date_from"),
        ({"question": "x", "filters": {"date_to": "yesterday"}}, 422, "date_to"),
        ({"question": "x", "filters": {"date_from": "2021-05-01", "date_to": "2021-04-01"}}, 422, "after"),
        ({"question": "x", "filters": {"sources": "联合早报"}}, 422, "sources"),
        ({"question": "x", "filters": {"colour": "red"}}, 422, "colour"),
        ({"question": "x", "history": ["q"] * 21}, 422, "history"),
        ({"question": "x", "history": [LONG]}, 422, "history"),
        ({"question": "x", "topk": 3}, 422, "topk"),
    ],
)
def test_bad_post_bodies_get_clear_errors(client, body, status, needle):
    message = assert_error(client.post("/api/ask", json=body), status)
    assert needle in message


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        ("{not json", {"content-type": "application/json"}),
        ("", {"content-type": "application/json"}),
        ('["a", "list"]', {"content-type": "application/json"}),
        ('"just a string"', {"content-type": "application/json"}),
        ("question=hello", {"content-type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe\x00garbage", {"content-type": "application/json"}),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(client, content, headers):
    message = assert_error(client.post("/api/ask", content=content, headers=headers), 400, "invalid_json")
    assert "JSON" in message


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({}, "q"),
        ({"q": "   "}, "empty"),
        ({"q": LONG}, "1000"),
        ({"q": "x", "k": 0}, "k"),
        ({"q": "x", "k": 101}, "k"),
        ({"q": "x", "k": "many"}, "k"),
        ({"q": "x", "mode": "semantic"}, "mode"),
        ({"q": "x", "date_from": "2021/04/10"}, "date"),
        ({"q": "x", "date_from": "2022-01-01", "date_to": "2021-01-01"}, "after"),
    ],
)
def test_bad_query_strings_get_clear_errors(client, params, needle):
    message = assert_error(client.get("/api/ask", params=params), 422)
    assert needle in message


def raw_request(url: str, request_line: bytes, pieces: int = 1) -> tuple[int, dict]:
    """Send a request line as a client would that does not percent-encode (curl with a raw URL),
    in ``pieces`` writes; (status, JSON body) of the answer."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    data = request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    size = -(-len(data) // pieces)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        for start in range(0, len(data), size):
            try:
                s.sendall(data[start : start + size])
            except OSError:  # refused before the whole line was sent
                break
            time.sleep(0.01 if pieces > 1 else 0)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower() and b"content-security-policy" in head.lower(), head
    payload = json.loads(body)
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
    return int(head.split()[1]), payload


@pytest.fixture(scope="module")
def served(corpus):
    with serve_in_thread(create_app(corpus[1], embedder=HashEmbedder())) as url:
        yield url


def test_a_url_that_is_not_percent_encoded_gets_the_json_error(served):
    """What curl sends for the README's old example: uvicorn cannot parse it, and says so in JSON."""
    for line in (f"GET /api/ask?q={SEED_QUESTION}&k=3 HTTP/1.1", "GET /api/ask?q=telecom fraud HTTP/1.1"):
        status, body = raw_request(served, line.encode("utf-8"))
        assert status == 400 and body["error"]["code"] == "bad_request"
        assert "--data-urlencode" in body["error"]["message"]


def test_percent_escapes_that_are_not_utf8_are_refused(served):
    for target in ("/api/ask?q=%FF%FE", "/api/ask?q=%E5%B9", "/api/articles/%FF"):
        status, body = raw_request(served, f"GET {target} HTTP/1.1".encode())
        assert status == 400 and "not UTF-8 once percent-decoded" in body["error"]["message"], target
    r = httpx.get(served + "/api/ask?q=%E5%B9%B4+%E5%B9%B4&mode=lexical")  # UTF-8 escapes: searched
    assert r.status_code == 200 and r.json()["question"] == "年 年"


def test_a_long_question_over_get_gets_the_apis_own_answer(served):
    """A question past the length limit but within 64 KB reaches the app (422, the library's
    message), even when it arrives in pieces; a request line beyond 64 KB is a JSON 414."""
    too_long = quote("问" * 2000)  # 18 KB percent-encoded: past h11's default 16 KB
    status, body = raw_request(served, f"GET /api/ask?q={too_long} HTTP/1.1".encode(), pieces=12)
    assert status == 422 and body["error"] == {
        "code": "invalid_request", "message": "the question is too long (2000 characters; at most 1000)"}
    status, body = raw_request(served, f"GET /api/ask?q={quote('问' * 8000)} HTTP/1.1".encode(), pieces=40)
    assert status == 414 and body["error"]["code"] == "uri_too_long" and "POST" in body["error"]["message"]


def test_unknown_routes_and_methods_are_json(client):
    assert_error(client.get("/api/nothing-here"), 404, "not_found")
    assert_error(client.delete("/api/ask"), 405, "method_not_allowed")


# --- the page and the docs ---------------------------------------------------


def test_chat_page_is_served_without_external_resources(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport"' in r.text
    for name in ("index.html", "app.js", "app.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), name
        assert "@import" not in text and "url(http" not in text
        served = client.get(f"/static/{name}")
        assert served.status_code == 200 and served.text == text
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    # article text is only ever inserted as text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink


@pytest.mark.parametrize("swagger", [True, False], ids=["swagger-ui", "plain"])
def test_docs_and_openapi_work_offline(corpus, monkeypatch, swagger):
    if swagger:
        pytest.importorskip("fastapi_offline", reason="fastapi-offline (local Swagger UI assets) not installed")
    else:
        monkeypatch.setitem(__import__("sys").modules, "fastapi_offline", None)  # as if not installed
    with TestClient(create_app(corpus[1], embedder=HashEmbedder()), base_url=LOCAL) as c:
        schema = c.get("/openapi.json").json()
        for path in ("/api/ask", "/api/articles/{article_id}", "/api/stats", "/api/health"):
            assert path in schema["paths"], path
        assert "examples" in json.dumps(schema["components"]["schemas"]["AskRequest"])
        assert c.get("/redoc").status_code == 404  # ReDoc's run-time inline styles would break under the CSP
        for page in ["/docs"]:
            docs = c.get(page)
            assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
            assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", docs.text)
            assert assets
            for asset in assets:
                assert asset.startswith("/") and not asset.startswith("//"), f"{page} loads {asset} from outside"
                assert c.get(asset).status_code == 200, asset
            assert "fonts.googleapis" not in docs.text


# --- no index yet, hot reload, concurrency -------------------------------------


def test_missing_index_is_503_until_it_is_built(tmp_path):
    index_dir = tmp_path / "not-yet"
    app = create_app(index_dir, embedder=HashEmbedder(), reload_interval_s=0.0)
    with TestClient(app, base_url=LOCAL) as c:
        message = assert_error(c.post("/api/ask", json={"question": SEED_QUESTION}), 503, "index_not_found")
        assert f"qa index FOLDER --index {index_dir}" in message
        assert_error(c.get("/api/ask", params={"q": "x"}), 503, "index_not_found")
        assert_error(c.get("/api/stats"), 503, "index_not_found")
        assert_error(c.get("/api/articles/x"), 503, "index_not_found")
        health = c.get("/api/health")
        assert health.status_code == 503 and health.json()["status"] == "no index"
        # bad input is still reported as bad input
        assert_error(c.post("/api/ask", content="{", headers={"content-type": "application/json"}), 400)
        assert c.get("/").status_code == 200  # the page still loads and can say so

        build(index_dir, *SEEDS)
        deadline = time.monotonic() + 10
        while (r := c.post("/api/ask", json={"question": SEED_QUESTION, "mode": "lexical"})).status_code == 503:
            assert time.monotonic() < deadline, "the new index was not picked up"
            time.sleep(0.02)
        assert r.status_code == 200, r.text
        assert "32.2万起" in r.json()["passages"][0]["text"]
        assert c.get("/api/health").json()["status"] == "ok"


def test_a_model_mismatch_is_503_with_the_reason(corpus):
    with TestClient(create_app(corpus[1], embedder=HashEmbedder(dimension=32)), base_url=LOCAL) as c:
        message = assert_error(c.post("/api/ask", json={"question": "x"}), 503, "index_mismatch")
        assert "hash-embedder-64" in message


def test_model_named_at_start_up_is_loaded_once_and_checked(corpus):
    with TestClient(create_app(corpus[1], model="hash-embedder-64"), base_url=LOCAL) as c:
        assert c.post("/api/ask", json={"question": SEED_QUESTION}).status_code == 200
        assert c.app.state.holder.embedder.model == "hash-embedder-64"
    with TestClient(create_app(corpus[1], model="hash-32"), base_url=LOCAL) as c:
        assert_error(c.post("/api/ask", json={"question": SEED_QUESTION}), 503, "index_mismatch")


def test_hot_reload_while_serving(tmp_path):
    """qa index updates the index under a running server: the next request sees the new
    article, no request fails during the swap, the new version shares the unchanged
    segment with the old one, the old version is closed once unused, and the one
    embedding model is shared by both versions."""
    index_dir = tmp_path / "index"
    build(index_dir, *SEEDS)
    embedder = HashEmbedder()
    app = create_app(index_dir, embedder=embedder, reload_interval_s=0.05)
    statuses: list[int] = []
    stop = threading.Event()

    with serve_in_thread(app) as url:
        holder = app.state.holder
        with holder.lease() as first:
            pass

        def hammer():
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    r = http.post("/api/ask", json={"question": SEED_QUESTION, "top_k": 3})
                    statuses.append(r.status_code)

        with ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(hammer) for _ in range(4)]
            time.sleep(0.3)
            assert httpx.post(url + "/api/ask", json={"question": "quokka census", "mode": "lexical"}).json()["passages"] == []
            extra = write_articles(tmp_path / "extra", {k: v for k, v in EXTRA.items() if k.startswith("sub dir")})
            build(index_dir, *SEEDS, extra, embedder=embedder)
            deadline = time.monotonic() + 10
            while True:
                r = httpx.post(url + "/api/ask", json={"question": "quokka census", "mode": "lexical"})
                assert r.status_code == 200
                if r.json()["passages"]:
                    break
                assert time.monotonic() < deadline, "the new version was not picked up"
                time.sleep(0.05)
            assert r.json()["passages"][0]["citation"]["article_id"] == QUOKKA_ID
            time.sleep(0.3)
            stop.set()
            for w in workers:
                w.result()
        stats = httpx.get(url + "/api/stats").json()
        assert stats["articles"] == 3 and stats["version"] == 2
        with holder.lease() as second:
            assert second is not first and second.embedder is embedder is first.embedder
            shared = {id(s) for s in first._version.segments} & {id(s) for s in second._version.segments}
            assert len(shared) == 1  # the first segment is not loaded twice
        assert holder.reloads == 1

    assert statuses and set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    with pytest.raises(QAError, match="closed"):
        first.search(SEED_QUESTION, k=1, mode="lexical")  # closed once its last request finished


def test_an_old_version_stays_open_for_requests_in_flight(tmp_path):
    from qa.server import IndexHolder

    index_dir = tmp_path / "index"
    build(index_dir, *SEEDS)
    embedder = HashEmbedder()
    holder = IndexHolder(index_dir, embedder=embedder, reload_interval_s=3600)
    holder.start()
    with holder.lease() as old:
        extra = write_articles(tmp_path / "extra", {k: v for k, v in EXTRA.items() if k.startswith("wire/")})
        build(index_dir, *SEEDS, extra, embedder=embedder)
        assert holder.check_now()
        with holder.lease() as new:
            assert new is not old and new.version == old.version + 1
        # still usable while this request holds it
        assert old.search(SEED_QUESTION, k=1, mode="lexical").hits
        assert old.stats().articles == 2 and new.stats().articles == 3
    with pytest.raises(QAError, match="closed"):
        old.search(SEED_QUESTION, k=1, mode="lexical")  # closed once the lease ended
    holder.close()


def test_an_index_deleted_and_rebuilt_in_place_is_picked_up(tmp_path):
    """Version numbers restart at 1 in a rebuilt index: the holder must notice by identity."""
    import shutil

    from qa.server import IndexHolder

    index_dir = tmp_path / "index"
    build(index_dir, *SEEDS)
    holder = IndexHolder(index_dir, embedder=HashEmbedder(), reload_interval_s=3600)
    holder.start()
    with holder.lease() as old:
        assert old.version == 1
    shutil.rmtree(index_dir)
    extra = write_articles(tmp_path / "extra", {k: v for k, v in EXTRA.items() if k.startswith("wire/")})
    build(index_dir, extra)
    assert holder.check_now()
    with holder.lease() as new:
        assert new.version == 1 and new.index_id != old.index_id
        assert new.stats().articles == 1
    holder.close()


def test_fifty_simultaneous_requests_are_all_answered_correctly(corpus):
    questions = [SEED_QUESTION, "quokka census", "telecom fraud 2019", "国际执法合作", "那2021年呢？"]
    app = create_app(corpus[1], embedder=HashEmbedder())
    with serve_in_thread(app) as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            expected = {q: passage_keys(http.post("/api/ask", json={"question": q, "top_k": 4}).json()) for q in questions}

        barrier = threading.Barrier(50)

        def ask(i: int):
            q = questions[i % len(questions)]
            with httpx.Client(base_url=url, timeout=60) as http:
                barrier.wait()
                r = http.post("/api/ask", json={"question": q, "top_k": 4})
            return q, r.status_code, r.json()

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(ask, range(50)))
    for q, status, body in results:
        assert status == 200, body
        assert passage_keys(body) == expected[q]


# --- the qa serve command ---------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_qa_serve_command(corpus, tmp_path):
    import os
    import subprocess
    import sys

    port = _free_port()
    env = {**os.environ, "QA_INDEX": str(corpus[1]), "QA_PORT": str(port)}  # the defaults for --index and --port
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        first = proc.stdout.readline() + proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first and str(corpus[1]) in first, first
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        r = httpx.get(f"http://127.0.0.1:{port}/api/ask", params={"q": SEED_QUESTION, "mode": "lexical"})
        assert "32.2万起" in r.json()["passages"][0]["text"]
        status, body = raw_request(f"http://127.0.0.1:{port}", f"GET /api/ask?q={SEED_QUESTION} HTTP/1.1".encode())
        assert status == 400 and body["error"]["code"] == "bad_request"  # qa serve runs uvicorn our way

        # the port is now taken: a second server says so, naming both ways to pick another, and exits 2
        second = subprocess.run(
            [sys.executable, "-m", "qa.cli", "serve", "--index", str(tmp_path)],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert second.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "--port N or QA_PORT=N" in second.stderr and "start.sh reads QA_PORT" in second.stderr
        refused = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--index", str(tmp_path)],
                                 capture_output=True, text=True, timeout=60, env={**env, "QA_PORT": "eighty"})  # fmt: skip
        assert refused.returncode == 2 and "QA_PORT must be a port number, not 'eighty'" in refused.stderr
        # a model that cannot be loaded: one line, exit 2, before listening
        bad = subprocess.run(
            [sys.executable, "-m", "qa.cli", "serve", "--index", str(tmp_path), "--port", str(_free_port()),
             "--model", str(tmp_path / "no-such-model")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert bad.returncode == 2 and "no-such-model" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- the real default model -----------------------------------------------------


@pytest.fixture(scope="module")
def real_client(tmp_path_factory):
    """The seeds indexed with the real default model; the server loads the model the
    manifest names (no embedder given), once."""
    from qa.loader import load_embedder

    index_dir = tmp_path_factory.mktemp("real") / "index"
    build(index_dir, *SEEDS, embedder=load_embedder())
    with TestClient(create_app(index_dir), base_url=LOCAL) as c:
        yield c


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_real_default_model_answers_the_seed_question(real_client, mode):
    r = real_client.post("/api/ask", json={"question": SEED_QUESTION, "mode": mode})
    assert r.status_code == 200, r.text
    top = r.json()["passages"][0]
    assert "32.2万起" in top["text"]
    assert top["citation"]["url"] == SEED_000_URL
    with real_client.app.state.holder.lease() as index:
        embedder = index.embedder  # the model the index names, loaded on the first dense question
        assert embedder.loaded and embedder.backend != "hash"
        from qa.embed import BatchingEmbedder
        from qa.onnx_embed import OnnxEmbedder

        served = embedder.embedder()  # the serving path: ONNX, questions batched
        assert isinstance(served, BatchingEmbedder) and isinstance(served.inner, OnnxEmbedder)
    stats = real_client.get("/api/stats").json()
    assert stats["model"] == embedder.model
