"""The catalog: one SQLite database (``store.sqlite``), updated in place.

It holds everything but the vectors and postings (those are in the segment
files, :mod:`qa.index.segment`), in tables a person can query with
``sqlite3``:

- ``meta``: format version, index id, commit version, model, ANN kind, the
  next free chunk row.
- ``articles``: every field of :class:`qa.records.Article` (tags and
  paragraphs as JSON), ``content_hash`` (how an update tells an unchanged
  article), ``text_hash`` (duplicates by text), ``file_key`` (the file it came
  from, when it came from a folder).
- ``chunks``: one row per live chunk. ``row`` is the chunk's number in the
  segment files (never reused); ``segment`` says which segment holds its
  vector and postings; ``embed_hash`` lets an update reuse a vector.
- ``segments``: the segments of the current version; ``tombstones``: rows of
  those segments that were deleted (skipped at search, dropped by merges).
- ``files``: what the last run saw of every file (size, modification time,
  SHA-256 of its bytes, what became of it), so the next run reads only files
  that changed.
- ``sources``, ``tags``, ``terms``: names -> small integers used by the
  segment files.

Writes happen in transactions (WAL mode, ``synchronous=FULL``): a commit is
atomic and durable, and readers keep reading the previous version meanwhile.
Readers use one read-only connection per thread.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qa.errors import ArticleNotFound, IndexCorrupt, IndexWriteError
from qa.records import Article, Chunk, Citation

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
    content_hash TEXT NOT NULL,
    text_hash    TEXT NOT NULL,
    file_key     TEXT
);
CREATE INDEX IF NOT EXISTS articles_text_hash ON articles(text_hash);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_file ON articles(file_key);
CREATE TABLE IF NOT EXISTS chunks (
    row        INTEGER PRIMARY KEY,   -- position key in the segment files, never reused
    id         TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL,
    segment    INTEGER NOT NULL,
    position   INTEGER NOT NULL,      -- 0-based order in the article
    para_start INTEGER NOT NULL,
    para_end   INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end   INTEGER NOT NULL,
    text       TEXT NOT NULL,
    embed_hash TEXT NOT NULL          -- SHA-256 of Chunk.embed_text
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS chunks_embed_hash ON chunks(embed_hash);
CREATE TABLE IF NOT EXISTS segments (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,     -- its folder under segments/
    size    INTEGER NOT NULL,         -- rows in its files (live + tombstoned)
    ann     TEXT NOT NULL,            -- the vector index in its folder: flat | hnsw | ivf
    version INTEGER NOT NULL          -- the commit that made it
);
CREATE TABLE IF NOT EXISTS tombstones (row INTEGER PRIMARY KEY, segment INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_segment ON tombstones(segment);
CREATE TABLE IF NOT EXISTS files (
    key        TEXT PRIMARY KEY,      -- absolute path
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    status     TEXT NOT NULL,         -- article | duplicate | skipped
    article_id TEXT,                  -- the article it holds or duplicates
    rel        TEXT NOT NULL,         -- path relative to the folder given (for reports)
    detail     TEXT NOT NULL DEFAULT '' -- why it was skipped
);
CREATE INDEX IF NOT EXISTS files_article ON files(article_id);
CREATE TABLE IF NOT EXISTS sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
"""


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


@dataclass(frozen=True)
class FileState:
    """What the last run saw of one file."""

    key: str
    size: int
    mtime_ns: int
    sha256: str
    status: str  # "article" | "duplicate" | "skipped"
    article_id: str | None
    rel: str
    detail: str = ""


@dataclass(frozen=True)
class SegmentRecord:
    id: int
    name: str
    size: int
    ann: str
    version: int


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    return db


