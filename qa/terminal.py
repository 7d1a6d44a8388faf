"""How an answer looks in a terminal: one formatter for ``qa ask`` and ``qa chat``.

It reads the JSON form of an answer (:mod:`qa.answer`), so an answer searched
here and one sent by a running ``qa serve`` print alike. Standard library only:
``qa ask --server`` starts without numpy, torch or the model.

When the archive does not answer the question (``answerable`` false), a
verdict line comes first and says the passages are only the nearest. Each
passage is its rank and relevance (:func:`relevance_label`; the score when the
model has no calibration), its citation (title; outlet, day, paragraphs; the
link, or the file when the article has none) and its text with the question's
words marked: bold on a colour terminal, ``**word**`` elsewhere (pipes, files,
Markdown).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

BOLD, DIM, RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"
INDENT = "   "

# Relevance as a person reads it: the calibrated chance (qa.relevance) as a whole percentage
# (rounded half up) and one of three levels, from the percentage shown, so 60% is never
# "possibly". The cut-offs follow the calibration's reliability table in eval/README.md: of
# passages given 0.6 or more, 68-92% were relevant; 0.2-0.6, 33-51%; under 0.2, 8%.
# This is the one definition; the chat page repeats it (qa/static/app.js, RELEVANCE_LEVELS),
# and tests/test_browser.py holds the page to this function, value by value.
RELEVANCE_LEVELS = ((60, "likely relevant"), (20, "possibly relevant"), (0, "unlikely relevant"))  # from percent
NOT_ANSWERED = ("Nothing here answers that question: no passage is relevant enough. "
                "The nearest passages follow, for reference only.")  # fmt: skip


def marked(text: str, highlights: Iterable[Sequence[int]], color: bool) -> str:
    """``text`` with each [start, end) span marked (bold, or **span** without colour)."""
    opening, closing = (BOLD, RESET) if color else ("**", "**")
    out, pos = [], 0
    for start, end in sorted((max(0, a), min(len(text), b)) for a, b in highlights):
        if start < pos or start >= end:
            continue  # overlapping or empty: keep what is already marked
        out += [text[pos:start], opening, text[start:end], closing]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def citation_lines(citation: dict[str, Any]) -> list[str]:
    """Where a passage comes from: outlet · day · paragraphs, then the link (or the file)."""
    meta = " · ".join(x for x in (citation.get("source"), (citation.get("published") or "")[:10],
                                  citation.get("paragraphs")) if x)  # fmt: skip
    return [meta, citation.get("url") or citation.get("path") or ""]


def relevance_label(relevance: float | None) -> str | None:
    """"likely relevant · 92%" (:data:`RELEVANCE_LEVELS`); None when the model has no calibration."""
    if relevance is None:
        return None
    percent = math.floor(relevance * 100 + 0.5)  # half up, as the page's Math.floor(r * 100 + 0.5)
    level = next(name for cut, name in RELEVANCE_LEVELS if percent >= cut)
    return f"{level} · {percent}%"


def verdict(answer: dict[str, Any]) -> str | None:
    """The line said before the passages when none answers (``answerable`` false); else None:
    a true verdict needs no words, and an unknown one (null) claims nothing."""
    return NOT_ANSWERED if answer.get("answerable") is False and answer["passages"] else None


def format_passage(passage: dict[str, Any], color: bool = False) -> str:
    """One ranked passage: head line, citation, then the text, indented."""
    citation = passage["citation"]
    title = citation.get("title") or "(untitled)"
    rating = relevance_label(passage.get("relevance")) or f"{passage['score']:.3f}"
    head = f"{passage['rank']}. [{rating}] " + (f"{BOLD}{title}{RESET}" if color else title)
    lines = [head] + [INDENT + line for line in citation_lines(citation) if line]
    body = marked(passage["text"], passage.get("highlights") or (), color)
    lines += [INDENT + line for line in body.splitlines() if line.strip()]
    return "\n".join(lines)


def format_passages(answer: dict[str, Any], color: bool = False) -> str:
    """Every passage of an answer, a blank line between them, after the verdict when there is one."""
    said = verdict(answer)
    parts = [f"{BOLD}{said}{RESET}" if color else said] if said else []
    parts += [format_passage(p, color) for p in answer["passages"]]
    return "\n\n".join(parts)


def summary(answer: dict[str, Any], where: str = "") -> str:
    """'5 passages, hybrid, search 41 ms' (and where it was searched, for a server)."""
    line = f"{len(answer['passages'])} passages, {answer['mode']}, search {answer['took_ms']:.0f} ms"
    return line + (f" on {where}" if where else "")


def dim(text: str, color: bool) -> str:
    return f"{DIM}{text}{RESET}" if color else text
