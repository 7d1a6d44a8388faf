"""Paragraphs -> chunks (the passages that are embedded, searched and cited).

A chunk is one paragraph, except:
- a very short paragraph (a dateline, a subheading, "（总台央视记者 孔禄渊）")
  is merged into the next paragraph, or into the previous one when it is last;
- a very long paragraph is split at sentence ends (。！？；!?. and the closing
  quotes/brackets after them) into pieces of about equal size; a single
  sentence over the limit is split at commas, and only then mid-clause.

Sizes are in approximate model tokens: one per Han character, one per four
other non-space characters (multilingual-e5's XLM-R vocabulary spends ~0.7-1
token on a Chinese character and ~1 on 4 characters of English).

Limits, measured on ../shared/corpus (216,757 cleaned paragraphs, in
characters, nearly all Chinese): p1 4, p5 12, p10 21, p25 47, median 76,
p75 107, p90 144, p95 176, p99 283, p99.9 509. The embedding model reads at
most 512 tokens and works best on ~100-300, so:
- MAX_SIZE 300: the title (<= ~60) plus the chunk stays well under 512, and
  only ~1% of paragraphs (the p99 tail) are split;
- MIN_SIZE 15: below that (~p7) a paragraph is a dateline, a byline
  ("（总台央视记者 孔禄渊）"), a subheading or a "(完)": too thin to be found or
  cited on its own. A one-sentence English paragraph (~20 tokens) stays whole.
"""

from __future__ import annotations

import hashlib
import math
import re

from qa.records import PARAGRAPH_SEPARATOR, Article, Chunk

MIN_SIZE = 15
MAX_SIZE = 300

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CLOSERS = "”’」』\"'）)】》"
# A run of dots ends a sentence when a space, a closer or the end follows; the
# run is read once from its start ((?<!\.) and ++), so "....x" is linear.
_SENTENCE_END = re.compile(rf"(?:[。！？；!?]+|(?<!\.)\.++(?=[\s{_CLOSERS}]|$)|…+)[{_CLOSERS}]*")
_CLAUSE_END = re.compile(rf"[，,、：:]+[{_CLOSERS}]*")


def size(text: str) -> float:
    """Approximate token count (see the module docstring)."""
    han = len(_HAN.findall(text))
    other = len(text) - han - text.count(" ")
    return han + other / 4


def chunk_article(article: Article, min_size: float = MIN_SIZE, max_size: float = MAX_SIZE) -> list[Chunk]:
    text = article.text
    # (paragraph number, start, end) pieces over article.text
    pieces: list[tuple[int, int, int]] = []
    offset = 0
    for number, paragraph in enumerate(article.paragraphs, 1):
        for start, end in split_long(paragraph, max_size):
            pieces.append((number, offset + start, offset + end))
        offset += len(paragraph) + len(PARAGRAPH_SEPARATOR)

    groups: list[list[tuple[int, int, int]]] = []
    for piece in pieces:
        if groups and _fits(groups[-1], piece, text, max_size) and size(_span(groups[-1], text)) < min_size:
            groups[-1].append(piece)  # a short group takes in what follows
        else:
            groups.append([piece])
    if len(groups) > 1 and size(_span(groups[-1], text)) < min_size:
        last = groups.pop()
        if _fits(groups[-1], last[-1], text, max_size):
            groups[-1].extend(last)  # a short last paragraph joins the one before
        else:
            groups.append(last)

    chunks, seen = [], {}
    for group in groups:
        start, end = group[0][1], group[-1][2]
        body = text[start:end]
        seen[body] = seen.get(body, 0) + 1
        chunks.append(
            Chunk(
                id=chunk_id(article.id, body, seen[body]),
                article_id=article.id,
                para_start=group[0][0],
                para_end=group[-1][0],
                char_start=start,
                char_end=end,
                text=body,
                embed_text=f"{article.title}\n{body}" if article.title else body,
            )
        )
    return chunks


def chunk_id(article_id: str, text: str, occurrence: int = 1) -> str:
    """Stable id from the article and the chunk's content (the n-th time the
    same text occurs in one article gets its own id)."""
    key = f"{article_id}\n{text}" + (f"\n#{occurrence}" if occurrence > 1 else "")
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def split_long(paragraph: str, max_size: float = MAX_SIZE) -> list[tuple[int, int]]:
    """[start, end) spans covering ``paragraph`` (whitespace between spans
    left out), each at most ``max_size`` unless a clause alone is longer."""
    total = size(paragraph)
    if total <= max_size:
        return [(0, len(paragraph))]
    # aim for equal pieces, so a split never leaves a runt at the end
    target = total / math.ceil(total / max_size)
    spans: list[tuple[int, int]] = []
    sizes: list[float] = []  # size of each span, kept as a running sum
    for start, end in _units(paragraph, _SENTENCE_END):
        if size(paragraph[start:end]) > max_size:
            for cstart, cend in _units(paragraph[start:end], _CLAUSE_END):
                for hs, he in _hard_split(paragraph[start + cstart : start + cend], max_size):
                    _pack(spans, sizes, start + cstart + hs, start + cstart + he, paragraph, target, max_size)
        else:
            _pack(spans, sizes, start, end, paragraph, target, max_size)
    return spans


def _pack(spans, sizes, start, end, text, target, max_size) -> None:
    """Add the unit [start, end) to the last span while that span is under
    ``target`` and stays within ``max_size``, else start a new span. Sizes
    add up exactly (counts and quarters), so each unit is measured once and
    a paragraph of a million sentences costs linear time."""
    if spans:
        grown = sizes[-1] + size(text[spans[-1][1] : end])
        if grown <= max_size and sizes[-1] < target:
            spans[-1], sizes[-1] = (spans[-1][0], end), grown
            return
    spans.append((start, end))
    sizes.append(size(text[start:end]))


def _units(text: str, boundary: re.Pattern) -> list[tuple[int, int]]:
    """Spans of text cut after each boundary match, stripped of outer spaces."""
    spans, start = [], 0
    for match in boundary.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            out.append((s, e))
    return out


def _hard_split(text: str, max_size: float) -> list[tuple[int, int]]:
    """Cut a clause with no punctuation into pieces of at most max_size,
    at a space when the cut would fall inside a Latin word."""
    spans, start, acc = [], 0, 0.0
    for i, ch in enumerate(text):
        weight = _weight(ch)
        if acc + weight > max_size and i > start:
            cut = i
            space = text.rfind(" ", start + 1, i)
            if not _HAN.match(ch) and space > start:
                cut = space
            spans.append((start, cut))
            start, acc = cut, size(text[cut:i])
        acc += weight
    spans.append((start, len(text)))
    return [(s + len(text[s:e]) - len(text[s:e].lstrip()), s + len(text[s:e].rstrip())) for s, e in spans
            if text[s:e].strip()]


def _weight(ch: str) -> float:
    return 1.0 if _HAN.match(ch) else 0.0 if ch == " " else 0.25


def _span(group, text: str) -> str:
    return text[group[0][1] : group[-1][2]]


def _fits(group, piece, text: str, max_size: float) -> bool:
    return size(text[group[0][1] : piece[2]]) <= max_size
