"""Fuzz the HTTP API: generated requests, counted by status; every 5xx and malformed error shown.

Not run in CI (a few minutes). By default it builds a small index from
examples/articles with the fake HashEmbedder, serves it with
:func:`qa.server.serve_in_thread` behind a token, a rate limit and the default
Host allow-list, and sends ``--requests`` requests drawn by hypothesis:

- ``POST /api/ask``: bodies near the schema (good values, values at and past every
  limit, wrong types, extra keys, lone surrogates, dates at the edges of the
  calendar), bodies that are not JSON, nested too deep or over the size limit;
- ``GET /api/ask`` with generated query strings (bytes that are not UTF-8 too),
  ``GET /api/articles/<id>`` with real and generated ids;
- every method on the other paths, HEAD included;
- each with a Host and an Authorization header that are right most of the time.

Every answer must be below 500, carry the security headers, and every error must
have the one shape ``{"error": {"code", "message"}}``. Exit status 1 otherwise.

    python eval/fuzz_api.py [--requests 10000] [--seed 0]
    python eval/fuzz_api.py --url http://127.0.0.1:8000 [--token T]   # a server already running
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "fuzz-token-0123456789"
SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
TEXT = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=1200),  # around the 1,000-character limit
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), SURROGATES, st.text(max_size=5)),
    st.sampled_from(["", " ", "\u3000\n\t", "\x00", "诈骗", "那2021年呢？", "telecom fraud", "问" * 1000, "问" * 1001]),
)
DATES = st.one_of(
    st.sampled_from([
        "2021", "2021-04", "2021-04-10", "2021-02-30", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-14:00",
        "0000-01-01", "10000-01-01", "2021-04-10T25:00:00", "yesterday", "", "20210410", "2021-13", "9999",
    ]),
    TEXT,
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.sampled_from([10**400, -(10**30)]), TEXT
)
JUNK = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=8)  # fmt: skip


def maybe(good, bad=JUNK, one_in: int = 6):
    """Mostly a good value; one time in ``one_in`` anything at all."""
    return st.integers(1, one_in).flatmap(lambda i: bad if i == 1 else good)


FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "date_from": maybe(DATES),
        "date_to": maybe(DATES),
        "sources": maybe(st.lists(maybe(st.sampled_from(["联合早报", "新浪财经", "Nope"]) | TEXT), max_size=120)),
        "tags": maybe(st.lists(TEXT, max_size=5)),
        "max_per_article": maybe(st.integers(-2, 60)),
        "colour": JUNK,
    },
)
ASK_BODIES = st.fixed_dictionaries(
    {"question": maybe(TEXT | st.sampled_from(["2020年破获了多少电信网络诈骗案件？", "telecom fraud", "高雄輕軌"]))},
    optional={
        "top_k": maybe(st.integers(-2, 60) | st.sampled_from([True, 5.0, "5"])),
        "mode": maybe(st.sampled_from(["dense", "lexical", "hybrid", "fuzzy"])),
        "filters": maybe(FILTERS),
        "history": maybe(st.lists(maybe(TEXT), max_size=25)),
        "topk": JUNK,
    },
)
RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[]", b'"x"', b"null", b"[" * 5000, b'{"question": "x"' + b" " * 70_000 + b"}"]),
    JUNK.map(lambda v: json.dumps(v).encode()),
)
QUERY_KEYS = st.sampled_from(["q", "q", "k", "mode", "date_from", "date_to", "source", "zzz"])
QUERY_VALUES = st.one_of(TEXT, DATES, st.integers(-5, 99).map(str), st.sampled_from(["true", "1.0", "1e1", "dense"]))
PATHS = st.sampled_from([
    "/", "/static/app.js", "/static/app.css", "/static/nope.js", "/static/../pyproject.toml", "/docs", "/redoc",
    "/openapi.json", "/api/health", "/api/stats", "/api/ask", "/api/nothing", "/api", "/docs-assets/swagger-ui.css",
])  # fmt: skip
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])


def encode(text: str) -> str:
    """Percent-encoded UTF-8, lone surrogates included (as the bytes a hostile client would send)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


KINDS = ["post body", "post body", "post body", "raw body", "query string", "query string", "article", "other"]


