"""One run over a folder of hostile and broken files (qa.ingest + qa.chunk, and
the ``qa chunks`` command): every good file beside them is read, every bad one
is reported once with a reason a person understands, nothing hangs, nothing
takes long, and no file fails in a way nobody planned for (reason "error").

The folder is built in tmp_path by :func:`build_hostile_folder`: named pipes,
symbolic links and a 10 MB file cannot live in the repository.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qa.chunk import chunk_article
from qa.ingest import iter_articles, printable
from qa.records import ReadReport

ROOT = Path(__file__).resolve().parents[1]

JEKYLL = """---
layout: post
title: "{title}"
date: {date}
author: 联合早报
from: https://www.zaobao.com/news/{slug}
tags: [ 联合早报 ]
categories: [ 联合早报 ]
---
<!--1608868500000-->
[{title}](https://www.zaobao.com/news/{slug})
------

<div><p>{body}</p></div>
"""


def jekyll(slug: str, body: str | None = None, date: str = "2020-12-25T03:55:00.000Z") -> str:
    """A well-formed 联合早报 post whose URL and text are its own (no duplicates)."""
    body = body or f"这是测试文章{slug}的正文，讲述了一件与其他文章都不相同的事情。"
    return JEKYLL.format(title=f"标题{slug}", slug=slug, body=body, date=date)


def billion_laughs() -> str:
    """388 bytes of YAML whose aliases expand to 9**9 strings (the issue's was 602 bytes)."""
    levels = "abcdefghi"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip(levels, levels[1:]):
        lines.append(f"{cur}: &{cur} [" + ",".join(["*" + prev] * 9) + "]")
    return "---\ntitle: bomb\n" + "\n".join(lines) + "\ntags: *i\n---\n<p>正文。</p>\n"


@dataclass
class Hostile:
    folder: Path
    good: dict[str, str] = field(default_factory=dict)  # path -> a sentence its article must hold
    bad: dict[str, str] = field(default_factory=dict)  # path -> the reason it is skipped with

    def add_good(self, rel: str, data: str | bytes, must_hold: str) -> None:
        _write(self.folder / rel, data)
        self.good[rel] = must_hold

    def add_bad(self, rel: str, data: str | bytes | None, reason: str) -> None:
        if data is not None:
            _write(self.folder / rel, data)
        self.bad[rel] = reason


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def build_hostile_folder(base: Path) -> Hostile:
    """The folder: good articles in every format and encoding, and beside them
    every kind of file that once stopped, hung or fooled a run."""
    h = Hostile(base / "hostile")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(jekyll("secret", "外面的秘密文件，绝不能被读入索引。"))

    # --- good files, each must come out as one article ----------------------------
    h.add_good("plain.md", jekyll("plain"), "测试文章plain")
    h.add_good("page.html", "<html><head><title>網頁</title></head><body><article><p>這是網頁文章的正文內容。</p>"
               "</article></body></html>", "這是網頁文章的正文內容。")  # fmt: skip
    h.add_good("notes.txt", "文本标题\n\n纯文本文件里的第一段正文。\n", "纯文本文件里的第一段正文。")
    h.add_good("markdown.md", "# An English headline\n\nA plain Markdown article in English.\n", "plain Markdown")
    h.add_good("crlf.md", jekyll("crlf").replace("\n", "\r\n"), "测试文章crlf")
    h.add_good("cr_only.md", jekyll("cronly").replace("\n", "\r"), "测试文章cronly")
    for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):  # each with its byte order mark
        slug = codec.replace("-", "")
        h.add_good(f"{slug}.md", ("\ufeff" + jekyll(slug)).encode(codec), f"测试文章{slug}")
    h.add_good("gb18030.txt", "国标编码\n\n这是一篇国标编码的旧文章。\n".encode("gb18030"), "这是一篇国标编码的旧文章。")
    damaged = jekyll("damaged", "前半段正文完好无损。" * 50 + "后半段正文也完好无损。" * 50).encode()
    middle = len(damaged) // 2 - len(damaged) // 2 % 3  # between two characters
    h.add_good("invalid_utf8_middle.md", damaged[:middle] + b"\xff\xfe" + damaged[middle:], "后半段正文也完好无损。")
    h.add_good("date_0001.md", jekyll("d0001", date="0001-01-01T00:00:00+14:00"), "测试文章d0001")
    h.add_good("date_9999.md", jekyll("d9999", date="9999-12-31T23:59:59-14:00"), "测试文章d9999")
    h.add_good("date_impossible.md", jekyll("dbad", date="2020-13-45"), "测试文章dbad")
    sentence = "这是一段非常长的正文中的一句话。"
    h.add_good("ten_mb_paragraph.txt", "长文\n\n" + sentence * (10 * 1024 * 1024 // len(sentence.encode())), sentence)
    h.add_good("nested_lists.md", jekyll("nested", "<ul><li>" * 20000 + "深层嵌套列表里的正文。" + "</li></ul>" * 20000),
               "深层嵌套列表里的正文。")  # fmt: skip
    h.add_good("nested_divs.html", "<html><body>" + "<div>" * 20000 + "<p>深层嵌套的网页正文。</p>" + "</div>" * 20000,
               "深层嵌套的网页正文。")  # fmt: skip
    h.add_good("nested_markdown.md", "# Deep\n\n" + "".join("  " * i + f"- level {i}\n" for i in range(500)), "level 0")
    h.add_good("rss_in_a_div.md", jekyll("rss", "</p><div><p>与订阅页脚同在一个元素里的正文。</p>获取更多RSS：<br>"
               "<a href='https://feedx.net'>https://feedx.net</a></div><p>"), "与订阅页脚同在一个元素里的正文。")  # fmt: skip
    h.add_good("escaped_markup.md", jekyll("escaped", "转义标记之前的正文。&lt;p&gt;&lt;a href=&#8221;https://assets."
               "documentcloud.org/documents/1/x.pdf&#8221;&gt;文件 (PDF)&lt;/a&gt;&lt;/p&gt;"), "转义标记之前的正文。")  # fmt: skip
    h.add_good("name with spaces, 'quotes' & 中文 .md", jekyll("names"), "测试文章names")
    h.add_good("new\nline.md", jekyll("newline"), "测试文章newline")
    h.add_good("sub/deeper/inside.md", jekyll("inside"), "测试文章inside")
    os.symlink("../plain.md", h.folder / "sub" / "link_inside.md")  # a link within the folder: the same article
    h.good["sub/link_inside.md"] = "duplicate of plain.md"

    # --- bad files, each reported once -------------------------------------------------
    h.add_bad("empty.md", b"", "no text")
    h.add_bad("blank.txt", " \n\t\n\u3000\n", "no text")
    h.add_bad("only_front_matter.md", "---\ntitle: 只有头信息\ndate: 2020-01-01\n---\n", "no text")
    h.add_bad("unclosed_front_matter.md", "---\ntitle: x\n<p>正文</p>\n", "front matter")
    h.add_bad("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8, "binary")
    h.add_bad("latin1.md", "Café crème, déjà vu, naïve façade. ".encode("latin-1") * 20 + bytes(range(128, 256)) * 4,
              "encoding")  # fmt: skip
    h.add_bad("utf16_odd.md", codecs.BOM_UTF16_LE + "正文".encode("utf-16-le") + b"\x00", "encoding")
    h.add_bad("yaml_bomb.md", billion_laughs(), "front matter")
    h.add_bad("yaml_self_alias.md", "---\ntitle: x\ntags: &a [*a]\n---\n<p>正文。</p>\n", "front matter")
    h.add_bad("evil\nskipped forged.md: forged line.md", b"\x00binary", "binary")
    with open(h.folder / "sparse_25mb.md", "wb") as f:  # too large, and costs no disk
        f.truncate(25 * 1024 * 1024)
    h.bad["sparse_25mb.md"] = "too large"
    os.mkfifo(h.folder / "pipe.md")
    h.bad["pipe.md"] = "not a regular file"
    os.symlink(outside / "secret.md", h.folder / "link_outside.md")
    h.bad["link_outside.md"] = "symlink"
    os.symlink(outside, h.folder / "outside_dir")
    h.bad["outside_dir/"] = "symlink"
    os.symlink("nowhere.md", h.folder / "dangling.md")
    h.bad["dangling.md"] = "io"
    os.symlink("..", h.folder / "sub" / "loop")  # a folder loop: walked once, not reported
    os.symlink(".", h.folder / "sub" / "deeper" / "self")

    # --- not articles: neither read nor counted ----------------------------------------------
    _write(h.folder / ".hidden.md", jekyll("hidden"))
    _write(h.folder / "data.json", b'{"not": "an article"}')
    return h


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Hostile:
    return build_hostile_folder(tmp_path_factory.mktemp("hostile"))


def test_one_library_run_reads_the_good_and_reports_the_bad(hostile, caplog):
    report = ReadReport()
    start = time.perf_counter()
    articles = {a.path: a for a in iter_articles([hostile.folder], report)}
    chunks = {path: chunk_article(a) for path, a in articles.items()}
    seconds = time.perf_counter() - start

    duplicates = {path for path, why in hostile.good.items() if why.startswith("duplicate")}
    assert set(articles) == set(hostile.good) - duplicates
    for path, must_hold in hostile.good.items():
        if path not in duplicates:
            assert must_hold in articles[path].text, path
            assert chunks[path], path
            assert all(articles[path].text[c.char_start : c.char_end] == c.text for c in chunks[path]), path
    assert report.duplicate_paths == [("sub/link_inside.md", "plain.md")]
    assert {s.path: s.reason for s in report.skipped} == hostile.bad
    assert len(report.skipped) == len(hostile.bad)  # each bad file once
    assert report.articles + report.duplicates + len(report.skipped) == report.files_seen
    assert "outside" not in "".join(a.text for a in articles.values())
    assert seconds < 20, f"{seconds:.1f} s"

    dated = {p: articles[p].published for p in ("date_0001.md", "date_9999.md", "date_impossible.md")}
    assert dated == dict.fromkeys(dated)  # out-of-range and impossible dates are dropped, the article kept
    for path in ("crlf.md", "cr_only.md", "utf16le.md", "utf32be.md"):
        slug = path.removesuffix(".md").replace("_", "")
        assert articles[path].title == f"标题{slug}" and articles[path].format == "jekyll", path
    assert "\ufffd" in articles["invalid_utf8_middle.md"].text
    assert not any("<" in c.text or "&lt;" in c.text for cs in chunks.values() for c in cs)
    assert not any("RSS" in c.text for c in chunks["rss_in_a_div.md"])
    # warnings name every bad file on a line of its own: a newline in a name cannot forge a line
    forged = [r for r in caplog.records if r.getMessage().startswith("skipped forged")]
    assert not forged and any("evil\\nskipped forged" in r.getMessage() for r in caplog.records)


def test_one_cli_run_reads_the_good_and_reports_the_bad(hostile):
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "qa.cli", "chunks", str(hostile.folder)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(line) for line in run.stdout.splitlines()]
    duplicates = sum(why.startswith("duplicate") for why in hostile.good.values())
    assert len({r["article_id"] for r in records}) == len(hostile.good) - duplicates
    assert not any("<" in r["text"] for r in records)

    lines = run.stderr.splitlines()
    summary = lines[-1]
    assert summary.startswith(f"files read: {len(hostile.good) + len(hostile.bad)}; ")
    assert f"articles: {len(hostile.good) - duplicates}; duplicates: {duplicates}; skipped: {len(hostile.bad)}" in summary
    warnings = [line for line in lines[:-1] if line.startswith("skipped ")]
    assert len(warnings) == len(hostile.bad) and len(lines) == len(warnings) + 1, run.stderr[-2000:]
    for path, reason in hostile.bad.items():
        assert sum(line.startswith(f"skipped {printable(path)}: {reason}") for line in warnings) == 1, path
    assert seconds < 30, f"{seconds:.1f} s"


@pytest.mark.parametrize(
    "body",
    [
        "a" * 20000 + "." * 20000 + "x",  # was 4.7 s: the sentence-end regex re-read the dot run from every dot
        "# a" + " " * 20000 + "b",  # was minutes: the heading regex
        "＃" * 20000 + "x",  # was minutes: the credit-line regex
        "[" + "](a" * 20000,  # the link-header regex
        "<div>" * 20000 + "<!--" * 20000,
    ],
)
def test_pathological_files_read_and_chunk_quickly(tmp_path, body):
    for suffix, text in ((".md", body), (".md", jekyll("slow", body)), (".txt", "t\n\n" + body), (".html", body)):
        path = tmp_path / f"x{suffix}"
        path.write_text(text)
        start = time.perf_counter()
        report = ReadReport()
        for article in iter_articles([path], report):
            chunk_article(article)
        assert report.articles + len(report.skipped) == 1
        assert not report.skipped or report.skipped[0].reason == "no text", report.skipped
        assert time.perf_counter() - start < 3, (suffix, text[:40])
