"""Turn an article body (HTML, or HTML mixed into Markdown) into clean paragraphs.

Only the article's own text survives: scripts, styles, comments (including the
hidden ``<!--article_adlist[ … ]article_adlist-->`` text), ad placeholders,
subscription banners, images, figures and captions, bylines and date lines,
related-link lists, QR-code footers, copyright lines and feed footers are
removed. The ``责任编辑：…`` line is taken out of the text and returned as the
editor. Block elements and ``<br>`` both end a paragraph; entities are decoded,
full-width indentation is dropped and whitespace is normalised.

The junk rules come from reading many files of every source in the
development corpus (see ../shared/CORPUS.md); each has a test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, NavigableString, Tag

# Elements that never hold article text.
_DROP_TAGS = (
    "script", "style", "noscript", "template", "iframe", "svg", "canvas", "object", "embed",
    "button", "form", "input", "select", "textarea", "img", "picture", "video", "audio",
    "source", "figure", "figcaption", "link", "meta", "header", "nav", "footer", "aside",
    "time", "small", "head", "title", "fb:post", "hr",
)  # fmt: skip

# id/class fragments of ads, banners, captions, bylines, related links, share bars.
_JUNK_ATTR = re.compile(
    r"dfp-|innity|adslot|o-ads|advert|AdContainer|appendQr|Byline|Timestamp|wp-caption|"
    r"image-caption|interstitial|block-ad|article-editor|bottomArticleBanner|moreArticle|"
    r"widget|fb-post|fb-video|twitter-tweet|instagram-media|sharedaddy|jp-relatedposts|"
    r"Subscri|picinfo|infogram|BarrierFailsafe|paywall|ai2html|trustBadge|Attribution|"
    r"book-title|news-dic-all|endMsg|errorMsg"
)

# Elements after which a new paragraph starts.
_BLOCK_TAGS = (
    "p", "div", "section", "article", "main", "blockquote", "li", "ul", "ol", "dl", "dt", "dd",
    "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "tr", "center", "br",
)  # fmt: skip

# Whole paragraphs that are boilerplate, never article text.
_JUNK_LINE = re.compile(
    r"^(?:海量资讯、精准解读，尽在新浪财经APP"
    r"|获取更多RSS.*|https?://feedx\.\w+/?"
    r"|\.\.\.more|more|看更多|關閉|更多内容请.*"
    r"|(?:相关|相關|延伸|推荐|推薦|更多)(?:阅读|閱讀|新闻|新聞|报道|報導)[:：]?"
    r"|点击查看本文英文版。?|Embed from Getty Images|使用浏览器播视频/view video in browser"
    r"|嘉宾和观众听众发表的都是个人观点，并不代表美国之音。|时事大家谈每星期.*敬请收看。|网络收看方式[:：]"
    r"|德国之声致力于为您提供客观中立的新闻报道.*|摘编自其他媒体的内容，不代表德国之声的立场或观点"
    r"|【支持】为真相护航.*|感谢阅读今天的简报.*"
    r"|上午8點同步發送電子報.*|若有任何建議請來信告訴我們.*|歡迎訂閱中央社.*電子報.*|訂閱《.*》電子報.*"
    r"|No More\.|You’ve hit the wall\.|The Economist|Published since September 1843"
    r"|The Wall Street Journal|端傳媒 Initium Media"
    r"|\S{0,20}[:：]?\s*https?://\S+"
    r"|[（(]欢迎点击此处订阅.*[）)]"
    r"|©.*|Copyright ©.*"
    r"|The post .* (?:first appeared|appeared first) on .*"
    r"|\d{1,2}/\d{1,2}/\d{4}\s*-\s*\d{1,2}:\d{2}"
    r")$",
    re.IGNORECASE,
)
_EDITOR = re.compile(r"^[(（]?责任编辑\s*[:：]\s*(.*?)\s*[)）]?$")

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_BREAK = "\u2029"  # a private paragraph mark, never present in real text
_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_SPACE = re.compile(r"[\s\u3000\xa0]+")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
_WORDISH = re.compile(rf"[\w{_CJK}]")
_CJK_CHAR = re.compile(rf"[{_CJK}]")


@dataclass(frozen=True)
class Cleaned:
    paragraphs: tuple[str, ...]
    editor: str | None = None


def clean_html(html: str, title: str | None = None) -> Cleaned:
    """Clean one article body. ``title``, when given, is dropped where the page repeats it."""
    soup = BeautifulSoup(_COMMENT.sub("", html), "lxml")
    editor = _take_editor(soup)
    # WordPress pages (Nei.st) wrap the article in page chrome: keep the content
    soup = soup.select_one(".entry-content") or soup
    _drop_junk(soup)
    for cell in soup.find_all(("td", "th")):
        cell.append(" ")  # a table row reads as one line
    for tag in soup.find_all(_BLOCK_TAGS):
        if tag.name == "br":
            tag.replace_with(_BREAK)
        else:
            tag.insert_before(_BREAK)
            tag.append(_BREAK)
    paragraphs, title_key = [], _key(title) if title else None
    for raw in soup.get_text().split(_BREAK):
        text = normalize_space(raw)
        if not text or not _WORDISH.search(text) or _JUNK_LINE.match(text):
            continue
        match = _EDITOR.match(text)
        if match:
            editor = editor or match.group(1) or None
            continue
        if title_key and len(paragraphs) < 3 and _key(text) == title_key:
            continue  # a page header or bold first line repeating the title
        paragraphs.append(text)
    return Cleaned(tuple(paragraphs), editor)


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
    (pretty-printed HTML) disappears, any other run becomes one space."""
    text = _INVISIBLE.sub("", text)
    return _SPACE.sub(lambda m: _join(m, text), text).strip()


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


def _take_editor(soup: BeautifulSoup) -> str | None:
    for tag in soup.select(".article-editor"):
        match = _EDITOR.match(normalize_space(tag.get_text()))
        tag.decompose()
        if match and match.group(1):
            return match.group(1)
    return None


def _drop_junk(soup: BeautifulSoup) -> None:
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(_is_junk):
        tag.decompose()
    # a date line at the top of VOA/Reuters/NYT/DW bodies: <div><i>…</i></div>
    for div in soup.find_all("div"):
        kids = [k for k in div.contents if not (isinstance(k, NavigableString) and not k.strip())]
        if len(kids) == 1 and isinstance(kids[0], Tag) and kids[0].name == "i":
            div.decompose()
    for a in soup.find_all("a"):
        if a.get_text(strip=True).lower() in ("...more", "…more", "more") or "infogram.com" in a.get("href", ""):
            a.decompose()
    # feed footers ("获取更多RSS：" + links) live in their own small <div>
    for s in soup.find_all(string=re.compile("获取更多RSS")):
        parent = s.parent
        if isinstance(parent, Tag) and parent.name not in ("body", "html", "[document]"):
            parent.decompose()
    # related-link lists (BBC, RFA): list items made of nothing but a link,
    # when the body has real paragraphs (news-summary pages are only links)
    if soup.find("p"):
        for li in soup.find_all("li"):
            links = "".join(a.get_text() for a in li.find_all("a"))
            if links.strip() and _key(links) == _key(li.get_text()):
                li.decompose()


def _is_junk(tag: Tag) -> bool:
    attrs = tag.attrs
    if not attrs:
        return False
    if attrs.get("id") == "imu" or attrs.get("aria-hidden") == "true":
        return True
    label = attrs.get("id", "") + " " + " ".join(attrs.get("class", ()))
    return bool(_JUNK_ATTR.search(label)) or attrs.get("data-e2e") == "advertisement"
