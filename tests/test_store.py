"""The SQLite store: round trips, deletes, transactions, and filters against plain Python."""

from __future__ import annotations

import random
import sqlite3

import numpy as np
import pytest

from qa.errors import ArticleNotFound, IndexCorrupt, InvalidQuery
from qa.records import Article, Chunk, SearchFilters
from qa.store import Store, article_hash, filter_time, text_hash

DIM = 8


def make_article(i: int, *, published="2020-01-02T03:04:05Z", source="联合早报", tags=("a",), n=3):
    paragraphs = tuple(f"文章{i}的第{p}段。Paragraph {p} of article {i}." for p in range(1, n + 1))
    return Article(
        id=f"https://example.com/{i}", title=f"标题 {i}", source=source,
        url=f"https://example.com/{i}", published=published, tags=tuple(tags),
        language="zh-Hans", path=f"folder/{i}.md", paragraphs=paragraphs,
        editor="编辑" if i % 2 else None, format="jekyll",
    )


def chunks_of(article: Article) -> list[Chunk]:
    out, pos = [], 0
    for p, text in enumerate(article.paragraphs, 1):
        out.append(Chunk(
            id=f"{article.id}#{p}", article_id=article.id, para_start=p, para_end=p,
            char_start=pos, char_end=pos + len(text), text=text,
            embed_text=f"{article.title}\n{text}",
        ))
        pos += len(text) + 2
    return out


def vectors_for(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def add(store: Store, article: Article, seed: int = 0) -> list[int]:
    chunks = chunks_of(article)
    tokens = [c.text.split() for c in chunks]
    with store.transaction():
        return store.add_article(article, chunks, tokens, vectors_for(len(chunks), seed))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.sqlite")
    yield s
    s.close()


def test_article_round_trip(store):
    article = make_article(1, tags=("政治", "台湾"))
    add(store, article)
    assert store.article(article.id) == article
    assert store.article_hashes() == {article.id: article_hash(article)}
    with pytest.raises(ArticleNotFound, match="nope"):
        store.article("nope")


def test_chunks_embeddings_tokens_round_trip(store):
    article = make_article(2)
    rows = add(store, article, seed=5)
    assert rows == sorted(rows) and len(rows) == 3
    np.testing.assert_array_equal(store.rows(), rows)
    got_rows, got_vectors = zip(*store.embeddings(DIM, batch=2))
    np.testing.assert_array_equal(np.concatenate(got_rows), rows)
    np.testing.assert_array_equal(np.concatenate(got_vectors), vectors_for(3, seed=5))
    token_rows, tokens = store.tokens()
    assert list(token_rows) == rows and tokens[0] == article.paragraphs[0].split()
    chunk = chunks_of(article)[1]
    found = store.embeddings_by_hash([text_hash(chunk.embed_text), "missing"])
    assert list(found) == [text_hash(chunk.embed_text)]
    np.testing.assert_array_equal(found[text_hash(chunk.embed_text)], vectors_for(3, seed=5)[1])
    cr = store.chunk_rows([rows[1], rows[1]])[rows[1]]
    assert (cr.chunk_id, cr.text, cr.para_start, cr.para_end) == (chunk.id, chunk.text, 2, 2)
    c = cr.citation
    assert (c.title, c.source, c.url, c.published, c.path, c.paragraphs) == (
        article.title, article.source, article.url, article.published, article.path, "¶2")


def test_delete_cascades_and_rows_are_never_reused(store):
    a, b = make_article(1), make_article(2)
    rows_a = add(store, a)
    rows_b = add(store, b)
    with store.transaction():
        gone = store.delete_articles([b.id])
    assert sorted(gone) == rows_b
    assert list(store.rows()) == rows_a
    assert store.counts() == {"articles": 1, "chunks": 3, "sources": 1}
    rows_b2 = add(store, b)
    assert min(rows_b2) > max(rows_b)  # a vector id always means one chunk


def test_transaction_rolls_back(store):
    add(store, make_article(1))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.delete_articles([make_article(1).id])
            store.add_article(make_article(3), chunks_of(make_article(3)), [[]] * 3, vectors_for(3))
            raise RuntimeError("killed")
    assert set(store.article_hashes()) == {make_article(1).id}
    assert len(store.rows()) == 3


def test_readonly_store(tmp_path):
    path = tmp_path / "store.sqlite"
    s = Store(path)
    add(s, make_article(1))
    s.close()
    ro = Store(path, readonly=True)
    assert ro.counts()["chunks"] == 3
    with pytest.raises(sqlite3.OperationalError):
        ro._db.execute("DELETE FROM chunks")
    ro.close()


def test_missing_or_garbage_store_is_corrupt(tmp_path):
    with pytest.raises(IndexCorrupt):
        Store(tmp_path / "missing.sqlite", readonly=True)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexCorrupt):
        Store(garbage, readonly=True)


