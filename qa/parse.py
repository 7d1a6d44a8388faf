"""Front matter, format detection and metadata of one decoded file.

Formats:
- ``jekyll`` (format A): YAML front matter with layout/title/date/author/from/
  tags/categories; the body starts with ``<!--ms timestamp-->``, a Markdown
  link ``[title](url)`` and a ``------`` line (the "link header"), then HTML.
- ``hexo`` (format B): a newline before the opening ``---``; single-quoted
  title, categories as a YAML list, RFC 822 date; HTML body.
- ``markdown``: Markdown without front matter (title from the first heading).
- ``html``: a web page (title, canonical URL, publication time from meta tags).
- ``text``: plain text (title from a short first line).

:func:`parse_document` returns a :class:`Parsed` record: metadata plus the raw
body and how to clean it; :mod:`qa.ingest` turns it into an Article.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from dataclasses import dataclass

import yaml
from dateutil import parser as dateparser
from dateutil import tz

from qa.errors import ReadError

_FENCE = re.compile(r"^---[ \t]*$", re.MULTILINE)
_HEADING = re.compile(r"^#[ \t]+(.+)$", re.MULTILINE)  # the first level-1 ATX heading
_HEADER_SPAN = 4096  # where the link header may be: its regex backtracks, so it sees only this much
_LINK_HEADER = re.compile(
    r"\A\s*(?:<!--\s*\d+\s*-->\s*)?\[(?P<title>.*)\]\((?P<url>[^)\s]+)\)[ \t]*\n\s*-{3,}[ \t]*\n"
)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KEY_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s?(.*)$")


# Byte order marks, longest first: a UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAX_BAD_UTF8 = 0.01
"""Share of undecodable bytes a UTF-8 file may have and still be read (each
becomes U+FFFD): a few damaged bytes in the middle of an article lose nothing
else, while a file in another encoding (Latin-1, Shift JIS) has far more."""


def decode(data: bytes, path: str = "") -> str:
    """Bytes to text with ``\\n`` line ends.

    A byte order mark decides (UTF-8, UTF-16 or UTF-32, either byte order);
    without one, a NUL byte means a binary file, and the text is UTF-8, else
    GB18030 (older Chinese files), else UTF-8 with a few damaged bytes
    replaced. Anything else raises ReadError("encoding"); CR and CRLF line
    ends (old Mac, Windows) become LF so that front matter fences are found.
    """
    return normalize_newlines(_decode(data, path))


def _decode(data: bytes, path: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError as exc:
                raise ReadError(path, "encoding", f"not valid {encoding.upper()} after its byte order mark") from exc
            if "\x00" in text:
                raise ReadError(path, "binary", "NUL characters: not a text file")
            return text
    if b"\x00" in data:
        raise ReadError(path, "binary", "NUL bytes: not a text file")
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    text = data.decode("utf-8", errors="replace")
    damaged = text.count("\ufffd") - data.count("\ufffd".encode())
    if damaged <= max(1, len(data) * _MAX_BAD_UTF8):
        return text
    raise ReadError(path, "encoding", "neither UTF-8 nor GB18030, and no byte order mark")


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR line ends as LF."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class Parsed:
    """What one file says about itself, before body cleaning."""

    format: str  # "jekyll" | "hexo" | "markdown" | "html" | "text"
    title: str
    source: str
    url: str | None
    published: str | None
    tags: tuple[str, ...]
    body: str  # HTML for jekyll/hexo/markdown/html, plain text for text
    body_is_html: bool = True


def parse_document(text: str, suffix: str, path: str = "") -> Parsed:
    """Parse a decoded file; ``suffix`` (".md", ".html", ...) picks the reader."""
    text = normalize_newlines(text)
    suffix = suffix.lower()
    if suffix in (".html", ".htm", ".xhtml"):
        return parse_html_page(text)
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("---") and _FENCE.match(stripped):
        return parse_front_matter_document(stripped, path)
    if suffix == ".txt":
        return _parse_text(text)
    return _parse_markdown(text)


def parse_front_matter_document(text: str, path: str = "") -> Parsed:
    """Format A or B: ``text`` starts with the opening ``---``."""
    text = normalize_newlines(text)
    end = _FENCE.search(text, 3)
    if end is None:
        raise ReadError(path, "front matter", "no closing '---'")
    meta = parse_yaml(text[3 : end.start()], path)
    body = text[end.end() :]
    url = _str(meta.get("from") or meta.get("url") or meta.get("link")) or None
    title = _str(meta.get("title"))
    header = _LINK_HEADER.match(body[:_HEADER_SPAN])
    if header:
        body = body[header.end() :]
        url = url or header.group("url")
        title = title or header.group("title")
    tags = _dedupe(_strings(meta.get("tags")) + _strings(meta.get("categories")))
    categories = _strings(meta.get("categories"))
    author = _str(meta.get("author"))
    # The outlet: the author when it names one of the categories (联合早报,
    # 新浪财经) or when there are no categories; otherwise the author is a
    # person and the single category is the outlet (寒冬, 中国数字时代).
    if author and (author in categories or not categories):
        source = author
    else:
        source = categories[0] if categories else ""
    hexo = "layout" not in meta and not header
    return Parsed(
        format="hexo" if hexo else "jekyll",
        title=title,
        source=source,
        url=url,
        published=parse_date(meta.get("date")),
        tags=tags,
        body=body,
    )


def parse_yaml(block: str, path: str = "") -> dict:
    """YAML front matter; when YAML rejects it (an unquoted title with ': ',
    stray quotes, an impossible date), fall back to one ``key: value`` per line.

    Aliases (``*name``) are refused outright (ReadError "front matter"): no
    article needs them, and they are how a few hundred bytes expand into
    gigabytes ("billion laughs") or into a structure that contains itself.
    """
    _refuse_aliases(block, path)
    try:
        meta = yaml.load(block, Loader=_YAML_LOADER)
        if meta is None:
            meta = {}
        if isinstance(meta, dict):
            return meta
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        pass  # e.g. "date: 2020-13-45" fails in the constructor with ValueError
    meta: dict = {}
    key = None
    for line in block.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = re.match(r"^\s+-\s*(.*)$", line)
        if item and key:
            meta[key] = (meta[key] if isinstance(meta.get(key), list) else []) + [_unquote(item.group(1))]
            continue
        match = _KEY_LINE.match(line)
        if not match:
            raise ReadError(path, "front matter", f"cannot read line {line.strip()[:60]!r}")
        key, value = match.group(1), match.group(2).strip()
        if value.startswith("[") and value.endswith("]"):
            meta[key] = [_unquote(v) for v in value[1:-1].split(",") if v.strip()]
        else:
            meta[key] = _unquote(value) if value else []
    if not meta:
        raise ReadError(path, "front matter", "no keys")
    return meta


def _refuse_aliases(block: str, path: str) -> None:
    """Raise ReadError when the YAML block uses an alias. The events are read
    with the same (C) parser as the document, in time linear in its size and
    before anything is built; a block YAML cannot even parse is left to the
    caller's fallback."""
    try:
        for event in yaml.parse(block, Loader=_YAML_LOADER):
            if isinstance(event, yaml.AliasEvent):
                raise ReadError(path, "front matter", f"YAML alias *{event.anchor} (aliases are not allowed)")
    except yaml.YAMLError:
        return


