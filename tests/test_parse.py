"""Front matter, dates, formats and metadata (qa.parse)."""

import codecs
import datetime as dt

import pytest

from qa.errors import ReadError
from qa.parse import decode, parse_date, parse_document, parse_yaml

JEKYLL = """---
layout: post
title: "贵州茅台4%股权将无偿转到国有企业"
date: 2020-12-25T03:55:00.000Z
author: 联合早报
from: https://www.zaobao.com/realtime/china/story20201225-1111470
tags: [ 联合早报 ]
categories: [ 联合早报 ]
---
<!--1608868500000-->
[贵州茅台4%股权将无偿转到国有企业](https://www.zaobao.com/realtime/china/story20201225-1111470)
------

<div>
<p>正文。</p>
</div>
"""

HEXO = """
---
title: '"倒查20年"，挽回损失523亿！'
categories: 
    - 金融
    - 新浪财经
    - 新浪财经－国內

author: 新浪财经
comments: false
date: Sat, 06 Nov 2021 09:13:06 GMT
thumbnail: 'https://n.sinaimg.cn/x.png'
---

<div><p>　　正文。</p></div>
"""


def test_jekyll_front_matter_and_link_header():
    p = parse_document(JEKYLL, ".md")
    assert p.format == "jekyll"
    assert p.title == "贵州茅台4%股权将无偿转到国有企业"
    assert p.source == "联合早报"
    assert p.url == "https://www.zaobao.com/realtime/china/story20201225-1111470"
    assert p.published == "2020-12-25T03:55:00Z"
    assert p.tags == ("联合早报",)
    # the timestamp comment, the [title](url) link and the ------ line are gone
    assert "------" not in p.body and "](" not in p.body and "1608868500000" not in p.body
    assert p.body.strip().startswith("<div>")


def test_url_from_link_header_when_from_is_missing():
    text = JEKYLL.replace("from: https://www.zaobao.com/realtime/china/story20201225-1111470\n", "")
    p = parse_document(text, ".md")
    assert p.url == "https://www.zaobao.com/realtime/china/story20201225-1111470"


def test_link_header_title_with_brackets():
    text = JEKYLL.replace(
        "[贵州茅台4%股权将无偿转到国有企业](", "[[國際] 沙烏地朝覲即將展開](", 1
    ).replace('title: "贵州茅台4%股权将无偿转到国有企业"\n', "")
    p = parse_document(text, ".md")
    assert p.title == "[國際] 沙烏地朝覲即將展開"
    assert p.body.strip().startswith("<div>")


def test_hexo_newline_before_fence_list_categories_rfc822():
    p = parse_document(HEXO, ".md")
    assert p.format == "hexo"
    assert p.title == '"倒查20年"，挽回损失523亿！'
    assert p.source == "新浪财经"
    assert p.url is None
    assert p.published == "2021-11-06T09:13:06Z"
    assert p.tags == ("金融", "新浪财经", "新浪财经－国內")


def test_nei_st_without_link_header_keeps_offset_date():
    text = JEKYLL.replace("date: 2020-12-25T03:55:00.000Z", "date: 2020-02-26T15:49:35+00:00")
    text = text.split("<!--1608868500000-->")[0] + "\n<article><p>正文</p></article>\n"
    p = parse_document(text, ".md")
    assert p.published == "2020-02-26T15:49:35Z"
    assert p.body.strip().startswith("<article>")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Mon, 25 Jul 2022 02:54:50 GMT", "2022-07-25T02:54:50Z"),
        ("2021-04-10T09:42:12.234Z", "2021-04-10T09:42:12Z"),
        ("2020-02-26T15:49:35+00:00", "2020-02-26T15:49:35Z"),
        ("2024-01-01T09:00:00+08:00", "2024-01-01T01:00:00Z"),
        ("2020-10-26 14:27", "2020-10-26T14:27:00Z"),
        (dt.datetime(2021, 4, 10, 9, 42, 12, 234000, tzinfo=dt.timezone.utc), "2021-04-10T09:42:12Z"),
        (dt.date(2021, 4, 10), "2021-04-10T00:00:00Z"),
        ("not a date", None),
        (None, None),
    ],
)
def test_dates_to_iso_utc(value, expected):
    assert parse_date(value) == expected


def test_yaml_fallback_for_unquoted_colon_and_stray_quotes():
    meta = parse_yaml('title: 习近平: 推进国际执法合作\nauthor: 联合早报\ntags: [ a, b ]\ncategories:\n - x\n - y\n')
    assert meta["title"] == "习近平: 推进国际执法合作"
    assert meta["tags"] == ["a", "b"] and meta["categories"] == ["x", "y"]
    meta = parse_yaml('title: "他说"好"的"\ndate: 2020-01-01')
    assert meta["title"] == '他说"好"的'


def test_unreadable_front_matter_is_a_read_error():
    with pytest.raises(ReadError) as err:
        parse_yaml("title: [unclosed\n%%% garbage")
    assert err.value.reason == "front matter"
    with pytest.raises(ReadError) as err:
        parse_document("---\ntitle: x\n<p>never closed</p>\n", ".md")
    assert err.value.reason == "front matter"


def test_source_is_the_category_when_author_is_a_person():
    text = JEKYLL.replace("author: 联合早报", "author: 露絲·英格拉姆（Ruth Ingram）").replace("联合早报 ]", "寒冬 ]")
    assert parse_document(text, ".md").source == "寒冬"
    text = JEKYLL.replace("author: 联合早报\n", "")
    assert parse_document(text, ".md").source == "联合早报"  # categories are all there is


