"""Keeping an index in step with folders of article files, reading only what changed.

:func:`sync_folders` is what ``qa index FOLDER...`` runs. The catalog
remembers, for every file of the last run, its size, modification time,
SHA-256 and what it held (an article, a duplicate of one, or nothing
usable). A run:

1. lists the folders (``stat`` only, :func:`qa.ingest.scan_files`);
2. takes a file whose size and time are unchanged as unchanged, unread;
3. reads the others (in a reader thread that reads, parses, chunks and
   tokenises up to :data:`READ_AHEAD` files ahead of the writer, so that this
   work runs while the model embeds); one whose bytes hash as before is
   unchanged too (only its time is updated); the rest are parsed and their
   articles added,
   replaced or recognised as duplicates (same URL or same text as an article
   another present file holds);
4. removes the articles of files that are gone or no longer hold them,
   unless a duplicate file still holds the article: that one takes over.

So a run over an unchanged archive of 20,000 files costs a directory listing,
and adding an article costs that article. Articles the index holds without
a file (added through the library, or by an index of the first format) are
removed too when ``remove_missing``, as they were not given this time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from qa.embed import Embedder
from qa.errors import QAError, ReadError
from qa.index.catalog import FileState, article_hash, text_hash
from qa.index.writer import STEP_CHUNKS, Prepared, Timings, UpdateReport, Writer, prepare
from qa.ingest import MAX_FILE_BYTES, Deduper, FileEntry, _guarded, article_from_bytes, printable, read_bytes, scan_files
from qa.records import Article, ReadReport, Skipped

log = logging.getLogger(__name__)

READ_AHEAD = 64
"""Files the reader thread may have read and prepared before the writer takes them."""
FILES_PER_TASK = 32
"""Files a reader process reads per task (with several readers)."""


@dataclass(frozen=True)
class Loaded:
    """What reading one changed file gave: its SHA-256 and its article, or the ReadError that
    skips it. ``sha256`` None: the bytes could not be read; ``article`` and ``error`` None: the
    bytes hash as they did last time (``old_sha256``), so they were not parsed."""

    sha256: str | None
    article: Article | None = None
    error: ReadError | None = None
    prepared: Prepared | None = None  # the article chunked and tokenised, where that was done already


def load_file(entry: FileEntry, old_sha256: str | None, max_bytes: int = MAX_FILE_BYTES) -> Loaded:
    """Read, hash and parse one file (what a run does with each file whose size or time changed)."""
    try:
        data = read_bytes(entry, max_bytes)
    except ReadError as exc:
        return Loaded(None, error=exc)
    digest = hashlib.sha256(data).hexdigest()
    if digest == old_sha256:
        return Loaded(digest)
    try:
        return Loaded(digest, article=_guarded(lambda: article_from_bytes(data, entry), entry.rel))
    except ReadError as exc:
        return Loaded(digest, error=exc)


Loader = Callable[[Iterable[tuple[FileEntry, "str | None"]]], Iterator[tuple[FileEntry, Loaded]]]
"""Reads the changed files ``(entry, its SHA-256 last time)`` and yields ``(entry, Loaded)`` in the
same order. :func:`sync_folders` reads them here, in a reader thread (:func:`load_ahead`);
:mod:`qa.cluster` on a Ray cluster."""

_END = object()


def load_files(files: Sequence[tuple[FileEntry, str | None]], max_bytes: int = MAX_FILE_BYTES,
               ) -> tuple[list[Loaded], float, float]:  # fmt: skip
    """:func:`load_file` and :func:`~qa.index.writer.prepare` for each of ``files``: the Loaded
    records, and the seconds spent reading and preparing (what a reader thread or process runs)."""
    out, read, prepared = [], 0.0, 0.0
    for entry, old_sha256 in files:
        started = time.perf_counter()
        loaded = load_file(entry, old_sha256, max_bytes)
        middle = time.perf_counter()
        if loaded.article is not None:
            loaded = replace(loaded, prepared=prepare(loaded.article, entry.key))
        read += middle - started
        prepared += time.perf_counter() - middle
        out.append(loaded)
    return out, read, prepared


def load_ahead(
    changed: Iterable[tuple[FileEntry, str | None]],
    max_bytes: int = MAX_FILE_BYTES,
    timings: Timings | None = None,
    ahead: int = READ_AHEAD,
    readers: int = 1,
) -> Iterator[tuple[FileEntry, Loaded]]:
    """:func:`load_file` and :func:`~qa.index.writer.prepare` for each changed file, ahead of the
    consumer, yielded in order: in one reader thread, or in ``readers`` processes.

    The model releases the GIL while it computes, so one thread's reading,
    parsing, chunking and BM25 tokenising (pure Python, most of it) go on while
    it embeds instead of between its batches: enough beside a model on the CPU,
    which uses every core. A GPU embeds faster than one core reads (~1,000
    passages/s here): there ``readers`` > 1 processes (spawned, so nothing of
    the parent's threads is copied) read batches of :data:`FILES_PER_TASK`
    files, at most ``2 * readers`` batches ahead. An error in a reader is raised
    here, in order; a consumer that stops early stops the readers. ``timings``
    gets their read and prepare seconds (summed over readers). Spawned processes
    import the caller's main module: a script asking for ``readers`` > 1 runs
    its work under ``if __name__ == "__main__":`` (the ``qa`` command does).
    """
    timings = timings if timings is not None else Timings()
    timings.overlapped = True
    if readers > 1:
        files = list(changed)
        if len(files) >= readers * FILES_PER_TASK:
            yield from _load_in_processes(files, max_bytes, timings, readers)
            return
        changed = files
    yield from _load_in_thread(changed, max_bytes, timings, ahead)


def _load_in_thread(changed, max_bytes: int, timings: Timings, ahead: int) -> Iterator[tuple[FileEntry, Loaded]]:
    out: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for entry, old_sha256 in changed:
                (loaded,), read, prepared = load_files([(entry, old_sha256)], max_bytes)
                timings.read += read
                timings.prepare += prepared
                if not put((entry, loaded)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        put(_END)

    thread = threading.Thread(target=work, name="qa-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _load_in_processes(files: list, max_bytes: int, timings: Timings, readers: int
                       ) -> Iterator[tuple[FileEntry, Loaded]]:  # fmt: skip
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    tasks = (files[start : start + FILES_PER_TASK] for start in range(0, len(files), FILES_PER_TASK))
    pool = ProcessPoolExecutor(readers, mp_context=multiprocessing.get_context("spawn"))
    in_flight: deque = deque()
    try:
        for task in tasks:
            in_flight.append((task, pool.submit(load_files, task, max_bytes)))
            if len(in_flight) < 2 * readers:
                continue
            yield from _finished(in_flight.popleft(), timings)
        while in_flight:
            yield from _finished(in_flight.popleft(), timings)
    except BrokenProcessPool as exc:
        raise QAError(
            "a reader process died before it had read its files (killed, out of memory, or started "
            "from a script without `if __name__ == '__main__':`, which spawned processes need); "
            "the index keeps its last commit: run again, or with readers=1"
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finished(task_future, timings: Timings) -> Iterator[tuple[FileEntry, Loaded]]:
    task, future = task_future
    loaded, read, prepared = future.result()
    timings.read += read
    timings.prepare += prepared
    yield from zip((entry for entry, _ in task), loaded)


def default_readers(device: str = "cpu") -> int:
    """Reader processes for a run whose model is on ``device``: one thread beside a CPU model
    (which uses every core); beside a GPU, every core but two (the writer and the GPU's feeder)."""
    if device == "cpu":
        return 1
    return max(1, (os.cpu_count() or 2) - 2)


@dataclass
class _Run:
    writer: Writer
    report: ReadReport
    present: dict[str, FileEntry]
    states: dict[str, FileState]
    claims: dict[str, str]  # article id -> the file holding it, decided in this run
    duplicates: dict[str, list[FileEntry]]  # article id -> files found duplicating it in this run
    orphans: set[str]  # article ids whose file is gone or holds something else now
    dedupe: Deduper
    processed: set[str]
    max_bytes: int


def sync_folders(
    path,
    folders: Iterable[str | os.PathLike],
    embedder: Embedder,
    report: ReadReport,
    *,
    remove_missing: bool = True,
    follow_symlinks: bool = False,
    max_bytes: int = MAX_FILE_BYTES,
    progress: bool = True,
    ann: str | None = None,
    step_chunks: int = STEP_CHUNKS,
    merge: bool = True,
    load: Loader | None = None,
    readers: int = 1,
) -> UpdateReport:
    """Build or update the index at ``path`` from the article files under ``folders``.

    ``report`` is filled with what happened to every file. Raises QAError,
    leaving the index as it was, when the folders hold no article files.
    ``load`` reads the changed files (default: :func:`load_ahead` here, in a
    reader thread, or in ``readers`` processes; :func:`default_readers`).
    """
    entries = list(scan_files(folders, report, follow_symlinks=follow_symlinks))
    if not entries:
        raise QAError(
            f"no articles found in {', '.join(map(str, folders))} (no article files: "
            f"{', '.join(s for s in ('.md', '.html', '.txt'))}...; {report.files_seen} other entries skipped); "
            "the index was left as it is"
        )
    with Writer(path, embedder, ann=ann, progress=progress, step_chunks=step_chunks) as writer:
        run = _Run(
            writer=writer, report=report, present={e.key: e for e in entries},
            states=writer.catalog.file_states(), claims={}, duplicates={}, orphans=set(),
            dedupe=Deduper(), processed=set(), max_bytes=max_bytes,
        )
        if remove_missing:
            for key, state in run.states.items():
                if key not in run.present:
                    writer.delete_file(key)
                    if state.status == "article" and state.article_id:
                        run.orphans.add(state.article_id)
        from tqdm import tqdm

        changed: list[tuple[FileEntry, str | None]] = []
        for entry in entries:
            report.files_seen += 1
            state = run.states.get(entry.key)
            if state is not None and state.size == entry.size and state.mtime_ns == entry.mtime_ns:
                report.unchanged += 1
            else:
                changed.append((entry, state.sha256 if state is not None else None))
        loader = load or (lambda files: load_ahead(files, max_bytes, writer.timings, readers=readers))
        for entry, loaded in tqdm(loader(changed), total=len(changed), desc="reading", unit=" files",
                                  disable=not progress or not changed, mininterval=1.0):  # fmt: skip
            _read(run, entry, loaded)
        _settle_orphans(run)
        if remove_missing:
            for article_id in writer.catalog.articles_without_file():
                if article_id not in run.claims:
                    writer.delete(article_id)
        if not run.claims and report.articles == 0 and report.unchanged == 0 and report.duplicates == 0:
            raise QAError(
                f"no articles could be read from {', '.join(map(str, folders))} "
                f"({len(report.skipped)} files skipped); the index was left as it is"
            )
        result = writer.finish(merge=merge)
    unchanged = max(0, result.articles - result.articles_added - result.articles_changed)
    return replace(result, articles_unchanged=unchanged)


def _skip(run: _Run, entry: FileEntry, state: FileState, exc: ReadError) -> None:
    run.report.skipped.append(Skipped(exc.path, exc.reason, exc.detail))
    log.warning("skipped %s: %s%s", printable(exc.path), exc.reason,
                f" ({printable(exc.detail)})" if exc.detail else "")  # fmt: skip
    run.writer.put_file(replace(state, status="skipped", article_id=None, detail=f"{exc.reason}: {exc.detail}"[:500]))


def _read(run: _Run, entry: FileEntry, loaded: Loaded) -> None:
    run.processed.add(entry.key)
    old = run.states.get(entry.key)
    blank = FileState(entry.key, entry.size, entry.mtime_ns, "", "skipped", None, entry.rel)
    if old is not None and old.status == "article" and old.article_id:
        run.orphans.add(old.article_id)  # until the file is found to hold it still
    if loaded.sha256 is None:
        _skip(run, entry, blank, loaded.error)
        return
    if old is not None and old.sha256 == loaded.sha256:
        run.report.unchanged += 1
        run.writer.put_file(replace(old, size=entry.size, mtime_ns=entry.mtime_ns))
        if old.status == "article" and old.article_id:
            run.orphans.discard(old.article_id)
            run.claims.setdefault(old.article_id, entry.key)
        return
    state = replace(blank, sha256=loaded.sha256)
    if loaded.error is not None:
        _skip(run, entry, state, loaded.error)
        return
    _place(run, entry, state, loaded.article, loaded.prepared)


def _place(run: _Run, entry: FileEntry, state: FileState, article: Article,
           prepared: Prepared | None = None) -> None:  # fmt: skip
    """Add ``article`` from ``entry``, or record the file as a duplicate of the article kept."""
    catalog, report = run.writer.catalog, run.report
    kept_id = _duplicate_of(run, entry, article)
    if kept_id is not None:
        report.duplicates += 1
        report.duplicate_paths.append((entry.rel, run.present[run.claims[kept_id]].rel
                                       if kept_id in run.claims else kept_id))  # fmt: skip
        run.duplicates.setdefault(kept_id, []).append(entry)
        run.writer.put_file(replace(state, status="duplicate", article_id=kept_id))
        return
    report.articles += 1
    run.claims[article.id] = entry.key
    run.orphans.discard(article.id)
    stored, owner = catalog.article_file(article.id)
    same = stored and owner == entry.key and catalog.article_hash_of([article.id]).get(article.id) == article_hash(article)
    run.writer.put_file(replace(state, status="article", article_id=article.id))  # committed with the article
    if not same:
        run.writer.add(article, entry.key, changed=stored, prepared=prepared)


def _duplicate_of(run: _Run, entry: FileEntry, article: Article) -> str | None:
    """The id of the article this one duplicates (in this run or in the index), or None."""
    catalog = run.writer.catalog
    claimed = run.claims.get(article.id)
    if claimed is not None and claimed != entry.key:
        return article.id
    try:
        kept = run.dedupe.kept_as(article)
    except ReadError:
        kept = None
    if kept is not None:
        return kept[1]
    stored, owner = catalog.article_file(article.id)
    if stored and owner and owner != entry.key and owner in run.present and article.id not in run.orphans:
        return article.id  # another file still present holds it
    other = catalog.article_by_text_hash(text_hash(article.text))
    if other is not None and other != article.id and other not in run.orphans:
        _, other_owner = catalog.article_file(other)
        if other_owner is None or (other_owner != entry.key and other_owner in run.present):
            return other
    return None


def _settle_orphans(run: _Run) -> None:
    """Articles whose file is gone or changed: a duplicate file takes over, else they are removed."""
    catalog = run.writer.catalog
    for article_id in sorted(run.orphans):
        if article_id in run.claims:
            continue
        candidates = [e.key for e in run.duplicates.get(article_id, [])]
        candidates += [k for k in catalog.duplicate_files(article_id) if k in run.present and k not in candidates]
        for key in candidates:
            entry = run.present[key]
            try:
                data = read_bytes(entry, run.max_bytes)
                article = _guarded(lambda e=entry, d=data: article_from_bytes(d, e), entry.rel)
            except ReadError:
                continue
            state = FileState(key, entry.size, entry.mtime_ns, hashlib.sha256(data).hexdigest(),
                              "article", article.id, entry.rel)  # fmt: skip
            run.claims[article.id] = key
            stored, _owner = catalog.article_file(article.id)
            run.writer.put_file(state)
            run.writer.add(article, key, changed=stored)
            if key in {e.key for e in run.duplicates.get(article_id, [])}:
                run.report.duplicates -= 1
                run.report.articles += 1
            if article.id == article_id:
                break
        if article_id not in run.claims:
            stored, _ = catalog.article_file(article_id)
            if stored:
                run.writer.delete(article_id)
