"""English questions over Chinese articles: CC-CEDICT lookups and the translated lexical leg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.crosslingual import Dictionary, Glossary, Translator, mixed_query, weighted_tokens, words_text
from qa.embed import HashEmbedder
from qa.fusion import TRANSLATED_WEIGHT, LexicalLeg, fuse
from qa.index import Index, reader
from qa.records import Article, SearchFilters

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
    # a third of the leg's weight at least: the translated words are in a0
    assert on["a0"] > plain["a0"] + TRANSLATED_WEIGHT / 3
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
    names = {n.english: n.spellings for n in sample.name_candidates("Why was Zheng Qiang's lecture cancelled?")}
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
    assert len(wide.name_candidates(question)[0].spellings) == 5
    assert weighted_tokens([]) == {}


def test_the_glossary_goes_first_and_keeps_to_its_case():
    glossary = Glossary.from_lines(["# peoples", "Taiwanese\t台湾", "WHO\t世卫", "Fed\t美联储", "vaccine\t疫苗",
                                    "Covid-19\t新冠", ""])  # fmt: skip
    lines = [*LINES, "高山族 高山族 [Gao1 shan1 zu2] /Taiwanese aborigines (PRC)/", "喂 喂 [wei4] /to feed/fed/"]
    with_glossary = Dictionary.from_lines(lines, FREQUENCY, glossary)
    # CC-CEDICT alone reads "Taiwanese" as the start of "Taiwanese aborigines"
    assert Dictionary.from_lines(lines, FREQUENCY).lookup("Taiwanese", name=True) == ["高山族"]
    got = with_glossary.translate("Did the WHO praise Taiwanese Covid-19 vaccine work?")
    assert [(t.english, t.chinese, t.name) for t in got] == [
        ("who", "世卫", True), ("taiwanese", "台湾", True), ("covid 19", "新冠", True), ("vaccine", "疫苗", False)]
    assert pairs(with_glossary, "Who was fed?") == [("fed", "喂")]  # neither the question word nor the Fed
    assert pairs(with_glossary, "What did the Fed do?") == [("fed", "美联储")]
    with pytest.raises(ValueError, match="line 2"):
        Glossary.from_lines(["# header", "Taiwanese 台湾"])  # no tab


def test_the_shipped_glossary_reads_and_puts_peoples_before_the_dictionary():
    dictionary = Translator().load()
    assert dictionary.lookup("Taiwanese", name=True)[:1] == ["高山族"]  # CC-CEDICT's first reading
    found = {t.english: t.chinese for t in dictionary.translate("Why did the KMT and Taiwanese Covid-19 experts fear?")}
    assert found["kmt"] == "国民党" and found["taiwanese"] == "台湾" and found["covid 19"] == "新冠"


def test_names_are_read_as_people_places_and_surnames():
    lines = [
        *LINES,
        "北京大學 北京大学 [Bei3 jing1 Da4 xue2] /Peking University/",
        "民族大學 民族大学 [Min2 zu2 Da4 xue2] /University for Nationalities/",
        "大學 大学 [da4 xue2] /university/",
        "成都 成都 [Cheng2 du1] /Chengdu subprovincial city/",
        "力 力 [Li4] /surname Li/",
        "李 李 [Li3] /surname Li/plum/",
        "里 里 [Li3] /Li (surname)/",
        "劉 刘 [Liu2] /surname Liu/",
        "元 元 [yuan2] /first/",
        "春 春 [chun1] /spring/",
    ]
    dictionary = Dictionary.from_lines(lines, {"力": 10**6, "李": 10})
    # only a person's entry lends its last word (Donald Trump -> Trump), not Peking University's
    assert dictionary.lookup("University", name=True) == ["大学"]
    assert dictionary.lookup("Trump", name=True) == ["特朗普"]
    # one capitalised word cut from a longer name counts where it is no English word
    assert dictionary.lookup("Chengdu", name=True) == ["成都"]
    # a lone surname is the commonest surname (李, though 力 is the commoner character), as a common word
    got = dictionary.translate("What did Laura Li say?")
    assert [(t.english, t.chinese, t.name) for t in got] == [("li", "李", False)]


def test_a_given_name_the_index_holds_alone_is_kept_with_its_surname(tmp_path):
    path = tmp_path / "cedict.txt"
    path.write_text("\n".join([*LINES, "劉 刘 [Liu2] /surname Liu/", "元 元 [yuan2] /first/", "春 春 [chun1] /spring/"])
                    + "\n", encoding="utf-8")  # fmt: skip
    translator = Translator(path, glossary=None)
    question = "Why does Liu Yuanchun worry?"
    # the index holds 元春 (jieba cut 刘/元春), not 刘元春
    assert translator.tokens(question, known=lambda spellings: {"元春"} & set(spellings)) == {"元春": 1.0, "刘": 0.5}
    assert translator.tokens(question, known=lambda spellings: {"刘元春"} & set(spellings)) == {"刘元春": 1.0}
    assert translator.tokens(question, known=lambda spellings: set()) == {}


def _long(i: int, title: str, paragraphs: list[str]) -> Article:
    filler = "这是一段用来凑足长度的普通文字，内容与问题无关。" * 9  # ~200 characters: one chunk per paragraph
    return Article(id=f"b{i}", title=title, source="测试", url=None, published=None, tags=(), language="zh-Hans",
                   path=f"b{i}.md", paragraphs=tuple(p + filler for p in paragraphs))  # fmt: skip


def test_the_translated_words_count_over_the_whole_article(tmp_path):
    """An English question's names spread over an article's paragraphs (the university in
    one, the economist in the next): per article, that article matches them all."""
    articles = [
        _long(0, "经济座谈会", ["人民大学的学者参加了会议。", "刘元春也发了言。", "他说失业风险仍然很高。"]),
        _long(1, "校园活动", ["人民大学的刘元春出席了校庆。", "天气晴朗。", "大家都来了。"]),  # the best single passage
        _long(2, "大学排名", ["人民大学排名上升。", "学生很多。", "校园很大。"]),
    ]
    root = tmp_path / "index"
    Index.update(root, articles, FlatEmbedder(), progress=False)
    question = "Why does Renmin University's Liu Yuanchun think the risk of unemployment is high?"
    with Index.open(root, FlatEmbedder()) as index:
        assert {"人民大学", "失业"} <= set(index.translator.tokens(question, known=lambda t: set(index._term_ids(t))))
        hits = index.search(question, k=3, mode="hybrid", filters=SearchFilters(max_per_article=1)).hits
        assert [h.citation.article_id for h in hits][:1] == ["b0"]
        assert index.stats().chunks == 9  # one chunk per paragraph: the words are in different passages


def test_article_bm25_of_one_passage_articles_is_the_passage_bm25(index_root):
    """Differential: where every article is one passage, the article score is the passage's
    (same idf, same length normalisation), so one-passage collections (XQuAD) rank as before."""
    weights = {"拜登": 1.0, "新疆": 0.5, "股市": 0.5, "银行": 1.0}
    with Index.open(index_root, FlatEmbedder()) as index:
        rows, scores, _, _ = index._lexical(list(weights), 10, index._version.live, weights)
        stored = index.catalog.chunk_rows(rows.tolist())
        per_article = index._article_bm25(weights, index.catalog.article_rows(a.id for a in ARTICLES))
    assert len(rows) >= 2
    expected = {stored[r].article_id: float(s) for r, s in zip(rows.tolist(), scores.tolist())}
    assert per_article.keys() == expected.keys()
    for article_id, score in expected.items():
        assert per_article[article_id] == pytest.approx(score, rel=1e-5)


def test_article_bm25_leaves_deleted_articles_out(tmp_path):
    articles = [_long(0, "甲", ["拜登谈新疆。", "拜登再谈。"]), _long(1, "乙", ["拜登访问。", "无关内容。"])]
    root = tmp_path / "index"
    Index.update(root, articles, FlatEmbedder(), progress=False)
    Index.update(root, articles[:1], FlatEmbedder(), progress=False)  # b1 removed: its rows are tombstones
    with Index.open(root, FlatEmbedder()) as index:
        rows = index.catalog.article_rows(["b0", "b1"])
        assert rows["b1"] == [] and len(rows["b0"]) == 2
        scores = index._article_bm25({"拜登": 1.0}, rows)
    assert set(scores) == {"b0"}


def test_in_memory_group_bm25_is_the_readers_article_bm25(tmp_path):
    """Differential: eval/calibrate.py's per-article leg (LexicalIndex.group_scores) scores
    as the index's reader does (Index._article_bm25), over articles of several passages."""
    from qa.lexical import LexicalIndex, tokenize

    articles = [
        _long(0, "经济座谈会", ["人民大学的学者参加了会议。", "刘元春也发了言。", "他说失业风险仍然很高。"]),
        _long(1, "校园活动", ["人民大学的刘元春出席了校庆。", "天气晴朗。"]),
        _long(2, "大学排名", ["人民大学排名上升。", "学生很多。", "校园很大。", "失业率下降。"]),
    ]
    root = tmp_path / "index"
    Index.update(root, articles, FlatEmbedder(), progress=False)
    weights = {"人民大学": 1.0, "元春": 1.0, "失业": 0.5, "风险": 0.5, "从未见过的词": 1.0}
    with Index.open(root, FlatEmbedder()) as index:
        by_article = index.catalog.article_rows(a.id for a in articles)
        rows = sorted(r for rs in by_article.values() for r in rs)
        stored = index.catalog.chunk_rows(rows)
        reader = index._article_bm25(weights, by_article)
    names = [a.id for a in articles]
    lexical = LexicalIndex.build([tokenize(f"{stored[r].citation.title}\n{stored[r].text}") for r in rows])
    groups = np.array([names.index(stored[r].article_id) for r in rows])
    in_memory = lexical.group_scores(weights, groups)
    assert len(rows) == 9 and set(reader) == set(names)
    for i, name in enumerate(names):
        assert in_memory[i] == pytest.approx(reader[name], rel=1e-6)
    with pytest.raises(ValueError, match="groups has shape"):
        lexical.group_scores(weights, groups[:3])


