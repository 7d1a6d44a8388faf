"""English questions over Chinese articles: CC-CEDICT lookups and the translated lexical leg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.crosslingual import Dictionary, Translator, weighted_tokens
from qa.embed import HashEmbedder
from qa.fusion import LexicalLeg, fuse
from qa.index import Index
from qa.records import Article

# A few lines in CC-CEDICT's own format: traditional simplified [pinyin] /definitions/
LINES = """\
# CC-CEDICT sample
特朗普 特朗普 [Te4 lang3 pu3] /Donald Trump (1946-), US president 2017-2021/
將牌 将牌 [jiang4 pai2] /trump (card games)/
習近平 习近平 [Xi2 Jin4 ping2] /Xi Jinping (1953-), PRC president/
處分 处分 [chu3 fen4] /to discipline sb/to punish/disciplinary action/CL:個|个[ge4]/
紀律 纪律 [ji4 lu:4] /discipline/
副總統 副总统 [fu4 zong3 tong3] /vice president/
副 副 [fu4] /secondary/auxiliary/deputy/vice-/
總統 总统 [zong3 tong3] /president (of a country)/
美國 美国 [Mei3 guo2] /United States/USA/US/
我們 我们 [wo3 men5] /we/us/
強 强 [qiang2] /strong/powerful/
槍術 枪术 [qiang1 shu4] /qiang (spear-based martial arts)/
鄭 郑 [Zheng4] /surname Zheng/
正 正 [zheng4] /straight/upright/
響水 响水 [Xiang3 shui3] /Xiangshui county in Yancheng, Jiangsu/
""".splitlines()

FREQUENCY = {"纪律": 50_000, "处分": 9_000, "正": 90_000}


@pytest.fixture(scope="module")
def sample() -> Dictionary:
    return Dictionary.from_lines(LINES, FREQUENCY)


def pairs(dictionary: Dictionary, question: str, per_word: int = 3) -> list[tuple[str, str]]:
    return [(t.english, t.chinese) for t in dictionary.translate(question, per_word=per_word)]


def test_longest_phrase_first_and_names_before_common_words(sample):
    got = pairs(sample, "What did the Vice President say about Trump?")
    assert ("vice president", "副总统") in got
    assert not any(english == "vice" for english, _ in got)  # taken by the phrase
    assert ("trump", "特朗普") in got and ("trump", "将牌") not in got  # capitalised: the name
    assert pairs(sample, "the trump card")[:1] == [("trump", "将牌")]  # lowercase: the word


def test_names_by_pinyin_inflections_and_acronyms(sample):
    assert ("xi jinping", "习近平") in pairs(sample, "Why does Xi Jinping fear the young?")
    assert ("xiangshui", "响水") in pairs(sample, "the Xiangshui explosion")
    # "disciplined" is found as "discipline": its entries ranked by sense order, then frequency
    assert pairs(sample, "Who was disciplined?") == [("disciplined", "纪律"), ("disciplined", "处分")]
    assert pairs(sample, "Who was disciplined?", per_word=1) == [("disciplined", "纪律")]
    assert ("us", "美国") in pairs(sample, "the US consulate")  # "US" is not the pronoun "us"
    assert pairs(sample, "tell us") == []  # the pronoun is skipped


def test_an_unknown_romanised_name_is_not_read_as_english(sample):
    # "Qiang" is a pinyin syllable; CEDICT's "qiang (spear-based martial arts)" is not this person
    assert pairs(sample, "Why was Zheng Qiang punished?") == [("punished", "处分")]
    assert pairs(sample, "the qiang") == [("qiang", "枪术")]  # lowercase: the English word


def test_weighted_tokens_split_a_word_between_its_translations(sample):
    weights = weighted_tokens(sample.translate("Who was disciplined?", per_word=2), word_weight=1.0)
    assert weights == {"纪律": 0.5, "处分": 0.5}
    assert weighted_tokens(sample.translate("Who was disciplined?", per_word=1), word_weight=1.0) == {"纪律": 1.0}
    # a common word counts word_weight; a name counts whole
    weights = weighted_tokens(sample.translate("Was Trump disciplined?", per_word=1), word_weight=0.5)
    assert weights == {"特朗普": 1.0, "纪律": 0.5}


def test_question_phrases_are_skipped_and_single_characters_come_last():
    lines = [*LINES, "幾個 几个 [ji3 ge4] /how many/a few/", "時 时 [shi2] /season/time/",
             "季節 季节 [ji4 jie2] /season/"]  # fmt: skip
    dictionary = Dictionary.from_lines(lines, {"时": 10**6, "季节": 10})
    assert pairs(dictionary, "How many seasons?", per_word=2) == [("seasons", "季节"), ("seasons", "时")]


def test_the_real_dictionary_knows_the_news_names():
    translator = Translator()
    found = {t.chinese for t in translator.load().translate(
        "Did US Vice President Mike Pence, Biden or Kim Jong-un visit Xiangshui?", per_word=3)}
    assert {"美国", "彭斯", "拜登", "金正恩", "响水"} <= found
    assert translator.tokens("拜登说了什么？") == {}  # only English questions are translated
    assert Translator(enabled=False).tokens("What did Biden say?") == {}
    assert "拜登" in translator.tokens("What did Biden say?")


def test_a_leg_adds_its_share_and_no_leg_changes_nothing():
    rows, cos = [1, 2, 3], [0.80, 0.79, 0.70]
    plain = fuse(rows, cos, [], [], n_query_tokens=3, lexical_max=10.0)
    assert fuse(rows, cos, [], [], n_query_tokens=3, lexical_max=10.0, legs=()) == plain
    empty = LexicalLeg(np.zeros(0, dtype=np.int64), np.zeros(0), 5.0, 0.3)
    assert fuse(rows, cos, [], [], n_query_tokens=3, lexical_max=10.0, legs=[empty]) == plain
    leg = LexicalLeg(np.array([3, 9]), np.array([4.0, 2.0]), 8.0, 0.3)
    fused = fuse(rows, cos, [], [], n_query_tokens=3, lexical_max=10.0, legs=[leg])
    by_row = {f.row: f for f in fused}
    assert fused[0].row == 3 and by_row[3].score == pytest.approx(0.70 + 0.3 * 4.0 / 8.0)
    assert by_row[9].score == pytest.approx(0.70 + 0.3 * 2.0 / 8.0)  # a leg-only row starts at the dense floor
    assert by_row[3].lexical is None  # the translated leg is never reported as the passage's BM25


def test_weighted_bm25_in_memory_is_the_index_readers(index_root):
    """The in-memory BM25 the evaluation scripts use (qa.lexical) scores a translated, weighted
    question as the index's reader does: same scores, same bound (unseen words left out)."""
    from qa.lexical import LexicalIndex, tokenize

    weights = {"拜登": 1.0, "新疆": 0.5, "政策": 0.5, "从未见过的词": 1.0}
    chunks = [a.paragraphs[0] for a in ARTICLES]
    lexical = LexicalIndex.build([tokenize(f"{a.title}\n{a.paragraphs[0]}") for a in ARTICLES])
    rows, scores = lexical.search(list(weights), 10, weights=weights)
    with Index.open(index_root, FlatEmbedder()) as index:
        keys_rows, found, keys, bound = index._lexical(list(weights), 10, index._version.live, weights)
        texts = index.catalog.chunk_rows(keys_rows.tolist())
        by_text = {texts[r].text: float(s) for r, s in zip(keys_rows.tolist(), found.tolist())}
    assert len(rows) == 1 and chunks[int(rows[0])] in by_text
    assert float(scores[0]) == pytest.approx(by_text[chunks[int(rows[0])]], rel=1e-5)
    assert lexical.max_score(list(weights), weights=weights) == pytest.approx(bound, rel=1e-6)
    assert lexical.known(weights) == set(weights) - {"从未见过的词"}
    assert lexical.max_score(list(weights)) > lexical.max_score(list(weights), weights=weights)  # unweighted: all count
    plain = lexical.scores(["拜登", "拜登"])  # unweighted: a repeated word counts again
    assert plain.max() == pytest.approx(2 * lexical.scores(["拜登"]).max(), rel=1e-6)