@st.composite
def requests(draw, article_ids: list[str], host: str, token: str | None) -> tuple[str, str, str, dict, bytes]:
    """(kind, method, path with query, headers, body) of one request."""
    bad_hosts = st.sampled_from(["evil.example", "localhost.evil", "[::2]:1", "0.0.0.0", ""])
    headers = {"host": draw(maybe(st.just(host), bad_hosts, one_in=12))}
    if token:
        bad_auth = st.sampled_from(["", "Bearer", "Bearer x", token, "Basic x", f"Bearer {token}x"])
        auth = draw(maybe(st.just(f"Bearer {token}"), bad_auth, one_in=12))
        if auth:
            headers["authorization"] = auth
    kind = draw(st.sampled_from(KINDS))
    if kind == "post body":
        body = json.dumps(draw(ASK_BODIES)).encode()  # ensure_ascii: a lone surrogate travels as \ud800
        return kind, "POST", "/api/ask", {**headers, "content-type": "application/json"}, body
    if kind == "raw body":
        content_type = draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
        return kind, "POST", "/api/ask", {**headers, "content-type": content_type}, draw(RAW_BODIES)
    if kind == "query string":
        pairs = [("q", draw(TEXT))] + draw(st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=5))
        query = "&".join(f"{encode(k)}={encode(v)}" for k, v in draw(st.permutations(pairs)))
        return kind, draw(st.sampled_from(["GET", "GET", "HEAD"])), f"/api/ask?{query}", headers, b""
    if kind == "article":
        others = st.one_of(TEXT, st.sampled_from(["../../etc/passwd", "%00", "x" * 5000]))
        article = draw(maybe(st.sampled_from(article_ids), others, one_in=2))
        return kind, "GET", "/api/articles/" + encode(article), headers, b""
    return kind, draw(METHODS), draw(PATHS), headers, draw(st.sampled_from([b"", b"{}", b"x" * 100]))


def check(response: httpx.Response, method: str) -> str | None:
    """Why this answer is wrong, or None."""
    if response.status_code >= 500:
        return f"status {response.status_code}"
    if response.headers.get("x-content-type-options") != "nosniff" or "content-security-policy" not in response.headers:
        return "no security headers"
    if response.status_code >= 400 and method != "HEAD":
        try:
            body = response.json()
        except ValueError:
            return "error body is not JSON"
        if not (isinstance(body, dict) and set(body) == {"error"} and set(body["error"]) == {"code", "message"}):
            return f"error body of another shape: {response.text[:200]}"
    return None


def fuzz(url: str, token: str | None, article_ids: list[str], n: int, seed_value: int) -> int:
    """Send ``n`` generated requests to ``url``; print the counts; 0 if every answer was right."""
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    problems: list[str] = []
    host = urlsplit(url).netloc
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as http:

        @seed(seed_value)
        @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(requests(article_ids, host, token))
        def send(request: tuple[str, str, str, dict, bytes]) -> None:
            kind, method, path, headers, body = request
            try:
                response = http.request(method, path, headers=headers, content=body or None)
            except httpx.TransportError as exc:  # the server dropped the connection: as bad as a 500
                statuses[-1] += 1
                problems.append(f"{kind}: {method} {path[:120]} ({len(body)} bytes): connection {type(exc).__name__}")
                return
            statuses[response.status_code] += 1
            kinds[f"{kind} {response.status_code}"] += 1
            if response.status_code >= 400 and method != "HEAD":
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    codes[response.json()["error"]["code"]] += 1
            why = check(response, method)
            if why:
                problems.append(f"{kind}: {method} {path[:120]} {body[:120]!r}: {why}")

        send()
    seconds = time.perf_counter() - started
    total = sum(statuses.values())
    print(f"{total} requests in {seconds:.0f} s ({total / seconds:.0f}/s)")
    print("by status: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items())))
    for kind in dict.fromkeys(KINDS):
        counts = sorted((int(k.rsplit(" ", 1)[1]), c) for k, c in kinds.items() if k.startswith(kind + " "))
        print(f"  {kind:13} " + ", ".join(f"{s}: {c}" for s, c in counts))
    print("error codes: " + ", ".join(f"{k}: {c}" for k, c in codes.most_common()))
    fivexx = sum(c for s, c in statuses.items() if s >= 500 or s < 0)
    print(f"5xx or dropped connections: {fivexx}; wrong answers (5xx, headers or error shape): {len(problems)}")
    for line in problems[:20]:
        print("  " + line)
    return 1 if problems else 0


def build_index(folder: Path) -> tuple[Path, list[str]]:
    """examples/articles indexed with the fake HashEmbedder; (index dir, article ids)."""
    from qa.embed import HashEmbedder
    from qa.index import Index
    from qa.ingest import iter_articles
    from qa.records import ReadReport

    index_dir = folder / "index"
    articles = list(iter_articles([ROOT / "examples" / "articles"], ReadReport()))
    Index.update(index_dir, articles, HashEmbedder(), progress=False)
    return index_dir, [a.id for a in articles]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="how many (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="fuzz a server already running here instead of starting one")
    parser.add_argument("--token", help="its token, if it has one")
    args = parser.parse_args(argv)
    if args.url:
        return fuzz(args.url, args.token, ["url:0000000000000000"], args.requests, args.seed)

    from qa.embed import HashEmbedder
    from qa.middleware import RateLimit
    from qa.server import create_app, serve_in_thread

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qa-fuzz-")))
        index_dir, article_ids = build_index(folder)
        limit = RateLimit(per_second=1e6, burst=10**6, exempt_loopback=False)  # runs the limiter, never refuses
        app = create_app(index_dir, embedder=HashEmbedder(), token=TOKEN, rate_limit=limit)
        url = stack.enter_context(serve_in_thread(app))
        return fuzz(url, TOKEN, article_ids, args.requests, args.seed)


if __name__ == "__main__":
    sys.exit(main())
