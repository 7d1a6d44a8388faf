"""Serving with the real default model: concurrency, batching and a reload under load.

The fake model tests the plumbing everywhere else; here the questions go
through the real serving path (ONNX, questions batched across threads) while
`qa index`'s library call adds an article under the running server.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from qa.index import Index
from qa.ingest import iter_articles
from qa.records import ReadReport
from qa.server import create_app, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
QUESTIONS = {
    "2020年破获了多少电信网络诈骗案件？": "32.2万起",
    "What share of telecom fraud is committed from abroad?": None,
    "高雄輕軌環狀線何時全線通車？": "輕軌",
    "青岛港岸电改造": "岸电",
}
NEW_ARTICLE = """---
layout: post
title: 温州动车站新增夜间班次
date: 2024-05-02 08:00:00 +0800
from: https://example.com/wenzhou-night-trains
author: 测试日报
---
<p>温州南站自五月起新增夜间动车班次，每晚22点后增开四趟列车，方便旅客夜间出行。</p>
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    from qa.loader import load_embedder

    return load_embedder(None)


def _build(root: Path, folder: Path, model) -> None:
    Index.update(root, iter_articles([folder], ReadReport()), model, progress=False)


def test_concurrent_questions_get_the_answers_a_lone_question_gets(tmp_path, model):
    """Thirty-two questions at once (batched into shared model runs) answer exactly as one at a time."""
    root = tmp_path / "index"
    _build(root, EXAMPLES, model)
    with serve_in_thread(create_app(root)) as url:
        with httpx.Client(base_url=url, timeout=120) as http:
            alone = {q: http.post("/api/ask", json={"question": q, "top_k": 3}).json()["passages"] for q in QUESTIONS}
        for q, expected in QUESTIONS.items():
            assert alone[q], q
            if expected:
                assert expected in alone[q][0]["text"], q
        asked = list(QUESTIONS) * 8

        def ask(q: str):
            with httpx.Client(base_url=url, timeout=120) as http:
                return q, http.post("/api/ask", json={"question": q, "top_k": 3}).json()["passages"]

        with ThreadPoolExecutor(32) as pool:
            together = list(pool.map(ask, asked))
    for q, passages in together:
        assert [(p["citation"]["article_id"], p["citation"]["para_start"]) for p in passages] == [
            (p["citation"]["article_id"], p["citation"]["para_start"]) for p in alone[q]
        ], q
        assert [round(p["score"], 4) for p in passages] == [round(p["score"], 4) for p in alone[q]], q


def test_an_update_under_load_is_picked_up_and_no_request_fails(tmp_path, model):
    import shutil

    folder = tmp_path / "articles"
    shutil.copytree(EXAMPLES, folder)
    root = tmp_path / "index"
    _build(root, folder, model)
    statuses: list[int] = []
    stop = threading.Event()
    with serve_in_thread(create_app(root, reload_interval_s=0.1)) as url:

        def hammer(i: int) -> None:
            questions = list(QUESTIONS)
            with httpx.Client(base_url=url, timeout=120) as http:
                while not stop.is_set():
                    r = http.post("/api/ask", json={"question": questions[i % len(questions)], "top_k": 3})
                    statuses.append(r.status_code)
                    i += 1

        with ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(hammer, i) for i in range(4)]
            try:
                (folder / "温州.md").write_text(NEW_ARTICLE, encoding="utf-8")
                _build(root, folder, model)
                deadline = time.monotonic() + 60
                while True:
                    r = httpx.post(url + "/api/ask", json={"question": "温州南站夜间有几趟动车？", "top_k": 1}, timeout=120)
                    assert r.status_code == 200
                    if "夜间动车" in r.json()["passages"][0]["text"]:
                        break
                    assert time.monotonic() < deadline, "the new version was not picked up"
                    time.sleep(0.1)
            finally:
                stop.set()
                for w in workers:
                    w.result()
    assert statuses and set(statuses) == {200}, [s for s in statuses if s != 200][:5]
