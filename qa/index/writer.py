"""Writing an index: additions and deletions, committed in steps.

A :class:`Writer` holds the index's update lock for its lifetime. Articles
given to :meth:`Writer.add` are chunked and tokenised at once (or come
:func:`prepare`-d already, by a reader thread or a cluster) and buffered;
every ``step_chunks`` chunks (and at :meth:`Writer.finish`) the buffer is
committed:

1. vectors: a chunk whose embedded text is already in the index reuses its
   vector; one embedded by a killed run is taken from the pending cache;
   the rest are embedded, each batch saved to the pending cache at once;
2. new terms, sources and tags get ids (a small transaction of its own:
   these tables only grow, so a leftover id is harmless);
3. the new chunks are written as a new segment, into a temporary folder that
   is fsynced and then renamed;
4. one catalog transaction adds the articles and chunks, turns deleted and
   replaced chunks into tombstones, records the segment and the files seen,
   and bumps the version. This is the commit: readers see all of it or none.
5. ``manifest.json`` is rewritten for people to read.

With a model that takes several calls at once (a GPU: ``calls_in_flight``
> 1), step 1 (the embedding) of each full step runs in a background thread
while the step before it goes through 2-5, so the GPU does not wait for
segment files and the catalog; steps are still committed one by one, in
order, and :meth:`Writer.commit` and :meth:`Writer.finish` commit all.

A run killed at any point leaves the last commit searchable; the next run
deletes the leftover folder and finds the committed files unchanged, and the
vectors of the interrupted step in the pending cache. After the last commit
the merge policy (:mod:`qa.index.merge`) may merge small segments.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qa.chunk import chunk_article
from qa.embed import Embedder
from qa.errors import IndexCorrupt, IndexWriteError, QAError
import qa.index.files as fs
from qa.index.ann import ANN_KINDS, AnnParams, build_ann, save_ann, segment_ann_kind
from qa.index.catalog import Catalog, FileState, article_hash, text_hash
from qa.index.filters import published_seconds
from qa.index.manifest import (
    FORMAT, FORMAT_VERSION, SEGMENTS_DIR, STORE_FILE, check_embedder, raw_format_version, write_manifest,
)  # fmt: skip
from qa.index.segment import SegmentData, build_postings, chunk_key, read_segment, tag_arrays, write_segment
from qa.lexical import tokenize
from qa.records import Article, Chunk

log = logging.getLogger(__name__)

PENDING = "pending-embeddings.sqlite"
STEP_CHUNKS = 8192
"""Chunks per commit: on 2 CPU cores ~3 minutes of embedding, the most a killed build can lose."""
EMBED_BATCH = 128


@dataclass(frozen=True)
class UpdateReport:
    """What one update did."""

    path: str
    version: int  # the index's commit version after the update
    written: bool  # False: nothing had changed, nothing was committed
    articles_added: int
    articles_changed: int
    articles_removed: int
    articles_unchanged: int
    chunks_embedded: int  # passages run through the model in this update
    chunks_reused: int  # new chunks whose vectors were already known
    chunks_removed: int  # chunks of removed and changed articles
    articles: int  # totals in the index after the update
    chunks: int
    commits: int
    merges: int
    segments: int
    seconds: float
    embed_seconds: float = 0.0
    timings: Timings | None = None  # where the time went, stage by stage

    @property
    def up_to_date(self) -> bool:
        """Nothing was added, changed or removed."""
        return not (self.articles_added or self.articles_changed or self.articles_removed)

    @property
    def generation(self) -> int:  # the name the first format used
        return self.version


@dataclass
class Timings:
    """Seconds an update spent in each stage. ``read`` and ``prepare`` may have run in a
    reader thread beside the others (``overlapped``): then the stages add up to more than
    the wall time, which is the point."""

    read: float = 0.0  # reading, hashing and parsing the changed files
    prepare: float = 0.0  # chunking, BM25 tokenising and hashing the passages
    embed: float = 0.0  # the model (or, on a cluster, waiting for its vectors)
    write: float = 0.0  # finding known vectors, segment files, catalog, manifest
    merge: float = 0.0  # the merge policy after the last commit
    overlapped: bool = False

    def summary(self) -> str:
        """One line for people: ``read 1.2 s, prepare 3.4 s, ...``."""
        parts = [f"{name} {getattr(self, name):.1f} s" for name in ("read", "prepare", "embed", "write", "merge")]
        return ", ".join(parts) + (" (reading and preparing ran beside embedding)" if self.overlapped else "")


@dataclass
class Prepared:
    """An article chunked, its passages tokenised for BM25 and hashed: what a commit needs of it
    besides vectors. :func:`prepare` makes one; the reader thread of :mod:`qa.index.sync` and
    the workers of :mod:`qa.cluster` make them away from the writer."""

    article: Article
    chunks: list[Chunk]
    tokens: list[list[str]]
    hashes: list[str]  # text_hash(chunk.embed_text)
    file_key: str | None


@dataclass
class _Step:
    adds: dict[str, Prepared] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    files: dict[str, FileState] = field(default_factory=dict)
    file_deletes: set[str] = field(default_factory=set)
    chunks: int = 0

    def __bool__(self) -> bool:
        return bool(self.adds or self.deletes or self.files or self.file_deletes)


class PendingEmbeddings:
    """Embeddings made by a step that has not committed yet, saved batch by batch.

    A killed run leaves them here; the next run with the same model takes them
    instead of embedding again. Deleted when a run finishes.
    """

    def __init__(self, path: Path, model: str):
        self.path, self.model = path, model
        self._lock = threading.Lock()
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError:  # unreadable leftovers are only a cache: start afresh
            path.unlink(missing_ok=True)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # used from the writer's thread and, on a GPU, from the thread embedding the next step
        # (self._lock serialises them)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # a cache for a killed run: WAL without an fsync per batch survives the process dying
        # (what it is for); a power cut may cost the last batches, which are embedded again
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, embed_hash TEXT NOT NULL,"
            " embedding BLOB NOT NULL, PRIMARY KEY (model, embed_hash))"
        )
        return db

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            return self._get(hashes)

    def _get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            part = list(hashes[start : start + 500])
            sql = (
                "SELECT embed_hash, embedding FROM embeddings WHERE model = ? AND embed_hash IN "
                f"({','.join('?' * len(part))})"
            )
            for digest, blob in self._db.execute(sql, [self.model, *part]):
                found[digest] = np.frombuffer(blob, dtype="<f4")
        return found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            self._put(hashes, vectors)

    def _put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                [(self.model, h, np.asarray(v, dtype="<f4").tobytes()) for h, v in zip(hashes, vectors)],
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # a cache: losing it costs time, not data
            log.warning("could not save embeddings to %s (%s)", self.path, exc)
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def close(self, *, delete: bool = False) -> None:
        with self._lock:
            self._db.close()
        if delete:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)


def embedding_batches(texts_by_hash: dict[str, str], size: int | None = None) -> list[list[tuple[str, str]]]:
    """Batches of texts of similar length (little padding), in a shuffled order.

    Run shortest first, a progress bar's estimate is far too hopeful (at 4% it
    said 1:38 left of a run that took 3:39 more); in a seeded random order
    every stretch of the run holds a fair sample of lengths, so the rate it
    shows, in characters, holds for the rest.
    """
    size = size or EMBED_BATCH
    items = sorted(texts_by_hash.items(), key=lambda kv: (len(kv[1]), kv[0]))
    batches = [items[start : start + size] for start in range(0, len(items), size)]
    order = np.random.default_rng(len(items)).permutation(len(batches))
    return [batches[i] for i in order]


def prepare(article: Article, file_key: str | None = None, tokens: list[list[str]] | None = None) -> Prepared:
    """Chunk, tokenise and hash ``article`` (``tokens``: its passages' BM25 tokens, computed
    elsewhere; ignored unless there is one list per passage)."""
    chunks = chunk_article(article)
    if tokens is None or len(tokens) != len(chunks):
        tokens = [tokenize(c.embed_text) for c in chunks]
    return Prepared(
        article=article,
        chunks=chunks,
        tokens=tokens,
        hashes=[text_hash(c.embed_text) for c in chunks],
        file_key=file_key,
    )


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _disk_error(exc: OSError, root: Path) -> IndexWriteError:
    what = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return IndexWriteError(
        f"cannot write the index at {root}: {what}; the index is as it was after its last commit "
        "(still searchable); free space or fix the cause and run the same command again"
    )


class Writer:
    """The one writer of an index (see the module docstring). Use as a context manager."""

    def __init__(self, root, embedder: Embedder, *, ann: str | None = None, progress: bool = False,
                 step_chunks: int = STEP_CHUNKS, ann_params: AnnParams | None = None):  # fmt: skip
        self.root = Path(root)
        self.embedder = embedder
        self.progress = progress
        self.step_chunks = max(1, int(step_chunks))
        if ann is not None and ann not in ANN_KINDS:
            raise QAError(f"unknown ANN index {ann!r}; choose one of {', '.join(ANN_KINDS)}")
        self._asked_ann = ann
        self._asked_params = ann_params
        self._lock = None
        self.catalog: Catalog | None = None
        self._step = _Step()
        self._segments: dict[int, SegmentData] = {}
        self._pending: PendingEmbeddings | None = None
        self._ahead: tuple[_Step, Future] | None = None  # a full step whose passages embed in the background
        self._ahead_pool: ThreadPoolExecutor | None = None
        self.started = time.perf_counter()
        self.embed_seconds = 0.0
        self.timings = Timings()
        self.counts = dict(added=0, changed=0, removed=0, embedded=0, reused=0, chunks_removed=0, commits=0, merges=0)

    # --- lifecycle ---

    def __enter__(self) -> Writer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = fs.update_lock(self.root)
        self._lock.__enter__()
        try:
            self._open()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close(delete_pending=False)

    def _open(self) -> None:
        store = self.root / STORE_FILE
        v1 = None
        if raw_format_version(self.root) == 1:
            from qa.index.upgrade import ann_of, read_v1_manifest

            v1 = read_v1_manifest(self.root)
            for suffix in ("", "-wal", "-shm", "-journal"):  # a killed upgrade's partial catalog
                Path(str(store) + suffix).unlink(missing_ok=True)
            fs.remove_tree(self.root / SEGMENTS_DIR)
            self._asked_ann = self._asked_ann or ann_of(v1)
        new = not store.exists()
        try:
            self.catalog = Catalog(store, create=True)
        except IndexCorrupt:
            raise
        meta = self.catalog.meta()
        if new or not meta:
            kind = self._asked_ann or "flat"
            params = self._asked_params or AnnParams()
            with self.catalog.transaction():
                self.catalog.set_meta({
                    "format": FORMAT, "format_version": FORMAT_VERSION, "index_id": uuid.uuid4().hex,
                    "version": 0, "model": self.embedder.model, "backend": self.embedder.backend,
                    "dimension": self.embedder.dimension, "ann": kind, "ann_params": json.dumps(params.to_dict()),
                    "next_row": 0, "next_segment": 1, "created_at": _now(), "committed_at": _now(),
                })  # fmt: skip
            meta = self.catalog.meta()
        if int(meta.get("format_version", 0)) != FORMAT_VERSION:
            raise IndexCorrupt(f"{store} has format version {meta.get('format_version')!r}")
        embedding = {"model": meta["model"], "backend": meta["backend"], "dimension": int(meta["dimension"])}
        check_embedder(embedding, self.embedder, self.root)
        self.meta = meta
        self._collect_garbage()
        self._pending = PendingEmbeddings(self.root / PENDING, self.embedder.model)
        if v1 is not None:
            from qa.index.upgrade import upgrade_v1

            upgrade_v1(self, v1)

    def _close(self, delete_pending: bool = False) -> None:
        if self._ahead is not None:  # an update given up: the step embedding in the background is dropped
            self._ahead[1].cancel()  # (once its embedding has started, it is waited for: seconds on a GPU)
            wait([self._ahead[1]])
            self._ahead = None
        if self._ahead_pool is not None:
            self._ahead_pool.shutdown(wait=True)
            self._ahead_pool = None
        if self._pending is not None:
            self._pending.close(delete=delete_pending)
            self._pending = None
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    @property
    def ann(self) -> str:
        return self.meta.get("ann", "flat")

    @property
    def ann_params(self) -> AnnParams:
        try:
            return AnnParams.from_dict(json.loads(self.meta.get("ann_params") or "{}"))
        except ValueError:
            return AnnParams()

    def _collect_garbage(self) -> None:
        """Delete segment folders no commit refers to (a killed step or merge left them)."""
        folder = self.root / SEGMENTS_DIR
        folder.mkdir(exist_ok=True)
        live = {s.name for s in self.catalog.segments()}
        for path in folder.iterdir():
            if path.name not in live:
                fs.remove_tree(path) if path.is_dir() else path.unlink(missing_ok=True)
        for path in self.root.iterdir():  # generation folders of format 1, after an upgrade
            if raw_format_version(self.root) != 1 and path.is_dir() and path.name.startswith("gen-"):
                fs.remove_tree(path)

    # --- buffering ---

    def add(self, article: Article, file_key: str | None = None, *, changed: bool | None = None,
            prepared: Prepared | None = None) -> None:  # fmt: skip
        """Add an article, replacing the stored one with the same id (if any). ``prepared``:
        the article already :func:`prepare`-d (used only if it is this very article)."""
        if prepared is not None and prepared.article is article:
            item = prepared if prepared.file_key == file_key else replace(prepared, file_key=file_key)
        else:
            started = time.perf_counter()
            item = prepare(article, file_key)
            self.timings.prepare += time.perf_counter() - started
        previous = self._step.adds.pop(article.id, None)
        if previous is not None:
            self._step.chunks -= len(previous.chunks)
        self._step.adds[article.id] = item
        self._step.chunks += len(item.chunks)
        self._step.deletes.discard(article.id)
        if changed is True:
            self.counts["changed"] += 1
        elif changed is False:
            self.counts["added"] += 1
        if self._step.chunks >= self.step_chunks:
            self._advance()

    def delete(self, article_id: str) -> None:
        self._step.adds.pop(article_id, None)
        self._step.deletes.add(article_id)
        self.counts["removed"] += 1

    def put_file(self, state: FileState) -> None:
        self._step.files[state.key] = state
        self._step.file_deletes.discard(state.key)

    def delete_file(self, key: str) -> None:
        self._step.files.pop(key, None)
        self._step.file_deletes.add(key)

    # --- committing ---

    def commit(self) -> bool:
        """Commit everything buffered, the step embedding in the background (if any) first
        (nothing to commit: False)."""
        committed = False
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            self._commit_step(*ahead)
            committed = True
        step, self._step = self._step, _Step()
        if step:
            self._commit_step(step, None)
            committed = True
        return committed

    def _advance(self) -> None:
        """A full step. Committed at once (the model on a CPU: it uses every core), or, for a
        model that takes several calls at once (:attr:`Embedder.calls_in_flight`, a GPU), its
        passages are embedded in the background while the step before it is committed, so that
        the GPU does not wait for segment files and the catalog: each step is committed one
        step later, in order, and :meth:`commit` and :meth:`finish` commit what is left."""
        if self.embedder.calls_in_flight <= 1:
            self.commit()
            return
        step, self._step = self._step, _Step()
        known, todo, reused = self._known_vectors(list(step.adds.values()))  # the catalog, in this thread
        if self._ahead_pool is None:
            self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="qa-embed-ahead")
        previous, self._ahead = self._ahead, (step, self._ahead_pool.submit(self._embed_known, known, todo, reused))
        if previous is not None:
            self._commit_step(*previous)

    def _commit_step(self, step: _Step, vectors: Future | None) -> None:
        """Commit ``step``; ``vectors``: its vectors, being embedded in the background (None: here)."""
        ready = vectors.result() if vectors is not None else None  # a failure there is raised here
        started, embedding = time.perf_counter(), self.embed_seconds
        try:
            self._commit(step, ready)
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc
        finally:  # the write stage: without the embedding done here (when ready is None)
            spent = time.perf_counter() - started
            self.timings.write += spent if ready is not None else spent - (self.embed_seconds - embedding)
        self.counts["commits"] += 1

    def _commit(self, step: _Step, vectors: dict[str, np.ndarray] | None = None) -> None:
        catalog = self.catalog
        items = list(step.adds.values())
        if vectors is None:
            vectors = self._embed_known(*self._known_vectors(items))
        n_new = sum(len(i.chunks) for i in items)
        meta = catalog.meta()
        next_row, segment_id = int(meta["next_row"]), int(meta["next_segment"])
        version = int(meta["version"]) + 1
        folder = None
        rows = np.arange(next_row, next_row + n_new, dtype=np.int64)
        if n_new:
            with catalog.transaction():  # grow the name tables (harmless if the step dies later)
                term_ids = catalog.ids_for("terms", (t for i in items for toks in i.tokens for t in toks), create=True)
                source_ids = catalog.ids_for("sources", (i.article.source for i in items), create=True)
                tag_ids = catalog.ids_for("tags", (t for i in items for t in i.article.tags), create=True)
            data = self._segment_data(items, rows, vectors, term_ids, source_ids, tag_ids)
            folder = self._write_new_segment(segment_id, data)
        replaced = [i.article.id for i in items]
        changes_content = bool(n_new or step.deletes)
        if not changes_content:  # only what was seen of files: no new version for readers
            version -= 1
        try:
            with catalog.transaction():
                gone = catalog.delete_articles(sorted(step.deletes) + replaced)
                catalog.add_tombstones(gone)
                start = 0
                for item in items:
                    catalog.add_article(item.article, item.file_key)
                    n = len(item.chunks)
                    catalog.add_chunks(item.article.id, item.chunks, rows[start : start + n], item.hashes, segment_id)
                    start += n
                if n_new:
                    catalog.add_segment(segment_id, folder.name, n_new, segment_ann_kind(self.ann, n_new), version)
                catalog.delete_files(step.file_deletes)
                catalog.put_files(step.files.values())
                if changes_content:
                    catalog.set_meta({
                        "version": version, "next_row": next_row + n_new,
                        "next_segment": segment_id + (1 if n_new else 0), "committed_at": _now(),
                    })  # fmt: skip
        except BaseException:
            if folder is not None:
                fs.remove_tree(folder)
            raise
        self.counts["chunks_removed"] += len(gone)
        self.meta = catalog.meta()
        self._drop_empty_segments(gone)
        if changes_content:
            self.write_manifest()

    def _drop_empty_segments(self, gone: list[tuple[int, int]]) -> None:
        """A segment whose every row is deleted is dropped at once (no merge needed)."""
        touched = {segment for _row, segment in gone}
        if not touched:
            return
        dead = []
        for record in self.catalog.segments():
            if record.id in touched:  # every row of it tombstoned? (an indexed count, not a scan)
                ((deleted,),) = self.catalog.query("SELECT count(*) FROM tombstones WHERE segment = ?", (record.id,))
                if deleted >= record.size:
                    dead.append(record)
        if dead:
            with self.catalog.transaction():
                for record in dead:
                    self.catalog.drop_segment(record.id)
                self.catalog.set_meta({"version": int(self.catalog.meta()["version"]) + 1, "committed_at": _now()})
            for record in dead:
                fs.remove_tree(self.root / SEGMENTS_DIR / record.name)
                self._segments.pop(record.id, None)
            self.meta = self.catalog.meta()

    def _segment_data(self, items, rows, vectors, term_ids, source_ids, tag_ids) -> SegmentData:
        published, sources, tags, token_ids, vecs, keys = [], [], [], [], [], []
        for item in items:
            a = item.article
            p, s = published_seconds(a.published), source_ids[a.source]
            t = sorted({tag_ids[x] for x in a.tags})
            for chunk, toks, h in zip(item.chunks, item.tokens, item.hashes):
                keys.append(chunk_key(chunk.id))
                published.append(p)
                sources.append(s)
                tags.append(t)
                token_ids.append(np.fromiter((term_ids[x] for x in toks), dtype=np.int64, count=len(toks)))
                vecs.append(vectors[h])
        doclen, terms, indptr, docs, tf = build_postings(token_ids)
        tag_indptr, tag_id_array = tag_arrays(tags)
        return SegmentData(
            rows=rows,
            keys=np.array(keys, dtype=np.int64),
            vectors=np.ascontiguousarray(np.stack(vecs), dtype=np.float32).reshape(len(rows), self.embedder.dimension),
            published=np.array(published, dtype=np.int64),
            source=np.array(sources, dtype=np.int32),
            tag_indptr=tag_indptr, tag_ids=tag_id_array, doclen=doclen,
            terms=terms, term_indptr=indptr, post_docs=docs, post_tf=tf,
        )

    def segment_folder(self, segment_id: int, *, temporary: bool = False) -> Path:
        name = f"s{segment_id:06d}"
        return self.root / SEGMENTS_DIR / (f".tmp-{name}" if temporary else name)

    def _write_new_segment(self, segment_id: int, data: SegmentData, ann_base=None, prefilled: bool = False) -> Path:
        """Write a segment's files (and its ANN index) under a temporary name, fsync, rename.
        ``prefilled``: the temporary folder already holds its vectors (a merge streamed them there)."""
        final = self.segment_folder(segment_id)
        tmp = self.segment_folder(segment_id, temporary=True)
        if not prefilled:
            fs.remove_tree(tmp)
        fs.remove_tree(final)
        kind = segment_ann_kind(self.ann, len(data))
        try:
            write_segment(tmp, data, ann=kind, extra={"created_at": _now()})
            if kind != "flat":
                save_ann(build_ann(kind, data.vectors, self.ann_params, base=ann_base), tmp)
            fs.fsync_tree(tmp)
            os.replace(tmp, final)
            fs.fsync_dir(final.parent)
        except BaseException:
            fs.remove_tree(tmp)
            raise
        return final

    # --- vectors ---

    def segment_data(self, segment_id: int) -> SegmentData:
        data = self._segments.get(segment_id)
        if data is None:
            record = next((s for s in self.catalog.segments() if s.id == segment_id), None)
            if record is None:
                raise IndexCorrupt(f"segment {segment_id} is missing from {self.root}")
            _info, data = read_segment(self.root / SEGMENTS_DIR / record.name)
            self._segments[segment_id] = data
        return data

    def _known_vectors(self, items: list[Prepared]) -> tuple[dict[str, np.ndarray], dict[str, str], int]:
        """The vectors of these chunks already known (in the index, or saved by a killed run),
        the texts left to embed by hash, and how many chunks reuse a vector."""
        texts: dict[str, str] = {}
        for item in items:
            for h, chunk in zip(item.hashes, item.chunks):
                texts.setdefault(h, chunk.embed_text)
        total = sum(len(item.hashes) for item in items)
        known: dict[str, np.ndarray] = {}
        for digest, (segment, row) in self.catalog.vector_locations(texts).items():
            data = self.segment_data(segment)
            pos = int(np.searchsorted(np.asarray(data.rows), row))
            known[digest] = np.array(data.vectors[pos], dtype=np.float32)
        missing = [h for h in texts if h not in known]
        known.update(self._pending.get(missing))
        todo = {h: texts[h] for h in texts if h not in known}
        return known, todo, total - len(todo)

    def _embed_known(self, known: dict[str, np.ndarray], todo: dict[str, str], reused: int) -> dict[str, np.ndarray]:
        """``known`` completed with the vectors of ``todo``, embedded (no catalog here: this may
        run in the background thread)."""
        known.update(self._embed(todo))
        self.counts["embedded"] += len(todo)
        self.counts["reused"] += reused
        return known

    def _embed(self, texts_by_hash: dict[str, str]) -> dict[str, np.ndarray]:
        """Embed in batches of similar length, saving each batch to the pending cache."""
        if not texts_by_hash:
            return {}
        started = time.perf_counter()
        out: dict[str, np.ndarray] = {}
        batches = embedding_batches(texts_by_hash, self.embedder.passages_per_call)
        total_chars = sum(len(t) for t in texts_by_hash.values())
        with tqdm(total=total_chars, desc="embedding", unit=" chars", unit_scale=True,
                  disable=not self.progress) as bar:  # fmt: skip
            for batch, vectors in self._embedded(batches):
                vectors = np.asarray(vectors, dtype=np.float32)
                if vectors.shape != (len(batch), self.embedder.dimension):
                    raise QAError(
                        f"the model {self.embedder.model!r} returned vectors of shape {vectors.shape}, "
                        f"expected ({len(batch)}, {self.embedder.dimension})"
                    )
                hashes = [h for h, _ in batch]
                self._pending.put(hashes, vectors)
                out.update(zip(hashes, vectors))
                bar.update(sum(len(t) for _, t in batch))
        self.embed_seconds += time.perf_counter() - started
        return out

    def _embedded(self, batches: list[list[tuple[str, str]]]) -> Iterator[tuple[list[tuple[str, str]], np.ndarray]]:
        """``(batch, vectors)`` in order: one call at a time, or, for a model that takes
        several at once (:attr:`Embedder.calls_in_flight`, a GPU), that many in threads, so
        that the model never waits for tokenising or for the saving of the last vectors."""
        in_flight = max(1, int(self.embedder.calls_in_flight))
        if in_flight == 1 or len(batches) == 1:
            for batch in batches:
                yield batch, self.embedder.embed_passages([t for _, t in batch])
            return
        from collections import deque

        with ThreadPoolExecutor(in_flight, thread_name_prefix="qa-embed") as pool:
            pending: deque = deque()
            try:
                for batch in batches:
                    pending.append((batch, pool.submit(self.embedder.embed_passages, [t for _, t in batch])))
                    if len(pending) >= in_flight:
                        done, future = pending.popleft()
                        yield done, future.result()
                while pending:
                    done, future = pending.popleft()
                    yield done, future.result()
            finally:
                for _batch, future in pending:
                    future.cancel()

    # --- finishing ---

    def write_manifest(self) -> None:
        catalog = self.catalog
        meta = catalog.meta()
        segments = catalog.segments()
        counts = catalog.counts()
        ((counts["sources"],),) = catalog.query("SELECT count(DISTINCT source) FROM articles WHERE source != ''")
        ((tombstones,),) = catalog.query("SELECT count(*) FROM tombstones")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "index_id": meta["index_id"],
            "version": int(meta["version"]),
            "created_at": meta.get("created_at"),
            "committed_at": meta.get("committed_at"),
            "embedding": {"model": meta["model"], "backend": meta["backend"], "dimension": int(meta["dimension"])},
            "ann": meta.get("ann", "flat"),
            "ann_params": json.loads(meta.get("ann_params") or "{}"),
            "counts": {**counts, "segments": len(segments), "deleted_chunks": tombstones},
            "segments": [{"name": s.name, "rows": s.size, "ann": s.ann, "version": s.version} for s in segments],
            "files": {"catalog": STORE_FILE, "segments": SEGMENTS_DIR + "/"},
        }
        try:
            write_manifest(self.root, manifest)
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc

    def change_ann(self, kind: str) -> bool:
        """Switch the index to another ANN kind (rebuilds the vector indexes by merging all segments)."""
        if kind == self.ann:
            return False
        with self.catalog.transaction():
            self.catalog.set_meta({"ann": kind, **({"ann_params": json.dumps(self._asked_params.to_dict())}
                                                 if self._asked_params else {})})  # fmt: skip
        self.meta = self.catalog.meta()
        return True

    def finish(self, *, merge: bool = True, force_merge: bool = False) -> UpdateReport:
        """Commit what is left, apply the merge policy, and report."""
        self.commit()
        if self._asked_ann is not None and self._asked_ann != self.ann:
            log.warning("changing the ANN index of %s from %s to %s (all vector indexes are rebuilt)",
                        self.root, self.ann, self._asked_ann)  # fmt: skip
            self.change_ann(self._asked_ann)
            force_merge = True
        if merge or force_merge:
            from qa.index.merge import merge_segments

            started = time.perf_counter()
            try:
                self.counts["merges"] += merge_segments(self, force=force_merge)
            except OSError as exc:
                raise _disk_error(exc, self.root) from exc
            self.timings.merge += time.perf_counter() - started
        if self.counts["commits"] or self.counts["merges"]:
            self.write_manifest()
        counts = self.catalog.counts()
        report = UpdateReport(
            path=str(self.root), version=int(self.catalog.meta()["version"]),
            written=bool(self.counts["commits"] or self.counts["merges"]),
            articles_added=self.counts["added"], articles_changed=self.counts["changed"],
            articles_removed=self.counts["removed"], articles_unchanged=0,
            chunks_embedded=self.counts["embedded"], chunks_reused=self.counts["reused"],
            chunks_removed=self.counts["chunks_removed"], articles=counts["articles"], chunks=counts["chunks"],
            commits=self.counts["commits"], merges=self.counts["merges"], segments=len(self.catalog.segments()),
            seconds=time.perf_counter() - self.started, embed_seconds=self.embed_seconds,
            timings=replace(self.timings, embed=self.embed_seconds),
        )
        self._close(delete_pending=True)
        return report


def update_articles(path, articles: Iterable[Article], embedder: Embedder, *, remove_missing: bool = True,
                    progress: bool = True, ann: str | None = None, step_chunks: int = STEP_CHUNKS,
                    merge: bool = True) -> UpdateReport:  # fmt: skip
    """Build or update the index at ``path`` from ``articles`` (the article-level API).

    New and changed articles (by content hash) are added, articles not given
    are removed when ``remove_missing``, unchanged ones are left alone.
    """
    with Writer(path, embedder, ann=ann, progress=progress, step_chunks=step_chunks) as writer:
        stored = writer.catalog.article_hashes()
        seen: set[str] = set()
        unchanged = 0
        for article in tqdm(articles, desc="reading", unit=" articles", disable=not progress):
            if article.id in seen:
                continue  # the same article twice: the first one counts
            seen.add(article.id)
            old = stored.get(article.id)
            if old == article_hash(article):
                unchanged += 1
                continue
            writer.add(article, changed=old is not None)
        if remove_missing:
            for article_id in stored:
                if article_id not in seen:
                    writer.delete(article_id)
        report = writer.finish(merge=merge)
    return _with_unchanged(report, unchanged)


def _with_unchanged(report: UpdateReport, unchanged: int) -> UpdateReport:
    return replace(report, articles_unchanged=unchanged)
