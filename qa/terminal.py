"""How an answer looks in a terminal: one formatter for ``qa ask`` and ``qa chat``.

It reads the JSON form of an answer (:mod:`qa.answer`), so an answer searched
here and one sent by a running ``qa serve`` print alike. Standard library only:
``qa ask --server`` starts without numpy, torch or the model.

Each passage is its rank and score, its citation (title; outlet, day,
paragraphs; the link, or the file when the article has none) and its text
with the question's words marked: bold on a colour terminal, ``**word**``
elsewhere (pipes, files, Markdown).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

BOLD, DIM, RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"
INDENT = "   "


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


def format_passage(passage: dict[str, Any], color: bool = False) -> str:
    """One ranked passage: head line, citation, then the text, indented."""
    citation = passage["citation"]
    title = citation.get("title") or "(untitled)"
    head = f"{passage['rank']}. [{passage['score']:.3f}] " + (f"{BOLD}{title}{RESET}" if color else title)
    lines = [head] + [INDENT + line for line in citation_lines(citation) if line]
    body = marked(passage["text"], passage.get("highlights") or (), color)
    lines += [INDENT + line for line in body.splitlines() if line.strip()]
    return "\n".join(lines)


def format_passages(answer: dict[str, Any], color: bool = False) -> str:
    """Every passage of an answer, a blank line between them."""
    return "\n\n".join(format_passage(p, color) for p in answer["passages"])


def summary(answer: dict[str, Any], where: str = "") -> str:
    """'5 passages, hybrid, search 41 ms' (and where it was searched, for a server)."""
    line = f"{len(answer['passages'])} passages, {answer['mode']}, search {answer['took_ms']:.0f} ms"
    return line + (f" on {where}" if where else "")


def dim(text: str, color: bool) -> str:
    return f"{DIM}{text}{RESET}" if color else text
