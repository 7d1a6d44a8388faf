"""Tokenization (jieba + OpenCC) and the in-memory BM25 LexicalIndex."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from qa.errors import IndexCorrupt
from qa.lexical import LexicalIndex, tokenize


def test_traditional_and_simplified_give_the_same_tokens():
    assert tokenize("台灣總統選舉") == tokenize("台湾总统选举")
    assert tokenize("台湾总统选举") == ["台湾", "总统", "选举"]
    assert tokenize("電信網絡詐騙案件") == tokenize("电信网络诈骗案件")


def test_stopwords_punctuation_and_question_words_are_dropped():
    tokens = tokenize("2020年破获了多少电信网络诈骗案件？")
    assert tokens == ["2020", "年", "破获", "电信", "网络", "诈骗", "案件"]
    assert tokenize("什么是的了？！。，、“”") == []
    assert tokenize("   \n\t ") == []
    assert tokenize("") == []


def test_english_is_lowercased_kept_whole_and_lightly_stemmed():
    tokens = tokenize("What share of Telecom FRAUD cases is committed from abroad?")
    assert tokens == ["share", "telecom", "fraud", "case", "committed", "abroad"]
    assert tokenize("policies") == ["policy"]
    assert tokenize("Ｃｈｉｎａ　２０２０") == ["china", "2020"]  # full-width via NFKC
    assert "covid" in tokenize("COVID-19疫苗") and "19" in tokenize("COVID-19疫苗")


def test_search_mode_yields_sub_words():
    tokens = tokenize("中华人民共和国")
    assert "中华人民共和国" in tokens and "共和国" in tokens


DOCS = [
    "台湾总统选举结果今天公布",
    "美国总统选举进入最后阶段",
    "2020年全国破获电信网络诈骗案件32.2万起",
    "。。。",  # no tokens at all
    "Telecom fraud from abroad accounts for 80% of cases",
]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build([tokenize(d) for d in DOCS])


def test_search_returns_only_real_matches_best_first(index):
    rows, scores = index.search(tokenize("台灣總統"), k=10)
    assert rows.dtype == np.int64 and scores.dtype == np.float32
    assert list(rows) == [0, 1]  # both mention 总统, only row 0 台湾
    assert scores[0] > scores[1] > 0
    assert len(index) == len(DOCS)


def test_k_limits_and_allowed_mask_filters(index):
    rows, _ = index.search(tokenize("台灣總統"), k=1)
    assert list(rows) == [0]
    allowed = np.array([False, True, True, True, True])
    rows, scores = index.search(tokenize("台灣總統"), k=10, allowed=allowed)
    assert list(rows) == [1] and scores[0] > 0
    rows, _ = index.search(tokenize("台灣總統"), k=10, allowed=np.zeros(len(DOCS), dtype=bool))
    assert len(rows) == 0
    with pytest.raises(ValueError):
        index.search(["总统"], k=3, allowed=np.ones(2, dtype=bool))


def test_unknown_and_empty_queries_return_empty_arrays(index):
    for query in ([], ["从未出现的词"], [""], tokenize("？？")):
        rows, scores = index.search(query, k=5)
        assert rows.shape == (0,) and scores.shape == (0,)
        assert rows.dtype == np.int64 and scores.dtype == np.float32
    rows, _ = index.search(["总统", "从未出现的词"], k=5)  # unknown tokens are ignored
    assert sorted(rows) == [0, 1]
    assert len(index.search(["总统"], k=0)[0]) == 0


def test_english_question_matches_english_document(index):
    rows, _ = index.search(tokenize("What share of telecom fraud is committed from abroad?"), k=3)
    assert rows[0] == 4


def test_save_load_round_trip_uses_plain_files(index, tmp_path: Path):
    index.save(tmp_path / "lex")
    for npy in (tmp_path / "lex").glob("*.npy"):
        np.load(npy, allow_pickle=False)  # raises if anything needed pickle
    for js in (tmp_path / "lex").glob("*.json"):
        json.loads(js.read_text(encoding="utf-8"))
    loaded = LexicalIndex.load(tmp_path / "lex")
    assert len(loaded) == len(index)
    for question in ["台灣總統", "电信诈骗", "telecom fraud", "选举 结果 2020"]:
        a, b = index.search(tokenize(question), 5), loaded.search(tokenize(question), 5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1])


def test_load_refuses_missing_or_broken_files(index, tmp_path: Path):
    with pytest.raises(IndexCorrupt):
        LexicalIndex.load(tmp_path / "nothing-here")
    index.save(tmp_path / "lex")
    (tmp_path / "lex" / "vocab.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexCorrupt):
        LexicalIndex.load(tmp_path / "lex")


def test_empty_index(tmp_path: Path):
    empty = LexicalIndex.build([])
    assert len(empty) == 0
    assert len(empty.search(["总统"], 5)[0]) == 0
    empty.save(tmp_path / "e")
    assert len(LexicalIndex.load(tmp_path / "e")) == 0


def test_ties_break_by_row():
    index = LexicalIndex.build([["a1", "b1"], ["c1"], ["a1", "b1"], ["a1", "b1"]])
    rows, scores = index.search(["a1"], k=2)
    assert list(rows) == [0, 2] and scores[0] == scores[1]


def _reference_bm25(docs, query, k1=1.5, b=0.75):
    """Lucene BM25, written from the formula (Kamphuis et al. 2020), independently of qa.index.bm25."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = []
    for doc in docs:
        score = 0.0
        for term in query:
            df = sum(1 for d in docs if term in d)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = doc.count(term)
            score += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(score)
    return np.array(out)


def test_scores_match_an_independent_bm25_formula():
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(40)]
    docs = [[rng.choice(vocab[: rng.randint(5, 40)]) for _ in range(rng.randint(1, 30))] for _ in range(60)]
    index = LexicalIndex.build(docs)
    for _ in range(25):
        query = [rng.choice(vocab + ["unseen"]) for _ in range(rng.randint(1, 5))]
        expected = _reference_bm25(docs, query)
        np.testing.assert_allclose(index.scores(query), expected, rtol=1e-4, atol=1e-5)
        rows, scores = index.search(query, k=len(docs))
        assert set(rows) == set(np.flatnonzero(expected > 0))
        np.testing.assert_allclose(scores, expected[rows], rtol=1e-4, atol=1e-5)
        assert all(scores[i] >= scores[i + 1] for i in range(len(scores) - 1))
        assert index.max_score(query) >= expected.max() - 1e-6