class Catalog:
    """The catalog of one index. ``readonly`` catalogs give each thread its own connection."""

    def __init__(self, path: Path, *, readonly: bool = False, create: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        if readonly and not self.path.is_file():
            raise IndexCorrupt(f"{self.path} is missing")
        if not readonly and not create and not self.path.is_file():
            raise IndexCorrupt(f"{self.path} is missing")
        try:
            db = self._db()
            if not readonly:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.executescript(SCHEMA)
            db.execute("SELECT count(*) FROM segments").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise IndexCorrupt(f"{self.path} is not a readable index catalog ({exc})") from exc

    # --- connections ---

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise IndexCorrupt(f"{self.path}: this version of the index was closed")
            db = _connect(self.path, readonly=self.readonly)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            for db in self._all:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            return self._db().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"{self.path}: {exc}") from exc

    def execute(self, sql: str, params: Sequence = ()) -> sqlite3.Cursor:
        return self._db().execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        self._db().executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together, or not at all (disk full included)."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise IndexWriteError(f"cannot write {self.path}: {exc}") from exc
        try:
            yield
        except BaseException as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):  # "database or disk is full", I/O errors...
                raise IndexWriteError(
                    f"cannot write {self.path}: {exc}; nothing of this step was saved, the index is as it "
                    "was after its last commit"
                ) from exc
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise IndexWriteError(f"cannot commit to {self.path}: {exc}") from exc

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees the same commit."""
        db = self._db()
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

    # --- meta ---

    def meta(self) -> dict[str, str]:
        return dict(self.query("SELECT key, value FROM meta"))

    def set_meta(self, values: dict[str, object]) -> None:
        self.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    def version(self) -> tuple[str, int]:
        """(index id, commit version): what a reader compares to see if it is stale."""
        found = dict(self.query("SELECT key, value FROM meta WHERE key IN ('index_id', 'version')"))
        return found.get("index_id", ""), int(found.get("version", 0))

    # --- names -> ids ---

    def ids_for(self, table: str, names: Iterable[str], *, create: bool) -> dict[str, int]:
        """Ids of ``names`` in ``sources`` / ``tags`` / ``terms`` (created when ``create``)."""
        column = "term" if table == "terms" else "name"
        wanted = list(dict.fromkeys(names))
        if create and wanted:
            self.executemany(f"INSERT OR IGNORE INTO {table}({column}) VALUES (?)", [(n,) for n in wanted])
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = f"SELECT {column}, id FROM {table} WHERE {column} IN ({','.join('?' * len(part))})"
            found.update(self.query(sql, part))
        return found

    # --- articles and chunks (writer) ---

    def article_hashes(self) -> dict[str, str]:
        return dict(self.query("SELECT id, content_hash FROM articles"))

    def article_hash_of(self, article_ids: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(article_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            found.update(self.query(
                f"SELECT id, content_hash FROM articles WHERE id IN ({','.join('?' * len(part))})", part
            ))  # fmt: skip
        return found

    def article_by_text_hash(self, digest: str) -> str | None:
        found = self.query("SELECT id FROM articles WHERE text_hash = ? LIMIT 1", (digest,))
        return found[0][0] if found else None

    def article_file(self, article_id: str) -> tuple[bool, str | None]:
        """(whether the article is stored, the key of the file it came from)."""
        found = self.query("SELECT file_key FROM articles WHERE id = ?", (article_id,))
        return (True, found[0][0]) if found else (False, None)

    def articles_without_file(self) -> list[str]:
        return [a for (a,) in self.query("SELECT id FROM articles WHERE file_key IS NULL")]

    def duplicate_files(self, article_id: str) -> list[str]:
        return [k for (k,) in self.query(
            "SELECT key FROM files WHERE status = 'duplicate' AND article_id = ? ORDER BY key", (article_id,)
        )]  # fmt: skip

    def delete_articles(self, article_ids: Iterable[str]) -> list[tuple[int, int]]:
        """Delete articles and their chunks; returns the (row, segment) of every chunk gone."""
        gone: list[tuple[int, int]] = []
        for article_id in article_ids:
            gone += self.query("SELECT row, segment FROM chunks WHERE article_id = ?", (article_id,))
            self.execute("DELETE FROM chunks WHERE article_id = ?", (article_id,))
            self.execute("DELETE FROM articles WHERE id = ?", (article_id,))
        return gone

    def add_article(self, article: Article, file_key: str | None) -> None:
        self.execute(
            "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                article.id, article.title, article.source, article.url, article.published,
                json.dumps(list(article.tags), ensure_ascii=False), article.language,
                article.path, json.dumps(list(article.paragraphs), ensure_ascii=False),
                article.editor, article.format, article_hash(article), text_hash(article.text), file_key,
            ),
        )

    def add_chunks(self, article_id: str, chunks: Sequence[Chunk], rows: Sequence[int],
                   embed_hashes: Sequence[str], segment: int) -> None:  # fmt: skip
        self.executemany(
            "INSERT INTO chunks (row, id, article_id, segment, position, para_start, para_end,"
            " char_start, char_end, text, embed_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (int(row), c.id, article_id, segment, pos, c.para_start, c.para_end, c.char_start,
                 c.char_end, c.text, h)  # fmt: skip
                for pos, (c, row, h) in enumerate(zip(chunks, rows, embed_hashes, strict=True))
            ],
        )

    def vector_locations(self, hashes: Iterable[str]) -> dict[str, tuple[int, int]]:
        """For embedded texts already in the index: hash -> (segment, row) of one chunk holding it."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, tuple[int, int]] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = (
                "SELECT embed_hash, segment, row FROM chunks "
                f"WHERE embed_hash IN ({','.join('?' * len(part))})"
            )
            for digest, segment, row in self.query(sql, part):
                found.setdefault(digest, (segment, row))
        return found

    # --- files ---

    def file_states(self) -> dict[str, FileState]:
        return {
            r[0]: FileState(*r)
            for r in self.query("SELECT key, size, mtime_ns, sha256, status, article_id, rel, detail FROM files")
        }

    def put_files(self, states: Iterable[FileState]) -> None:
        self.executemany(
            "INSERT OR REPLACE INTO files (key, size, mtime_ns, sha256, status, article_id, rel, detail)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [(s.key, s.size, s.mtime_ns, s.sha256, s.status, s.article_id, s.rel, s.detail) for s in states],
        )

    def delete_files(self, keys: Iterable[str]) -> None:
        self.executemany("DELETE FROM files WHERE key = ?", [(k,) for k in keys])

    # --- segments ---

    def segments(self) -> list[SegmentRecord]:
        return [SegmentRecord(*r) for r in self.query("SELECT id, name, size, ann, version FROM segments ORDER BY id")]

    def tombstones(self) -> dict[int, list[int]]:
        """segment id -> its deleted rows (ascending)."""
        out: dict[int, list[int]] = {}
        for row, segment in self.query("SELECT row, segment FROM tombstones ORDER BY row"):
            out.setdefault(segment, []).append(row)
        return out

    def add_tombstones(self, gone: Iterable[tuple[int, int]]) -> None:
        self.executemany("INSERT OR IGNORE INTO tombstones(row, segment) VALUES (?, ?)", gone)

    def add_segment(self, segment_id: int, name: str, size: int, ann: str, version: int) -> None:
        self.execute("INSERT INTO segments VALUES (?,?,?,?,?)", (segment_id, name, size, ann, version))

    def replace_segments(self, old: Sequence[int], new_id: int) -> None:
        """A merge: the live chunks of ``old`` now live in ``new_id``; their tombstones are gone."""
        marks = ",".join("?" * len(old))
        self.execute(f"UPDATE chunks SET segment = ? WHERE segment IN ({marks})", (new_id, *old))
        self.execute(f"DELETE FROM tombstones WHERE segment IN ({marks})", tuple(old))
        self.execute(f"DELETE FROM segments WHERE id IN ({marks})", tuple(old))

    def drop_segment(self, segment_id: int) -> None:
        self.execute("DELETE FROM tombstones WHERE segment = ?", (segment_id,))
        self.execute("DELETE FROM segments WHERE id = ?", (segment_id,))

    # --- reading (searches, the API) ---

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
            for row, cid, aid, p0, p1, text, title, source, url, published, path in self.query(sql, part):
                out[row] = ChunkRow(
                    row=row, chunk_id=cid, article_id=aid, para_start=p0, para_end=p1, text=text,
                    citation=Citation(
                        article_id=aid, title=title, source=source, url=url, published=published,
                        para_start=p0, para_end=p1, path=path,
                    ),
                )
        return out

    def article_rows(self, article_ids: Iterable[str]) -> dict[str, list[int]]:
        """The rows of these articles' chunks (an article the catalog lacks: none)."""
        wanted = list(dict.fromkeys(article_ids))
        out: dict[str, list[int]] = {a: [] for a in wanted}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            sql = f"SELECT article_id, row FROM chunks WHERE article_id IN ({','.join('?' * len(part))})"
            for article_id, row in self.query(sql, part):
                out[article_id].append(row)
        return out

    def article(self, article_id: str) -> Article:
        found = self.query(
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

    def article_ids(self) -> list[str]:
        return [a for (a,) in self.query("SELECT id FROM articles ORDER BY id")]

    def counts(self, *, chunks: bool = True) -> dict[str, int]:
        ((articles,),) = self.query("SELECT count(*) FROM articles")
        out = {"articles": articles}
        if chunks:
            ((out["chunks"],),) = self.query("SELECT count(*) FROM chunks")
        return out

    def date_range(self) -> tuple[str | None, str | None]:
        ((first, last),) = self.query("SELECT min(published), max(published) FROM articles")
        return first, last

    def sources(self) -> list[tuple[str, int]]:
        """Each source with its number of articles, most first."""
        return [
            (s, n)
            for s, n in self.query(
                "SELECT source, count(*) FROM articles GROUP BY source ORDER BY count(*) DESC, source"
            )
        ]