def parse_date(value) -> str | None:
    """Any date a file may hold (YAML timestamp, ISO 8601, RFC 822, a bare
    date) as ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``; None when unreadable,
    and None when the moment falls outside the years 1-9999 once in UTC
    (``0001-01-01T00:00:00+14:00``): such a date is a placeholder, not a
    publication time. A time without a zone is taken as UTC."""
    if value is None or value == "" or value == []:
        return None
    try:
        if isinstance(value, dt.datetime):
            moment = value
        elif isinstance(value, dt.date):
            moment = dt.datetime(value.year, value.month, value.day)
        else:
            moment = dateparser.parse(str(value).strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz.UTC)
        moment = moment.astimezone(tz.UTC)
    except (ValueError, OverflowError, TypeError):
        return None  # unreadable, or out of range once moved to UTC
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def parse_html_page(text: str) -> Parsed:
    """A saved web page: metadata from <title>/<meta>/<link rel=canonical>;
    the body is the <article> (else <main>, else <body>)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "lxml")

    def meta(*names: str) -> str:
        for name in names:
            tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
            if tag and tag.get("content", "").strip():
                return tag["content"].strip()
        return ""

    h1 = soup.find("h1")
    title = meta("og:title", "twitter:title") or (soup.title.get_text(strip=True) if soup.title else "")
    title = title or (h1.get_text(strip=True) if h1 else "")
    canonical = soup.find("link", rel="canonical")
    url = meta("og:url") or (canonical.get("href", "") if canonical else "") or None
    time = soup.find("time", datetime=True)
    published = meta("article:published_time", "date", "pubdate", "publishdate", "dc.date")
    published = published or (time["datetime"] if time else "")
    keywords = meta("keywords", "news_keywords")
    tags = _dedupe([t.get("content", "").strip() for t in soup.find_all("meta", property="article:tag")])
    tags = tags or _dedupe([k.strip() for k in re.split(r"[,，、]", keywords)])
    body = soup.find("article") or soup.find("main") or soup.body or soup
    return Parsed(
        format="html",
        title=title,
        source=meta("og:site_name", "author", "article:author"),
        url=url,
        published=parse_date(published),
        tags=tags,
        body=str(body),
    )


def _parse_markdown(text: str) -> Parsed:
    from markdown_it import MarkdownIt

    text = text.lstrip("\ufeff")
    heading = _HEADING.search(text)
    title = _heading_text(heading.group(1)) if heading else ""
    if heading:
        text = text[: heading.start()] + text[heading.end() :]
    html = MarkdownIt("commonmark").enable("table").render(text)
    return Parsed("markdown", title, "", None, None, (), html)


def _heading_text(line: str) -> str:
    """An ATX heading's text: without its closing ``#`` sequence when a space
    precedes it (CommonMark), so "C#" stays "C#". String methods, not a
    regex with adjacent optional spaces (cubic on a line of spaces)."""
    line = line.strip()
    bare = line.rstrip("#")
    if not bare or bare[-1] in " \t":
        line = bare.strip()
    return line


def _parse_text(text: str) -> Parsed:
    text = normalize_newlines(text.lstrip("\ufeff"))
    lines = text.strip().split("\n", 1)
    title = ""
    if len(lines) == 2 and len(lines[0].strip()) <= 80 and lines[1].strip():
        title, text = lines[0].strip(), lines[1]
    return Parsed("text", title, "", None, None, (), text, body_is_html=False)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def _str(value) -> str:
    """A front matter value as text: a list's items joined by ", "; nested
    lists and mappings are not text and give nothing (no recursion, however
    deep the YAML)."""
    if value is None or isinstance(value, dict):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(s for s in (_scalar(v) for v in value) if s)
    return str(value).strip()


def _scalar(value) -> str:
    if value is None or isinstance(value, (list, tuple, dict)):
        return ""
    return str(value).strip()


def _strings(value) -> list[str]:
    if value is None or isinstance(value, dict):
        return []
    if isinstance(value, (list, tuple)):
        return [s for s in (_scalar(v) for v in value) if s]
    return [s.strip() for s in str(value).split(",") if s.strip()]


def _dedupe(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))
