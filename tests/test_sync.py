"""Folders -> index (`qa index FOLDER`): only changed files are read, and the
result always equals an index built from scratch over the same folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import qa.index.sync as qsync
from qa.embed import HashEmbedder
from qa.errors import ArticleNotFound, QAError
from qa.index import Index, sync_folders
from qa.records import ReadReport

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
SEED_ID = "url:b25284d6faa91c80"  # 000_9ab89037dc83bcbe.md, the 联合早报 seed
QUESTIONS = ["2020年破获了多少电信网络诈骗案件？", "港口 岸电", "高雄輕軌", "heat pumps", "项目进展 报道"]

ARTICLE = """---
layout: post
title: {title}
date: 2021-0{month}-01 10:00:00 +0800
from: {url}
tags: [测试]
author: 测试日报
---
<p>{body}</p>
<p>第二段：{body}的后续报道。</p>
"""


class Counting(HashEmbedder):
    def __init__(self):
        super().__init__(64)
        self.passages = 0

    def embed_passages(self, texts, progress=False):
        self.passages += len(texts)
        return super().embed_passages(texts)


def sync(index: Path, *folders: Path, embedder=None, **options):
    report = ReadReport()
    result = sync_folders(index, list(folders), embedder or HashEmbedder(), report, progress=False, **options)
    assert report.files_seen == report.unchanged + report.articles + report.duplicates + len(report.skipped)
    return result, report


def answers(index_dir: Path) -> list:
    with Index.open(index_dir, HashEmbedder()) as index:
        return [
            [(h.chunk_id, round(h.score, 5), h.citation.path) for h in index.search(q, k=6, mode=m).hits]
            for q in QUESTIONS for m in ("dense", "lexical", "hybrid")
        ]  # fmt: skip


def same_as_fresh(index_dir: Path, folder: Path, tmp_path: Path) -> None:
    fresh = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
    sync(fresh, folder)
    assert answers(index_dir) == answers(fresh)


def write(path: Path, title: str, url: str, body: str, month: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ARTICLE.format(title=title, url=url, body=body, month=month), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "articles"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def counted(monkeypatch):
    """How many files were read (bytes) and parsed in a run."""
    counts = {"read": 0, "parsed": 0}
    real_read, real_parse = qsync.read_bytes, qsync.article_from_bytes

    def read(entry, *args):
        counts["read"] += 1
        return real_read(entry, *args)

    def parse(data, entry):
        counts["parsed"] += 1
        return real_parse(data, entry)

    monkeypatch.setattr(qsync, "read_bytes", read)
    monkeypatch.setattr(qsync, "article_from_bytes", parse)
    return counts


def test_a_second_run_reads_no_file(folder, tmp_path, counted):
    index = tmp_path / "index"
    first, report = sync(index, folder)
    assert first.articles == 7 and report.articles == 7 and counted == {"read": 7, "parsed": 7}
    counted.update(read=0, parsed=0)
    again, report = sync(index, folder)
    assert counted == {"read": 0, "parsed": 0}
    assert report.unchanged == 7 and not again.written and again.version == first.version
    assert again.articles_unchanged == 7


def test_a_touched_file_is_hashed_not_parsed(folder, tmp_path, counted):
    index = tmp_path / "index"
    first, _ = sync(index, folder)
    path = folder / "000_9ab89037dc83bcbe.md"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    counted.update(read=0, parsed=0)
    again, report = sync(index, folder)
    assert counted == {"read": 1, "parsed": 0} and report.unchanged == 7
    assert again.version == first.version  # nothing a reader could see changed
    counted.update(read=0, parsed=0)
    sync(index, folder)
    assert counted["read"] == 0  # its new time was recorded


def test_add_change_delete_files_equals_a_fresh_build(folder, tmp_path):
    index = tmp_path / "index"
    sync(index, folder)
    (folder / "rotterdam-heat-pumps.md").unlink()
    seed = folder / "000_9ab89037dc83bcbe.md"
    seed.write_text(seed.read_text(encoding="utf-8") + "\n<p>新增的一段：警方再次提醒市民提防诈骗。</p>\n", encoding="utf-8")
    write(folder / "new" / "港口.md", "港口岸电改造完成", "https://example.com/port", "青岛港岸电改造完成")
    embedder = Counting()
    result, report = sync(index, folder, embedder=embedder)
    assert (result.articles_added, result.articles_changed, result.articles_removed) == (1, 1, 1)
    assert report.unchanged == 5 and report.articles == 2
    assert embedder.passages == result.chunks_embedded <= 3  # the new paragraph and the new article
    with Index.open(index, HashEmbedder()) as opened:
        assert "新增的一段" in opened.article(SEED_ID).text
    same_as_fresh(index, folder, tmp_path)


def test_a_renamed_file_is_not_embedded_again(folder, tmp_path):
    index = tmp_path / "index"
    sync(index, folder)
    (folder / "000_9ab89037dc83bcbe.md").rename(folder / "renamed.md")
    embedder = Counting()
    result, _ = sync(index, folder, embedder=embedder)
    assert embedder.passages == 0 and result.articles == 7
    with Index.open(index, HashEmbedder()) as opened:
        assert opened.article(SEED_ID).path == "renamed.md"
    same_as_fresh(index, folder, tmp_path)


def test_a_duplicate_takes_over_when_the_original_goes(folder, tmp_path):
    index = tmp_path / "index"
    original = write(folder / "a.md", "同一篇报道", "https://example.com/same", "原文内容在此")
    copy = write(folder / "z" / "copy.md", "同一篇报道", "http://www.example.com/same/", "原文内容在此")
    _, report = sync(index, folder)
    assert report.duplicates == 1 and report.duplicate_paths[0][0] == "z/copy.md"
    with Index.open(index, HashEmbedder()) as opened:
        article_id = next(h.citation.article_id for h in opened.search("原文内容在此", k=1, mode="lexical").hits)
        assert opened.article(article_id).path == "a.md"
    original.unlink()
    embedder = Counting()
    result, _ = sync(index, folder, embedder=embedder)
    assert embedder.passages == 0 and result.articles == 8
    with Index.open(index, HashEmbedder()) as opened:
        assert opened.article(article_id).path == "z/copy.md"  # still there, now from the copy
    same_as_fresh(index, folder, tmp_path)
    copy.unlink()
    sync(index, folder)
    with Index.open(index, HashEmbedder()) as opened, pytest.raises(ArticleNotFound):
        opened.article(article_id)


def test_a_file_turned_bad_loses_its_article_and_is_reported_once(folder, tmp_path, counted):
    index = tmp_path / "index"
    sync(index, folder)
    bad = folder / "rotterdam-heat-pumps.md"
    good = bad.read_bytes()
    bad.write_bytes(b"\x00\x01 binary now")
    result, report = sync(index, folder)
    assert result.articles_removed == 1 and [s.reason for s in report.skipped] == ["binary"]
    counted.update(read=0, parsed=0)
    _, report = sync(index, folder)
    assert counted["read"] == 0 and report.skipped == [] and report.unchanged == 7  # known, unchanged
    bad.write_bytes(good)
    result, _ = sync(index, folder)
    assert result.articles_added == 1 and result.articles == 7
    same_as_fresh(index, folder, tmp_path)


def test_keep_missing_and_empty_folders(folder, tmp_path):
    index = tmp_path / "index"
    sync(index, folder)
    other = tmp_path / "other"
    write(other / "x.md", "另一个文件夹", "https://example.com/other", "另一个文件夹里的文章")
    result, _ = sync(index, other, remove_missing=False)
    assert result.articles == 8 and result.articles_removed == 0
    result, _ = sync(index, other)
    assert result.articles == 1 and result.articles_removed == 7
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QAError, match="no articles found.*left as it is"):
        sync(index, empty)
    (empty / "bad.md").write_bytes(b"\x00binary")
    with pytest.raises(QAError, match="no articles could be read.*left as it is"):
        sync(index, empty)
    with Index.open(index, HashEmbedder()) as opened:
        assert opened.stats().articles == 1


def test_articles_added_through_the_library_are_replaced_by_folder_runs(folder, tmp_path):
    from qa.ingest import iter_articles

    index = tmp_path / "index"
    Index.update(index, list(iter_articles([folder], ReadReport())), HashEmbedder(), progress=False)
    embedder = Counting()
    result, _ = sync(index, folder, embedder=embedder)
    assert embedder.passages == 0 and result.articles == 7  # the same articles, now tied to their files
    same_as_fresh(index, folder, tmp_path)


def test_an_interrupted_run_resumes_reading_only_what_it_had_not_committed(folder, tmp_path, counted):
    for i in range(30):
        write(folder / "bulk" / f"{i:02d}.md", f"批量文章{i}", f"https://example.com/bulk/{i}", f"批量文章第{i}篇的正文")

    class Failing(HashEmbedder):
        calls = 0

        def embed_passages(self, texts, progress=False):
            Failing.calls += 1
            if Failing.calls == 3:
                raise KeyboardInterrupt("simulated Ctrl-C")
            return super().embed_passages(texts)

    index = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        sync(index, folder, embedder=Failing(), step_chunks=10)
    counted.update(read=0, parsed=0)
    _, report = sync(index, folder, step_chunks=10)
    assert report.unchanged >= 3 and counted["read"] == 37 - report.unchanged  # committed steps' files: not read
    assert report.articles == 37 - report.unchanged
    same_as_fresh(index, folder, tmp_path)


def test_pipes_and_links_out_of_the_folder_are_skipped(folder, tmp_path):
    outside = tmp_path / "secret.md"
    write(outside, "机密", "https://example.com/secret", "不应被索引的内容")
    os.symlink(outside, folder / "link.md")
    os.mkfifo(folder / "pipe.md")
    index = tmp_path / "index"
    result, report = sync(index, folder)
    assert result.articles == 7
    assert sorted((s.path, s.reason) for s in report.skipped) == [("link.md", "symlink"), ("pipe.md", "not a regular file")]
    result, report = sync(index, folder, follow_symlinks=True)
    assert result.articles == 8


# --- the reader thread: reading and preparing beside the model --------------------------------


def serial(files):
    """The loader without a thread: each file read and parsed when the writer asks for it."""
    for entry, old in files:
        yield entry, qsync.load_file(entry, old)


def index_files(index_dir: Path) -> dict[str, bytes]:
    """Every segment file of an index, by its path inside the folder (a run's own times excluded)."""
    segments = index_dir / "segments"
    return {str(p.relative_to(segments)): p.read_bytes() for p in sorted(segments.rglob("*"))
            if p.is_file() and p.name != "segment.json"}  # fmt: skip


def test_the_reader_thread_builds_the_index_a_serial_run_builds(folder, tmp_path):
    for i in range(40):  # enough files for the thread to run ahead of the writer, and several commits
        write(folder / "more" / f"{i:02d}.md", f"第{i}号报道", f"https://example.com/{i}", f"港口岸电第{i}期工程" * 3)
    threaded, serial_dir = tmp_path / "threaded", tmp_path / "serial"
    a, _ = sync(threaded, folder, step_chunks=7)
    b, _ = sync(serial_dir, folder, step_chunks=7, load=serial)
    assert (a.articles, a.chunks, a.commits) == (b.articles, b.chunks, b.commits) and a.commits > 3
    assert index_files(threaded) == index_files(serial_dir)  # vectors, postings, columns byte for byte
    assert answers(threaded) == answers(serial_dir)
    assert a.timings.overlapped and a.timings.read > 0 and a.timings.prepare > 0 and a.timings.write > 0
    assert not b.timings.overlapped and b.timings.prepare > 0  # the writer prepared them itself


def test_reader_processes_build_the_index_a_serial_run_builds(folder, tmp_path):
    """Beside a GPU, several spawned processes read; bad files' errors cross over to the writer."""
    for i in range(80):
        write(folder / "more" / f"{i:02d}.md", f"第{i}号报道", f"https://example.com/{i}", f"轻轨延伸第{i}期" * 4)
    (folder / "more" / "binary.md").write_bytes(bytes(range(256)) * 4)
    (folder / "more" / "empty.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")
    pooled, serial_dir = tmp_path / "pooled", tmp_path / "serial"
    a, ra = sync(pooled, folder, step_chunks=50, readers=2)
    b, rb = sync(serial_dir, folder, step_chunks=50, load=serial)
    assert (a.articles, a.chunks, a.commits) == (b.articles, b.chunks, b.commits) and a.articles == 87
    assert sorted((s.path, s.reason) for s in ra.skipped) == sorted((s.path, s.reason) for s in rb.skipped)
    assert len(ra.skipped) == 2
    assert index_files(pooled) == index_files(serial_dir)
    assert answers(pooled) == answers(serial_dir)
    assert a.timings.read > 0 and a.timings.prepare > 0


def test_read_errors_survive_the_trip_from_a_reader_process():
    import pickle

    from qa.errors import ReadError

    error = pickle.loads(pickle.dumps(ReadError("a/b.md", "binary", "NUL bytes")))
    assert (error.path, error.reason, error.detail, str(error)) == ("a/b.md", "binary", "NUL bytes",
                                                                     "a/b.md: binary (NUL bytes)")  # fmt: skip


def test_an_error_in_the_reader_thread_is_raised_and_the_index_is_left_as_it_was(folder, tmp_path, monkeypatch):
    index = tmp_path / "index"
    first, _ = sync(index, folder)
    write(folder / "new.md", "新的一篇", "https://example.com/new", "新的报道")
    before = answers(index)
    real = qsync.prepare

    def broken(article, file_key=None, tokens=None):
        if article.title == "新的一篇":
            raise RuntimeError("tokeniser broke")
        return real(article, file_key, tokens)

    monkeypatch.setattr(qsync, "prepare", broken)
    with pytest.raises(RuntimeError, match="tokeniser broke"):
        sync(index, folder)
    assert answers(index) == before
    assert not [t for t in __import__("threading").enumerate() if t.name == "qa-reader"]
    monkeypatch.setattr(qsync, "prepare", real)
    again, _ = sync(index, folder)
    assert again.articles == first.articles + 1


def test_a_consumer_that_stops_early_stops_the_reader_thread(folder):
    import threading

    from qa.ingest import scan_files

    entries = list(scan_files([folder], ReadReport()))
    reader = qsync.load_ahead([(e, None) for e in entries] * 20, ahead=2)
    entry, loaded = next(reader)
    assert entry == entries[0] and loaded.prepared is not None and loaded.prepared.article is loaded.article
    reader.close()  # what a `for` loop left by an exception does
    assert not [t for t in threading.enumerate() if t.name == "qa-reader"]


def test_the_reader_thread_keeps_the_files_order(folder):
    from qa.ingest import scan_files

    entries = list(scan_files([folder], ReadReport())) * 5
    got = [entry for entry, _ in qsync.load_ahead([(e, None) for e in entries], ahead=3)]
    assert got == entries


# --- a GPU's pipeline: each step embedded in the background while the one before is committed ---


class TwoCalls(HashEmbedder):
    """The fake model, declaring what a GPU embedder does: several calls at once."""

    calls_in_flight = 2
    passages_per_call = 3

    def __init__(self, fail_at: int | None = None, committing=None):
        super().__init__(64)
        self.calls: list[bool] = []  # per call: whether a commit was running meanwhile
        self.fail_at = fail_at
        self.committing = committing

    def embed_passages(self, texts, progress=False):
        import time

        if self.fail_at is not None and len(self.calls) + 1 >= self.fail_at:
            raise RuntimeError("the GPU fell off the bus")
        time.sleep(0.01)  # a GPU's call, long enough for the writer's thread to commit beside it
        self.calls.append(bool(self.committing and self.committing.is_set()))
        return super().embed_passages(texts)


def test_steps_embedded_ahead_build_the_index_one_step_at_a_time_builds(folder, tmp_path, monkeypatch):
    import threading
    import time

    from qa.index.writer import Writer

    for i in range(30):
        write(folder / "more" / f"{i:02d}.md", f"第{i}号报道", f"https://example.com/{i}", f"港口岸电第{i}期工程" * 3)
    committing, real = threading.Event(), Writer._commit

    def commit(self, step, vectors=None):
        committing.set()
        try:
            time.sleep(0.02)  # segment files and the catalog, made slow enough to see the overlap
            return real(self, step, vectors)
        finally:
            committing.clear()

    monkeypatch.setattr(Writer, "_commit", commit)
    ahead, plain = tmp_path / "ahead", tmp_path / "plain"
    model = TwoCalls(committing=committing)
    a, _ = sync(ahead, folder, embedder=model, step_chunks=6)
    b, _ = sync(plain, folder, step_chunks=6, load=serial)
    assert (a.articles, a.chunks, a.commits, a.chunks_embedded) == (b.articles, b.chunks, b.commits, b.chunks_embedded)
    assert a.commits > 4 and sum(model.calls) >= 3  # the model embedded while steps were committed
    assert index_files(ahead) == index_files(plain)
    assert answers(ahead) == answers(plain)
    again, _ = sync(ahead, folder, embedder=TwoCalls())
    assert not again.written  # the state of every file was committed with its step


def test_a_failure_embedding_ahead_keeps_the_steps_committed_and_the_next_run_finishes(folder, tmp_path):
    for i in range(30):
        write(folder / "more" / f"{i:02d}.md", f"第{i}号报道", f"https://example.com/{i}", f"轻轨延伸第{i}期" * 3)
    index = tmp_path / "index"
    with pytest.raises(RuntimeError, match="fell off the bus"):
        sync(index, folder, embedder=TwoCalls(fail_at=12), step_chunks=6)
    with Index.open(index, HashEmbedder()) as opened:
        kept, kept_chunks = opened.stats().articles, opened.stats().chunks
    assert 0 < kept < 37  # the steps before the failure, committed
    done, _ = sync(index, folder, embedder=TwoCalls(), step_chunks=6)
    assert done.articles == 37 and done.articles_added == 37 - kept  # the committed steps are not done again
    assert done.chunks_embedded + done.chunks_reused == done.chunks - kept_chunks
    same_as_fresh(index, folder, tmp_path)
