"""Turn an article body (HTML, or HTML mixed into Markdown) into clean paragraphs.

Only the article's own text survives: scripts, styles, comments (including the
hidden ``<!--article_adlist[ … ]article_adlist-->`` text), ad placeholders,
subscription banners, images, figures and captions, bylines and date lines,
related-link lists, QR-code footers, copyright lines and feed footers are
removed. Credit lines (``责任编辑：…``, ``文字整理：…；责任编辑：…``, ``记者：…
责编：… 网编：…``) are removed whether they stand alone or trail the last
sentence of a paragraph (``…判刑。 文字整理：李洁思；责任编辑：高静 ＃``,
``…。（編輯：郭無患）1090909``); the editor they name is returned as
metadata. Markup that reached the page as text (escaped ``&lt;p&gt;``, or
``<a href=”…”>`` written with typographic quotes) is parsed once more, so
only its text remains. Block elements and ``<br>`` both end a paragraph;
entities are decoded, full-width indentation is dropped and whitespace is
normalised.

Work is linear in the size of the input, whatever its shape: the tree is
walked with explicit stacks (never recursion), and every rule that looks
inside an element reads a summary its children left behind, so 20,000 nested
elements cost what 20,000 siblings do.

The junk rules come from reading many files of every source in the
development corpus (see ../shared/CORPUS.md); each has a test.
"""

from __future__ import annotations

import html as html_entities
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bs4 import BeautifulSoup, CData, MarkupResemblesLocatorWarning, NavigableString, Tag, XMLParsedAsHTMLWarning
from lxml.html import defs as html_defs

# Article bodies are HTML by contract, even one that reads "notes.md" or starts
# with "<?xml": bs4's guesses about its input would only print noise per file.
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)

# Elements that never hold article text.
_DROP_TAGS = frozenset((
    "script", "style", "noscript", "template", "iframe", "svg", "canvas", "object", "embed",
    "button", "form", "input", "select", "textarea", "img", "picture", "video", "audio",
    "source", "figure", "figcaption", "link", "meta", "header", "nav", "footer", "aside",
    "time", "small", "head", "title", "fb:post", "hr",
))  # fmt: skip

# id/class fragments of ads, banners, captions, bylines, related links, share bars.
_JUNK_ATTR = re.compile(
    r"dfp-|innity|adslot|o-ads|advert|AdContainer|appendQr|Byline|Timestamp|wp-caption|"
    r"image-caption|interstitial|block-ad|article-editor|bottomArticleBanner|moreArticle|"
    r"widget|fb-post|fb-video|twitter-tweet|instagram-media|sharedaddy|jp-relatedposts|"
    r"Subscri|picinfo|infogram|BarrierFailsafe|paywall|ai2html|trustBadge|Attribution|"
    r"book-title|news-dic-all|endMsg|errorMsg"
)

# Elements after which a new paragraph starts.
_BLOCK_TAGS = frozenset((
    "p", "div", "section", "article", "main", "blockquote", "li", "ul", "ol", "dl", "dt", "dd",
    "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "tr", "center", "br",
))  # fmt: skip

_TEXT_TYPES = (NavigableString, CData)  # what get_text() reads: not comments, scripts, doctypes

# Whole paragraphs that are boilerplate, never article text.
_JUNK_LINE = re.compile(
    r"^(?:海量资讯、精准解读，尽在新浪财经APP"
    r"|获取更多RSS.*|https?://feedx\.\w+/?"
    r"|\.\.\.more|more|看更多|關閉|更多内容请.*"
    r"|(?:相关|相關|延伸|推荐|推薦|更多)(?:阅读|閱讀|新闻|新聞|报道|報導)[:：]?"
    r"|(?:阅读|閱讀)全文\s*>>.*"
    r"|点击查看本文英文版。?|Embed from Getty Images|使用浏览器播视频/view video in browser"
    r"|嘉宾和观众听众发表的都是个人观点，并不代表美国之音。|时事大家谈每星期.*敬请收看。|网络收看方式[:：]"
    r"|德国之声致力于为您提供客观中立的新闻报道.*|摘编自其他媒体的内容，不代表德国之声的立场或观点"
    r"|【支持】为真相护航.*|感谢阅读今天的简报.*"
    r"|上午8點同步發送電子報.*|若有任何建議請來信告訴我們.*|歡迎訂閱中央社.*電子報.*|訂閱《.*》電子報.*"
    r"|No More\.|You’ve hit the wall\.|The Economist|Published since September 1843"
    r"|The Wall Street Journal|端傳媒 Initium Media"
    r"|\S{0,20}[:：]?\s*https?://\S+"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # a reporter's address under the byline
    r"|[（(]欢迎点击此处订阅.*[）)]"
    r"|©.*|Copyright ©.*|\d{4}年\s*\S{0,10}版[权權]声明[:：].*"
    r"|The post .* (?:first appeared|appeared first) on .*"
    r"|\d{1,2}/\d{1,2}/\d{4}\s*-\s*\d{1,2}:\d{2}"
    r")$",
    re.IGNORECASE,
)

