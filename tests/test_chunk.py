"""Chunking rules (qa.chunk): spans, merging, splitting, stable ids."""

import random
from pathlib import Path

import pytest

from qa.chunk import MAX_SIZE, MIN_SIZE, chunk_article, size, split_long
from qa.errors import ReadError
from qa.ingest import iter_articles, iter_files, read_file
from qa.records import Article, ReadReport

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
CORPUS = ROOT.parent / "shared" / "corpus"


def article(*paragraphs, title="标题", id="path:x.md"):
    return Article(id, title, "", None, None, (), "zh-Hans", "x.md", tuple(paragraphs))


def check_chunks(a: Article, chunks) -> None:
    """The invariants every chunking must keep."""
    assert chunks, a.path
    for c in chunks:
        assert a.text[c.char_start : c.char_end] == c.text
        assert c.text == c.text.strip() and c.text
        assert 1 <= c.para_start <= c.para_end <= len(a.paragraphs)
        assert c.article_id == a.id
        assert c.embed_text == (f"{a.title}\n{c.text}" if a.title else c.text)
    # in order, non-overlapping, and every paragraph's text is in some chunk
    for prev, nxt in zip(chunks, chunks[1:]):
        assert prev.char_end <= nxt.char_start and prev.para_end <= nxt.para_start
    covered = "".join(c.text for c in chunks)
    assert "".join("".join(p.split()) for p in a.paragraphs) == "".join(covered.split())
    assert len({c.id for c in chunks}) == len(chunks)


def test_every_example_article():
    for a in iter_articles([EXAMPLES], ReadReport()):
        check_chunks(a, chunk_article(a))


def test_seed_000_one_chunk_per_paragraph():
    a = read_file(EXAMPLES / "000_9ab89037dc83bcbe.md", EXAMPLES)
    chunks = chunk_article(a)
    assert [(c.para_start, c.para_end) for c in chunks] == [(i, i) for i in range(1, 8)]
    [c] = [c for c in chunks if "32.2万起" in c.text]
    assert c.para_start == 6 and c.text == a.paragraphs[5]


def test_seed_001_byline_joins_the_last_paragraph():
    a = read_file(EXAMPLES / "001_ce7fc6476a78629f.md", EXAMPLES)
    chunks = chunk_article(a)
    last = chunks[-1]
    assert (last.para_start, last.para_end) == (11, 12)
    assert last.text.startswith("三是加大力度开展源头管控") and last.text.endswith("（总台央视记者 孔禄渊）")
    assert [c.text[:2] for c in chunks[2:7]] == ["一是", "二是", "三是", "四是", "五是"]


def test_short_paragraph_merges_into_the_next():
    a = article("北京电", "第一段正文讲的是一件相当重要并且值得仔细报道的事情。", "第二段正文同样足够长，可以独立成为一个段落。")
    chunks = chunk_article(a)
    assert [(c.para_start, c.para_end) for c in chunks] == [(1, 2), (3, 3)]
    assert chunks[0].text == "北京电\n\n第一段正文讲的是一件相当重要并且值得仔细报道的事情。"


def test_consecutive_short_paragraphs_merge_until_big_enough():
    a = article("一", "二", "三", "四", "五", "这是一段足够长的正文，应该单独成为一个块而不会被合并。")
    chunks = chunk_article(a)
    check_chunks(a, chunks)
    assert size(chunks[0].text) >= MIN_SIZE or chunks[0].para_end == 6


def test_merge_never_exceeds_the_limit():
    long = "长" * (MAX_SIZE - 2) + "。"
    a = article("短的一行", long)
    chunks = chunk_article(a)
    assert [(c.para_start, c.para_end) for c in chunks] == [(1, 1), (2, 2)]


def test_long_paragraph_splits_at_sentence_ends():
    sentences = [f"第{i}句话讲述了一个比较完整的意思，并且带着“引号里的内容！”" for i in range(40)]
    a = article("".join(sentences))
    chunks = chunk_article(a)
    check_chunks(a, chunks)
    assert len(chunks) > 1 and all(c.para_start == c.para_end == 1 for c in chunks)
    for c in chunks:
        assert size(c.text) <= MAX_SIZE
        assert c.text.endswith("！”")  # never mid-sentence: closing quote stays with its sentence
    sizes = [size(c.text) for c in chunks]
    assert min(sizes) > MAX_SIZE / 2  # balanced pieces, no runt at the end


def test_english_sentences_split_on_periods_not_decimals():
    text = " ".join(f"Sentence number {i} says the price rose 3.5 percent in trading today." for i in range(60))
    spans = split_long(text, 100)
    assert len(spans) > 1
    for s, e in spans:
        assert text[s:e].endswith("today.") and text[s:e].startswith("Sentence")


def test_one_overlong_sentence_splits_at_commas_then_anywhere():
    clauses = "，".join(["这是一个没有句号的分句"] * 80) + "。"
    spans = split_long(clauses, 100)
    assert len(spans) > 1
    assert all(clauses[s:e].endswith(("，", "。")) for s, e in spans)
    no_punct = "字" * 1000
    spans = split_long(no_punct, 100)
    assert [e - s for s, e in spans] == [100] * 10
    words = " ".join(["word"] * 1000)
    for s, e in split_long(words, 50):
        assert words[s:e].split() and all(w == "word" for w in words[s:e].split(" "))


def test_ids_are_stable_and_content_derived(tmp_path):
    a1 = read_file(EXAMPLES / "000_9ab89037dc83bcbe.md", EXAMPLES)
    a2 = read_file(EXAMPLES / "000_9ab89037dc83bcbe.md", EXAMPLES)
    assert [c.id for c in chunk_article(a1)] == [c.id for c in chunk_article(a2)]
    other = article(*a1.paragraphs, id="path:other.md")
    assert not {c.id for c in chunk_article(a1)} & {c.id for c in chunk_article(other)}
    # an edit changes only the edited chunk's id
    edited = article(*a1.paragraphs[:-1], a1.paragraphs[-1] + "（更新）", id=a1.id)
    ids1, ids2 = [c.id for c in chunk_article(a1)], [c.id for c in chunk_article(edited)]
    assert ids1[:-1] == ids2[:-1] and ids1[-1] != ids2[-1]


def test_repeated_paragraph_gets_distinct_ids():
    p = "同一段文字在文章里出现了两次，这在转载稿件中很常见。"
    chunks = chunk_article(article(p, "中间隔着另一段足够长的正文内容。", p))
    assert chunks[0].text == chunks[2].text and chunks[0].id != chunks[2].id


def test_single_short_paragraph_article():
    chunks = chunk_article(article("（完）"))
    assert len(chunks) == 1 and chunks[0].text == "（完）"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not here")
def test_corpus_sample_spans():
    files = list(iter_files([CORPUS]))
    for path, root in random.Random(11).sample(files, 300):
        try:
            a = read_file(path, root)
        except ReadError as exc:
            assert exc.reason == "no text"
            continue
        chunks = chunk_article(a)
        check_chunks(a, chunks)
        assert all(size(c.text) <= MAX_SIZE for c in chunks)