def _article(i: int, title: str, text: str) -> Article:
    return Article(id=f"a{i}", title=title, source="测试", url=None, published=None, tags=(), language="zh-Hans",
                  path=f"a{i}.md", paragraphs=(text,))  # fmt: skip


ARTICLES = [
    _article(0, "拜登谈新疆", "拜登竞选团队称北京在新疆的政策是种族灭绝，并呼吁制裁。"),
    _article(1, "天气预报", "明天上海多云转晴，气温二十度，适合出行。"),
    _article(2, "股市", "今日沪深股市小幅上涨，成交量放大，银行股领涨。"),
    _article(3, "足球", "国家队在主场以二比一击败对手，晋级下一轮比赛。"),
]


class FlatEmbedder(HashEmbedder):
    """Every text the same vector: every cosine 1, so only lexical evidence orders the passages."""

    def __init__(self):
        super().__init__(16, model="flat")

    def _embed(self, texts):
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        out[:, 0] = 1.0
        return out


@pytest.fixture(scope="module")
def index_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("xl") / "index"
    Index.update(root, ARTICLES, FlatEmbedder(), progress=False)
    return root


def test_an_english_question_finds_the_chinese_article_through_the_dictionary(index_root):
    question = "Did Biden's campaign call the Xinjiang policy a genocide?"
    with Index.open(index_root, FlatEmbedder()) as index:
        hits = index.search(question, k=4, mode="hybrid").hits
        assert hits[0].citation.article_id == "a0"
        assert hits[0].lexical_score is None  # no English word matches: no BM25 to report
        assert "**拜登**" in hits[0].highlighted and "**新疆**" in hits[0].highlighted  # the words found, marked
        assert index.search(question, k=4, mode="lexical").hits == ()  # lexical mode keeps to the words asked
        again = index.reopen(FlatEmbedder())
        assert again.translator is index.translator  # shared, loaded once
        again.close()
        on = {h.citation.article_id: h.score for h in hits}
    with Index.open(index_root, FlatEmbedder(), translator=Translator(enabled=False)) as off:
        # every cosine is the same: without the dictionary nothing sets a0 apart
        plain = {h.citation.article_id: h.score for h in off.search(question, k=4, mode="hybrid").hits}
    assert len(set(plain.values())) == 1
    assert on["a0"] > plain["a0"] + 0.05  # a third of the weight at least: the translated words are in a0
    assert all(on[a] == pytest.approx(plain[a]) for a in ("a1", "a2", "a3"))