# --- credit lines ----------------------------------------------------------------
# Roles that only editing staff hold: a short line naming one is a credit line.
_EDITORIAL_ROLE = r"责任编辑|責任編輯|责编|責編|网编|網編|文字整理|核稿|审校|審校|发稿|發稿|校对|校對"
# Roles that open a credit line when followed by a colon ("编辑：杨真心", "（編輯：郭無患）").
_EDITING_ROLE = r"(?:实习|實習)?(?:编辑|編輯|编译|編譯|翻译|翻譯|译者|譯者)"
# Every role a credit may start with, reporters included ("记者：高锋、责编：胡力汉").
_ANY_ROLE = rf"(?:实习|實習)?(?:{_EDITORIAL_ROLE}|编辑|編輯|编译|編譯|翻译|翻譯|译者|譯者|撰稿|编写|編寫|整理|记者|記者|采访|採訪)"
_CREDIT_EDITORIAL = re.compile(rf"(?:{_EDITORIAL_ROLE})(?=[\s:：｜|/／;；]|$)")  # "发稿时" is prose
_CREDIT_EDITING_START = re.compile(rf"[（(]?\s*{_EDITING_ROLE}\s*[/／]?\s*(?:{_EDITORIAL_ROLE})?\s*[:：｜|]")
_CREDIT_START = re.compile(rf"[（(]?\s*{_ANY_ROLE}")
_CREDIT_PAD = " \t\n\r\f\v\u3000\xa0#＃"  # 大纪元 ends its credits with "＃"
_SENTENCE_PUNCT = re.compile(r"[。！？!?]")
_EDITOR_NAME = re.compile(
    rf"(?:责任编辑|責任編輯|责编|責編|^[（(]?\s*(?:编辑|編輯))(?![邮郵]箱)\s*[:：｜|]?\s*"
    rf"((?:(?!{_ANY_ROLE})[^\s、:：;；,，()（）#＃|｜/／])+(?:[\s、]+(?:(?!{_ANY_ROLE})[^\s、:：;；,，()（）#＃|｜/／])+)*)"
)
_MAX_CREDIT = 80  # characters: a credit line is short

# What may end a paragraph after its last sentence, besides credits.
_TRAILER = re.compile(
    r"©.*|Copyright ©.*|获取更多RSS.*"
    r"|(?:责任编辑|責任編輯|责编|責編)(?:邮箱|郵箱)\s*[:：]?\s*[\w.+-]+@[\w-]+(?:\.[\w-]+)+[）)]?",
    re.IGNORECASE,
)
_TRAILER_HINT = re.compile(
    rf"©|Copyright|获取更多RSS|{_EDITORIAL_ROLE}|编辑|編輯|编译|編譯|翻译|翻譯|译者|譯者", re.IGNORECASE
)
_TRAILER_BOUNDARY = re.compile(r"[。！？!?…”’」』）)】]\s*|\s+")
_MAX_TRAILER = 120  # characters looked at, from the end of a paragraph

# --- markup that reached the page as text -----------------------------------------
_TAG_NAMES = "|".join(sorted(html_defs.tags, key=len, reverse=True))
_TAG_TEXT = re.compile(rf"</?(?:{_TAG_NAMES})(?=[\s/>]|$)[^<>]*(?:>|$)", re.IGNORECASE)  # "a < b > c" is no tag
_ESCAPED_TAG = re.compile(rf"&(?:lt|#0*60|#x0*3c);/?(?:{_TAG_NAMES})(?=[\s/&]|$)", re.IGNORECASE)
_MAX_UNESCAPE = 3  # rounds of &amp;lt; → &lt; → <

_BREAK = "\u2029"  # a private paragraph mark, never present in real text
_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_SPACE = re.compile(r"[\s\u3000\xa0]+")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad\x00-\x08\x0b\x0e-\x1f\x7f]")
_WORDISH = re.compile(rf"[\w{_CJK}]")
_WORD = re.compile(r"\w")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_OPENERS, _CLOSERS = "（(", "）)"


