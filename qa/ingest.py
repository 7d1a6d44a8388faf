"""Read files and folders into Articles.

Three steps, each usable on its own:

- :func:`scan_files` walks the folders given and yields a :class:`FileEntry`
  (path, size, modification time) for every article file, *without reading
  it*: an index compares size and time with what it saw last time and reads
  only what changed. Only regular files are yielded (a named pipe, socket or
  device is skipped, never opened); folders reached twice (a link loop) are
  walked once; a symbolic link whose target lies outside the folder given is
  skipped with a warning unless ``follow_symlinks``.
- :func:`read_bytes` reads one entry, at most ``max_bytes``;
  :func:`article_from_bytes` decodes, parses and cleans those bytes into an
  :class:`~qa.records.Article` or raises ReadError with a short reason.
- :func:`iter_articles` does all of it for a run: every bad file becomes one
  warning and one :class:`~qa.records.Skipped` entry in the
  :class:`~qa.records.ReadReport`, and the run goes on; the same article
  saved twice (same URL, or same text) is kept once. The report accounts for
  every file: ``articles + duplicates + len(skipped) == files_seen``.

Article ids: ``"url:" + 16 hex digits of sha1(normalised URL)`` when the file
names a URL (so the same story saved under two names, or in two folders, has
one id), else ``"path:" + <folder name>/<path relative to it>`` (the name of
the folder given, so ``a/x.md`` and ``b/x.md`` of two folders differ, and the
id does not change when the folder moves).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from qa.clean import clean_html, text_paragraphs
from qa.errors import ReadError
from qa.lang import detect_language
from qa.parse import decode, parse_document
from qa.records import Article, ReadReport, Skipped

log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown", ".html", ".htm", ".xhtml", ".txt")
MAX_FILE_BYTES = 20 * 1024 * 1024
"""Files larger than this are skipped ("too large"): no news article is 20 MB of text."""

__all__ = [
    "SUFFIXES", "MAX_FILE_BYTES", "FileEntry", "scan_files", "read_bytes", "article_from_bytes",
    "read_file", "iter_articles", "iter_files", "decode", "normalize_url", "article_id", "printable",
]


@dataclass(frozen=True)
class FileEntry:
    """An article file found by :func:`scan_files` (stat only: not read yet)."""

    path: Path  # where it was found
    root: Path  # the folder given (for a file given directly: its folder)
    rel: str  # path relative to root, "/"-separated: Article.path
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        """The absolute path: how an index recognises the file on the next run."""
        return os.path.abspath(self.path)

    @property
    def id_path(self) -> str:
        """``<folder name>/<rel>``: what a URL-less article's id is made of."""
        name = Path(os.path.abspath(self.root)).name
        return f"{name}/{self.rel}" if name else self.rel


# --- scanning ------------------------------------------------------------------


def _skip(report: ReadReport | None, rel: str, reason: str, detail: str) -> None:
    if report is not None:
        report.files_seen += 1
        report.skipped.append(Skipped(rel, reason, detail))
    log.warning("skipped %s: %s (%s)", printable(rel), reason, printable(detail))


def _entry(path: Path, root: Path, rel: str, st: os.stat_result) -> FileEntry:
    return FileEntry(path=path, root=root, rel=rel, size=st.st_size, mtime_ns=st.st_mtime_ns)


