"""Highlights: query-term spans and the best sentence, across scripts and cases."""

from __future__ import annotations

import random

from qa.highlight import aligned_normalize, highlight, sentences
from qa.records import Span

TEXT = (
    "2020年，全国公安机关共破获电信网络诈骗案件32.2万起，抓获犯罪嫌疑人36.1万名。"
    "当前，境外诈骗占比约80%！另有一些案件仍在侦办中。"
)


def marked(text: str, spans) -> list[str]:
    return [text[s.start : s.end] for s in spans]


def test_terms_and_best_sentence():
    spans, best = highlight(TEXT, "2020年破获了多少电信网络诈骗案件？")
    # adjacent terms merged; every occurrence is marked, also in later sentences
    assert marked(TEXT, spans) == ["2020", "破获电信网络诈骗案件", "诈骗", "案件"]
    assert TEXT[best.start : best.end] == "2020年，全国公安机关共破获电信网络诈骗案件32.2万起，抓获犯罪嫌疑人36.1万名。"


def test_traditional_question_over_simplified_text_and_back():
    simplified, _ = highlight(TEXT, "境外诈骗占比多少？")
    traditional, best = highlight(TEXT, "境外詐騙佔比多少？")
    assert marked(TEXT, traditional) == marked(TEXT, simplified)
    assert "境外诈骗" in marked(TEXT, traditional)
    assert TEXT[best.start : best.end] == "当前，境外诈骗占比约80%！"
    trad_text = "台灣總統選舉結果今天公布。"
    spans, best = highlight(trad_text, "台湾总统选举")
    assert marked(trad_text, spans) == ["台灣總統選舉"]
    assert best == Span(0, len(trad_text))


def test_latin_is_case_insensitive_whole_word_with_plurals():
    text = "The U.S. approved new Vaccines. A vaccine passport is planned. Vaccinated people travel."
    spans, best = highlight(text, "vaccine PASSPORTS")
    assert marked(text, spans) == ["Vaccines", "vaccine", "passport"]  # not "Vaccinated"
    assert text[best.start : best.end] == "A vaccine passport is planned."


def test_no_match_gives_nothing():
    assert highlight(TEXT, "What share of telecom fraud is committed from abroad?") == ((), None)
    assert highlight(TEXT, "") == ((), None)
    assert highlight("", "诈骗") == ((), None)
    assert highlight(TEXT, "的了吗？") == ((), None)


def test_single_characters_are_marked_only_without_longer_terms():
    spans, _ = highlight(TEXT, "诈骗案件多少年")
    assert marked(TEXT, spans) == ["诈骗案件", "诈骗", "案件"]  # 年 and 多少 are not marked
    spans, best = highlight("猫吃鱼。狗吃肉。", "狗吃什么")
    assert marked("猫吃鱼。狗吃肉。", spans) == ["吃", "狗吃"]
    assert best == Span(4, 8)


def test_ties_go_to_the_earliest_sentence():
    text = "诈骗很多。诈骗很多。"
    assert highlight(text, "诈骗")[1] == Span(0, 5)


def test_sentences_split_on_chinese_and_latin_ends_with_closing_quotes():
    text = "他说：“明天见。”然后走了！ Prices rose 3.5% in the U.S. today. Next?"
    got = [text[s.start : s.end] for s in sentences(text)]
    assert got == ["他说：“明天见。”", "然后走了！", "Prices rose 3.5% in the U.S. today.", "Next?"]


def test_offsets_always_inside_text_even_when_normalisation_changes_length():
    # NFKC expands ﬁ, ㈠ and ½; "İ".lower() is two characters: the aligned copy must not shift.
    text = "ﬁnance㈠ İstanbul ½ 台灣總統選舉。Finance news！"
    assert len(aligned_normalize(text)) == len(text)
    spans, best = highlight(text, "台湾总统选举 finance")
    assert "台灣總統選舉" in marked(text, spans) and "Finance" in marked(text, spans)
    rng = random.Random(3)
    alphabet = list("台灣总统選举的ﬁ㈠İ½ＡＢa b.。！？\n") + ["finance", "選舉"]
    for _ in range(300):
        sample = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        question = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        spans, best = highlight(sample, question)
        previous_end = -1
        for span in spans:
            assert 0 <= span.start < span.end <= len(sample)
            assert span.start > previous_end  # sorted, non-overlapping, adjacent merged
            previous_end = span.end
        if best is not None:
            assert 0 <= best.start < best.end <= len(sample)
