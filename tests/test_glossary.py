"""A user's own glossary for English questions: before the shipped one, refused clearly when
unusable, and passed by `qa ask/chat/serve --glossary` (or $QA_GLOSSARY) and create_app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa.crosslingual import Translator
from qa.embed import HashEmbedder
from qa.errors import GlossaryError
from qa.index import Index
from qa.records import Article
from qa.server import create_app
from test_crosslingual import FlatEmbedder  # every text one vector: only lexical evidence counts

QA = Path(sys.executable).parent / "qa"
QUESTION = "What did Mnuchin say about the trade talks?"


@pytest.fixture()
def glossary(tmp_path) -> Path:
    path = tmp_path / "names.tsv"
    path.write_text("# our archive's names\nMnuchin\t姆努钦\nTaiwanese\t台湾人\n", encoding="utf-8")
    return path


def test_a_user_glossary_goes_before_the_shipped_one(glossary):
    plain, own = Translator(), Translator(user_glossary=glossary)
    assert ("mnuchin", "姆努钦") in [(t.english, t.chinese) for t in own.load().translate(QUESTION)]
    assert "努钦" in own.tokens(QUESTION) and "努钦" not in plain.tokens(QUESTION)  # jieba cuts 姆/努钦, as in the text
    assert "台湾" in plain.tokens("Why did Taiwanese voters worry?")
    assert "台湾人" in own.tokens("Why did Taiwanese voters worry?")  # the user's entry wins
    assert "国民党" in own.tokens("What did the KMT say?")  # the shipped entries stay


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read the glossary"),
    ("Mnuchin 姆努钦\n", "line 1: expected 'English<TAB>中文"),
    (b"Mnuchin\t\xff\xfe\n", "is not UTF-8 text"),
])  # fmt: skip
def test_an_unusable_glossary_is_refused_at_once_with_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "names.tsv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(GlossaryError, match=message) as caught:
        Translator(user_glossary=path)
    assert str(path) in str(caught.value)
    with pytest.raises(GlossaryError):
        create_app(tmp_path / "index", glossary=path)  # a server refuses to start, not its first question


def test_the_index_searches_with_the_users_words(tmp_path, glossary):
    articles = [
        Article(id=f"a{i}", title=title, source="测试", url=None, published=None, tags=(), language="zh-Hans",
                path=f"a{i}.md", paragraphs=(text,))  # fmt: skip
        for i, (title, text) in enumerate([("贸易谈判", "姆努钦表示贸易谈判取得进展。"), ("天气", "明天上海多云转晴。"),
                                           ("股市", "今日沪深股市小幅上涨。")])  # fmt: skip
    ]
    root = tmp_path / "index"
    Index.update(root, articles, FlatEmbedder(), progress=False)
    with Index.open(root, FlatEmbedder(), translator=Translator(user_glossary=glossary)) as index:
        hits = index.search(QUESTION, k=3).hits
        assert hits[0].citation.article_id == "a0" and "努钦**" in hits[0].highlighted  # the words found, marked
        with_glossary = {h.citation.article_id: h.score for h in hits}
    with Index.open(root, FlatEmbedder()) as index:
        without = {h.citation.article_id: h.score for h in index.search(QUESTION, k=3).hits}
    assert len(set(without.values())) == 1  # nothing sets a0 apart without the user's name
    assert with_glossary["a0"] > without["a0"]


def test_the_server_opens_its_index_with_the_glossary(tmp_path, glossary):
    articles = [Article(id="a0", title="贸易谈判", source="测试", url=None, published=None, tags=(),
                        language="zh-Hans", path="a0.md", paragraphs=("姆努钦表示贸易谈判取得进展。",))]  # fmt: skip
    Index.update(tmp_path / "index", articles, HashEmbedder(), progress=False)
    with TestClient(create_app(tmp_path / "index", embedder=HashEmbedder(), glossary=glossary),
                    base_url="http://127.0.0.1") as client:  # fmt: skip
        with client.app.state.holder.lease() as index:
            assert "努钦" in index.translator.tokens(QUESTION)
        answer = client.post("/api/ask", json={"question": QUESTION}).json()
        first = answer["passages"][0]
        assert [first["text"][a:b] for a, b in first["highlights"]] == ["努钦"]


def _qa(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(QA), *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})  # fmt: skip


def test_qa_ask_takes_a_glossary_and_refuses_a_bad_one_in_one_line(tmp_path, glossary):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Mnuchin 姆努钦\n", encoding="utf-8")
    done = _qa("ask", QUESTION, "--index", str(tmp_path / "nowhere"), "--glossary", str(bad))
    assert done.returncode == 2 and done.stderr.startswith("qa ask: error: the glossary") and "line 1" in done.stderr
    from_env = _qa("ask", QUESTION, "--index", str(tmp_path / "nowhere"), env={"QA_GLOSSARY": str(bad)})
    assert from_env.returncode == 2 and "line 1" in from_env.stderr
    served = _qa("ask", QUESTION, "--server", "http://127.0.0.1:9", "--glossary", str(glossary))
    assert served.returncode == 2 and "leave out --index, --model and --glossary" in served.stderr
