"""Calibrated relevance and the answerable verdict (qa.relevance, eval/calibrate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import relevance
from qa.default_model import DEFAULT_MODEL_ID
from qa.embed import HashEmbedder
from qa.index import Index
from qa.ingest import iter_articles
from qa.records import ReadReport

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "articles"


def test_the_default_model_is_calibrated_for_every_mode():
    for mode in ("hybrid", "dense", "lexical"):
        cal = relevance.find(DEFAULT_MODEL_ID, mode)
        assert cal is not None and 0 < cal.threshold < 1 and set(cal.features) <= set(relevance.FEATURES)
    assert relevance.find("some-other-model", "hybrid") is None


def test_relevance_rises_with_the_evidence():
    cal = relevance.find(DEFAULT_MODEL_ID, "hybrid")
    pool = relevance.Pool.of([0.80, 0.82, 0.85, 0.90], lexical_max=10.0, question="港口岸电改造")
    weak = cal.relevance(relevance.features(pool, 0.82, None))
    stronger_cosine = cal.relevance(relevance.features(pool, 0.90, None))
    with_words = cal.relevance(relevance.features(pool, 0.90, 6.0))
    assert 0 <= weak < stronger_cosine < with_words <= 1


def test_an_uncalibrated_model_says_nothing_rather_than_guess(tmp_path):
    Index.update(tmp_path / "i", iter_articles([EXAMPLES], ReadReport()), HashEmbedder(), progress=False)
    with Index.open(tmp_path / "i", HashEmbedder()) as index:
        result = index.search("2020年破获了多少电信网络诈骗案件？", k=3)
    assert result.answerable is None and all(h.relevance is None for h in result.hits)


@pytest.mark.slow
def test_the_default_model_tells_answered_from_unanswered(tmp_path):
    from qa.loader import load_embedder

    Index.update(tmp_path / "i", iter_articles([EXAMPLES], ReadReport()), load_embedder(None), progress=False)
    with Index.open(tmp_path / "i") as index:
        answered = index.search("2020年破获了多少电信网络诈骗案件？", k=3)
        assert answered.answerable is True and "32.2万起" in answered.hits[0].text
        assert answered.hits[0].relevance > 0.5
        traditional = index.search("高雄輕軌環狀線何時全線通車？", k=3)
        assert traditional.answerable is True
        for question in ("zxqv blorp", "2022年世界杯冠军是哪个国家？", "美国大选拜登得票数"):
            result = index.search(question, k=3)
            assert result.answerable is False and result.hits, question  # the nearest passages are still shown
            assert all(h.relevance < 0.2 for h in result.hits), question


def test_the_int8_path_that_keeps_fp32_scores_uses_fp32_calibration_and_no_other_does():
    from qa.default_model import DEFAULT_MODEL_ID
    from qa.relevance import find

    fp32 = find(DEFAULT_MODEL_ID, "hybrid")
    assert fp32 is not None
    assert find(DEFAULT_MODEL_ID + "+onnx-int8-mixed", "hybrid") is fp32
    assert find(DEFAULT_MODEL_ID + "+onnx-int8", "hybrid") is None  # its scores differ: no verdict, not a guess
    assert find("some/other-model", "hybrid") is None