def scan_files(
    paths: Iterable[str | os.PathLike],
    report: ReadReport | None = None,
    *,
    follow_symlinks: bool = False,
) -> Iterator[FileEntry]:
    """Every article file under ``paths`` (files or folders), in a stable order.

    Folders are walked recursively, a folder's files (sorted) before its
    subfolders (sorted), skipping hidden entries; files with other suffixes
    are not articles and not counted. A path given that does not exist raises
    ReadError("io") before anything is yielded; everything else that cannot be
    used (a link leaving the folder, a pipe, a broken link) is reported in
    ``report`` and skipped.
    """
    given_paths = [Path(p) for p in paths]
    for given in given_paths:
        if not os.path.lexists(given):
            raise ReadError(str(given), "io", "no such file or folder")
    for given in given_paths:
        try:
            st = os.stat(given)  # a path the user names is followed even if it is a link
        except OSError as exc:
            raise ReadError(str(given), "io", exc.strerror or str(exc)) from exc
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(given, report, follow_symlinks)
        elif given.name.lower().endswith(SUFFIXES) or stat.S_ISREG(st.st_mode):
            root = given.parent
            if stat.S_ISREG(st.st_mode):
                yield _entry(given, root, given.name, st)
            else:
                _skip(report, given.name, "not a regular file", _kind(st.st_mode))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _walk(root: Path, report: ReadReport | None, follow_symlinks: bool) -> Iterator[FileEntry]:
    root_real = os.path.realpath(root)
    root_st = os.stat(root)
    seen_dirs = {(root_st.st_dev, root_st.st_ino)}
    stack: list[tuple[Path, str]] = [(root, "")]  # (folder, its path relative to root)
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            _skip(report, prefix or ".", "io", f"cannot list the folder: {exc.strerror or exc}")
            continue
        subfolders: list[tuple[Path, str]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            is_article = entry.name.lower().endswith(SUFFIXES)
            try:
                is_link = entry.is_symlink()
            except OSError:
                is_link = False
            if is_link:
                target = os.path.realpath(entry.path)
                inside = target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)
                if not inside and not follow_symlinks:
                    try:
                        is_dir = os.path.isdir(entry.path)
                    except OSError:
                        is_dir = False
                    if is_article or is_dir:
                        _skip(report, rel + ("/" if is_dir else ""), "symlink",
                              "a link to outside the folder; use --follow-symlinks to read it")  # fmt: skip
                    continue
            try:
                st = os.stat(entry.path)  # follows links (inside the folder, or allowed)
            except OSError as exc:
                if is_article:
                    _skip(report, rel, "io", exc.strerror or str(exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                if ident not in seen_dirs:  # a link loop or a second link to a folder: walked once
                    seen_dirs.add(ident)
                    subfolders.append((Path(entry.path), rel + "/"))
            elif is_article:
                if stat.S_ISREG(st.st_mode):
                    yield _entry(Path(entry.path), root, rel, st)
                else:
                    _skip(report, rel, "not a regular file", _kind(st.st_mode))
        stack.extend(reversed(subfolders))


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, Path]]:
    """(file, root) for every article file (see :func:`scan_files`)."""
    for entry in scan_files(paths):
        yield entry.path, entry.root


# --- reading ------------------------------------------------------------------


