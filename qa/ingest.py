"""Read files and folders into Articles.

``read_file(path, root)`` reads one file or raises ReadError with a short
reason ("binary", "encoding", "front matter", "no text", "io").
``iter_articles(paths, report)`` walks files and folders (recursively, in a
stable order), skips unreadable files with a one-line warning, keeps the same
article saved twice (same URL, or same text) once, and counts everything in
the ReadReport: ``articles + duplicates + len(skipped) == files_seen``.

Article ids: ``"url:" + 16 hex digits of sha1(normalised URL)`` when the file
names a URL (so the same story saved under two names, or in two folders, has
one id), else ``"path:" + the path relative to the folder given``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from qa.clean import clean_html, text_paragraphs
from qa.errors import ReadError
from qa.lang import detect_language
from qa.parse import parse_document
from qa.records import Article, ReadReport, Skipped

log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown", ".html", ".htm", ".xhtml", ".txt")
_ENCODINGS = ("utf-8-sig", "gb18030")


def read_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Article:
    """Read one article file. ``root`` is the folder given by the user; the
    Article's path (and a URL-less id) is relative to it."""
    path = Path(path)
    rel = _relative(path, Path(root) if root is not None else path.parent)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReadError(rel, "io", exc.strerror or str(exc)) from exc
    text = decode(data, rel)
    parsed = parse_document(text, path.suffix, rel)
    if parsed.body_is_html:
        cleaned = clean_html(parsed.body, parsed.title)
        paragraphs, editor = cleaned.paragraphs, cleaned.editor
    else:
        paragraphs, editor = text_paragraphs(parsed.body), None
    if not paragraphs:
        raise ReadError(rel, "no text", "no article text after cleaning")
    title = parsed.title or path.stem.strip()
    body = "\n".join(paragraphs)
    return Article(
        id=article_id(parsed.url, rel),
        title=title,
        source=parsed.source,
        url=parsed.url,
        published=parsed.published,
        tags=parsed.tags,
        language=detect_language(title + "\n" + body),
        path=rel,
        paragraphs=paragraphs,
        editor=editor,
        format=parsed.format,
    )


def iter_articles(paths: Iterable[str | os.PathLike], report: ReadReport) -> Iterator[Article]:
    """Every distinct article under ``paths`` (files or folders)."""
    by_url: dict[str, str] = {}
    by_text: dict[str, str] = {}
    for path, root in iter_files(paths):
        report.files_seen += 1
        try:
            article = read_file(path, root)
        except ReadError as exc:
            report.skipped.append(Skipped(exc.path, exc.reason, exc.detail))
            log.warning("skipped %s: %s%s", exc.path, exc.reason, f" ({exc.detail})" if exc.detail else "")
            continue
        text_key = hashlib.sha1(article.text.encode()).hexdigest()
        url_key = normalize_url(article.url) if article.url else None
        kept = (by_url.get(url_key) if url_key else None) or by_text.get(text_key)
        if kept is not None:
            report.duplicates += 1
            report.duplicate_paths.append((article.path, kept))
            continue
        if url_key:
            by_url[url_key] = article.path
        by_text[text_key] = article.path
        report.articles += 1
        yield article


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, Path]]:
    """(file, root) for every article file: a file given directly is its own
    root's child; folders are walked recursively in sorted order, skipping
    hidden entries. Files with other suffixes are not articles and not counted.
    A path that does not exist raises ReadError("io")."""
    paths = [Path(p) for p in paths]
    for given in paths:
        if not given.exists():
            raise ReadError(str(given), "io", "no such file or folder")
    for given in paths:
        if given.is_file():
            yield given, given.parent
        elif given.is_dir():
            for dirpath, dirnames, filenames in os.walk(given):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith(".") and name.lower().endswith(SUFFIXES):
                        yield Path(dirpath) / name, given


def decode(data: bytes, path: str = "") -> str:
    """Bytes to text: UTF-8 (with or without BOM), else GB18030. NUL bytes
    mean a binary file."""
    if b"\x00" in data[:8192]:
        raise ReadError(path, "binary", "NUL bytes: not a text file")
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ReadError(path, "encoding", "neither UTF-8 nor GB18030")


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


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
