"""Follow-up questions in a conversation: what is actually searched.

A person who has just asked "2020年破获了多少电信网络诈骗案件？" and then types
"那2021年呢？" means "2021年破获了多少电信网络诈骗案件？". The follow-up alone
would search for nothing useful, so it is searched together with the question
it follows.

The rule is a small heuristic that can be explained in one sentence each:

- **continuation word**: the question starts with 那/那么/还有/另外/至于/而,
  "and", "what about", "how about", "also", "same for" ...
- **ends in 呢**: a short Chinese question ending in 呢 ("香港呢？") is elliptical.
- **starts with a preposition**: a short English question starting with
  in/for/during/at/on/before/after ("in Hong Kong?") has no subject of its own.
- **pronoun**: a short question pointing back with 他们/她/它/这些/该/上述 or
  they/them/it/this/those/there ("他们怎么说？", "what did they say?").

"Short" means at most :data:`SHORT_ZH` Chinese characters or :data:`SHORT_EN`
English words (continuation words count at any length up to twice that).

When a question is a follow-up, its searched form is the searched form of the
previous question (follow-ups chain) with the follow-up appended; a year in
the follow-up replaces the year of the previous question, so "那2021年呢？"
after a 2020 question searches 2021, not both. Anything else is searched as
typed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SHORT_ZH = 12  # Chinese characters (letters and digits count one each)
SHORT_EN = 7  # words
MAX_QUERY_CHARS = 1000  # the searched query never grows past this

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’.-][A-Za-z0-9]+)*")
_PUNCT_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)

_ZH_CONTINUATION = (
    "那么", "那在", "那如果", "那", "还有", "另外", "以及", "至于", "而", "如果是", "换成", "再问",
)  # fmt: skip
_EN_CONTINUATION = (
    "and what about", "and how about", "what about", "how about", "what of", "and", "also",
    "same for", "same question for", "then", "but",
)  # fmt: skip
_EN_PREPOSITIONS = ("in", "for", "during", "at", "on", "before", "after", "since", "from", "by")

# 他 but not 其他/吉他; 该 but not 应该/活该; 这/那 + a measure word or noun of reference.
_ZH_PRONOUN = re.compile(
    r"他们|她们|它们|(?<![其吉])他|她|它|(?<![应活])该(?=[国市省案事项人公司组织机构部门地区])"
    r"|这些|那些|这个|那个|这次|那次|这件|那件|这项|此事|此案|上述|对方|当事人"
)
_EN_PRONOUN = re.compile(
    r"\b(?:he|she|it|they|them|their|theirs|its|him|her|this|that|these|those|there)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")


@dataclass(frozen=True)
class FollowUp:
    """What :func:`analyze` decided about one question."""

    question: str  # as typed (stripped)
    searched: str  # what is searched
    is_follow_up: bool
    reason: str  # which rule fired, "" when none


def _length(text: str) -> tuple[int, int]:
    """(Chinese characters, English words) in text."""
    return len(_CJK.findall(text)), len(_WORD.findall(text))


def _is_short(text: str, factor: int = 1) -> bool:
    zh, en = _length(text)
    if zh:
        # mixed: letters/digits of a Chinese question count one character each word
        return zh + en <= SHORT_ZH * factor
    return en <= SHORT_EN * factor


def _starts_with_phrase(lower: str, phrases: Sequence[str]) -> str | None:
    for phrase in phrases:
        if lower.startswith(phrase):
            rest = lower[len(phrase) :]
            if not rest or not (rest[0].isascii() and rest[0].isalnum()):
                return phrase
    return None


def _follow_up_reason(question: str) -> str:
    """Which rule makes ``question`` a follow-up, or "" when none does."""
    core = _PUNCT_EDGES.sub("", question)
    if not core:
        return ""
    lower = core.lower()
    has_zh = bool(_CJK.search(core))
    if has_zh:
        for word in _ZH_CONTINUATION:
            if core.startswith(word) and _is_short(core, factor=2):
                return f"starts with {word}"
        if core.endswith("呢") and _is_short(core):
            return "ends with 呢"
        match = _ZH_PRONOUN.search(core)
        if match and _is_short(core):
            return f"pronoun {match.group(0)}"
        return ""
    phrase = _starts_with_phrase(lower, _EN_CONTINUATION)
    if phrase and _is_short(core, factor=2):
        return f"starts with '{phrase}'"
    phrase = _starts_with_phrase(lower, _EN_PREPOSITIONS)
    if phrase and _is_short(core):
        return f"starts with '{phrase}'"
    match = _EN_PRONOUN.search(core)
    if match and _is_short(core):
        return f"pronoun '{match.group(0).lower()}'"
    return ""


def _strip_markers(text: str) -> str:
    """The follow-up without its continuation word, trailing 呢 and edge punctuation."""
    core = _PUNCT_EDGES.sub("", text)
    for word in _ZH_CONTINUATION:
        if core.startswith(word):
            core = core[len(word) :]
            break
    else:
        phrase = _starts_with_phrase(core.lower(), _EN_CONTINUATION)
        if phrase:
            core = core[len(phrase) :]
    core = re.sub(r"呢$", "", _PUNCT_EDGES.sub("", core))
    return _PUNCT_EDGES.sub("", core)


def _combine(base: str, follow_up: str) -> str:
    """The previous searched query with the follow-up folded in."""
    years = _YEAR.findall(follow_up)
    base_years = _YEAR.findall(base)
    if len(years) == 1 and len(set(base_years)) == 1 and years[0] != base_years[0]:
        # "那2021年呢？" / "what about 2021?" after a 2020 question: the same about 2021
        replaced = _YEAR.sub(years[0], base)
        rest = _strip_markers(_YEAR.sub(" ", follow_up))
        rest = re.sub(r"^年|年$", "", rest).strip()
        words = rest.lower().split()
        if words and words[-1] in _EN_PREPOSITIONS:  # "what about in 2021" -> ""
            rest = " ".join(rest.split()[:-1])
        rest = _PUNCT_EDGES.sub("", rest)
        combined = replaced if not rest else f"{replaced} {rest}"
    else:
        rest = _strip_markers(follow_up) or follow_up
        combined = f"{base} {rest}"
    if len(combined) > MAX_QUERY_CHARS:
        return follow_up
    return combined


def analyze(question: str, history: Sequence[str] = ()) -> FollowUp:
    """Decide whether ``question`` follows up on ``history`` (oldest first)."""
    question = question.strip()
    base: str | None = None
    for previous in history:
        previous = (previous or "").strip()
        if not previous:
            continue
        if base is not None and _follow_up_reason(previous):
            base = _combine(base, previous)
        else:
            base = previous
    if base is None:
        return FollowUp(question, question, False, "")
    reason = _follow_up_reason(question)
    if not reason:
        return FollowUp(question, question, False, "")
    return FollowUp(question, _combine(base, question), True, reason)


def contextualize(question: str, history: Sequence[str] = ()) -> str:
    """The query actually searched for ``question`` asked after ``history``."""
    return analyze(question, history).searched
