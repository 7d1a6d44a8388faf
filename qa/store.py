"""The SQLite store of an index: articles, chunks, their vectors and tokens.

One file, ``store.sqlite``, that a person can open with ``sqlite3`` and query.

- ``articles``: one row per article, every field of :class:`qa.records.Article`
  (tags and paragraphs as JSON arrays) and ``content_hash``, a hash of all of
  them, which is how an update tells an unchanged article from a changed one.
- ``chunks``: one row per chunk. Its ``row`` (INTEGER PRIMARY KEY, never
  reused) is the id of its vector in the FAISS index and of its document in
  the BM25 index. It keeps the chunk's place in the article (paragraph range,
  character span), the text shown to people, ``embed_hash`` (SHA-256 of the
  text that was embedded), the BM25 tokens (a JSON array, so BM25 can be
  rebuilt without tokenizing again) and the embedding (float32 little-endian
  BLOB, so an unchanged chunk is never embedded again).

Search filters (:class:`qa.records.SearchFilters`) become one SQL query that
returns the allowed chunk rows.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qa.errors import ArticleNotFound, IndexCorrupt, InvalidQuery
from qa.records import Article, Chunk, Citation, SearchFilters

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id           TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    source       TEXT NOT NULL,
    url          TEXT,
    published    TEXT,            -- ISO 8601 UTC, YYYY-MM-DDTHH:MM:SSZ
    tags         TEXT NOT NULL,   -- JSON array
    language     TEXT NOT NULL,
    path         TEXT NOT NULL,
    paragraphs   TEXT NOT NULL,   -- JSON array
    editor       TEXT,
    format       TEXT NOT NULL,
    content_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE TABLE IF NOT EXISTS chunks (
    row        INTEGER PRIMARY KEY AUTOINCREMENT,  -- the vector / BM25 document id
    id         TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,                   -- 0-based order in the article
    para_start INTEGER NOT NULL,
    para_end   INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end   INTEGER NOT NULL,
    text       TEXT NOT NULL,
    embed_hash TEXT NOT NULL,                      -- SHA-256 of Chunk.embed_text
    tokens     TEXT NOT NULL,                      -- JSON array of BM25 tokens
    embedding  BLOB NOT NULL                       -- float32 little-endian
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS chunks_embed_hash ON chunks(embed_hash);
"""

