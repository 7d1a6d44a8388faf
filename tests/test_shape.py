"""One answer shape everywhere (issue 13, item 2).

``qa ask --json``, ``qa ask --server URL --json``, ``GET /api/ask``, ``POST /api/ask``
and the library's :meth:`qa.answer.Answer.to_json` describe the same search with the
same JSON, refuse the same mistakes with the same code and message, and share one
limit on k. A small index built with the fake model by the library, as ``qa index``
builds it (the CLI and the server both load the model the index names).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa.answer import MAX_TOP_K, Answer, ask
from qa.cli import main
from qa.embed import HashEmbedder
from qa.index import MAX_K, Index, sync_folders
from qa.records import ReadReport, SearchFilters
from qa.server import create_app, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "2020年破获了多少电信网络诈骗案件？"
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("shape")
    shutil.copytree(ROOT / "examples" / "articles", base / "articles")
    sync_folders(base / "index", [base / "articles"], HashEmbedder(), ReadReport(), progress=False)  # as `qa index`
    return base / "index"


@pytest.fixture(scope="module")
def client(index_dir):
    with TestClient(create_app(index_dir), base_url=LOCAL) as c:
        yield c


def cli_json(capsys, *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["ask", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def untimed(answer: dict) -> dict:
    assert isinstance(answer.pop("took_ms"), float)
    return answer


CASES = [
    ([QUESTION, "-k", "3"], {"q": QUESTION, "k": 3}, {"question": QUESTION, "top_k": 3}),
    (["  电信网络诈骗 ", "--mode", "lexical", "--source", "新浪财经"],
     {"q": "  电信网络诈骗 ", "mode": "lexical", "source": "新浪财经"},
     {"question": "  电信网络诈骗 ", "mode": "lexical", "filters": {"sources": ["新浪财经"]}}),
    (["telecom fraud from abroad", "--mode", "dense", "--from", "2021", "--to", "2022-07"],
     {"q": "telecom fraud from abroad", "mode": "dense", "date_from": "2021", "date_to": "2022-07"},
     {"question": "telecom fraud from abroad", "mode": "dense", "filters": {"date_from": "2021", "date_to": "2022-07"}}),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "params", "body"), CASES)
def test_qa_ask_json_is_the_api_answer(index_dir, client, capsys, argv, params, body):
    code, from_cli = cli_json(capsys, *argv, "--index", str(index_dir))
    assert code == 0
    get = client.get("/api/ask", params=params)
    post = client.post("/api/ask", json=body)
    assert get.status_code == post.status_code == 200, (get.text, post.text)
    assert from_cli["passages"], from_cli
    assert untimed(from_cli) == untimed(get.json()) == untimed(post.json())


def test_the_library_json_form_is_the_same(index_dir, client):
    with Index.open(index_dir) as index:
        answer = ask(index, QUESTION, k=4, mode="hybrid", filters=SearchFilters(sources=("联合早报",)))
    assert isinstance(answer, Answer)
    api = client.get("/api/ask", params={"q": QUESTION, "k": 4, "source": "联合早报"}).json()
    assert untimed(answer.to_json()) == untimed(api)
    first = answer.to_json()["passages"][0]
    assert set(first) == {"rank", "score", "chunk_id", "text", "highlights", "best_sentence", "citation",
                          "dense_score", "lexical_score", "relevance", "language"}  # fmt: skip
    assert "answerable" in answer.to_json()
    assert all(isinstance(span, list) and len(span) == 2 for span in first["highlights"])  # [start, end]
    assert first["citation"]["paragraphs"].startswith("¶")


def test_a_follow_up_is_answered_alike_by_the_library_and_the_api(index_dir, client):
    history = [QUESTION]
    with Index.open(index_dir) as index:
        library = ask(index, "那2021年呢？", history=history).to_json()
    api = client.post("/api/ask", json={"question": "那2021年呢？", "history": history}).json()
    assert api["follow_up"] is True and api["searched"] == "2021年破获了多少电信网络诈骗案件？"
    assert untimed(library) == untimed(api)


def test_qa_ask_server_json_is_qa_ask_json(index_dir, capsys):
    with serve_in_thread(create_app(index_dir)) as url:
        code, remote = cli_json(capsys, QUESTION, "-k", "3", "--server", url)
        assert code == 0
        code, error = cli_json(capsys, "   ", "--server", url)
        assert code == 2 and error == {"error": {"code": "invalid_request", "message": "the question is empty"}}
    code, local = cli_json(capsys, QUESTION, "-k", "3", "--index", str(index_dir))
    assert code == 0 and untimed(remote) == untimed(local)


# --- errors: one code per mistake, the same message ------------------------------------


ERROR_CASES = [
    # (qa ask arguments, GET parameters, POST body), all refused alike
    (["   "], {"q": "   "}, {"question": "   "}),
    (["问" * 1001], {"q": "问" * 1001}, {"question": "问" * 1001}),
    (["x", "--from", "2021-02-30"], {"q": "x", "date_from": "2021-02-30"},
     {"question": "x", "filters": {"date_from": "2021-02-30"}}),
    (["x", "--to", "yesterday"], {"q": "x", "date_to": "yesterday"}, {"question": "x", "filters": {"date_to": "yesterday"}}),
    (["x", "--from", "2022", "--to", "2021"], {"q": "x", "date_from": "2022", "date_to": "2021"},
     {"question": "x", "filters": {"date_from": "2022", "date_to": "2021"}}),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "params", "body"), ERROR_CASES)
def test_a_mistake_gets_one_code_and_one_message_everywhere(index_dir, client, capsys, argv, params, body):
    code, from_cli = cli_json(capsys, *argv, "--index", str(index_dir))
    get, post = client.get("/api/ask", params=params), client.post("/api/ask", json=body)
    assert code == 2 and get.status_code == post.status_code == 422
    assert from_cli == get.json() == post.json()
    assert from_cli["error"]["code"] == "invalid_request"


def test_one_limit_on_k(index_dir, client, capsys):
    assert MAX_TOP_K == MAX_K == 100
    for k in (1, MAX_K):
        code, from_cli = cli_json(capsys, "诈骗", "-k", str(k), "--index", str(index_dir), "--mode", "lexical")
        assert code == 0
        assert client.get("/api/ask", params={"q": "诈骗", "k": k, "mode": "lexical"}).status_code == 200
        assert client.post("/api/ask", json={"question": "诈骗", "top_k": k, "mode": "lexical"}).status_code == 200
    for k in (0, MAX_K + 1):
        code, from_cli = cli_json(capsys, "诈骗", "-k", str(k), "--index", str(index_dir))
        get = client.get("/api/ask", params={"q": "诈骗", "k": k})
        post = client.post("/api/ask", json={"question": "诈骗", "top_k": k})
        assert code == 2 and from_cli == get.json()
        assert from_cli["error"]["message"] == f"k must be a whole number from 1 to {MAX_K}, not {k}"
        assert post.json() == {"error": {"code": "invalid_request",
                                         "message": f"top_k must be a whole number from 1 to {MAX_K}, not {k}"}}
    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["AskRequest"]["properties"]["top_k"]["maximum"] == MAX_K
    get_k = next(p for p in schema["paths"]["/api/ask"]["get"]["parameters"] if p["name"] == "k")
    assert get_k["schema"]["maximum"] == MAX_K


def test_the_schema_documents_the_answer_and_a_history_item(client):
    schema = client.get("/openapi.json").json()
    parts = schema["components"]["schemas"]
    for path, method in (("/api/ask", "get"), ("/api/ask", "post")):
        ok = schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/Answer"}
    passage = parts["Passage"]["properties"]
    assert "[start, end)" in passage["highlights"]["description"]
    assert parts["Answer"]["examples"][0]["passages"][0]["highlights"] == [[18, 23]]
    history = parts["AskRequest"]["properties"]["history"]
    assert history["items"]["type"] == "string"
    assert "oldest first" in history["description"] and "string" in history["description"]


def test_a_history_item_that_is_not_a_string_says_what_one_is(client):
    r = client.post("/api/ask", json={"question": "那2021年呢？", "history": [{"question": QUESTION}]})
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert message.startswith("history.0: each history item is an earlier question, as a string"), message


def test_every_field_of_the_records_reaches_the_json():
    """The shape is built from the records: what a Hit and a SearchResult carry, the JSON carries."""
    from qa.records import Citation, Hit, SearchResult, Span

    citation = Citation("a1", "标题", "联合早报", None, "2021-04-10T09:42:12Z", 3, 4, "000.md")
    hit = Hit(1, 0.5, "c1", "正文。", (Span(0, 2),), Span(0, 3), citation, 0.5, 2.0, relevance=0.25)
    result = SearchResult("正文", "hybrid", (hit,), 0.01, answerable=False)
    got = Answer.from_result("正文", result, follow_up=False, took_ms=10.0).to_json()
    assert got == {
        "question": "正文", "searched": "正文", "follow_up": False, "mode": "hybrid", "took_ms": 10.0,
        "answerable": False,
        "passages": [{"rank": 1, "score": 0.5, "chunk_id": "c1", "text": "正文。", "highlights": [[0, 2]],
                      "best_sentence": [0, 3], "dense_score": 0.5, "lexical_score": 2.0, "relevance": 0.25,
                      "language": "zh-Hans",
                      "citation": {"article_id": "a1", "title": "标题", "source": "联合早报", "url": None,
                                   "published": "2021-04-10T09:42:12Z", "paragraphs": "¶3–4", "para_start": 3,
                                   "para_end": 4, "path": "000.md"}}],
    }  # fmt: skip


@pytest.mark.parametrize(("question", "language"), [
    ("2020年破获了多少电信网络诈骗案件？", "zh-Hans"),
    ("高雄輕軌環狀線何時全線通車？", "zh-Hant"),
    ("Rotterdam river water heat pumps", "en"),
])  # fmt: skip
def test_each_passage_says_its_language_as_its_article_is_read(index_dir, question, language):
    """A passage's ``language`` (what the page declares as its lang) follows qa.lang's rule:
    a passage of a one-language article is in the article's language (zh-Hans, zh-Hant, en)."""
    with Index.open(index_dir) as index:
        passages = ask(index, question, k=20, mode="lexical").to_json()["passages"]
        assert passages
        for passage in passages:
            assert passage["language"] == index.article(passage["citation"]["article_id"]).language, passage
    assert language in {p["language"] for p in passages}


def test_the_language_is_the_passages_not_the_articles():
    """An English paragraph quoted in a Chinese article is declared English, and text with no
    letters at all is "und" (undetermined), as qa.lang says."""
    from qa.records import Citation, Hit, SearchResult

    citation = Citation("a1", "标题", "联合早报", None, None, 1, 1, "000.md")
    texts = ["The ministry said telecom fraud from abroad fell sharply last year.", "2020 — 32.2 %", "詐騙案件數量大幅下降，警方表示將繼續打擊。"]
    hits = tuple(Hit(i + 1, 0.5, f"c{i}", text, (), None, citation, 0.5, None) for i, text in enumerate(texts))
    got = Answer.from_result("x", SearchResult("x", "dense", hits, 0.01), follow_up=False, took_ms=1.0).to_json()
    assert [p["language"] for p in got["passages"]] == ["en", "und", "zh-Hant"]
