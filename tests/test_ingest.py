"""Reading files and folders (qa.ingest): seeds, formats, encodings, bad
input, duplicates, ids, language, and a differential check against the
corpus manifest when ../shared is present."""

import datetime as dt
import json
import logging
import random
import shutil
from pathlib import Path

import pytest

from qa.errors import ReadError
from qa.ingest import article_id, iter_articles, normalize_url, read_file
from qa.lang import detect_language
from qa.records import ReadReport

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
SEED_A = EXAMPLES / "000_9ab89037dc83bcbe.md"
SEED_B = EXAMPLES / "001_ce7fc6476a78629f.md"
SHARED = ROOT.parent / "shared"

ARTICLE = """---
layout: post
title: "{title}"
date: 2020-12-25T03:55:00.000Z
author: 联合早报
from: {url}
tags: [ 联合早报 ]
categories: [ 联合早报 ]
---
<div><p>{body}</p></div>
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_seed_000_jekyll():
    a = read_file(SEED_A, EXAMPLES)
    assert a.url == "https://www.zaobao.com/realtime/china/story20210410-1138397"
    assert a.id == article_id(a.url, a.path) and a.id.startswith("url:")
    assert a.published == "2021-04-10T09:42:12Z"
    assert (a.title, a.source, a.format, a.language) == (
        "习近平指示打击电信网络诈骗：推进国际执法合作", "联合早报", "jekyll", "zh-Hans"
    )
    assert len(a.paragraphs) == 7
    assert a.paragraphs[0].startswith("中国电信网络诈骗案频发")
    assert a.paragraphs[5] == (
        "另据中新社报道，中国公安部昨天表示，2020年全年共破获电信网络诈骗案件32.2万起，抓获犯罪嫌疑人36.1万名，"
        "劝阻870万名群众免于被骗，累计挽回经济损失1870余亿元人民币（约382.9亿新元）。"
    )
    assert a.paragraphs[-1].endswith("坚决遏制电信网络诈骗犯罪多发高发态势。")
    for junk in ("subscribe", "dfp", "imu", "innity", "http", "<", "------", "1618096500000"):
        assert junk not in a.text


def test_seed_001_hexo():
    a = read_file(SEED_B, EXAMPLES)
    assert a.url is None and a.id == "path:articles/001_ce7fc6476a78629f.md"
    assert a.published == "2022-07-25T02:54:50Z"
    assert (a.source, a.format, a.editor) == ("新浪财经", "hexo", "李墨轩")
    assert a.tags == ("金融", "新浪财经", "新浪财经－国內")
    numbered = [p for p in a.paragraphs if p[:2] in ("一是", "二是", "三是", "四是", "五是")]
    assert [p[:2] for p in numbered] == ["一是", "二是", "三是", "四是", "五是", "一是", "二是", "三是"]
    assert numbered[4].startswith("五是国际合作需强化。")
    assert a.paragraphs[-1] == "（总台央视记者 孔禄渊）"
    for junk in ("海量资讯", "新浪财经APP", "appendQr", "{", "&#123;", "责任编辑", "李墨轩", "<", "　"):
        assert junk not in a.text


def test_file_names_with_spaces_and_quotes(tmp_path):
    name = 'source___posts__"倒查20年"，挽回损失523亿！ .md'
    write(tmp_path / "sub dir" / name, ARTICLE.format(title="t", url="https://x.org/1", body="正文内容。"))
    report = ReadReport()
    [a] = list(iter_articles([tmp_path], report))
    assert a.path == f"sub dir/{name}"


def test_path_id_is_relative_to_the_folder_given(tmp_path):
    write(tmp_path / "a" / "b.txt", "标题\n\n正文内容。")
    a = read_file(tmp_path / "a" / "b.txt", tmp_path)
    assert a.id == f"path:{tmp_path.name}/a/b.txt" and a.path == "a/b.txt" and a.format == "text"
    assert a.title == "标题" and a.paragraphs == ("正文内容。",)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_encodings(tmp_path, encoding):
    text = ARTICLE.format(title="编码测试", url="https://x.org/enc", body="中文正文，字节编码不同。")
    a = read_file(write(tmp_path / "a.md", text.encode(encoding)), tmp_path)
    assert a.title == "编码测试" and a.paragraphs == ("中文正文，字节编码不同。",)


def test_bad_input_is_skipped_with_a_reason_and_counted(tmp_path, caplog):
    write(tmp_path / "ok.md", ARTICLE.format(title="好", url="https://x.org/ok", body="正文内容。"))
    write(tmp_path / "binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path / "bad bytes.txt", b"\xff\xfe\xff\xff not text")
    write(tmp_path / "front.md", "---\ntitle: [broken\n%%%\n---\n<p>x</p>")
    write(tmp_path / "unclosed.md", "---\ntitle: x\n<p>正文</p>")
    write(tmp_path / "empty.md", ARTICLE.format(title="空", url="https://x.org/e", body="<img src='a.jpg'>"))
    write(tmp_path / "notes.json", "{}")  # not an article file: not counted
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        articles = list(iter_articles([tmp_path], report))
    assert [a.title for a in articles] == ["好"]
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {
        "binary.md": "binary",
        "bad bytes.txt": "encoding",
        "front.md": "front matter",
        "unclosed.md": "front matter",
        "empty.md": "no text",
    }
    assert report.files_seen == 6 == report.articles + report.duplicates + len(report.skipped)
    assert report.skipped_by_reason() == {"binary": 1, "encoding": 1, "front matter": 2, "no text": 1}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 5 and any("binary.md" in w and "binary" in w for w in warnings)


def test_missing_path_is_an_error():
    with pytest.raises(ReadError) as err:
        list(iter_articles(["/no/such/folder"], ReadReport()))
    assert err.value.reason == "io"


def test_duplicates_same_url_or_same_text(tmp_path):
    write(tmp_path / "_posts" / "a.md", ARTICLE.format(title="一", url="https://www.zaobao.com/s1", body="第一篇。"))
    write(tmp_path / "archived" / "a.md", ARTICLE.format(title="一", url="https://www.zaobao.com/s1", body="第一篇。"))
    # same story, URL written differently, text edited
    write(tmp_path / "c.md", ARTICLE.format(title="一", url="http://zaobao.com/s1/#top", body="第一篇（更新）。"))
    # same text under another name, no URL
    write(tmp_path / "d.txt", "第二篇的标题\n\n第二篇正文。")
    write(tmp_path / "e.txt", "第二篇的标题\n\n第二篇正文。")
    write(tmp_path / "f.txt", "第三篇的标题\n\n第三篇正文。")
    report = ReadReport()
    articles = list(iter_articles([tmp_path], report))
    assert [a.path for a in articles] == ["c.md", "d.txt", "f.txt"]  # files first, then folders
    assert report.duplicates == 3 and report.articles == 3 and report.files_seen == 6
    assert sorted(report.duplicate_paths) == [("_posts/a.md", "c.md"), ("archived/a.md", "c.md"), ("e.txt", "d.txt")]


def test_normalize_url():
    assert normalize_url("http://www.rfi.fr//cn/contenu/x/") == normalize_url("https://rfi.fr/cn/contenu/x")
    assert normalize_url("https://a.com/p?utm_source=zb&id=3#frag") == "https://a.com/p?id=3"
    assert normalize_url("https://a.com/p?id=3") != normalize_url("https://a.com/p?id=4")


def test_every_example_article_reads(tmp_path):
    report = ReadReport()
    articles = {Path(a.path).suffix: a for a in iter_articles([EXAMPLES], report)}
    assert report.skipped == [] and report.duplicates == 0
    assert {a.format for a in articles.values()} >= {"html", "text"}
    langs = {a.language for a in iter_articles([EXAMPLES], ReadReport())}
    assert {"zh-Hans", "zh-Hant", "en"} <= langs


@pytest.mark.parametrize(
    "text, expected",
    [
        ("中国电信网络诈骗案频发，习近平作出指示。", "zh-Hans"),
        ("恆大簽訂戰略投資補充協議，度過債務危機。陸媒形容這是「定時炸彈」解除。", "zh-Hant"),
        ("Rotterdam's city council approved a plan on Tuesday to heat about 8,000 homes.", "en"),
        ("苹果公司 Apple announced the new iPhone models at its Cupertino event today 发布会", "mixed"),
        ("12345 ... ---", "und"),
    ],
)
def test_language(text, expected):
    assert detect_language(text) == expected


@pytest.fixture(scope="module")
def corpus_sample():
    corpus = SHARED / "corpus"
    if not corpus.is_dir():
        pytest.skip("../shared/corpus is not here")
    manifest = json.loads((SHARED / "manifests" / "waimei.manifest.json").read_text())
    return corpus, random.Random(7).sample(manifest, 300)


def test_corpus_sample_matches_manifest(corpus_sample):
    """Differential: what we read agrees with the archive's own manifest."""
    corpus, records = corpus_sample
    read = 0
    for rec in records:
        try:
            a = read_file(corpus / "waimei" / rec["file"], corpus)
        except ReadError as exc:
            assert exc.reason == "no text", rec["file"]
            continue
        read += 1
        assert a.source == rec["source"], rec["file"]
        assert a.url == rec["url"]
        expected = dt.datetime.fromisoformat(rec["date"]).astimezone(dt.timezone.utc)
        assert a.published == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert a.title == rec["title"].strip('"').strip()
        assert all(p and p == p.strip() and "<" not in p[:1] for p in a.paragraphs)
    assert read >= 290


