"""Hybrid fusion of dense (cosine) and lexical (BM25) candidates.

The fused score of a candidate is

    score = cosine + LEXICAL_WEIGHT * bm25 / lexical_max

- ``cosine`` is the dense similarity (E5 cosines are compressed: the right
  passage typically beats the next by a few hundredths).
- ``bm25 / lexical_max`` is the share of the query's lexical evidence the
  passage carries, in [0, 1): ``lexical_max`` is the highest BM25 score any
  passage could reach for this query (:meth:`qa.lexical.LexicalIndex.max_score`,
  the sum of the query tokens' idf, tokens the collection has never seen
  included). When most of the question cannot match at all (an English
  question over Chinese text) every passage's share is tiny, so the lexical
  side barely moves the dense order; when a Chinese question's rare words occur
  in one passage, its share is large and outweighs small cosine gaps.
- Only real lexical matches vote: a passage absent from the lexical list adds 0.
  A passage absent from the dense list gets the lowest listed cosine (its true
  cosine is no higher).

One parameter, ``LEXICAL_WEIGHT``, chosen on half of XQuAD (zh->zh and en->zh
questions of articles 0-23) and checked on the other half and on hand-written
paraphrased questions over real news (``eval/tune_fusion.py`` reproduces it).
Reciprocal-rank fusion (:func:`rrf`) and min-max weighted score fusion
(:func:`min_max`) are kept as the baselines the evaluation compares against.

Measured (mE5-small, 100 candidates per side, Recall@1 on the half of XQuAD
the weight was *not* chosen on): zh->zh 0.928, en->zh 0.668, news paraphrase
0.929; the best standard alternative, min-max weighted score fusion with its
alpha tuned the same way, 0.921 / 0.663 / 0.913 (``eval/README.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEXICAL_WEIGHT = 0.15
"""Weight of the lexical evidence share, in cosine units."""

TRANSLATED_WEIGHT = 0.05
"""Weight of the translated question's lexical evidence share (:mod:`qa.crosslingual`), in cosine units.
The Chinese words also make half of the question's dense vector (:func:`qa.crosslingual.mixed_query`),
so their BM25 needs less weight than the question's own words. Chosen together with that mix on the tune
halves of XQuAD en->zh and of the English news questions at 500, 3,000 and 20,000 articles
(``eval/README.md``)."""

NOMINAL_TOKEN_IDF = 6.0
"""Stand-in idf per query token when the caller does not pass ``lexical_max``."""

RRF_K = 60

LANGUAGE_MATCH_OFFSET = 0.02
"""Cosine taken off a passage written in the question's own script (:func:`language_adjusted`)."""


@dataclass(frozen=True)
class LexicalLeg:
    """Another lexical candidate list fused beside the question's own words: the
    question's words translated (:mod:`qa.crosslingual`). Its rows add
    ``weight * score / maximum``; they are ranked, never reported as the hit's BM25."""

    rows: np.ndarray
    scores: np.ndarray
    maximum: float  # the leg's own score bound
    weight: float


@dataclass(frozen=True)
class Fused:
    """One candidate after fusion: its row, fused score, and each side's raw score."""

    row: int
    score: float
    dense: float | None  # cosine, when the dense side listed it
    lexical: float | None  # BM25, when the lexical side listed it (a real match)


def _arrays(rows, scores) -> tuple[np.ndarray, np.ndarray]:
    if rows is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if rows.shape != scores.shape:
        raise ValueError(f"{len(rows)} rows but {len(scores)} scores")
    return rows, scores