_FLOAT32 = np.dtype("<f4")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def article_hash(article: Article) -> str:
    """A hash of every field of the article: equal hashes mean an unchanged article."""
    fields = [
        article.id, article.title, article.source, article.url, article.published,
        list(article.tags), article.language, article.path, list(article.paragraphs),
        article.editor, article.format,
    ]
    return text_hash(json.dumps(fields, ensure_ascii=False))


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with the citation of its article (what a hit is built from)."""

    row: int
    chunk_id: str
    article_id: str
    para_start: int
    para_end: int
    text: str
    citation: Citation


# --- filters -----------------------------------------------------------------

_YEAR = re.compile(r"^\d{4}$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def filter_time(value: str, *, end: bool) -> str:
    """A filter bound as the ISO UTC string stored in ``articles.published``.

    A date (``2020-03-01``), a month (``2020-03``) or a year (``2020``) as an
    end bound means its whole span, to its last second. Date-times with an
    offset are converted to UTC; without one they are taken as UTC.
    Raises InvalidQuery for anything else.
    """
    text = str(value).strip()
    try:
        if _YEAR.match(text):
            start = datetime(int(text), 1, 1)
            stop = datetime(int(text), 12, 31, 23, 59, 59)
        elif m := _MONTH.match(text):
            year, month = int(m[1]), int(m[2])
            start = datetime(year, month, 1)
            nxt = datetime(year + (month == 12), month % 12 + 1, 1)
            stop = datetime.fromtimestamp(
                nxt.replace(tzinfo=timezone.utc).timestamp() - 1, timezone.utc
            ).replace(tzinfo=None)
        elif m := _DAY.match(text):
            start = datetime(int(m[1]), int(m[2]), int(m[3]))
            stop = start.replace(hour=23, minute=59, second=59)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is not None:
                moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
            start = stop = moment.replace(microsecond=0)
    except ValueError:
        raise InvalidQuery(
            f"invalid date {value!r}: use YYYY-MM-DD (or YYYY, YYYY-MM, or an ISO 8601 date-time)"
        ) from None
    return (stop if end else start).strftime("%Y-%m-%dT%H:%M:%SZ")


def filter_sql(filters: SearchFilters) -> tuple[str, list] | None:
    """The WHERE clause (over ``articles a``) and its parameters; None: no restriction."""
    clauses: list[str] = []
    params: list = []
    lo = filter_time(filters.date_from, end=False) if filters.date_from else None
    hi = filter_time(filters.date_to, end=True) if filters.date_to else None
    if lo and hi and lo > hi:
        raise InvalidQuery(f"the date range is empty: {filters.date_from} is after {filters.date_to}")
    if lo:
        clauses.append("a.published >= ?")
        params.append(lo)
    if hi:
        clauses.append("a.published <= ?")
        params.append(hi)
    if filters.sources:
        clauses.append(f"a.source IN ({','.join('?' * len(filters.sources))})")
        params.extend(filters.sources)
    if filters.tags:
        clauses.append(
            "EXISTS (SELECT 1 FROM json_each(a.tags) t "
            f"WHERE t.value IN ({','.join('?' * len(filters.tags))}))"
        )
        params.extend(filters.tags)
    if not clauses:
        return None
    return " AND ".join(clauses), params


# --- the store ---------------------------------------------------------------


class Store:
    """One ``store.sqlite`` file. Read-only stores are safe to share between threads."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        try:
            if readonly:
                if not self.path.is_file():
                    raise IndexCorrupt(f"{self.path} is missing")
                # the files of a generation never change once written: immutable
                uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                # autocommit: transactions are explicit (see transaction())
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.executescript(SCHEMA)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("SELECT count(*) FROM chunks").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"{self.path} is not a readable index store ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise IndexCorrupt(f"{self.path}: {exc}") from exc

    # --- writing (one transaction per update) ---

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside is committed together, or not at all."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def article_hashes(self) -> dict[str, str]:
        return dict(self._query("SELECT id, content_hash FROM articles"))

    def embeddings_by_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored embeddings of chunks whose embedded text has one of these hashes."""
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(hashes))
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = (
                "SELECT embed_hash, embedding FROM chunks "
                f"WHERE embed_hash IN ({','.join('?' * len(part))})"
            )
            for digest, blob in self._query(sql, part):
                found[digest] = np.frombuffer(blob, dtype=_FLOAT32)
        return found

    def delete_articles(self, article_ids: Iterable[str]) -> list[int]:
        """Delete articles and their chunks; returns the chunk rows that are gone."""
        gone: list[int] = []
        for article_id in article_ids:
            rows = self._db.execute("SELECT row FROM chunks WHERE article_id = ?", (article_id,))
            gone.extend(r for (r,) in rows)
            self._db.execute("DELETE FROM articles WHERE id = ?", (article_id,))
        return gone

    def add_article(
        self,
        article: Article,
        chunks: Sequence[Chunk],
        tokens: Sequence[Sequence[str]],
        embeddings: np.ndarray,
    ) -> list[int]:
        """Insert an article and its chunks; returns the new chunk rows, in order."""
        self._db.execute(
            "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                article.id, article.title, article.source, article.url, article.published,
                json.dumps(list(article.tags), ensure_ascii=False), article.language,
                article.path, json.dumps(list(article.paragraphs), ensure_ascii=False),
                article.editor, article.format, article_hash(article),
            ),
        )
        rows = []
        for position, (chunk, toks, vector) in enumerate(zip(chunks, tokens, embeddings, strict=True)):
            cursor = self._db.execute(
                "INSERT INTO chunks (id, article_id, position, para_start, para_end, char_start,"
                " char_end, text, embed_hash, tokens, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    chunk.id, article.id, position, chunk.para_start, chunk.para_end,
                    chunk.char_start, chunk.char_end, chunk.text, text_hash(chunk.embed_text),
                    json.dumps(list(toks), ensure_ascii=False),
                    np.asarray(vector, dtype=_FLOAT32).tobytes(),
                ),
            )
            rows.append(int(cursor.lastrowid))
        return rows

    # --- reading ---

    def rows(self) -> np.ndarray:
        """Every chunk row, ascending."""
        return np.array([r for (r,) in self._query("SELECT row FROM chunks ORDER BY row")], dtype=np.int64)

    def embeddings(self, dimension: int, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, vectors) of every chunk, ascending, in batches."""
        last = -1
        while True:
            part = self._query(
                "SELECT row, embedding FROM chunks WHERE row > ? ORDER BY row LIMIT ?", (last, batch)
            )
            if not part:
                return
            rows = np.array([r for r, _ in part], dtype=np.int64)
            vectors = np.frombuffer(b"".join(blob for _, blob in part), dtype=_FLOAT32)
            if vectors.size != len(rows) * dimension:
                raise IndexCorrupt(f"{self.path}: stored vectors are not {dimension}-dimensional")
            yield rows, vectors.reshape(len(rows), dimension)
            last = int(rows[-1])

    def tokens(self) -> tuple[np.ndarray, list[list[str]]]:
        """(rows ascending, the BM25 tokens of each)."""
        part = self._query("SELECT row, tokens FROM chunks ORDER BY row")
        return (
            np.array([r for r, _ in part], dtype=np.int64),
            [json.loads(t) for _, t in part],
        )

    def chunk_rows(self, rows: Iterable[int]) -> dict[int, ChunkRow]:
        """The stored chunks with these rows, with their articles' citations."""
        wanted = list(dict.fromkeys(int(r) for r in rows))
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = (
                "SELECT c.row, c.id, c.article_id, c.para_start, c.para_end, c.text,"
                " a.title, a.source, a.url, a.published, a.path"
                " FROM chunks c JOIN articles a ON a.id = c.article_id"
                f" WHERE c.row IN ({','.join('?' * len(part))})"
            )
            for row, cid, aid, p0, p1, text, title, source, url, published, path in self._query(sql, part):
                out[row] = ChunkRow(
                    row=row, chunk_id=cid, article_id=aid, para_start=p0, para_end=p1, text=text,
                    citation=Citation(
                        article_id=aid, title=title, source=source, url=url, published=published,
                        para_start=p0, para_end=p1, path=path,
                    ),
                )
        return out

    def article(self, article_id: str) -> Article:
        found = self._query(
            "SELECT id, title, source, url, published, tags, language, path, paragraphs, editor, format"
            " FROM articles WHERE id = ?",
            (article_id,),
        )
        if not found:
            raise ArticleNotFound(f"no article with id {article_id!r} in this index")
        aid, title, source, url, published, tags, language, path, paragraphs, editor, fmt = found[0]
        return Article(
            id=aid, title=title, source=source, url=url, published=published,
            tags=tuple(json.loads(tags)), language=language, path=path,
            paragraphs=tuple(json.loads(paragraphs)), editor=editor, format=fmt,
        )

    def allowed_rows(self, filters: SearchFilters | None) -> np.ndarray | None:
        """The chunk rows the filters allow (ascending), or None when nothing is filtered."""
        where = filter_sql(filters) if filters is not None else None
        if where is None:
            return None
        clause, params = where
        found = self._query(
            f"SELECT c.row FROM chunks c JOIN articles a ON a.id = c.article_id WHERE {clause}"
            " ORDER BY c.row",
            params,
        )
        return np.array([r for (r,) in found], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        ((articles, sources),) = self._query("SELECT count(*), count(DISTINCT NULLIF(source, '')) FROM articles")
        ((chunks,),) = self._query("SELECT count(*) FROM chunks")
        return {"articles": articles, "chunks": chunks, "sources": sources}

    def date_range(self) -> tuple[str | None, str | None]:
        ((first, last),) = self._query("SELECT min(published), max(published) FROM articles")
        return first, last

    def sources(self) -> list[tuple[str, int]]:
        """Each source with its number of articles, most first."""
        return [
            (s, n)
            for s, n in self._query(
                "SELECT source, count(*) FROM articles GROUP BY source ORDER BY count(*) DESC, source"
            )
        ]