@dataclass(frozen=True)
class Cleaned:
    paragraphs: tuple[str, ...]
    editor: str | None = None


def clean_html(html: str, title: str | None = None) -> Cleaned:
    """Clean one article body. ``title``, when given, is dropped where the page repeats it."""
    soup = _soup(html)
    editor = _editor_from_elements(soup)
    # WordPress pages (Nei.st) wrap the article in page chrome: keep the content
    root = soup.find(class_="entry-content") or soup
    lines = _block_text(root, _junk_elements(root)).split(_BREAK)
    return _paragraphs(_markup_as_html(lines), title, editor)


def text_paragraphs(text: str) -> tuple[str, ...]:
    """Paragraphs of plain text: blank lines separate them; so do single line
    breaks in text written one paragraph per line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = re.split(r"\n[ \t\u3000\xa0]*\n", text)
    out = []
    for block in blocks:
        for line in block.split("\n") if _one_per_line(block) else [block]:
            line = normalize_space(line)
            if line and _WORDISH.search(line):
                out.append(line)
    return tuple(out)


def normalize_space(text: str) -> str:
    """Collapse whitespace; a source line break between two CJK characters
    (pretty-printed HTML) disappears, any other run becomes one space.
    Invisible and control characters go."""
    text = _INVISIBLE.sub("", text)
    return _SPACE.sub(lambda m: _join(m, text), text).strip()


def strip_trailer(text: str) -> tuple[str, str | None]:
    """``text`` without the credit, copyright or feed line that trails its
    last sentence, and the editor that line names (or None).

    ``"…判刑。 文字整理：李洁思；责任编辑：高静 ＃"`` → ``("…判刑。", "高静")``;
    a closing bracket the trailer took from an earlier opening one is put
    back (``"（作者系…。责任编辑邮箱：x@ftchinese.com）"`` keeps its ``）``).
    Only the last ``_MAX_TRAILER`` characters are looked at.
    """
    start = max(0, len(text) - _MAX_TRAILER)
    if not _TRAILER_HINT.search(text, start):
        return text, None
    for boundary in _TRAILER_BOUNDARY.finditer(text, start):
        tail = text[boundary.end() :]
        if not tail or not (_TRAILER.fullmatch(tail) or _is_credit_tail(tail)):
            continue
        kept = text[: boundary.end()].rstrip()
        if tail[-1] in _CLOSERS and _unclosed(kept):
            kept += tail[-1]
        return kept, None if _TRAILER.fullmatch(tail) else credit_editor(tail)
    return text, None


def is_credit_line(text: str) -> bool:
    """A short line that only credits staff: it names an editing role
    (责编, 网编, 文字整理, 核稿 …) or opens with one and a colon (``编辑：…``),
    and holds no sentence. A reporter's byline alone (``（总台央视记者 孔禄渊）``)
    is not a credit line: it says who reported, and stays."""
    if len(text) > 2 * _MAX_CREDIT:
        return False
    body = _credit_body(text)
    if not body or len(body) > _MAX_CREDIT or _SENTENCE_PUNCT.search(body):
        return False
    return bool(_CREDIT_EDITORIAL.search(body) or _CREDIT_EDITING_START.match(body))


def _credit_body(text: str) -> str:
    """A credit line without what may follow the names: "＃" marks and 中央社's
    ROC date (``（編輯：郭無患）1090909``). String methods, not a regex: runs
    of optional characters make regexes backtrack for ever on "＃＃＃…x"."""
    body = text.rstrip(_CREDIT_PAD)
    digits = len(body) - len(body.rstrip("0123456789"))
    return body[:-digits].rstrip(_CREDIT_PAD) if 7 <= digits <= 8 else body


def credit_editor(text: str) -> str | None:
    """The editor a credit line names (责任编辑/责编, or 编辑 at its start), else None."""
    match = _EDITOR_NAME.search(text[: 2 * _MAX_CREDIT])
    return match.group(1).strip() if match else None


# --- parsing and walking -----------------------------------------------------------


def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(_strip_comments(html), "lxml")


def _strip_comments(html: str) -> str:
    """``html`` without ``<!-- … -->`` comments (an unclosed one runs to the
    end, as in a browser). A scan, not a regex: many unclosed ``<!--`` cost
    linear time, not quadratic."""
    parts, pos = [], 0
    while (start := html.find("<!--", pos)) != -1:
        parts.append(html[pos:start])
        end = html.find("-->", start + 4)
        if end == -1:
            return "".join(parts)
        pos = end + 3
    parts.append(html[pos:])
    return "".join(parts)


def _post_order(root: Tag, prune) -> Iterator[Tag]:
    """Tags under ``root`` (itself included), children before their parent,
    without recursion; a tag for which ``prune(tag)`` is true is neither
    entered nor yielded."""
    stack: list[tuple[Tag, bool]] = [(root, False)]
    while stack:
        tag, entered = stack.pop()
        if entered:
            yield tag
        elif not prune(tag):
            stack.append((tag, True))
            stack.extend((child, False) for child in reversed(tag.contents) if isinstance(child, Tag))


def _block_text(root: Tag, dropped: set[int]) -> str:
    """The text under ``root``, with a paragraph mark before and after every
    block element and at every ``<br>``; a table cell ends with a space, so a
    row reads as one line. Elements whose id() is in ``dropped`` give nothing."""
    out: list[str] = []
    stack: list = [root]
    while stack:
        node = stack.pop()
        if type(node) is str:  # a mark pushed below, to close an element
            out.append(node)
        elif isinstance(node, NavigableString):
            if type(node) in _TEXT_TYPES:
                out.append(node)
        elif id(node) not in dropped:
            if node.name == "br":
                out.append(_BREAK)
                continue
            if node.name in _BLOCK_TAGS:
                out.append(_BREAK)
                stack.append(_BREAK)
            elif node.name in ("td", "th"):
                stack.append(" ")
            stack.extend(reversed(node.contents))
    return "".join(out)


# --- junk elements -------------------------------------------------------------------


@dataclass
class _Summary:
    """What a kept element holds, as its parent's rules need it."""

    words_outside_links: bool = False  # a word character not inside an <a>
    link_text: bool = False  # non-space text inside an <a>
    head: str = ""  # the first characters of its text, spaces removed (get_text(strip=True))
    has_paragraph: bool = False  # a kept <p> inside (or itself)


