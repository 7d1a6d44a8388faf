"""The on-disk index: build, update, open, search.

An index is a directory of plain files::

    index/
      manifest.json            what is current: format, model, counts, files
      gen-000007/              the current generation
        store.sqlite           articles, chunks, embeddings, BM25 tokens (qa.store)
        vectors.faiss          chunk vectors by chunk row (qa.vectors)
        lexical/               the BM25 index (qa.lexical)
        ids.npy                BM25 document number -> chunk row
      gen-000006/              the previous generation, kept for readers that have it open

Updates are atomic. Every update writes a *new* generation directory (a copy
of the previous store, changed in one transaction, and new vector and BM25
files), fsyncs it, and only then replaces ``manifest.json`` (temp file +
``os.replace``). A reader always sees a complete generation; an update killed
at any moment leaves the previous one current. Leftover directories of a
killed update are deleted by the next one, and the embeddings it had already
computed (kept in ``pending-embeddings.sqlite`` as they are made) are reused,
so the next run finishes the job instead of starting over.

Updates are incremental: an article whose content hash is unchanged is left
alone, new and changed articles are (re)chunked, articles that were not given
are removed (``remove_missing``), and a chunk whose embedded text was already
embedded by the same model is never embedded again.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qa.chunk import chunk_article
from qa.embed import Embedder
from qa.errors import IndexCorrupt, IndexMismatch, IndexNotFound, InvalidQuery, QAError
from qa.fusion import Fused, fuse
from qa.highlight import highlight
from qa.lexical import LexicalIndex, tokenize
from qa.records import Article, Chunk, Hit, SearchFilters, SearchResult
from qa.store import Store, article_hash, text_hash
from qa.vectors import VectorIndex, vector_index_class

FORMAT = "qa-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PENDING = "pending-embeddings.sqlite"
LOCK = ".update.lock"
STORE_FILE = "store.sqlite"
LEXICAL_DIR = "lexical"
IDS_FILE = "ids.npy"
VECTOR_FILES = {"flat": "vectors.faiss", "hnsw": "vectors.faiss", "numpy": "vectors.npz"}
_GEN = re.compile(r"^gen-(\d{6,})$")

MODES = ("dense", "lexical", "hybrid")
MAX_QUESTION_CHARS = 1000
MAX_K = 100
EMBED_BATCH = 128  # chunks embedded (and checkpointed) at a time


@dataclass(frozen=True)
class UpdateReport:
    """What one update did."""

    path: str
    generation: int  # the current generation after the update
    written: bool  # False: nothing had changed, no new generation was written
    articles_added: int
    articles_changed: int
    articles_removed: int
    articles_unchanged: int
    chunks_embedded: int  # passages run through the model in this update
    chunks_reused: int  # new chunks whose vectors were already known
    chunks_removed: int
    articles: int  # totals in the index after the update
    chunks: int
    seconds: float

    @property
    def up_to_date(self) -> bool:
        """Nothing was added, changed or removed."""
        return not (self.articles_added or self.articles_changed or self.articles_removed)


@dataclass(frozen=True)
class IndexStats:
    """What an open index holds."""

    path: str
    generation: int
    format_version: int
    articles: int
    chunks: int
    sources: int
    date_from: str | None  # earliest publication time
    date_to: str | None  # latest
    model: str
    backend: str
    dimension: int
    ann: str
    built_at: str
    size_bytes: int  # the files of the current generation


# --- manifest and files ------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found(root: Path) -> IndexNotFound:
    return IndexNotFound(
        f"no index at {root}: build one with `qa index PATH --index {root}` "
        "(PATH: the folder of articles)"
    )


def read_manifest(root: Path) -> dict:
    """The manifest of the index at ``root``. Raises IndexNotFound / IndexCorrupt / IndexMismatch."""
    path = Path(root) / MANIFEST
    if not Path(root).is_dir() or not path.is_file():
        raise _not_found(Path(root))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise IndexCorrupt(f"{path} is not a qa index manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(
                f"the index at {root} has format version {manifest.get('format_version')!r}; "
                f"this program reads version {FORMAT_VERSION}: rebuild it with `qa index PATH --index {root}`"
            )
        for key in ("generation", "directory", "ann", "embedding", "files"):
            manifest[key]  # noqa: B018 (presence check)
        for key in ("model", "backend", "dimension"):
            manifest["embedding"][key]  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{path} is unreadable ({exc}); rebuild with `qa index PATH --index {root}`") from exc
    return manifest


def _check_embedder(manifest: dict, embedder: Embedder, root: Path) -> None:
    built = manifest["embedding"]
    if built["model"] != embedder.model or int(built["dimension"]) != embedder.dimension:
        raise IndexMismatch(
            f"the index at {root} was built with the model {built['model']!r} "
            f"({built['dimension']} dimensions, {built['backend']}), not with {embedder.model!r} "
            f"({embedder.dimension} dimensions): search it with that model, or build a new index "
            "for this model in another directory (--index DIR)"
        )


def embedder_for(manifest: dict, device: str = "cpu", *, lazy: bool = False) -> Embedder:
    """The model the manifest names (raises ModelNotAvailable).

    ``lazy``: load it only when it is first asked to embed, so an update that
    finds nothing to embed never loads a model.
    """
    built = manifest["embedding"]
    backend = built["backend"] if built["backend"] in ("onnx", "hash") else "auto"

    def load() -> Embedder:
        from qa.embed import load_embedder  # real models: heavy imports, only when needed

        return load_embedder(built["model"], device=device, backend=backend)

    if not lazy:
        return load()
    return _LazyEmbedder(built["model"], built["backend"], int(built["dimension"]), load)


class _LazyEmbedder(Embedder):
    """Stands for a model, known by name and dimension, until it must embed."""

    def __init__(self, model: str, backend: str, dimension: int, load):
        self.model, self.backend, self.dimension = model, backend, dimension
        self._load, self._inner = load, None

    def _embedder(self) -> Embedder:
        if self._inner is None:
            inner = self._load()
            if (inner.model, inner.dimension) != (self.model, self.dimension):
                raise IndexMismatch(f"loading {self.model!r} gave {inner.model!r} ({inner.dimension} dimensions)")
            self._inner = inner
        return self._inner

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder().embed_queries(texts)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._embedder().embed_passages(texts, progress=progress)


def _fsync_tree(path: Path) -> None:
    """fsync every file and directory under ``path`` (and ``path`` itself)."""
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(root: Path, manifest: dict) -> None:
    """Replace manifest.json atomically (temp file, fsync, os.replace, fsync the directory)."""
    tmp = root / (MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / MANIFEST)
    _fsync_dir(root)


def _generation_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _GEN.match(p.name))


def _remove_stale_generations(root: Path, keep: set[str]) -> None:
    """Delete generation directories not in ``keep`` (older ones and half-written ones)."""
    for path in _generation_dirs(root):
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
    stray = root / (MANIFEST + ".tmp")
    if stray.exists():
        stray.unlink()


@contextmanager
def _update_lock(root: Path) -> Iterator[None]:
    """One update at a time per index (the lock dies with the process, even on kill -9)."""
    with open(root / LOCK, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise QAError(f"another update of the index at {root} is running; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class _PendingEmbeddings:
    """Embeddings made by an update that has not finished yet, committed batch by batch.

    A killed update leaves them here; the next update with the same model
    takes them instead of embedding again. Deleted once an update succeeds.
    """

    def __init__(self, path: Path, model: str):
        self.path, self.model = path, model
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError:  # unreadable leftovers are only a cache: start afresh
            path.unlink(missing_ok=True)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, embed_hash TEXT NOT NULL,"
            " embedding BLOB NOT NULL, PRIMARY KEY (model, embed_hash))"
        )
        return db

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
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
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
            [(self.model, h, np.asarray(v, dtype="<f4").tobytes()) for h, v in zip(hashes, vectors)],
        )
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class _NewArticle:
    article: Article
    chunks: list[Chunk]
    tokens: list[list[str]]
    hashes: list[str]  # text_hash(chunk.embed_text)


def _prepare(article: Article) -> _NewArticle:
    chunks = chunk_article(article)
    return _NewArticle(
        article=article,
        chunks=chunks,
        tokens=[tokenize(c.embed_text) for c in chunks],
        hashes=[text_hash(c.embed_text) for c in chunks],
    )


def _embed_missing(
    texts_by_hash: dict[str, str],
    embedder: Embedder,
    pending: _PendingEmbeddings,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Embed the texts in batches, committing each batch to ``pending`` as it is made."""
    items = sorted(texts_by_hash.items(), key=lambda kv: len(kv[1]))  # similar lengths batch well
    out: dict[str, np.ndarray] = {}
    with tqdm(total=len(items), desc="embedding", unit="chunk", disable=not progress or not items) as bar:
        for start in range(0, len(items), EMBED_BATCH):
            batch = items[start : start + EMBED_BATCH]
            vectors = np.asarray(embedder.embed_passages([t for _, t in batch]), dtype=np.float32)
            if vectors.shape != (len(batch), embedder.dimension):
                raise QAError(
                    f"the model {embedder.model!r} returned vectors of shape {vectors.shape}, "
                    f"expected ({len(batch)}, {embedder.dimension})"
                )
            hashes = [h for h, _ in batch]
            pending.put(hashes, vectors)
            out.update(zip(hashes, vectors))
            bar.update(len(batch))
    return out