def fuse(
    dense_rows: Sequence[int] | np.ndarray | None,
    dense_scores: Sequence[float] | np.ndarray | None,
    lex_rows: Sequence[int] | np.ndarray | None,
    lex_scores: Sequence[float] | np.ndarray | None,
    *,
    n_query_tokens: int,
    lexical_max: float | None = None,
    weight: float = LEXICAL_WEIGHT,
    legs: Sequence[LexicalLeg] = (),
) -> list[Fused]:
    """All candidates of both lists, fused, best first (ties broken by row).

    ``dense_*``: the top cosine candidates, best first. ``lex_*``: the top BM25
    candidates, real matches only (score > 0), best first. ``n_query_tokens``:
    the question's token count (``len(tokenize(question))``). ``lexical_max``:
    the query's BM25 upper bound (``LexicalIndex.max_score(tokens)``); pass it
    whenever you can, otherwise ``n_query_tokens * NOMINAL_TOKEN_IDF`` stands in.
    ``legs``: more lexical lists (the translated question), each adding its
    own share of evidence times its weight. With no lexical candidates the
    order is exactly the dense order.
    """
    d_rows, d_scores = _arrays(dense_rows, dense_scores)
    l_rows, l_scores = _arrays(lex_rows, lex_scores)
    real = l_scores > 0
    l_rows, l_scores = l_rows[real], l_scores[real]

    if lexical_max is None or not math.isfinite(lexical_max) or lexical_max <= 0:
        lexical_max = max(n_query_tokens, 1) * NOMINAL_TOKEN_IDF
    # A bound below the best listed score would mean a caller mix-up; never divide into > 1.
    if len(l_scores):
        lexical_max = max(float(lexical_max), float(l_scores.max()))

    dense: dict[int, float] = {}
    for r, s in zip(d_rows.tolist(), d_scores.tolist()):
        dense.setdefault(r, s)
    lexical: dict[int, float] = {}
    for r, s in zip(l_rows.tolist(), l_scores.tolist()):
        lexical.setdefault(r, s)
    floor = min(dense.values()) if dense else 0.0
    extra: dict[int, float] = {}
    for leg in legs:
        rows, scores = _arrays(leg.rows, leg.scores)
        real = scores > 0
        if not real.any() or not math.isfinite(leg.maximum) or leg.maximum <= 0:
            continue
        bound = max(float(leg.maximum), float(scores[real].max()))
        for r, s in zip(rows[real].tolist(), scores[real].tolist()):
            extra[r] = extra.get(r, 0.0) + leg.weight * s / bound

    fused = []
    for row in dense.keys() | lexical.keys() | extra.keys():
        d = dense.get(row)
        lx = lexical.get(row)
        score = (floor if d is None else d) + (0.0 if lx is None else weight * lx / lexical_max) + extra.get(row, 0.0)
        fused.append(Fused(row=row, score=float(score), dense=d, lexical=lx))
    fused.sort(key=lambda f: (-f.score, f.row))
    return fused


def language_adjusted(
    cosines: Sequence[float] | np.ndarray, passage_families: Sequence[str], query_family: str,
    offset: float = LANGUAGE_MATCH_OFFSET,
) -> np.ndarray:
    """Cosines with ``offset`` taken off each passage in the question's own script family.

    A multilingual model scores a passage written in the question's language a
    little higher than one in another language saying the same thing. In an
    archive that is mostly Chinese, the few English passages (an English
    interview, a press release quoted whole) then come first for every English
    question whatever they are about: the error analysis of the scale
    evaluation (``eval/README.md``) found them at rank 1 for one English
    question in seven. Taking the same small amount off every same-script
    passage removes that pull and changes nothing where all passages share one
    script. Families are :func:`qa.lang.script_family`'s; a "mixed" passage
    counts as written in every script, and a question that is itself mixed or
    has no letters is left alone. The offset, 0.02, was chosen on the tuning
    half of the news questions over 500 and 3,000 articles (0.02 to 0.04
    score alike there) and checked on the reporting half.
    """
    cosines = np.asarray(cosines, dtype=np.float64)
    if query_family not in ("zh", "en") or not len(cosines):
        return cosines
    same = np.array([f == query_family or f == "mixed" for f in passage_families], dtype=bool)
    return cosines - offset * same


def rrf(
    dense_rows: Sequence[int] | np.ndarray | None,
    lex_rows: Sequence[int] | np.ndarray | None,
    k: int = RRF_K,
    lexical_weight: float = 1.0,
) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion, (row, score) best first: ``1/(k + dense rank) +
    lexical_weight/(k + lexical rank)``. A baseline for the evaluation, not used
    in search; pass only real lexical matches (score > 0) as ``lex_rows``."""
    scores: dict[int, float] = {}
    for rows, w in ((dense_rows, 1.0), (lex_rows, lexical_weight)):
        if rows is None:
            continue
        for rank, row in enumerate(np.asarray(rows, dtype=np.int64).tolist(), start=1):
            scores[row] = scores.get(row, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def min_max(
    dense_rows, dense_scores, lex_rows, lex_scores, *, alpha: float = 0.5,
) -> list[tuple[int, float]]:
    """Min-max normalised weighted score fusion (Weaviate's relativeScoreFusion,
    Haystack's merge): each side's scores rescaled to [0, 1] over its own
    candidates, then ``alpha * dense + (1 - alpha) * lexical`` (a side that did
    not list a row adds 0). A baseline for the evaluation, not used in search."""
    def scaled(rows, scores) -> dict[int, float]:
        rows, scores = _arrays(rows, scores)
        if not len(rows):
            return {}
        lo, hi = float(scores.min()), float(scores.max())
        span = hi - lo
        return {int(r): (1.0 if span == 0 else (float(s) - lo) / span) for r, s in zip(rows, scores)}

    dense, lexical = scaled(dense_rows, dense_scores), scaled(lex_rows, lex_scores)
    fused = {r: alpha * dense.get(r, 0.0) + (1 - alpha) * lexical.get(r, 0.0) for r in dense.keys() | lexical.keys()}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