_HEAD = 12  # enough characters to tell "...more" from a real link


def _junk_elements(root: Tag) -> set[int]:
    """id() of every element under ``root`` that holds no article text.

    One pass, children before parents. An element is junk by itself (its
    name: script, figure …; its id/class: ads, captions …) or by what it
    holds, read from the summaries of its kept children: a ``<div>`` holding
    only an ``<i>`` (the date line of VOA/Reuters/NYT/DW bodies), an ``<a>``
    reading "...more" or pointing to infogram, and a ``<li>`` made of nothing
    but links (a related-links list) when the body has real paragraphs
    (news-summary pages are only links)."""
    dropped: set[int] = set()
    summaries: dict[int, _Summary] = {}
    link_lists: list[Tag] = []

    def prune(tag: Tag) -> bool:
        if tag is not root and (tag.name in _DROP_TAGS or _is_junk(tag)):
            dropped.add(id(tag))
            return True
        return False

    for tag in _post_order(root, prune):
        summary, kids = _summarize(tag, summaries, dropped)
        if tag.name == "div" and len(kids) == 1 and isinstance(kids[0], Tag) and kids[0].name == "i":
            dropped.add(id(tag))
        elif tag.name == "a" and (
            summary.head.lower() in ("...more", "…more", "more") or "infogram.com" in str(tag.get("href", ""))
        ):
            dropped.add(id(tag))
        else:
            if tag.name == "li" and summary.link_text and not summary.words_outside_links:
                link_lists.append(tag)
            summaries[id(tag)] = summary
    if summaries.get(id(root), _Summary()).has_paragraph:
        dropped.update(id(li) for li in link_lists)
    return dropped


def _summarize(tag: Tag, summaries: dict[int, _Summary], dropped: set[int]) -> tuple[_Summary, list]:
    """``tag``'s summary from its direct children (their own summaries are
    ready: children come first), and its kept, non-blank children."""
    summary = _Summary(has_paragraph=tag.name == "p")
    in_link = tag.name == "a"
    kids, head = [], ""
    for child in tag.contents:
        if isinstance(child, Tag):
            kid = None if id(child) in dropped else summaries.get(id(child))
            if kid is None:
                continue
            kids.append(child)
            summary.words_outside_links |= kid.words_outside_links and not in_link
            summary.link_text |= kid.link_text or (in_link and bool(kid.head))
            summary.has_paragraph |= kid.has_paragraph
            if len(head) < _HEAD:
                head += kid.head
        elif isinstance(child, NavigableString) and child.strip():
            kids.append(child)
            if type(child) not in _TEXT_TYPES:
                continue
            if in_link:
                summary.link_text = True
            elif not summary.words_outside_links and _WORD.search(child):
                summary.words_outside_links = True
            if len(head) < _HEAD:
                head += child.strip()[:_HEAD]
    summary.head = head[:_HEAD]
    return summary, kids