def test_markdown_without_front_matter():
    p = parse_document("# Rotterdam heats homes\n\nFirst paragraph.\n\nSecond *one*.\n", ".md")
    assert p.format == "markdown" and p.title == "Rotterdam heats homes"
    assert "<p>First paragraph.</p>" in p.body and "Rotterdam" not in p.body


def test_html_page_metadata():
    html = """<html><head><title>Site | x</title>
    <meta property="og:title" content="標題">
    <meta property="og:site_name" content="港都新聞網">
    <link rel="canonical" href="https://example.tw/a">
    <meta property="article:published_time" content="2024-01-01T09:00:00+08:00">
    <meta name="keywords" content="交通, 高雄"></head>
    <body><nav>menu</nav><article><p>內文。</p></article></body></html>"""
    p = parse_document(html, ".html")
    assert (p.format, p.title, p.source, p.url) == ("html", "標題", "港都新聞網", "https://example.tw/a")
    assert p.published == "2024-01-01T01:00:00Z" and p.tags == ("交通", "高雄")
    assert "menu" not in p.body and "內文" in p.body


def test_text_file_title_from_short_first_line():
    p = parse_document("标题在这里\n\n第一段。\n\n第二段。\n", ".txt")
    assert p.format == "text" and p.title == "标题在这里" and not p.body_is_html
    assert "标题" not in p.body


# --- hostile and unusual input -------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))),
        "99999-01-01",
        "2020-13-45",
    ],
)
def test_dates_out_of_range_are_dropped(value):
    assert parse_date(value) is None


def test_dates_at_the_edges_of_the_calendar_keep_four_digit_years():
    assert parse_date("0001-01-01T00:00:00Z") == "0001-01-01T00:00:00Z"
    assert parse_date("9999-12-31T23:59:59+00:00") == "9999-12-31T23:59:59Z"


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2020-13-45"])
def test_article_with_an_impossible_date_is_still_read(date):
    p = parse_document(JEKYLL.replace("2020-12-25T03:55:00.000Z", date), ".md")
    assert p.published is None and p.title == "贵州茅台4%股权将无偿转到国有企业"


def billion_laughs() -> str:
    """The classic YAML alias bomb: nine levels of nine aliases (9**9 "lol"s)."""
    levels = "abcdefghi"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip(levels, levels[1:]):
        lines.append(f"{cur}: &{cur} [" + ",".join(["*" + prev] * 9) + "]")
    return "---\ntitle: bomb\n" + "\n".join(lines) + "\ntags: *i\n---\n<p>正文。</p>\n"


@pytest.mark.parametrize(
    "front_matter",
    [billion_laughs(), "---\ntitle: x\ntags: &a [*a]\n---\n<p>正文。</p>\n", "---\na: &a x\ntitle: *a\n---\n<p>x</p>"],
)
def test_yaml_aliases_are_refused_quickly(front_matter):
    import time

    start = time.perf_counter()
    with pytest.raises(ReadError) as err:
        parse_document(front_matter, ".md")
    assert err.value.reason == "front matter" and "alias" in err.value.detail
    assert time.perf_counter() - start < 0.5


def test_deeply_nested_front_matter_values_are_not_text():
    p = parse_document("---\ntitle: x\ntags: " + "[" * 500 + "]" * 500 + "\nauthor: [a, [b], {c: d}]\n---\n<p>正文</p>", ".md")
    assert p.tags == () and p.source == "a"


@pytest.mark.parametrize("newline", ["\r", "\r\n"])
def test_cr_and_crlf_line_ends_find_the_front_matter(newline):
    p = parse_document(JEKYLL.replace("\n", newline), ".md")
    assert p.format == "jekyll" and p.title == "贵州茅台4%股权将无偿转到国有企业"
    assert p.published == "2020-12-25T03:55:00Z" and "\r" not in p.body
    assert decode(JEKYLL.replace("\n", newline).encode()) == JEKYLL


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_unicode_files_with_a_byte_order_mark(encoding):
    data = JEKYLL.encode(encoding)
    if not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        data = "\ufeff".encode(encoding) + data  # the -le/-be codecs write no mark of their own
    assert decode(data) == JEKYLL


def test_gb18030_and_damaged_utf8():
    assert decode("第一段。".encode("gb18030")) == "第一段。"
    text = "新闻正文。" * 300
    data = text.encode()
    damaged = data[:600] + b"\xff" + data[600:]
    assert decode(damaged).replace("\ufffd", "") == text  # one bad byte loses nothing else


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (bytes(range(128, 256)) * 40, "encoding"),
        (codecs.BOM_UTF16_LE + b"a\x00b", "encoding"),  # odd length after the mark
        (codecs.BOM_UTF32_LE + b"\x00\xd8\x00\x00", "encoding"),  # a surrogate
    ],
)
def test_undecodable_bytes(data, reason):
    with pytest.raises(ReadError) as err:
        decode(data, "x.md")
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "text",
    [
        "# a" + " " * 20000 + "b\n\n正文。",  # was minutes: adjacent optional spaces in the heading regex
        "---\ntitle: x\n---\n[" + "](a" * 40000 + "\n",  # was 25 s: the link-header regex on the whole body
    ],
)
def test_pathological_lines_parse_quickly(text):
    import time

    start = time.perf_counter()
    parse_document(text, ".md")
    assert time.perf_counter() - start < 1


def test_heading_closing_hashes():
    assert parse_document("# C#\n\nx", ".md").title == "C#"
    assert parse_document("# Rotterdam heats homes ##\n\nx", ".md").title == "Rotterdam heats homes"