def test_chinese_questions_are_untouched(index_root):
    on = Index.open(index_root, FlatEmbedder())
    off = Index.open(index_root, FlatEmbedder(), translator=Translator(enabled=False))
    with on, off:
        for question in ("拜登怎么说新疆？", "明天上海天气如何", "Biden 新疆 政策"):
            a, b = on.search(question, k=4, mode="hybrid"), off.search(question, k=4, mode="hybrid")
            assert [(h.chunk_id, h.score) for h in a.hits] == [(h.chunk_id, h.score) for h in b.hits]


def test_romanised_names_are_spelled_and_kept_only_where_the_index_has_them(sample, tmp_path):
    assert sample.syllables("zhengqiang") == ["zheng", "qiang"] and sample.syllables("york") is None
    names = dict(sample.name_candidates("Why was Zheng Qiang's lecture cancelled?"))
    assert names == {"zheng qiang": ["郑强"]}  # the sample knows one surname zheng, one qiang
    assert sample.name_candidates("New York") == []  # "new" is no surname
    path = tmp_path / "cedict.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    translator = Translator(path)
    question = "Why was Zheng Qiang punished?"
    assert translator.tokens(question) == {"处分": 0.5}  # without the index, no guessing
    assert translator.tokens(question, known=lambda spellings: {"郑强"}) == {"处分": 0.5, "郑强": 1.0}
    assert translator.tokens(question, known=lambda spellings: set()) == {"处分": 0.5}
    # more spellings in the index than NAME_SPELLINGS: ambiguous, left out
    wide = Dictionary.from_lines([*LINES, *(f"{c} {c} [qiang2] /x{i}/" for i, c in enumerate("墙抢枪羌"))])
    assert len(dict(wide.name_candidates(question))["zheng qiang"]) == 5
    assert weighted_tokens([]) == {}