# --- the index ---------------------------------------------------------------


class Index:
    """An open index generation. Use :meth:`open` and :meth:`update`."""

    def __init__(
        self,
        root: Path,
        manifest: dict,
        embedder: Embedder,
        store: Store,
        vectors: VectorIndex,
        lexical: LexicalIndex,
        lexical_rows: np.ndarray,
    ):
        self.root = root
        self.manifest = manifest
        self.embedder = embedder
        self._store = store
        self._vectors = vectors
        self._lexical = lexical
        self._lexical_rows = lexical_rows  # BM25 document number -> chunk row, ascending

    # --- opening ---

    @classmethod
    def open(cls, path, embedder: Embedder | None = None) -> Index:
        """Open the current generation of the index at ``path``.

        Raises IndexNotFound, IndexMismatch (built with another model or
        dimension), IndexCorrupt. Without ``embedder``, loads the model the
        manifest names.
        """
        root = Path(path)
        manifest = read_manifest(root)
        if embedder is None:
            embedder = embedder_for(manifest)
        _check_embedder(manifest, embedder, root)
        for _attempt in range(3):
            try:
                return cls._open_generation(root, manifest, embedder)
            except IndexCorrupt:
                # an update may have replaced the manifest and removed our generation meanwhile
                latest = read_manifest(root)
                if latest["generation"] == manifest["generation"]:
                    raise
                manifest = latest
                _check_embedder(manifest, embedder, root)
        return cls._open_generation(root, manifest, embedder)

    @classmethod
    def _open_generation(cls, root: Path, manifest: dict, embedder: Embedder) -> Index:
        gen_dir = root / manifest["directory"]
        if not gen_dir.is_dir():
            raise IndexCorrupt(f"{gen_dir} is missing; rebuild with `qa index PATH --index {root}`")
        store = Store(gen_dir / manifest["files"]["store"], readonly=True)
        try:
            try:
                vectors = vector_index_class(manifest["ann"]).load(gen_dir / manifest["files"]["vectors"])
                rows = np.load(gen_dir / manifest["files"]["ids"], allow_pickle=False)
            except (OSError, ValueError, RuntimeError) as exc:
                raise IndexCorrupt(f"the vector files in {gen_dir} are unreadable ({exc})") from exc
            lexical = LexicalIndex.load(gen_dir / manifest["files"]["lexical"])
            n = store.counts()["chunks"]
            if not (len(vectors) == len(rows) == len(lexical) == n) or vectors.dimension != embedder.dimension:
                raise IndexCorrupt(
                    f"the files in {gen_dir} disagree ({n} chunks, {len(vectors)} vectors, "
                    f"{len(lexical)} BM25 documents); rebuild with `qa index PATH --index {root}`"
                )
        except BaseException:
            store.close()
            raise
        return cls(root, manifest, embedder, store, vectors, lexical, rows.astype(np.int64))

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def generation(self) -> int:
        return int(self.manifest["generation"])

    def is_stale(self) -> bool:
        """True when the manifest on disk names a newer generation than the one open."""
        try:
            return read_manifest(self.root)["generation"] != self.generation()
        except QAError:
            return False  # nothing readable there now: keep serving what is open

    # --- updating ---

    @classmethod
    def update(
        cls,
        path,
        articles: Iterable[Article],
        embedder: Embedder,
        *,
        remove_missing: bool = True,
        progress: bool = True,
        ann: str = "flat",
    ) -> UpdateReport:
        """Build or update the index at ``path`` from ``articles`` (see the module docstring)."""
        start = time.perf_counter()
        vector_cls = vector_index_class(ann)
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        with _update_lock(root):
            manifest = read_manifest(root) if (root / MANIFEST).exists() else None
            if manifest is not None:
                _check_embedder(manifest, embedder, root)
                keep = {manifest["directory"], manifest.get("previous") or ""}
            else:
                keep = set()
            _remove_stale_generations(root, keep)
            return _Update(root, manifest, embedder, vector_cls, remove_missing, progress, start).run(articles)

    # --- reading ---

    def article(self, article_id: str) -> Article:
        return self._store.article(article_id)

    def stats(self) -> IndexStats:
        counts = self._store.counts()
        first, last = self._store.date_range()
        gen_dir = self.root / self.manifest["directory"]
        size = sum(p.stat().st_size for p in gen_dir.rglob("*") if p.is_file()) if gen_dir.is_dir() else 0
        built = self.manifest["embedding"]
        return IndexStats(
            path=str(self.root), generation=self.generation(), format_version=FORMAT_VERSION,
            articles=counts["articles"], chunks=counts["chunks"], sources=counts["sources"],
            date_from=first, date_to=last, model=built["model"], backend=built["backend"],
            dimension=int(built["dimension"]), ann=self.manifest["ann"],
            built_at=self.manifest.get("built_at", ""), size_bytes=size,
        )

    def sources(self) -> list[tuple[str, int]]:
        """Each source with its number of articles, most first."""
        return self._store.sources()

    # --- searching ---

    def search(
        self, question: str, k: int = 5, mode: str = "hybrid", filters: SearchFilters | None = None
    ) -> SearchResult:
        """The ``k`` best passages for ``question``, at most one per paragraph.

        Raises InvalidQuery for an empty or too long question, an unknown
        mode, k outside 1..100, or bad filters.
        """
        started = time.perf_counter()
        question = check_question(question)
        if mode not in MODES:
            raise InvalidQuery(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise InvalidQuery(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        filters = filters or SearchFilters()
        cap = filters.max_per_article
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InvalidQuery(f"max_per_article must be a whole number of at least 1, not {cap!r}")
        allowed = self._store.allowed_rows(filters)

        hits: tuple[Hit, ...] = ()
        if allowed is None or len(allowed):
            candidates = self._candidates(question, mode, max(100, 5 * k), allowed)
            hits = self._hits(question, candidates, k, cap)
        return SearchResult(question=question, mode=mode, hits=hits, seconds=time.perf_counter() - started)

    def _candidates(self, question: str, mode: str, n: int, allowed: np.ndarray | None) -> list[Fused]:
        dense_rows = dense_scores = lex_rows = lex_scores = None
        tokens: list[str] = []
        if mode in ("dense", "hybrid"):
            query = self.embedder.embed_queries([question])
            ids, scores = self._vectors.search(query, n, allowed)
            keep = ids[0] >= 0
            dense_rows, dense_scores = ids[0][keep], scores[0][keep]
        if mode in ("lexical", "hybrid"):
            tokens = tokenize(question)
            mask = None if allowed is None else np.isin(self._lexical_rows, allowed)
            positions, scores = self._lexical.search(tokens, n, allowed=mask)
            lex_rows, lex_scores = self._lexical_rows[positions], scores
        if mode == "dense":
            return [Fused(int(r), float(s), float(s), None) for r, s in zip(dense_rows, dense_scores)]
        if mode == "lexical":
            return [Fused(int(r), float(s), None, float(s)) for r, s in zip(lex_rows, lex_scores)]
        return fuse(
            dense_rows, dense_scores, lex_rows, lex_scores,
            n_query_tokens=len(tokens), lexical_max=self._lexical.max_score(tokens),
        )

    def _hits(self, question: str, candidates: list[Fused], k: int, cap: int | None) -> tuple[Hit, ...]:
        stored = self._store.chunk_rows(c.row for c in candidates)
        taken: dict[str, list[tuple[int, int]]] = {}  # article id -> paragraph ranges already hit
        hits: list[Hit] = []
        for cand in candidates:
            row = stored.get(cand.row)
            if row is None:
                continue
            ranges = taken.setdefault(row.article_id, [])
            if cap is not None and len(ranges) >= cap:
                continue
            if any(row.para_start <= end and start <= row.para_end for start, end in ranges):
                continue  # at most one hit per paragraph
            ranges.append((row.para_start, row.para_end))
            spans, best = highlight(row.text, question)
            hits.append(
                Hit(
                    rank=len(hits) + 1, score=float(cand.score), chunk_id=row.chunk_id,
                    text=row.text, highlights=spans, best_sentence=best, citation=row.citation,
                    dense_score=cand.dense, lexical_score=cand.lexical,
                )
            )
            if len(hits) == k:
                break
        return tuple(hits)


def check_question(question: str) -> str:
    """The question stripped, or InvalidQuery when it is not text, empty or too long."""
    if not isinstance(question, str):
        raise InvalidQuery("the question must be text")
    question = question.strip()
    if not question:
        raise InvalidQuery("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidQuery(
            f"the question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS})"
        )
    return question


class _Update:
    """One run of Index.update (a class only to keep the steps small and named)."""

    def __init__(self, root, manifest, embedder, vector_cls, remove_missing, progress, started):
        self.root: Path = root
        self.manifest: dict | None = manifest
        self.embedder: Embedder = embedder
        self.vector_cls: type[VectorIndex] = vector_cls
        self.remove_missing = remove_missing
        self.progress = progress
        self.started = started
        self.prev_dir = root / manifest["directory"] if manifest else None

    def run(self, articles: Iterable[Article]) -> UpdateReport:
        old_hashes = self._old_hashes()
        new: list[_NewArticle] = []
        seen: set[str] = set()
        added = changed = unchanged = 0
        for article in tqdm(articles, desc="reading", unit=" articles", disable=not self.progress):
            if article.id in seen:
                continue  # the same article twice: the first one counts
            seen.add(article.id)
            old = old_hashes.get(article.id)
            if old == article_hash(article):
                unchanged += 1
                continue
            added += old is None
            changed += old is not None
            new.append(_prepare(article))
        removed = [a for a in old_hashes if a not in seen] if self.remove_missing else []
        replaced = [a.article.id for a in new if a.article.id in old_hashes]

        same_ann = self.manifest is not None and self.manifest["ann"] == self.vector_cls.kind
        if not new and not removed and same_ann:
            counts = self.manifest["counts"]
            return self._report(
                written=False, generation=self.manifest["generation"], added=0, changed=0,
                removed=0, unchanged=unchanged, embedded=0, reused=0, chunks_removed=0,
                articles=counts["articles"], chunks=counts["chunks"],
            )

        generation = (self.manifest["generation"] if self.manifest else 0) + 1
        gen_dir = self.root / f"gen-{generation:06d}"
        if gen_dir.exists():
            shutil.rmtree(gen_dir)
        gen_dir.mkdir()
        vectors, embedded, reused = self._vectors_for(new)

        store = self._new_store(gen_dir)
        try:
            with store.transaction():
                gone = store.delete_articles(removed + replaced)
                added_rows: list[int] = []
                for item in new:
                    embeddings = np.stack([vectors[h] for h in item.hashes]) if item.hashes else np.zeros(
                        (0, self.embedder.dimension), np.float32
                    )
                    added_rows += store.add_article(item.article, item.chunks, item.tokens, embeddings)
            new_vectors = [vectors[h] for item in new for h in item.hashes]
            self._write_vectors(gen_dir, store, gone, added_rows, new_vectors)
            self._write_lexical(gen_dir, store)
            counts = store.counts()
        finally:
            store.close()
        _fsync_tree(gen_dir)
        manifest = self._manifest(generation, gen_dir, counts)
        _write_manifest(self.root, manifest)
        _remove_stale_generations(self.root, {gen_dir.name, manifest["previous"] or ""})
        (self.root / PENDING).unlink(missing_ok=True)
        return self._report(
            written=True, generation=generation, added=added, changed=changed, removed=len(removed),
            unchanged=unchanged, embedded=embedded, reused=reused, chunks_removed=len(gone),
            articles=counts["articles"], chunks=counts["chunks"],
        )

    def _old_hashes(self) -> dict[str, str]:
        if self.prev_dir is None:
            return {}
        store = Store(self.prev_dir / self.manifest["files"]["store"], readonly=True)
        try:
            return store.article_hashes()
        finally:
            store.close()

    def _vectors_for(self, new: list[_NewArticle]) -> tuple[dict[str, np.ndarray], int, int]:
        """Vectors for every new chunk: reused from the store or a killed run, else embedded."""
        texts: dict[str, str] = {}
        for item in new:
            for h, chunk in zip(item.hashes, item.chunks):
                texts.setdefault(h, chunk.embed_text)
        total = sum(len(item.hashes) for item in new)
        known: dict[str, np.ndarray] = {}
        if self.prev_dir is not None and texts:
            store = Store(self.prev_dir / self.manifest["files"]["store"], readonly=True)
            try:
                known.update(store.embeddings_by_hash(texts))
            finally:
                store.close()
        pending = _PendingEmbeddings(self.root / PENDING, self.embedder.model)
        try:
            missing = [h for h in texts if h not in known]
            known.update(pending.get(missing))
            todo = {h: texts[h] for h in texts if h not in known}
            known.update(_embed_missing(todo, self.embedder, pending, self.progress))
        finally:
            pending.close()
        embedded = len(todo)
        return known, embedded, total - embedded

    def _new_store(self, gen_dir: Path) -> Store:
        target = gen_dir / STORE_FILE
        if self.prev_dir is not None:
            shutil.copyfile(self.prev_dir / self.manifest["files"]["store"], target)
        return Store(target)

    def _write_vectors(self, gen_dir, store, gone, added_rows, new_vectors) -> None:
        dim = self.embedder.dimension
        index = None
        if (
            self.manifest is not None
            and self.manifest["ann"] == self.vector_cls.kind
            and (self.vector_cls.supports_remove or not gone)
        ):
            try:
                index = self.vector_cls.load(self.prev_dir / self.manifest["files"]["vectors"])
            except (OSError, ValueError, RuntimeError):
                index = None  # unreadable: rebuilt from the store below
            if index is not None:
                index.remove(gone)
                if added_rows:
                    index.add(added_rows, np.stack(new_vectors))
        if index is None:
            index = self.vector_cls(dim)
            for rows, vectors in store.embeddings(dim):
                index.add(rows, vectors)
        index.save(gen_dir / VECTOR_FILES[self.vector_cls.kind])

    def _write_lexical(self, gen_dir: Path, store: Store) -> None:
        rows, tokens = store.tokens()
        LexicalIndex.build(tokens).save(gen_dir / LEXICAL_DIR)
        with open(gen_dir / IDS_FILE, "wb") as f:
            np.save(f, rows, allow_pickle=False)

    def _manifest(self, generation: int, gen_dir: Path, counts: dict) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "generation": generation,
            "directory": gen_dir.name,
            "previous": self.prev_dir.name if self.prev_dir is not None else None,
            "built_at": _utc_now(),
            "build_seconds": round(time.perf_counter() - self.started, 3),
            "embedding": {
                "backend": self.embedder.backend,
                "model": self.embedder.model,
                "dimension": self.embedder.dimension,
            },
            "ann": self.vector_cls.kind,
            "counts": counts,
            "files": {
                "store": STORE_FILE,
                "vectors": VECTOR_FILES[self.vector_cls.kind],
                "lexical": LEXICAL_DIR,
                "ids": IDS_FILE,
            },
        }

    def _report(self, *, written, generation, added, changed, removed, unchanged, embedded,
                reused, chunks_removed, articles, chunks) -> UpdateReport:
        return UpdateReport(
            path=str(self.root), generation=generation, written=written,
            articles_added=added, articles_changed=changed, articles_removed=removed,
            articles_unchanged=unchanged, chunks_embedded=embedded, chunks_reused=reused,
            chunks_removed=chunks_removed, articles=articles, chunks=chunks,
            seconds=time.perf_counter() - self.started,
        )
