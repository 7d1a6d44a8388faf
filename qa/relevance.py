"""Calibrated relevance of a passage, and whether the archive answers a question at all.

Dense search always returns the nearest passages, so a question the archive
never covered still gets five confident-looking ones. Every hit therefore
gets a **relevance**: the estimated probability that the passage comes from
an article that answers the question, and every search an **answerable**
verdict: whether its best passage's relevance reaches the threshold.

Relevance is a logistic model of what the search already knows about a
passage: its cosine, how far that cosine stands above the question's other
candidates (a z-score over the dense candidates: E5 cosines are compressed,
so the absolute value says little), and the share of the question's BM25
evidence it carries. The coefficients and the threshold are fitted per
embedding model and mode on labelled questions, answerable ones and
unanswerable ones built honestly (the same questions with their article
removed, questions about other collections, nonsense), in Chinese,
Traditional Chinese and English; fitted on one half, reported on the other
(``eval/calibrate.py``, numbers in ``eval/README.md``). The threshold keeps
at most 5% of answerable questions wrongly flagged on the fitting half.

A model without a calibration (any model but the default one, until someone
fits it) gives ``relevance = None`` and ``answerable = None``: unknown, not
guessed.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CALIBRATION_FILE = Path(__file__).with_name("relevance.json")
FEATURES = ("cosine", "cosine_z", "cosine_gap", "pool_std", "lexical_share", "latin")


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic model for one embedding model and search mode."""

    model: str
    mode: str  # "hybrid" | "dense" | "lexical"
    coefficients: tuple[float, ...]  # one per used feature, in FEATURES order
    features: tuple[str, ...]
    intercept: float
    threshold: float  # answerable when the best hit's relevance reaches this

    def relevance(self, values: dict[str, float]) -> float:
        z = self.intercept + sum(c * values[f] for c, f in zip(self.coefficients, self.features))
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0


@functools.lru_cache(maxsize=4)
def calibrations(path: Path = CALIBRATION_FILE) -> dict[tuple[str, str], Calibration]:
    """The fitted models by (embedding model, mode); empty when the file is absent."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for entry in data.get("calibrations", []):
        cal = Calibration(
            model=entry["model"], mode=entry["mode"], coefficients=tuple(entry["coefficients"]),
            features=tuple(entry["features"]), intercept=float(entry["intercept"]),
            threshold=float(entry["threshold"]),
        )
        out[(cal.model, cal.mode)] = cal
    return out


def find(model: str, mode: str) -> Calibration | None:
    """The calibration fitted for this model and mode; a path whose scores stand for another
    model's (onnx-int8-mixed for the default model's fp32, :func:`qa.onnx_embed.fp32_equivalent`)
    takes that one; None when none was fitted."""
    from qa.onnx_embed import fp32_equivalent

    return calibrations().get((fp32_equivalent(model), mode))


@dataclass(frozen=True)
class Pool:
    """What a question's candidates say about one another (computed once per search)."""

    mean: float  # of the dense candidates' cosines
    std: float
    best: float  # the best cosine
    floor: float  # the lowest listed cosine (what fusion gives a passage the dense side did not list)
    lexical_max: float  # the best BM25 score the question could reach
    latin: float  # share of the question's letters that are Latin (cross-lingual cosines run lower)

    @classmethod
    def of(cls, dense_scores: np.ndarray | None, lexical_max: float, question: str = "") -> Pool:
        letters = [c for c in question if c.isalpha()]
        latin = sum(c.isascii() for c in letters) / len(letters) if letters else 0.0
        if dense_scores is None or len(dense_scores) == 0:
            return cls(0.0, 1.0, 0.0, 0.0, lexical_max, latin)
        scores = np.asarray(dense_scores, dtype=np.float64)
        return cls(float(scores.mean()), float(scores.std()), float(scores.max()), float(scores.min()),
                   lexical_max, latin)  # fmt: skip


def features(pool: Pool, dense: float | None, lexical: float | None) -> dict[str, float]:
    """A passage's features, from its cosine and BM25 score (None: that side did not list it)."""
    cosine = pool.floor if dense is None else float(dense)
    return {
        "cosine": cosine,
        "cosine_z": (cosine - pool.mean) / max(pool.std, 1e-6),
        "cosine_gap": cosine - pool.best,
        "pool_std": pool.std,
        "lexical_share": (float(lexical) / pool.lexical_max) if lexical and pool.lexical_max > 0 else 0.0,
        "latin": pool.latin,
    }