class RecordingEmbedder(HashEmbedder):
    """A hash embedder that records every call for queries."""

    def __init__(self):
        super().__init__(64, model="recording")
        self.queries: list[list[str]] = []

    def embed_queries(self, texts):
        self.queries.append(list(texts))
        return super().embed_queries(texts)


def test_mixed_query_is_a_unit_blend_of_the_two_vectors():
    rng = np.random.default_rng(0)
    a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 16)).astype(np.float32))
    half = mixed_query(a, b)
    assert np.linalg.norm(half) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(half, (a + b) / np.linalg.norm(a + b), atol=1e-6)
    assert np.allclose(mixed_query(a, b, share=1.0), a) and np.allclose(mixed_query(a, b, share=0.0), b)
    assert np.allclose(mixed_query(a, -a), a)  # nothing left of the mix: the question's own vector


def test_an_english_questions_dense_vector_is_half_its_chinese_words(tmp_path, monkeypatch):
    """Hybrid embeds an English question and its Chinese words (qa.crosslingual.words_text) and
    ranks with their mix; the hits report, and the verdict reads, the question's own cosines
    (what the relevance model was calibrated on), computed here with numpy. Dense mode, and a
    Chinese question, embed the question alone."""
    root = tmp_path / "index"
    embedder = RecordingEmbedder()
    Index.update(root, ARTICLES, embedder, progress=False)
    searched: list[np.ndarray] = []
    dense_search = reader.Index._dense

    def spy(self, query, n, masks):
        searched.append(np.array(query))
        return dense_search(self, query, n, masks)

    monkeypatch.setattr(reader.Index, "_dense", spy)
    question = "Did Biden's campaign call the Xinjiang policy a genocide?"
    with Index.open(root, embedder) as index:
        translated = index.translator.tokens(question, known=lambda t: set(index._term_ids(t)))
        assert {"拜登", "新疆"} <= set(translated)
        embedder.queries.clear()
        hits = index.search(question, k=4, mode="hybrid").hits
        assert embedder.queries == [[question, words_text(translated)]]
        own, words = embedder.embed_queries([question, words_text(translated)])
        assert len(searched) == 2  # ranked by the mix; the question's own nearest make the verdict's pool
        assert np.allclose(searched[0], mixed_query(own, words), atol=1e-6) and np.allclose(searched[1], own)
        passages = {a.id: embedder.embed_passages([f"{a.title}\n{a.paragraphs[0]}"])[0] for a in ARTICLES}
        assert hits and all(h.dense_score is not None for h in hits)
        for hit in hits:
            assert hit.dense_score == pytest.approx(float(passages[hit.citation.article_id] @ own), abs=1e-5)
        embedder.queries.clear()
        searched.clear()
        dense = index.search(question, k=4, mode="dense").hits
        index.search("拜登怎么说新疆？", k=4, mode="hybrid")
        assert embedder.queries == [[question], ["拜登怎么说新疆？"]] and len(searched) == 2
        for hit in dense:
            assert hit.dense_score == pytest.approx(float(passages[hit.citation.article_id] @ own), abs=1e-5)
    with Index.open(root, embedder, translator=Translator(enabled=False)) as off:
        embedder.queries.clear()
        off.search(question, k=4, mode="hybrid")
        assert embedder.queries == [[question]]  # no dictionary: no words to mix in


def test_a_question_share_of_one_keeps_to_the_questions_own_vector(tmp_path):
    root = tmp_path / "index"
    embedder = RecordingEmbedder()
    Index.update(root, ARTICLES, embedder, progress=False)
    question = "Did Biden's campaign call the Xinjiang policy a genocide?"
    with Index.open(root, embedder, translator=Translator(question_share=1.0)) as index:
        embedder.queries.clear()
        on = {h.citation.article_id: h.score for h in index.search(question, k=4, mode="hybrid").hits}
        assert embedder.queries == [[question]]  # the words are not embedded at all
    with Index.open(root, embedder, translator=Translator(enabled=False)) as off:
        plain = {h.citation.article_id: h.score for h in off.search(question, k=4, mode="hybrid").hits}
    assert on["a0"] > plain["a0"] + TRANSLATED_WEIGHT / 3  # their BM25 leg still counts, the cosines are the same
    assert all(on[a] == pytest.approx(plain[a]) for a in ("a1", "a2", "a3"))
    with pytest.raises(ValueError, match="question_share"):
        Translator(question_share=1.5)