# --- filters ------------------------------------------------------------------


def test_filter_time():
    assert filter_time("2020-03-01", end=False) == "2020-03-01T00:00:00Z"
    assert filter_time("2020-03-01", end=True) == "2020-03-01T23:59:59Z"
    assert filter_time("2020-02", end=True) == "2020-02-29T23:59:59Z"
    assert filter_time("2020-12", end=True) == "2020-12-31T23:59:59Z"
    assert filter_time("2020", end=False) == "2020-01-01T00:00:00Z"
    assert filter_time("2020-03-01T08:00:00+08:00", end=True) == "2020-03-01T00:00:00Z"
    assert filter_time("2020-03-01T08:00:00Z", end=False) == "2020-03-01T08:00:00Z"
    for bad in ["yesterday", "2020-13-01", "2020-02-30", "01/02/2020", ""]:
        with pytest.raises(InvalidQuery, match="date"):
            filter_time(bad, end=False)


def test_empty_date_range_refused(store):
    with pytest.raises(InvalidQuery, match="empty"):
        store.allowed_rows(SearchFilters(date_from="2021-01-01", date_to="2020-01-01"))


def test_filters_against_python():
    """Random articles; every filter combination equals filtering in plain Python."""
    rng = random.Random(3)
    sources = ["联合早报", "BBC", "法广", ""]
    tags = ["政治", "经济", "台湾", "科技"]
    articles = []
    for i in range(60):
        day = rng.randint(1, 28)
        published = None if i % 13 == 0 else f"2020-02-{day:02d}T{rng.randint(0, 23):02d}:30:00Z"
        articles.append(make_article(
            i, published=published, source=rng.choice(sources),
            tags=tuple(rng.sample(tags, rng.randint(0, 2))), n=rng.randint(1, 3),
        ))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.sqlite")
        rows_of = {a.id: add(store, a) for a in articles}
        assert store.allowed_rows(SearchFilters()) is None
        assert store.allowed_rows(None) is None
        for _ in range(80):
            lo = f"2020-02-{rng.randint(1, 28):02d}" if rng.random() < 0.5 else None
            hi = f"2020-02-{rng.randint(1, 28):02d}" if rng.random() < 0.5 else None
            if lo and hi and lo > hi:
                lo, hi = hi, lo
            f = SearchFilters(
                date_from=lo, date_to=hi,
                sources=tuple(rng.sample(sources, rng.randint(0, 2))),
                tags=tuple(rng.sample(tags, rng.randint(0, 2))),
            )
            expected = []
            for a in articles:
                day = a.published[:10] if a.published else None
                if (lo or hi) and day is None:
                    continue
                if lo and day < lo or hi and day > hi:  # a date-only bound covers its whole day
                    continue
                if f.sources and a.source not in f.sources:
                    continue
                if f.tags and not set(f.tags) & set(a.tags):
                    continue
                expected.extend(rows_of[a.id])
            got = store.allowed_rows(f)
            if got is None:
                assert not (lo or hi or f.sources or f.tags)
                continue
            assert got.dtype == np.int64
            assert list(got) == sorted(expected), f
        store.close()