def read_bytes(entry: FileEntry, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes. Raises ReadError ("io", "too large", "not a regular file").

    Opened non-blocking and checked again after opening, so a file replaced
    by a pipe between the scan and the read cannot hang the run.
    """
    try:
        fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ReadError(entry.rel, "io", exc.strerror or str(exc)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError(entry.rel, "not a regular file", _kind(st.st_mode))
        if st.st_size > max_bytes:
            raise ReadError(entry.rel, "too large", f"{st.st_size:,} bytes; the limit is {max_bytes:,}")
        chunks, total = [], 0
        while True:
            block = os.read(fd, 1 << 20)
            if not block:
                break
            total += len(block)
            if total > max_bytes:
                raise ReadError(entry.rel, "too large", f"more than {max_bytes:,} bytes")
            chunks.append(block)
        return b"".join(chunks)
    except OSError as exc:
        raise ReadError(entry.rel, "io", exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)


def article_from_bytes(data: bytes, entry: FileEntry) -> Article:
    """Decode, parse and clean one file's bytes. Raises ReadError."""
    rel = entry.rel
    text = decode(data, rel)
    parsed = parse_document(text, entry.path.suffix, rel)
    if parsed.body_is_html:
        cleaned = clean_html(parsed.body, parsed.title)
        paragraphs, editor = cleaned.paragraphs, cleaned.editor
    else:
        paragraphs, editor = text_paragraphs(parsed.body), None
    if not paragraphs:
        raise ReadError(rel, "no text", "no article text after cleaning")
    title = parsed.title or entry.path.stem.strip()
    body = "\n".join(paragraphs)
    return Article(
        id=article_id(parsed.url, entry.id_path),
        title=title,
        source=parsed.source or _source_fallback(parsed.url, entry),
        url=parsed.url,
        published=parsed.published,
        tags=parsed.tags,
        language=detect_language(title + "\n" + body),
        path=rel,
        paragraphs=paragraphs,
        editor=editor,
        format=parsed.format,
    )


def read_entry(entry: FileEntry, max_bytes: int = MAX_FILE_BYTES) -> Article:
    """:func:`read_bytes` then :func:`article_from_bytes`; any failure is a ReadError."""
    return _guarded(lambda: article_from_bytes(read_bytes(entry, max_bytes), entry), entry.rel)


def _source_fallback(url: str | None, entry: FileEntry) -> str:
    """An outlet name when the file names none: the URL's host (``www.`` dropped),
    else the name of the folder given, so no article is listed under an empty name."""
    if url:
        host = urlsplit(url.strip()).hostname or ""
        if host:
            return host.removeprefix("www.")
    return Path(os.path.abspath(entry.root)).name


def _guarded(read, rel: str) -> Article:
    """Run ``read``; an unexpected failure (a parser bug, a pathological file)
    becomes ReadError("error"), so one file never stops a run."""
    try:
        return read()
    except ReadError:
        raise
    except (Exception, RecursionError) as exc:  # noqa: BLE001 - isolate the file, report, go on
        log.debug("reading %s failed", rel, exc_info=True)
        raise ReadError(rel, "error", f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def read_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Article:
    """Read one article file. ``root`` is the folder given by the user; the
    Article's path (and a URL-less id) is relative to it."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    rel = _relative(path, root)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ReadError(rel, "io", exc.strerror or str(exc)) from exc
    return read_entry(_entry(path, root, rel, st))


class Deduper:
    """Keeps the first of several files holding the same article (same
    normalised URL, or same text); remembers what it has seen."""

    def __init__(self) -> None:
        self._by_url: dict[str, tuple[str, str]] = {}
        self._by_text: dict[str, tuple[str, str]] = {}
        self._by_id: dict[str, str] = {}

    def kept_as(self, article: Article) -> tuple[str, str] | None:
        """(path, id) of the article already kept that this one duplicates, or
        None (then this one is kept). Raises ReadError("id collision") for the
        same id without the same URL or text (two folders of one name)."""
        text_key = hashlib.sha1(article.text.encode()).hexdigest()
        url_key = normalize_url(article.url) if article.url else None
        kept = (self._by_url.get(url_key) if url_key else None) or self._by_text.get(text_key)
        if kept is not None:
            return kept
        if article.id in self._by_id:
            raise ReadError(
                article.path, "id collision",
                f"another file gives the same article id {article.id!r} ({self._by_id[article.id]}); "
                "index folders with different names, or their parent folder",
            )
        if url_key:
            self._by_url[url_key] = (article.path, article.id)
        self._by_text[text_key] = (article.path, article.id)
        self._by_id[article.id] = article.path
        return None


def iter_articles(
    paths: Iterable[str | os.PathLike],
    report: ReadReport,
    *,
    follow_symlinks: bool = False,
    max_bytes: int = MAX_FILE_BYTES,
) -> Iterator[Article]:
    """Every distinct article under ``paths`` (files or folders)."""
    dedupe = Deduper()
    for entry in scan_files(paths, report, follow_symlinks=follow_symlinks):
        report.files_seen += 1
        try:
            article = read_entry(entry, max_bytes)
            kept = dedupe.kept_as(article)
        except ReadError as exc:
            report.skipped.append(Skipped(exc.path, exc.reason, exc.detail))
            log.warning("skipped %s: %s%s", printable(exc.path), exc.reason,
                        f" ({printable(exc.detail)})" if exc.detail else "")  # fmt: skip
            continue
        if kept is not None:
            report.duplicates += 1
            report.duplicate_paths.append((article.path, kept[0]))
            continue
        report.articles += 1
        yield article


# --- names and ids ----------------------------------------------------------------


def normalize_url(url: str) -> str:
    """The URL as a key: http/https, host case, "www.", doubled slashes, a
    trailing slash, fragments and utm_* parameters do not make another article."""
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    path = "/".join(p for p in parts.path.split("/") if p) or ""
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query) if not k.startswith("utm_")))
    return urlunsplit(("https", host, "/" + path, query, ""))


def article_id(url: str | None, rel_path: str) -> str:
    if url:
        return "url:" + hashlib.sha1(normalize_url(url).encode()).hexdigest()[:16]
    return "path:" + rel_path


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a file name cannot forge a line of output."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