def test_whole_sina_folder(tmp_path):
    sina = SHARED / "corpus" / "sina"
    if not sina.is_dir():
        pytest.skip("../shared/corpus is not here")
    # copy the folder under a name with a space to read it the way a user would
    shutil.copytree(sina, tmp_path / "sina copy")
    report = ReadReport()
    articles = list(iter_articles([tmp_path / "sina copy"], report))
    assert report.articles == 9 and not report.skipped
    for a in articles:
        assert a.source == "新浪财经" and a.format == "hexo" and a.editor and a.published
        assert "海量资讯" not in a.text and "{" not in a.text
        if "100吨" in a.title:  # its hidden <!--article_adlist[来源：中国新闻网]--> stays hidden
            assert "中国新闻网" not in a.text


def test_the_same_relative_path_in_two_folders_gives_two_articles(tmp_path):
    """Issue: a/x.md and b/x.md (no URL) once got one id, and one was silently dropped."""
    write(tmp_path / "a" / "x.md", "第一个文件夹\n\n甲文件夹里的正文。")
    write(tmp_path / "b" / "x.md", "第二个文件夹\n\n乙文件夹里的正文。")
    report = ReadReport()
    articles = list(iter_articles([tmp_path / "a", tmp_path / "b"], report))
    assert sorted(a.id for a in articles) == ["path:a/x.md", "path:b/x.md"]
    assert report.articles == 2 and not report.skipped and not report.duplicates


