"""Highlights: where the question's terms occur in a passage, and its best sentence.

``highlight(text, question)`` returns character spans into ``text`` itself,
found on a normalised copy of it that has exactly the same length: NFKC,
Traditional -> Simplified (OpenCC t2s) and lowercase, applied to the whole
text when that keeps the length (OpenCC's t2s maps character for character in
practice), else character by character. So a Traditional question marks the
Simplified words of a passage, and the offsets always index the original text.

The query terms are :func:`qa.lexical.tokenize`'s tokens: Chinese terms are
matched as substrings; Latin words and numbers as whole words (with the same
light plural strip as the index, so "vaccines" marks "vaccine").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from qa.lexical import _s_stem, normalize, tokenize
from qa.records import Span

# A sentence ends at Chinese/ASCII end punctuation (a "." only before a space
# or the end and not after a lone capital, so 3.5 and U.S. stay whole), plus any closing quotes/brackets.
_SENTENCE_END = re.compile(r"(?:[。！？；!?;…]+|(?<!\b[A-Z])\.(?=[\s”’」』\"')）]|$))[”’」』\"')）]*")
_LATIN_WORD = re.compile(r"[0-9]+(?:\.[0-9]+)*|[a-z0-9]+")


@functools.lru_cache(maxsize=8192)
def _normalize_char(ch: str) -> str:
    out = normalize(ch)
    if len(out) == 1:
        return out
    low = ch.lower()
    return low if len(low) == 1 else ch


def aligned_normalize(text: str) -> str:
    """:func:`qa.lexical.normalize` of ``text``, guaranteed the same length as ``text``."""
    whole = normalize(text)
    if len(whole) == len(text):
        return whole
    return "".join(_normalize_char(ch) for ch in text)


def _is_latin(term: str) -> bool:
    return term.isascii()


def _weight(term: str) -> float:
    """IDF-ish weight: longer terms are rarer and say more."""
    return float(min(len(term), 4))


def _term_occurrences(norm: str, terms: set[str]) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    latin = {t for t in terms if _is_latin(t)}
    if latin:
        for m in _LATIN_WORD.finditer(norm):
            word = m.group()
            key = _s_stem(word) if word.isalpha() else word
            if key in latin or word in latin:
                found.append((m.start(), m.end(), key if key in latin else word))
    for term in terms - latin:
        start = norm.find(term)
        while start != -1:
            found.append((start, start + len(term), term))
            start = norm.find(term, start + 1)
    return found


def _merge(intervals: list[tuple[int, int]]) -> tuple[Span, ...]:
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:  # overlapping or adjacent
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple(Span(s, e) for s, e in merged)


def sentences(text: str) -> list[Span]:
    """Sentence spans of ``text`` (whitespace around each sentence excluded)."""
    spans: list[Span] = []
    start = 0
    bounds = [m.end() for m in _SENTENCE_END.finditer(text)]
    if not bounds or bounds[-1] != len(text):
        bounds.append(len(text))
    for end in bounds:
        s, e = start, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append(Span(s, e))
        start = end
    return spans


def highlight(text: str, question: str, extra_terms: Iterable[str] = ()) -> tuple[tuple[Span, ...], Span | None]:
    """(spans of the question's terms in ``text``, the best-matching sentence or None).

    Spans are [start, end) offsets into ``text``, sorted, non-overlapping,
    adjacent ones merged. The best sentence is the one covering the most
    question terms, each weighted by its length; ties go to the earliest.
    ``extra_terms``: search tokens to mark too (an English question's words in
    Chinese, :mod:`qa.crosslingual`).
    """
    if not text or not question:
        return (), None
    terms = set(tokenize(question)) | set(extra_terms)
    if not terms:
        return (), None
    norm = aligned_normalize(text)
    occurrences = _term_occurrences(norm, terms)
    if not occurrences:
        return (), None

    # Single Chinese characters (年, 分) match everywhere: mark them only when the
    # question has nothing longer that occurs in the text.
    has_long = any(len(t) > 1 or _is_latin(t) for _, _, t in occurrences)
    marked = [
        (s, e) for s, e, t in occurrences if not has_long or len(t) > 1 or _is_latin(t)
    ]
    spans = _merge(marked)

    best: Span | None = None
    best_score = 0.0
    for sentence in sentences(text):
        present = {t for s, e, t in occurrences if s >= sentence.start and e <= sentence.end}
        score = sum(_weight(t) for t in present)
        if score > best_score:
            best, best_score = sentence, score
    return spans, best