def _is_junk(tag: Tag) -> bool:
    attrs = tag.attrs
    if not attrs:
        return False
    if attrs.get("id") == "imu" or attrs.get("aria-hidden") == "true":
        return True
    classes = attrs.get("class", ())
    label = str(attrs.get("id", "")) + " " + " ".join(classes if isinstance(classes, list) else [str(classes)])
    return bool(_JUNK_ATTR.search(label)) or attrs.get("data-e2e") == "advertisement"


def _editor_from_elements(soup: BeautifulSoup) -> str | None:
    """The editor named by the first ``class="article-editor"`` element that
    names one (新浪财经's footer). Those elements are junk to the text pass."""
    stack: list[Tag] = [soup]
    while stack:
        tag = stack.pop()
        if "article-editor" in (tag.get("class") or ()):
            name = credit_editor(normalize_space(tag.get_text()))
            if name:
                return name
            continue  # not entered: each element's text is read at most once
        stack.extend(child for child in reversed(tag.contents) if isinstance(child, Tag))
    return None


# --- lines into paragraphs ---------------------------------------------------------------


def _markup_as_html(lines: Iterable[str]) -> Iterator[str]:
    """The lines, where one holds markup as text (escaped ``&lt;p&gt;``, or
    tags whose attributes used typographic quotes and so were never parsed)
    replaced by the lines of that markup parsed as HTML once more; what is
    still tag-like after that is removed."""
    for line in lines:
        if not (_ESCAPED_TAG.search(line) or _TAG_TEXT.search(line)):
            yield line
            continue
        for _ in range(_MAX_UNESCAPE):
            if not _ESCAPED_TAG.search(line):
                break
            line = html_entities.unescape(line)
        soup = _soup(line)
        for inner in _block_text(soup, _junk_elements(soup)).split(_BREAK):
            yield _TAG_TEXT.sub(" ", html_entities.unescape(inner) if _ESCAPED_TAG.search(inner) else inner)


def _paragraphs(lines: Iterable[str], title: str | None, editor: str | None) -> Cleaned:
    paragraphs, title_key = [], _key(title) if title else None
    for raw in lines:
        text, credited = strip_trailer(normalize_space(raw))  # first: "正文。获取更多RSS：https://…"
        editor = editor or credited
        if not _is_text(text):
            continue
        if is_credit_line(text):
            editor = editor or credit_editor(text)
            continue
        if title_key and len(paragraphs) < 3 and _key(text) == title_key:
            continue  # a page header or bold first line repeating the title
        paragraphs.append(text)
    return Cleaned(tuple(paragraphs), editor)


def _is_text(text: str) -> bool:
    return bool(text) and bool(_WORDISH.search(text)) and not _JUNK_LINE.match(text)


def _is_credit_tail(tail: str) -> bool:
    return bool(_CREDIT_START.match(tail)) and is_credit_line(tail)


def _unclosed(text: str) -> bool:
    return sum(text.count(c) for c in _OPENERS) > sum(text.count(c) for c in _CLOSERS)


def _join(match: re.Match, text: str) -> str:
    if "\n" not in match.group():
        return " "
    before = text[match.start() - 1] if match.start() else ""
    after = text[match.end()] if match.end() < len(text) else ""
    if _CJK_CHAR.match(before) and _CJK_CHAR.match(after):
        return ""
    return " "


def _one_per_line(block: str) -> bool:
    # Chinese text files usually put each paragraph on its own line; English
    # prose is usually hard-wrapped. Lines ending in sentence punctuation, or
    # starting with indentation, are paragraphs of their own.
    lines = [ln for ln in block.split("\n") if ln.strip()]
    if len(lines) < 2:
        return False
    ends = all(re.search(r"[。！？”」』.!?\"'）)]\s*$", ln) for ln in lines[:-1])
    indented = all(ln.startswith(("\u3000", "  ", "\t")) for ln in lines[1:])
    return ends or indented


def _key(text: str) -> str:
    return re.sub(r"\W", "", text).lower()