def test_two_folders_of_one_name_are_a_reported_collision_not_a_silent_drop(tmp_path):
    write(tmp_path / "one" / "news" / "x.md", "甲标题\n\n甲文件夹里的正文。")
    write(tmp_path / "two" / "news" / "x.md", "乙标题\n\n乙文件夹里的正文。")
    report = ReadReport()
    articles = list(iter_articles([tmp_path / "one" / "news", tmp_path / "two" / "news"], report))
    assert len(articles) == 1
    assert [(s.path, s.reason) for s in report.skipped] == [("x.md", "id collision")]
    assert "news/x.md" in report.skipped[0].detail


def test_an_article_without_an_outlet_is_named_after_its_url_host_or_folder(tmp_path):
    """Issue: articles with no outlet were listed under an empty source name ("(2)" in the page)."""
    write(tmp_path / "wire" / "a.md", "---\ntitle: 无来源\nfrom: https://www.example.org/news/1\n---\n<p>正文内容一。</p>")
    write(tmp_path / "wire" / "b.txt", "没有网址的标题\n\n正文内容二。")
    write(tmp_path / "wire" / "c.md", "---\ntitle: 有来源\nauthor: 联合早报\n---\n<p>正文内容三。</p>")
    sources = {a.path: a.source for a in iter_articles([tmp_path / "wire"], ReadReport())}
    assert sources == {"a.md": "example.org", "b.txt": "wire", "c.md": "联合早报"}
